#include "app/service_notify.hpp"

#include <type_traits>

namespace kvmgpu::app {
namespace {

using util::SdNotifier;

struct Notification {
    std::string operator()(const StepEvent& e) const {
        return SdNotifier::status_line(e.ok ? e.message : e.message + " failed: " + e.error);
    }
    std::string operator()(const FindingEvent&) const { return {}; }
    std::string operator()(const RunningEvent& e) const {
        return "READY=1\n" + SdNotifier::status_line("running: " + e.name + " (QEMU pid " + std::to_string(e.qemu_pid) + ")");
    }
    std::string operator()(const PausedEvent& e) const { return SdNotifier::status_line("paused: " + e.name); }
    std::string operator()(const ResumedEvent& e) const { return SdNotifier::status_line("running: " + e.name); }
    std::string operator()(const StoppingEvent& e) const {
        const std::string why = e.reason == "signal"           ? e.signal
                                : e.reason == "stop-requested" ? std::string("kvmgpu stop")
                                                               : std::string("QEMU exited");
        return "STOPPING=1\n" + SdNotifier::status_line("stopping (" + why + (e.force ? ", forced" : "") + ")");
    }
    std::string operator()(const LogEvent&) const { return {}; }
    std::string operator()(const StoppedEvent& e) const {
        return SdNotifier::status_line("stopped: " + e.name + " (" + e.reason + ")");
    }
    std::string operator()(const UnsupervisedEvent& e) const { return SdNotifier::status_line(e.message); }
};

}  // namespace

std::string service_notification(const Event& event) { return std::visit(Notification{}, event); }

Report notifying_systemd(Report inner, util::SdNotifier& notifier) {
    if (!notifier.enabled()) return inner;
    return [inner = std::move(inner), &notifier](const Event& event) {
        if (inner) inner(event);
        if (auto message = service_notification(event); !message.empty()) notifier.send(message);
    };
}

}  // namespace kvmgpu::app
