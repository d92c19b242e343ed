#include "app/stop_policy.hpp"

namespace kvmgpu::app {

std::string_view stop_action_name(StopAction action) {
    switch (action) {
        case StopAction::powerdown: return "powerdown";
        case StopAction::quit: return "quit";
        case StopAction::terminate: return "terminate";
        case StopAction::kill: return "kill";
    }
    return "?";
}

std::vector<StopStage> stop_plan(std::chrono::seconds timeout, bool force, bool guest_running) {
    std::vector<StopStage> plan;
    if (!force && guest_running) plan.push_back({StopAction::powerdown, timeout});
    plan.push_back({StopAction::quit, kStopStageWait});
    plan.push_back({StopAction::terminate, kStopStageWait});
    plan.push_back({StopAction::kill, kStopStageWait});
    return plan;
}

}  // namespace kvmgpu::app
