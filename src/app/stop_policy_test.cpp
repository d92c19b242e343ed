#include <catch2/catch.hpp>

#include "app/stop_policy.hpp"

using namespace kvmgpu::app;
using std::chrono::seconds;

namespace {

std::vector<StopAction> actions(const std::vector<StopStage>& plan) {
    std::vector<StopAction> out;
    for (const auto& s : plan) out.push_back(s.action);
    return out;
}

}  // namespace

TEST_CASE("a stop asks the running guest first and escalates to quit, SIGTERM and SIGKILL", "[app][stop]") {
    const auto plan = stop_plan(seconds(60), false, true);
    CHECK(actions(plan) ==
          std::vector{StopAction::powerdown, StopAction::quit, StopAction::terminate, StopAction::kill});
    CHECK(plan[0].wait == seconds(60));
    for (std::size_t i = 1; i < plan.size(); ++i) CHECK(plan[i].wait == kStopStageWait);
}

TEST_CASE("a forced stop or a guest that is not running skips the power button", "[app][stop]") {
    struct Case { bool force; bool running; };
    for (const auto c : {Case{true, true}, Case{true, false}, Case{false, false}}) {
        INFO("force " << c.force << ", running " << c.running);
        CHECK(actions(stop_plan(seconds(60), c.force, c.running)) ==
              std::vector{StopAction::quit, StopAction::terminate, StopAction::kill});
    }
}

TEST_CASE("stop actions have stable names", "[app][stop]") {
    CHECK(stop_action_name(StopAction::powerdown) == "powerdown");
    CHECK(stop_action_name(StopAction::quit) == "quit");
    CHECK(stop_action_name(StopAction::terminate) == "terminate");
    CHECK(stop_action_name(StopAction::kill) == "kill");
}
