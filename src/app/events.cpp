#include "app/events.hpp"

#include <nlohmann/json.hpp>

namespace kvmgpu::app {
namespace {

using nlohmann::json;

json event_json(const StepEvent& e) {
    json j = {{"event", "step"}, {"step", e.step}, {"message", e.message}, {"ok", e.ok}};
    if (!e.detail.empty()) j["detail"] = e.detail;
    if (!e.error.empty()) j["error"] = e.error;
    return j;
}
json event_json(const FindingEvent& e) {
    return {{"event", "finding"}, {"severity", e.severity}, {"code", e.code}, {"message", e.message}};
}
json event_json(const RunningEvent& e) {
    return {{"event", "running"},
            {"name", e.name},
            {"qemu_pid", e.qemu_pid},
            {"supervisor_pid", e.supervisor_pid},
            {"control_socket", e.control_socket}};
}
json event_json(const PausedEvent& e) { return {{"event", "paused"}, {"name", e.name}}; }
json event_json(const ResumedEvent& e) { return {{"event", "resumed"}, {"name", e.name}}; }
json event_json(const StoppingEvent& e) {
    json j = {{"event", "stopping"}, {"reason", e.reason}, {"force", e.force}};
    if (!e.signal.empty()) j["signal"] = e.signal;
    return j;
}
json event_json(const LogEvent& e) { return {{"event", "log"}, {"tail", e.tail}}; }
json event_json(const StoppedEvent& e) {
    json j = outcome_json(e);
    j["event"] = "stopped";
    j["name"] = e.name;
    return j;
}
json event_json(const UnsupervisedEvent& e) {
    return {{"event", "unsupervised"}, {"error", e.error}, {"message", e.message}};
}

}  // namespace

json outcome_json(const StoppedEvent& e) {
    json j = {{"devices_restored", e.devices_restored}, {"reason", e.reason}, {"exit_code", e.exit_code}};
    if (!e.detail.empty()) j["detail"] = e.detail;
    if (!e.devices_not_restored.empty()) j["devices_not_restored"] = e.devices_not_restored;
    if (!e.devices_not_working.empty()) j["devices_not_working"] = e.devices_not_working;
    if (!e.changes_not_restored.empty()) j["changes_not_restored"] = e.changes_not_restored;
    if (!e.hint.empty()) j["hint"] = e.hint;
    if (e.poststop_failed) j["poststop_failed"] = true;
    return j;
}

void to_json(json& j, const Event& event) {
    j = std::visit([](const auto& e) { return event_json(e); }, event);
}

}  // namespace kvmgpu::app
