#include "util/sd_notify.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>

#include "notify_listener.hpp"
#include "temp_dir.hpp"

using kvmgpu::testing::NotifyListener;
using kvmgpu::testing::TempDir;
using kvmgpu::util::SdNotifier;

namespace {

auto soon() { return std::chrono::steady_clock::now() + std::chrono::seconds(5); }

}  // namespace

TEST_CASE("sd_notify messages reach a datagram socket bound to a path", "[sd_notify]") {
    TempDir dir;
    NotifyListener systemd((dir.path() / "notify").string());
    SdNotifier notifier(systemd.address());
    REQUIRE(notifier.enabled());
    CHECK(notifier.send("STATUS=checking the host"));
    CHECK(notifier.send("READY=1\nSTATUS=running"));
    auto first = systemd.next(soon());
    REQUIRE(first);
    CHECK(first->text == "STATUS=checking the host");
    CHECK(first->pid == ::getpid());
    auto second = systemd.next(soon());
    REQUIRE(second);
    CHECK(second->text == "READY=1\nSTATUS=running");
}

TEST_CASE("sd_notify messages reach a socket in the abstract namespace", "[sd_notify]") {
    const std::string name = "@kvmgpu-test-notify-" + std::to_string(::getpid());
    NotifyListener systemd(name);
    SdNotifier notifier(name);
    REQUIRE(notifier.enabled());
    CHECK(notifier.send("STOPPING=1"));
    auto got = systemd.next(soon());
    REQUIRE(got);
    CHECK(got->text == "STOPPING=1");
}

TEST_CASE("sd_notify without a listener or with a bad address fails quietly", "[sd_notify]") {
    SECTION("no NOTIFY_SOCKET: nothing is sent") {
        SdNotifier none("");
        CHECK_FALSE(none.enabled());
        CHECK_FALSE(none.send("READY=1"));
        CHECK(none.error().empty());
    }
    SECTION("a path nobody listens on") {
        TempDir dir;
        SdNotifier gone((dir.path() / "nobody").string());
        REQUIRE(gone.enabled());
        CHECK_FALSE(gone.send("READY=1"));
        CHECK(gone.error().find("cannot notify systemd") != std::string::npos);
    }
    SECTION("a relative path is refused") {
        SdNotifier relative("run/notify");
        CHECK_FALSE(relative.enabled());
        CHECK(relative.error().find("neither an absolute path") != std::string::npos);
    }
    SECTION("a path longer than a socket address") {
        SdNotifier long_one("/" + std::string(200, 'x'));
        CHECK_FALSE(long_one.enabled());
        CHECK_FALSE(long_one.error().empty());
    }
}

TEST_CASE("a STATUS line is always one line", "[sd_notify]") {
    CHECK(SdNotifier::status_line("binding 0000:01:00.0") == "STATUS=binding 0000:01:00.0");
    CHECK(SdNotifier::status_line("evil\nREADY=1\r") == "STATUS=evil READY=1 ");
}

TEST_CASE("unset_notify_socket removes NOTIFY_SOCKET from the environment", "[sd_notify]") {
    ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
    kvmgpu::util::unset_notify_socket();
    CHECK(std::getenv("NOTIFY_SOCKET") == nullptr);
}
