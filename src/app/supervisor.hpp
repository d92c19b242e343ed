#pragma once
// The supervisor: from a freshly spawned, paused QEMU to its end. One thread, one io_context:
// QMP (negotiate, pin vCPUs, cont), QMP events, SIGINT/SIGTERM, QEMU's exit (pidfd), and the
// control socket that `kvmgpu pause|resume|stop|status|qmp|events` talk to.
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/vm_dir.hpp"
#include "util/process.hpp"

namespace kvmgpu::app {

// Progress and lifecycle events: {"event": "step"|"running"|"paused"|"resumed"|"stopping"|
// "stopped", ...}. The CLI renders them as text lines or prints them as JSON lines.
using Report = std::function<void(const nlohmann::json&)>;

// Reports one step: {"event": "step", "step": NAME, "message": MESSAGE, "ok": true, ...extra}.
void report_step(const Report& report, const std::string& name, const std::string& message,
                 nlohmann::json extra = nlohmann::json::object());

struct SuperviseOptions {
    // How long a stop (Ctrl-C, SIGTERM, `kvmgpu stop`) waits for the guest to power off after
    // the ACPI power button before QEMU is told to quit.
    std::chrono::seconds stop_timeout{60};
    std::chrono::seconds connect_timeout{30};
    std::vector<unsigned> pin;           // host CPU per vCPU
    std::vector<unsigned> emulator_pin;  // host CPUs for QEMU's other threads
    std::vector<std::string> devices;    // for status
};

struct SupervisionResult {
    // "guest-shutdown", "stop-requested", "signal", "crashed", "start-failed".
    std::string reason;
    std::optional<int> wait_status;  // QEMU's raw wait status
    std::string detail;              // for crashed/start-failed: what happened
    bool ok() const { return reason != "crashed" && reason != "start-failed"; }
};

// Runs until QEMU has exited. `on_end` runs once QEMU is gone and before `kvmgpu stop` clients
// get their answer (so that they return with the devices already back); its JSON is added to
// their reply and to the final "stopped" event.
SupervisionResult supervise(const VmDir& dir, util::ChildProcess& qemu, VmState state,
                            const SuperviseOptions& options, const Report& report,
                            const std::function<nlohmann::json(const SupervisionResult&)>& on_end);

}  // namespace kvmgpu::app
