#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <array>
#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "app/exit_reason.hpp"

using namespace kvmgpu::app;

namespace {

// Raw wait statuses built by hand, the inverse of the W* macros: exit status n → n << 8, killed
// by signal s → s. Each carries, written out, what the rules need to know about it.
struct WaitCase {
    const char* name;
    std::optional<int> status;
    const char* how;  // how the detail sentences say it
    bool clean;       // exited with status 0
    bool sigkilled;   // killed by SIGKILL
};
const std::array<WaitCase, 5> kWaits = {{
    {"exit 0", 0 << 8, "exited with status 0", true, false},
    {"exit 1", 1 << 8, "exited with status 1", false, false},
    {"SIGKILL", SIGKILL, "killed by signal 9 (SIGKILL)", false, true},
    {"SIGSEGV", SIGSEGV, "killed by signal 11 (SIGSEGV)", false, false},
    {"unknown", std::nullopt, "gone", false, false},
}};

struct StartCase {
    const char* name;
    std::string error;
    const char* already_says;  // the end of QEMU the error already names, or nullptr
};
const std::array<StartCase, 3> kStarts = {{
    {"started", "", nullptr},
    {"start error", "QMP negotiation timed out after 30 s", nullptr},
    {"start error naming exit 1", "QMP connection closed: QEMU exited with status 1", "exited with status 1"},
}};

struct StopCase {
    const char* name;
    std::optional<StopCause> cause;
    std::optional<ExitReason> reason;  // the reason a stop of this cause ends with
};
const std::array<StopCase, 3> kStops = {{
    {"no stop", std::nullopt, std::nullopt},
    {"kvmgpu stop", StopCause::stop_requested, ExitReason::stop_requested},
    {"signal", StopCause::signal, ExitReason::signal},
}};

const std::array<std::optional<std::string>, 4> kShutdowns = {
    std::nullopt, std::string("guest-shutdown"), std::string("host-qmp-quit"), std::string("host-signal")};

struct Combo {
    const StartCase& start;
    bool ran;
    const StopCase& stop;
    const WaitCase& wait;
    const std::optional<std::string>& shutdown;
};

struct Expected {
    ExitReason reason;
    std::string detail;
    int exit_code;
};

// The rules as the issue states them, in priority order; the first that applies decides. Written
// here independently of classify_exit() so that a change of behaviour shows up as a failure.
struct Rule {
    const char* name;
    std::function<bool(const Combo&)> applies;
    std::function<Expected(const Combo&)> expect;
};
const std::vector<Rule>& rules() {
    static const std::vector<Rule> table = {
        {"a start error is a failed start, with QEMU's end appended unless the error names it",
         [](const Combo& c) { return !c.start.error.empty(); },
         [](const Combo& c) {
             const bool named = c.start.already_says && std::string(c.start.already_says) == c.wait.how;
             return Expected{ExitReason::start_failed,
                             named ? c.start.error : c.start.error + "; QEMU " + c.wait.how, 1};
         }},
        {"QEMU ending before cont with no stop asked for is a failed start",
         [](const Combo& c) { return !c.ran && !c.stop.cause; },
         [](const Combo& c) {
             return Expected{ExitReason::start_failed, std::string("QEMU ") + c.wait.how + " before the VM started", 1};
         }},
        {"a clean exit after a stop was asked for is that stop",
         [](const Combo& c) { return c.stop.cause && c.wait.clean; },
         [](const Combo& c) { return Expected{*c.stop.reason, "", 0}; }},
        {"SIGKILL after a stop was asked for is that stop, killed at the end of the sequence",
         [](const Combo& c) { return c.stop.cause && c.wait.sigkilled; },
         [](const Combo& c) { return Expected{*c.stop.reason, "QEMU did not quit and was killed", 0}; }},
        {"a clean exit after the guest shut down is a guest shutdown",
         [](const Combo& c) { return c.wait.clean && c.shutdown == std::string("guest-shutdown"); },
         [](const Combo&) { return Expected{ExitReason::guest_shutdown, "", 0}; }},
        {"a clean exit after any other SHUTDOWN is a stop someone else asked for",
         [](const Combo& c) { return c.wait.clean && c.shutdown.has_value(); },
         [](const Combo& c) { return Expected{ExitReason::stop_requested, "QEMU shut down: " + *c.shutdown, 0}; }},
        {"anything else is a crash",
         [](const Combo&) { return true; },
         [](const Combo& c) { return Expected{ExitReason::crashed, std::string("QEMU ") + c.wait.how, 1}; }},
    };
    return table;
}

ExitObservation observe(const Combo& c) {
    ExitObservation o;
    o.start_error = c.start.error;
    o.ran = c.ran;
    o.stop_cause = c.stop.cause;
    o.wait_status = c.wait.status;
    o.shutdown_reason = c.shutdown;
    return o;
}

}  // namespace

TEST_CASE("The hand-built wait statuses mean what the test table says they mean", "[app][exit]") {
    CHECK((WIFEXITED(0 << 8) && WEXITSTATUS(0 << 8) == 0));
    CHECK((WIFEXITED(1 << 8) && WEXITSTATUS(1 << 8) == 1));
    CHECK((WIFSIGNALED(SIGKILL) && WTERMSIG(SIGKILL) == SIGKILL && !WCOREDUMP(SIGKILL)));
    CHECK((WIFSIGNALED(SIGSEGV) && WTERMSIG(SIGSEGV) == SIGSEGV && !WCOREDUMP(SIGSEGV)));
}

TEST_CASE("Every combination of observations ends with the reason, detail and exit code the rules give",
          "[app][exit]") {
    std::vector<int> matched(rules().size(), 0);
    int combinations = 0;
    for (const auto& start : kStarts)
        for (bool ran : {false, true})
            for (const auto& stop : kStops)
                for (const auto& wait : kWaits)
                    for (const auto& shutdown : kShutdowns) {
                        const Combo c{start, ran, stop, wait, shutdown};
                        std::size_t i = 0;
                        while (!rules()[i].applies(c)) ++i;
                        ++matched[i];
                        ++combinations;
                        const Expected want = rules()[i].expect(c);
                        const ExitVerdict got = classify_exit(observe(c));
                        INFO(start.name << ", " << (ran ? "ran" : "never ran") << ", " << stop.name << ", "
                                        << wait.name << ", SHUTDOWN " << shutdown.value_or("none")
                                        << " → rule: " << rules()[i].name);
                        CHECK(exit_reason_name(got.reason) == exit_reason_name(want.reason));
                        CHECK(got.detail == want.detail);
                        CHECK(got.exit_code() == want.exit_code);
                        CHECK(got.ok() == (want.exit_code == 0));
                    }
    CHECK(combinations == 3 * 2 * 3 * 5 * 4);
    // Each rule decides at least one combination, so none is shadowed by an earlier one.
    for (std::size_t i = 0; i < rules().size(); ++i) {
        INFO("rule: " << rules()[i].name);
        CHECK(matched[i] > 0);
    }
}

TEST_CASE("A guest that powers itself off ends as guest-shutdown with exit code 0", "[app][exit]") {
    ExitObservation o;
    o.ran = true;
    o.wait_status = 0;
    o.shutdown_reason = "guest-shutdown";
    const auto v = classify_exit(o);
    CHECK(v.reason == ExitReason::guest_shutdown);
    CHECK(v.detail.empty());
    CHECK(v.ok());
    CHECK(v.exit_code() == 0);
}

TEST_CASE("A SIGKILL nobody asked for is a crash, even after a guest shutdown", "[app][exit]") {
    ExitObservation o;
    o.ran = true;
    o.wait_status = SIGKILL;
    o.shutdown_reason = "guest-shutdown";
    const auto v = classify_exit(o);
    CHECK(v.reason == ExitReason::crashed);
    CHECK(v.detail == "QEMU killed by signal 9 (SIGKILL)");
    CHECK(v.exit_code() == 1);
}

TEST_CASE("A stop asked for before the VM started is that stop, not a failed start", "[app][exit]") {
    ExitObservation o;
    o.stop_cause = StopCause::signal;
    o.wait_status = 0;
    const auto v = classify_exit(o);
    CHECK(v.reason == ExitReason::signal);
    CHECK(v.exit_code() == 0);
}

TEST_CASE("A SHUTDOWN event without a reason is reported as it came", "[app][exit]") {
    ExitObservation o;
    o.ran = true;
    o.wait_status = 0;
    o.shutdown_reason = "";
    const auto v = classify_exit(o);
    CHECK(v.reason == ExitReason::stop_requested);
    CHECK(v.detail == "QEMU shut down: ");
}

TEST_CASE("Exit reasons are named as the JSON output has always named them", "[app][exit]") {
    CHECK(exit_reason_name(ExitReason::guest_shutdown) == "guest-shutdown");
    CHECK(exit_reason_name(ExitReason::stop_requested) == "stop-requested");
    CHECK(exit_reason_name(ExitReason::signal) == "signal");
    CHECK(exit_reason_name(ExitReason::crashed) == "crashed");
    CHECK(exit_reason_name(ExitReason::start_failed) == "start-failed");
}

TEST_CASE("Only a crash or a failed start makes the VM's part of the exit code 1", "[app][exit]") {
    struct Case { ExitReason reason; bool ok; };
    for (auto c : {Case{ExitReason::guest_shutdown, true}, Case{ExitReason::stop_requested, true},
                   Case{ExitReason::signal, true}, Case{ExitReason::crashed, false},
                   Case{ExitReason::start_failed, false}}) {
        INFO(exit_reason_name(c.reason));
        const ExitVerdict v{c.reason, ""};
        CHECK(v.ok() == c.ok);
        CHECK(v.exit_code() == (c.ok ? 0 : 1));
    }
}
