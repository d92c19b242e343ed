#pragma once
// Controlling a VM from another process: find it by name, judge whether its supervisor lives,
// and talk to the supervisor's control socket — or, when the supervisor is gone, to QEMU's
// rescue QMP socket directly.
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "app/context.hpp"
#include "app/control_client.hpp"
#include "app/control_protocol.hpp"
#include "util/error.hpp"
#include "app/vm_dir.hpp"

namespace kvmgpu::app {

// A VM that cannot be found or reached; what() names it and says what to do.
struct NotRunning : util::RuntimeFailure {
    explicit NotRunning(const std::string& message) : util::RuntimeFailure(message, "not-running") {}
};

// How long a supervisor has to read a request of a kvmgpu command (the request's "deadline").
// One that has not answered by then is taken as stopped or hung: the command falls back to QEMU's
// rescue QMP socket, and the supervisor, should it run again, refuses the late request.
inline constexpr std::chrono::milliseconds kSupervisorReadsWithin{5000};

// A note for the user about a fallback taken (the CLI prints it as a warning).
using Warn = std::function<void(const std::string&)>;

struct VmHandle {
    VmDir dir;
    VmState state;
    Liveness liveness;
    // The supervisor runs but did not answer (stopped or hung): QEMU is reached over the rescue
    // socket as if it were gone, and what the supervisor owns (its directory) is left to it.
    bool supervisor_silent = false;
};

// Finds a running VM. A left-over directory of a VM that is gone is removed (unless devices of
// that VM still wait in a restore journal; and only while no launch has taken the name over, under
// the runtime directory's lock) and reported as NotRunning.
VmHandle find_vm(const Context& ctx, const std::string& name);

// Sends one QMP command object to the VM (through the supervisor, or the rescue socket) and
// returns QEMU's reply object ({"return": ...} or {"error": ...}).
nlohmann::json vm_qmp(const VmHandle& vm, const nlohmann::json& request, std::chrono::milliseconds timeout);

// The VM's status: from its supervisor, or from its directory and QEMU's rescue socket.
VmStatus vm_status(const VmHandle& vm, std::chrono::milliseconds timeout);

// Ends the VM: ACPI power button (unless `force`), up to `timeout` for the guest, then quit,
// then SIGKILL. Through the supervisor this returns once the devices are back; without one
// the returned object says whether devices still wait for `kvmgpu restore`.
// A supervisor that does not answer is passed by as in stop_by_name.
nlohmann::json vm_stop(const Context& ctx, const VmHandle& vm, std::chrono::seconds timeout, bool force,
                       const Warn& warn = {});

// What each command acting on a VM by name does: the fast path straight to the supervisor, else
// the careful one through the VM directory (find_vm). A supervisor that does not read the
// request within kSupervisorReadsWithin is passed by: the command goes to QEMU's rescue socket
// and `warn` says so. These are the CLI's entry points.
nlohmann::json qmp_by_name(const Context& ctx, const std::string& name, const nlohmann::json& command,
                           std::chrono::milliseconds timeout, const Warn& warn = {});
VmStatus status_by_name(const Context& ctx, const std::string& name, std::chrono::milliseconds timeout,
                        const Warn& warn = {});
nlohmann::json stop_by_name(const Context& ctx, const std::string& name, std::chrono::seconds timeout, bool force,
                            const Warn& warn = {});
// A control connection already subscribed to the VM's events: read them with next().
ControlClient open_events(const Context& ctx, const std::string& name, std::chrono::milliseconds timeout);

// `kvmgpu ps`: one row per VM directory whose VM runs; problems reading one are warnings. With
// `all` (`ps --all`), also one row per VM defined by a profile in the profile directories
// (app/profile_lookup.hpp) that does not run (liveness and status "stopped"), and each row says
// which profile file defines its name there (`defined`; null for a VM started from elsewhere).
struct VmRow {
    VmState state;
    std::string liveness;
    std::string status;  // QEMU's run state, or "unknown"; "stopped" for a defined VM not running
    bool listed_all = false;
    std::optional<std::string> defined;
};
struct VmTable {
    std::vector<VmRow> rows;
    std::vector<std::string> warnings;
};
VmTable list_vms(const Context& ctx, bool all = false);
void to_json(nlohmann::json& j, const VmRow& row);

}  // namespace kvmgpu::app
