#pragma once
// What a launch and a supervised VM tell the person or program that started them: progress
// steps, host findings, lifecycle changes and the final outcome. Each event is a struct; the CLI
// renders it once as a line of text and once as JSON (to_json here is the JSON contract of
// `kvmgpu run --json`, documented in docs/json.md).
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kvmgpu::app {

// One step of the launch or of the stop: {"event": "step", "step": NAME, "message", "ok", ...}.
struct StepEvent {
    std::string step;     // stable id: "check", "bind", "spawn", "qmp", "restore", ...
    std::string message;  // what is being done, for people: "binding 0000:01:00.0 nouveau → vfio-pci"
    bool ok = true;
    std::string detail;   // optional: "pid 4242, log /run/kvmgpu/win11/qemu.log"
    std::string error;    // when !ok: why, with the fix
};

// A host finding of the launch's check that is not "ok".
struct FindingEvent {
    std::string severity;  // "warning" or "error"
    std::string code;
    std::string message;
};

struct RunningEvent {
    std::string name;
    pid_t qemu_pid = 0;
    pid_t supervisor_pid = 0;
    std::string control_socket;
};

// The guest was paused or resumed (by `kvmgpu pause|resume`, QMP, or the guest itself).
struct PausedEvent {
    std::string name;
};
struct ResumedEvent {
    std::string name;
};

// The VM begins to end: a signal or `kvmgpu stop` asked the supervisor to stop it, or QEMU
// exited by itself (a guest shutdown, a crash) and the supervisor begins to give everything back.
// Reported once per cause (a second signal again, with force).
struct StoppingEvent {
    std::string signal;  // "SIGINT", "SIGTERM", "SIGHUP"; empty unless reason is "signal"
    bool force = false;
    std::string reason = "signal";  // "signal", "stop-requested" or "qemu-exited"
};

// The end of QEMU's log, after a failure.
struct LogEvent {
    std::string tail;
};

// The VM has ended and everything was given back (or not: then `devices_not_restored`).
struct StoppedEvent {
    std::string name;
    std::string reason;  // exit_reason_name(): "guest-shutdown", "stop-requested", ...
    std::string detail;
    std::vector<std::string> devices_restored;
    std::vector<std::string> devices_not_restored;
    std::vector<std::string> devices_not_working;   // given back, but not in working order
    std::vector<std::string> changes_not_restored;  // other host changes (a service, a module, a console)
    std::string hint;  // what to do about devices not restored
    bool poststop_failed = false;
    int exit_code = 0;
};

// The supervisor failed while QEMU still runs: the VM goes on without it.
struct UnsupervisedEvent {
    std::string error;
    std::string message;
};

using Event = std::variant<StepEvent, FindingEvent, RunningEvent, PausedEvent, ResumedEvent, StoppingEvent,
                           LogEvent, StoppedEvent, UnsupervisedEvent>;

// Receives every event of a launch, in order.
using Report = std::function<void(const Event&)>;

// {"event": "step"|"finding"|"running"|"paused"|"resumed"|"stopping"|"log"|"stopped"|"unsupervised", ...}
void to_json(nlohmann::json& j, const Event& event);
// The outcome part of a StoppedEvent, without "event" and "name": the reply `kvmgpu stop` gets.
nlohmann::json outcome_json(const StoppedEvent& stopped);

}  // namespace kvmgpu::app
