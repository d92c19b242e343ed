#include "app/control.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "app/control_client.hpp"
#include "app/stop_policy.hpp"
#include "app/launch.hpp"
#include "app/profile_lookup.hpp"
#include "host/journal.hpp"
#include "util/fd.hpp"
#include "util/proc.hpp"

namespace kvmgpu::app {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A name that can only mean a VM directory under RUNTIME.
bool valid_vm_name(const std::string& name) {
    return !name.empty() && name.front() != '.' && name.find('/') == std::string::npos;
}

bool has_journal(const Context& ctx, const std::string& name) {
    try {
        const auto j = host::read_changes(host_state_dir(ctx), name);
        return j && !j->changes.empty();
    } catch (const std::exception&) {
        return true;  // unreadable: keep everything for a human to look at
    }
}

// One request to a supervisor, which must read it within kSupervisorReadsWithin (the request's
// "deadline") and then has `work` more for the answer. Throws NoAnswer when it did not answer.
json ask(ControlClient& client, json request, std::chrono::milliseconds work) {
    const auto read_by = Clock::now() + kSupervisorReadsWithin;
    request["deadline"] = std::chrono::duration_cast<std::chrono::milliseconds>(read_by.time_since_epoch()).count();
    client.send(request);
    auto reply = client.next(read_by + work);
    if (!reply) throw std::runtime_error("the supervisor closed the connection without answering");
    return *reply;
}

// Nullopt when nothing listens on the control socket (the supervisor is gone, or not there yet).
std::optional<json> ask(const VmDir& dir, const json& request, std::chrono::milliseconds work) {
    auto client = ControlClient::connect(dir.control_socket());
    if (!client) return std::nullopt;
    return ask(*client, request, work);
}

std::string silence(const VmHandle& vm) {
    return "the supervisor of \"" + vm.dir.name() + "\" (pid " + std::to_string(vm.state.supervisor_pid) +
           ") did not answer within " + std::to_string(kSupervisorReadsWithin.count() / 1000) +
           " s (stopped or hung?)";
}

// The VM of a supervisor that did not answer, to be reached past it (or gone meanwhile); `what`
// says what the command does instead.
VmHandle past_silent_supervisor(const Context& ctx, const std::string& name, const Warn& warn, const std::string& what) {
    auto vm = find_vm(ctx, name);
    if (vm.liveness == Liveness::supervised) {
        vm.supervisor_silent = true;
        if (warn) warn(silence(vm) + "; " + what);
    }
    return vm;
}

// Waits until the process (pid, start time) is gone; false at the deadline. It is not our child
// here: a pidfd (any process's) tells of its exit; kernels without pidfd_open fall back to
// polling /proc.
bool wait_gone(pid_t pid, std::uint64_t start, Clock::time_point deadline) {
    util::Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    // Checked after opening: the pidfd then names the process whose start time matched.
    while (util::process_alive(pid, start)) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return false;
        if (pidfd) {
            pollfd pfd{pidfd.get(), POLLIN, 0};
            ::poll(&pfd, 1, static_cast<int>(left.count()));
        } else {
            std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(20)));
        }
    }
    return true;
}

}  // namespace

VmHandle find_vm(const Context& ctx, const std::string& name) {
    VmDir dir(ctx, name);
    if (!valid_vm_name(name) || !dir.exists())
        throw NotRunning("no VM named \"" + name + "\" is running (" + dir.path().string() +
                         " does not exist); `kvmgpu ps` lists the running VMs");
    auto state = dir.read_state();
    if (!state)
        throw NotRunning("\"" + name + "\" is starting (it has no state file yet); try again");
    const auto liveness = dir.liveness(*state);
    if (liveness == Liveness::stale) {
        if (has_journal(ctx, name))
            throw NotRunning("\"" + name + "\" is not running, but its devices were not given back; run `kvmgpu restore " + name + "`");
        if (!dir.remove_if_stale())
            throw NotRunning("\"" + name + "\" is being started again right now; try again");
        throw NotRunning("\"" + name + "\" is not running (its left-over runtime directory " + dir.path().string() + " was removed)");
    }
    return {dir, *state, liveness};
}

json vm_qmp(const VmHandle& vm, const json& request, std::chrono::milliseconds timeout) {
    if (vm.liveness == Liveness::supervised && !vm.supervisor_silent) {
        if (auto reply = ask(vm.dir, request, timeout)) return *reply;
        throw NotRunning("the supervisor of \"" + vm.dir.name() + "\" is not answering yet (still starting?); try again");
    }
    if (vm.liveness != Liveness::starting) return rescue_qmp(vm.dir.rescue_socket(), request, timeout);
    throw NotRunning("\"" + vm.dir.name() + "\" has no QEMU running (its supervisor is still starting it)");
}

VmStatus vm_status(const VmHandle& vm, std::chrono::milliseconds timeout) {
    if (vm.liveness == Liveness::supervised && !vm.supervisor_silent) {
        const auto reply = ask(vm.dir, request_json(StatusRequest{}), timeout);
        if (!reply)
            throw NotRunning("the supervisor of \"" + vm.dir.name() + "\" is not answering yet (still starting?); try again");
        if (reply->contains("error")) throw std::runtime_error((*reply)["error"].value("desc", "status failed"));
        return reply->at("return").get<VmStatus>();
    }
    VmStatus status;
    status.name = vm.state.name;
    status.supervisor_pid = vm.state.supervisor_pid;
    status.qemu_pid = vm.state.qemu_pid;
    status.devices = vm.state.devices;
    status.started_at = vm.state.started_at;
    status.restarts = vm.state.restarts;
    status.liveness = vm.supervisor_silent ? "not-answering" : std::string(liveness_name(vm.liveness));
    status.status = "unknown";
    if (vm.liveness != Liveness::starting) {
        try {
            const auto reply = rescue_qmp(vm.dir.rescue_socket(), {{"execute", "query-status"}}, timeout);
            status.status = reply.at("return").at("status").get<std::string>();
            status.running = reply.at("return").at("running").get<bool>();
        } catch (const std::exception& e) {
            status.error = std::string("QEMU's rescue socket: ") + e.what();
        }
    } else {
        status.status = "starting";
        status.running = false;
    }
    return status;
}

namespace {

// A stop through the supervisor; nullopt when it does not answer (then nothing was asked of it).
// It first has to answer a status request: only then is it given the stop, which carries a
// deadline too, so a supervisor stopped right after that answer does not carry the stop out
// later. It answers the stop after its own stop sequence (timeout + quit + kill) and the
// restore; the wait allows for all of it.
std::optional<json> stop_through(ControlClient& client, std::chrono::seconds timeout, bool force) {
    std::string refusal;  // a connection refused (too many, another user) is closed after its error
    try {
        const auto alive = ask(client, request_json(StatusRequest{}), kStatusQueryTimeout + std::chrono::seconds(1));
        if (alive.contains("error")) refusal = alive["error"].value("desc", "");
    } catch (const NoAnswer&) {
        return std::nullopt;
    }
    json reply;
    try {
        reply = ask(client, request_json(StopRequest{timeout, force}), timeout + std::chrono::seconds(60));
    } catch (const NoAnswer&) {
        throw;
    } catch (const std::exception& e) {
        if (refusal.empty()) throw;
        throw util::RuntimeFailure(refusal, "stop-failed");
    }
    if (reply.contains("error")) throw util::RuntimeFailure(reply["error"].value("desc", "stop failed"), "stop-failed");
    json out = reply.at("return");
    out["supervised"] = true;
    return out;
}

// One stage of the stop policy without a supervisor. A failed QMP command or a gone process
// just leaves it to the next stage.
void act_unsupervised(const VmHandle& vm, StopAction action) {
    const auto& s = vm.state;
    try {
        switch (action) {
            case StopAction::powerdown: rescue_qmp(vm.dir.rescue_socket(), {{"execute", "system_powerdown"}}, kStopStageWait); break;
            case StopAction::quit: rescue_qmp(vm.dir.rescue_socket(), {{"execute", "quit"}}, kStopStageWait); break;
            case StopAction::terminate:
                if (util::process_alive(s.qemu_pid, s.qemu_start)) ::kill(s.qemu_pid, SIGTERM);
                break;
            case StopAction::kill:
                if (util::process_alive(s.qemu_pid, s.qemu_start)) ::kill(s.qemu_pid, SIGKILL);
                break;
        }
    } catch (const std::exception&) {
    }
}

// Whether the guest's vCPUs run (a paused guest cannot answer the power button); when QEMU does
// not say, assume they do.
bool guest_running(const VmHandle& vm) {
    try {
        const auto reply = rescue_qmp(vm.dir.rescue_socket(), {{"execute", "query-status"}}, kStopStageWait);
        return reply.at("return").at("running").get<bool>();
    } catch (const std::exception&) {
        return true;
    }
}

std::string stage_outcome(StopAction action) {
    switch (action) {
        case StopAction::powerdown: return "the guest powered off";
        case StopAction::quit: return "QEMU quit";
        case StopAction::terminate: return "QEMU ended on SIGTERM";
        case StopAction::kill: return "QEMU was killed";
    }
    return "";
}

// A launcher that has no control socket yet (binding devices, running a hook, starting QEMU):
// SIGTERM makes it stop the launch and undo what it did (it checks for the signal between steps
// and in every wait); the answer comes when it has exited.
json stop_launcher(const VmHandle& vm, std::chrono::seconds timeout) {
    const auto& s = vm.state;
    // The pidfd names one process; checked after opening it, the start time proves it is the
    // launcher, so the signal cannot reach another process that got its pid in between.
    util::Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, s.supervisor_pid, 0)));
    if (!util::process_alive(s.supervisor_pid, s.supervisor_start))
        throw NotRunning("\"" + vm.dir.name() + "\" is not running any more");
    if (pidfd) ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGTERM, nullptr, 0);
    else ::kill(s.supervisor_pid, SIGTERM);
    if (!wait_gone(s.supervisor_pid, s.supervisor_start, Clock::now() + timeout + std::chrono::seconds(30)))
        throw util::RuntimeFailure("the launcher of \"" + vm.dir.name() + "\" (pid " + std::to_string(s.supervisor_pid) +
                                   ") did not end after SIGTERM; its log says which step it is in", "stop-failed");
    return {{"reason", "stop-requested"},
            {"detail", "the launcher had no control socket (launching, or ending); it was sent SIGTERM and has exited"},
            {"supervised", true}};
}

}  // namespace

json vm_stop(const Context& ctx, const VmHandle& given, std::chrono::seconds timeout, bool force, const Warn& warn) {
    VmHandle vm = given;
    if (vm.liveness != Liveness::unsupervised && !vm.supervisor_silent) {
        auto answering = ControlClient::connect(vm.dir.control_socket());
        if (!answering) return stop_launcher(vm, timeout);
        if (auto out = stop_through(*answering, timeout, force)) return *out;
        // A launcher without QEMU that does not answer (still launching, or giving the devices
        // back): SIGTERM, and wait for it.
        if (vm.liveness != Liveness::supervised) return stop_launcher(vm, timeout);
        vm.supervisor_silent = true;
        if (warn) warn(silence(vm) + "; stopping QEMU over its rescue QMP socket instead");
    }
    // No supervisor: the same stop policy, over the rescue QMP socket and signals.
    std::string how = "the guest powered off";
    bool gone = false;
    for (const auto& stage : stop_plan(timeout, force, guest_running(vm))) {
        act_unsupervised(vm, stage.action);
        if (stage.action != StopAction::powerdown) how = stage_outcome(stage.action);
        gone = wait_gone(vm.state.qemu_pid, vm.state.qemu_start, Clock::now() + stage.wait);
        if (gone) break;
    }
    if (!gone) throw std::runtime_error("QEMU (pid " + std::to_string(vm.state.qemu_pid) + ") of \"" + vm.dir.name() + "\" did not end");
    json out = {{"reason", "stop-requested"}, {"detail", how}, {"supervised", false}};
    if (vm.supervisor_silent) {
        // Its directory and the devices stay the supervisor's: it gives them back when it runs
        // again (it sees QEMU gone), or `kvmgpu restore` does once it has been killed.
        out["devices_waiting"] = vm.state.devices;
        out["hint"] = silence(vm) + ": it gives the devices back if it runs again; if it is hung, kill it (kill -9 " +
                      std::to_string(vm.state.supervisor_pid) + ") and run `kvmgpu restore " + vm.dir.name() + "`";
    } else if (has_journal(ctx, vm.dir.name())) {
        out["devices_waiting"] = vm.state.devices;
        out["hint"] = "its supervisor was gone, so the devices and files it held were not given back: run `kvmgpu restore " +
                      vm.dir.name() + "`";
    } else {
        vm.dir.remove_if_stale();  // unless a new launch of the name has taken it meanwhile
    }
    return out;
}

json qmp_by_name(const Context& ctx, const std::string& name, const json& command, std::chrono::milliseconds timeout,
                 const Warn& warn) {
    if (valid_vm_name(name)) {
        try {
            // The fast path: a supervisor that answers needs no state file and no /proc.
            if (auto reply = ask(VmDir(ctx, name), command, timeout)) return *reply;
        } catch (const NoAnswer&) {
            const auto vm = past_silent_supervisor(ctx, name, warn, "sending the command to QEMU's rescue QMP socket instead");
            return vm_qmp(vm, command, timeout);
        }
    }
    return vm_qmp(find_vm(ctx, name), command, timeout);
}

VmStatus status_by_name(const Context& ctx, const std::string& name, std::chrono::milliseconds timeout,
                        const Warn& warn) {
    if (valid_vm_name(name)) {
        try {
            // The supervisor's own wait for QEMU is bounded by kStatusQueryTimeout.
            const auto work = std::min(timeout, kStatusQueryTimeout + std::chrono::milliseconds(1000));
            if (auto reply = ask(VmDir(ctx, name), request_json(StatusRequest{}), work); reply && reply->contains("return"))
                return (*reply)["return"].get<VmStatus>();
        } catch (const NoAnswer&) {
            return vm_status(past_silent_supervisor(ctx, name, warn, "asking QEMU's rescue QMP socket instead"), timeout);
        }
    }
    return vm_status(find_vm(ctx, name), timeout);
}

json stop_by_name(const Context& ctx, const std::string& name, std::chrono::seconds timeout, bool force, const Warn& warn) {
    if (valid_vm_name(name))
        if (auto client = ControlClient::connect(VmDir(ctx, name).control_socket())) {
            if (auto out = stop_through(*client, timeout, force)) return *out;
            const auto vm = past_silent_supervisor(ctx, name, warn, "stopping QEMU over its rescue QMP socket instead");
            return vm_stop(ctx, vm, timeout, force, warn);
        }
    return vm_stop(ctx, find_vm(ctx, name), timeout, force, warn);
}

ControlClient open_events(const Context& ctx, const std::string& name, std::chrono::milliseconds timeout) {
    const auto vm = find_vm(ctx, name);
    if (vm.liveness != Liveness::supervised)
        throw NotRunning("\"" + name + "\" has no supervisor to stream events from");
    auto client = ControlClient::connect(vm.dir.control_socket());
    if (!client) throw NotRunning("the supervisor of \"" + name + "\" is not answering yet (still starting?); try again");
    const auto first = ask(*client, request_json(EventsRequest{}), timeout);
    if (first.contains("error")) throw util::RuntimeFailure(first["error"].value("desc", "events failed"));
    return std::move(*client);
}

VmTable list_vms(const Context& ctx, bool all) {
    VmTable table;
    for (const auto& dir : list_vm_dirs(ctx)) {
        try {
            auto vm = find_vm(ctx, dir.name());
            VmRow row{vm.state, std::string(liveness_name(vm.liveness)), "unknown", false, std::nullopt};
            try {
                row.status = vm_status(vm, std::chrono::milliseconds(2000)).status;
            } catch (const NoAnswer&) {
                vm.supervisor_silent = true;
                row.liveness = "not-answering";
                row.status = vm_status(vm, std::chrono::milliseconds(2000)).status;
            } catch (const std::exception&) {
            }
            table.rows.push_back(std::move(row));
        } catch (const NotRunning&) {
            // gone: find_vm cleaned what was left, or it waits for `kvmgpu restore`
        } catch (const std::exception& e) {
            table.warnings.push_back(dir.name() + ": " + e.what());
        }
    }
    if (!all) return table;
    for (auto& row : table.rows) row.listed_all = true;
    for (const auto& vm : defined_vms(ctx, table.warnings)) {
        auto running = std::find_if(table.rows.begin(), table.rows.end(), [&](const VmRow& r) { return r.state.name == vm.name; });
        if (running != table.rows.end()) {
            running->defined = vm.file.string();
            continue;
        }
        VmRow row;
        row.state.name = vm.name;
        row.state.profile = vm.file.string();
        row.liveness = row.status = "stopped";
        row.listed_all = true;
        row.defined = vm.file.string();
        table.rows.push_back(std::move(row));
    }
    std::sort(table.rows.begin(), table.rows.end(), [](const VmRow& a, const VmRow& b) { return a.state.name < b.state.name; });
    return table;
}

void to_json(json& j, const VmRow& row) {
    j = {{"name", row.state.name},
         {"qemu_pid", row.state.qemu_pid},
         {"supervisor_pid", row.state.supervisor_pid},
         {"liveness", row.liveness},
         {"devices", row.state.devices},
         {"profile", row.state.profile},
         {"status", row.status}};
    if (row.state.started_at > 0) {
        j["started_at"] = row.state.started_at;
        j["uptime_seconds"] = uptime_seconds(row.state.started_at);
    }
    j["restarts"] = row.state.restarts;
    if (row.listed_all) j["defined"] = row.defined ? json(*row.defined) : json(nullptr);
}

}  // namespace kvmgpu::app
