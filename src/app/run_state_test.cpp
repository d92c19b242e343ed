#include <catch2/catch.hpp>

#include "app/run_state.hpp"

using namespace kvmgpu::app;

TEST_CASE("the cached run state follows only the transitions whose outcome is certain", "[app][status]") {
    RunStateCache cache;
    CHECK_FALSE(cache.known());
    cache.resumed();
    REQUIRE(cache.known());
    CHECK(cache.known()->status == "running");
    CHECK(cache.known()->running);

    struct Case { const char* event; std::optional<std::string> status; };
    for (const auto& c : {Case{"STOP", std::nullopt}, Case{"SHUTDOWN", std::nullopt}, Case{"RESET", std::nullopt},
                          Case{"GUEST_PANICKED", std::nullopt}, Case{"SOMETHING_NEW", std::nullopt},
                          Case{"RESUME", "running"}, Case{"WAKEUP", "running"}, Case{"SUSPEND", "suspended"}}) {
        INFO(c.event);
        cache.resumed();
        cache.on_event(c.event);
        if (!c.status) {
            CHECK_FALSE(cache.known());
        } else {
            REQUIRE(cache.known());
            CHECK(cache.known()->status == *c.status);
            CHECK(cache.known()->running == (*c.status == "running"));
        }
    }
}

TEST_CASE("events that do not touch the run state keep what is known, and an answer is kept", "[app][status]") {
    RunStateCache cache;
    cache.answered({"paused", false}, cache.epoch());
    for (const char* event : {"RTC_CHANGE", "VNC_CONNECTED", "POWERDOWN", "NIC_RX_FILTER_CHANGED"}) {
        INFO(event);
        cache.on_event(event);
        REQUIRE(cache.known());
        CHECK(cache.known()->status == "paused");
    }
}

TEST_CASE("an answer to a question asked before an event is not kept", "[app][status]") {
    RunStateCache cache;
    const auto asked = cache.epoch();
    cache.on_event("STOP");  // arrives while QEMU's answer ("running") is on its way
    cache.answered({"running", true}, asked);
    CHECK_FALSE(cache.known());
    cache.answered({"paused", false}, cache.epoch());
    REQUIRE(cache.known());
    CHECK(cache.known()->status == "paused");
}
