#include "app/control.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

#include "app/control_client.hpp"
#include "app/launch.hpp"
#include "host/journal.hpp"
#include "util/fd.hpp"
#include "util/proc.hpp"

namespace kvmgpu::app {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

bool has_journal(const Context& ctx, const std::string& name) {
    try {
        const auto j = host::read_journal(host_state_dir(ctx), name);
        return j && !j->devices.empty();
    } catch (const std::exception&) {
        return true;  // unreadable: keep everything for a human to look at
    }
}

ControlClient connect_supervisor(const VmHandle& vm) {
    auto client = ControlClient::connect(vm.dir.control_socket());
    if (!client)
        throw NotRunning("the supervisor of \"" + vm.dir.name() + "\" is not answering yet (still starting?); try again");
    return std::move(*client);
}

// Waits until QEMU is gone; false at the deadline. QEMU is not our child here: a pidfd (any
// process's) tells of its exit; kernels without pidfd_open fall back to polling /proc.
bool wait_gone(const VmState& s, Clock::time_point deadline) {
    util::Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, s.qemu_pid, 0)));
    // Checked after opening: the pidfd then names the process whose start time matched.
    while (util::process_alive(s.qemu_pid, s.qemu_start)) {
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
    if (name.empty() || name.front() == '.' || name.find('/') != std::string::npos || !dir.exists())
        throw NotRunning("no VM named \"" + name + "\" is running (" + dir.path().string() +
                         " does not exist); `kvmgpu ps` lists the running VMs");
    auto state = dir.read_state();
    if (!state)
        throw NotRunning("\"" + name + "\" is starting (it has no state file yet); try again");
    const auto liveness = dir.liveness(*state);
    if (liveness == Liveness::stale) {
        if (has_journal(ctx, name))
            throw NotRunning("\"" + name + "\" is not running, but its devices were not given back; run `kvmgpu restore " + name + "`");
        dir.remove();
        throw NotRunning("\"" + name + "\" is not running (its left-over runtime directory " + dir.path().string() + " was removed)");
    }
    return {dir, *state, liveness};
}

std::optional<json> try_supervisor(const Context& ctx, const std::string& name, const json& request,
                                   std::chrono::milliseconds timeout) {
    if (name.empty() || name.front() == '.' || name.find('/') != std::string::npos) return std::nullopt;
    auto client = ControlClient::connect(VmDir(ctx, name).control_socket());
    if (!client) return std::nullopt;
    return client->request(request, Clock::now() + timeout);
}

json vm_qmp(const VmHandle& vm, const json& request, std::chrono::milliseconds timeout) {
    if (vm.liveness == Liveness::supervised) {
        auto client = connect_supervisor(vm);
        return client.request(request, Clock::now() + timeout);
    }
    if (vm.liveness == Liveness::unsupervised) return rescue_qmp(vm.dir.rescue_socket(), request, timeout);
    throw NotRunning("\"" + vm.dir.name() + "\" has no QEMU running (its supervisor is still starting it)");
}

json vm_status(const VmHandle& vm, std::chrono::milliseconds timeout) {
    if (vm.liveness == Liveness::supervised) {
        auto client = connect_supervisor(vm);
        const auto reply = client.request({{"kvmgpu", "status"}}, Clock::now() + timeout);
        if (reply.contains("error")) throw std::runtime_error(reply["error"].value("desc", "status failed"));
        return reply.at("return");
    }
    json status = {{"name", vm.state.name},
                   {"supervisor_pid", vm.state.supervisor_pid},
                   {"qemu_pid", vm.state.qemu_pid},
                   {"devices", vm.state.devices},
                   {"supervised", false},
                   {"liveness", liveness_name(vm.liveness)}};
    if (vm.liveness == Liveness::unsupervised) {
        const auto reply = rescue_qmp(vm.dir.rescue_socket(), {{"execute", "query-status"}}, timeout);
        if (reply.contains("return")) {
            status["status"] = reply["return"].at("status");
            status["running"] = reply["return"].at("running");
        }
    } else {
        status["status"] = "starting";
        status["running"] = false;
    }
    return status;
}

// A launcher that has no control socket yet (binding devices, running a hook, starting QEMU):
// SIGTERM makes it stop the launch and undo what it did (it checks for the signal between steps
// and in every wait); the answer comes when it has exited.
json stop_launcher(const VmHandle& vm, std::chrono::seconds timeout) {
    const auto& s = vm.state;
    if (!util::process_alive(s.supervisor_pid, s.supervisor_start))
        throw NotRunning("\"" + vm.dir.name() + "\" is not running any more");
    ::kill(s.supervisor_pid, SIGTERM);
    VmState launcher = s;  // wait_gone() waits for the process named as QEMU
    launcher.qemu_pid = s.supervisor_pid;
    launcher.qemu_start = s.supervisor_start;
    if (!wait_gone(launcher, Clock::now() + timeout + std::chrono::seconds(30)))
        throw util::RuntimeFailure("the launcher of \"" + vm.dir.name() + "\" (pid " + std::to_string(s.supervisor_pid) +
                                   ") did not end after SIGTERM; its log says which step it is in", "stop-failed");
    return {{"reason", "stop-requested"}, {"detail", "the launch was stopped before the VM ran"}, {"supervised", true}};
}

json vm_stop(const Context& ctx, const VmHandle& vm, std::chrono::seconds timeout, bool force) {
    if (vm.liveness != Liveness::unsupervised) {
        auto answering = ControlClient::connect(vm.dir.control_socket());
        if (!answering) return stop_launcher(vm, timeout);
        auto client = std::move(*answering);
        // The supervisor answers after its own stop sequence (timeout + quit + kill) and the
        // restore; allow for all of it.
        const auto reply = client.request({{"kvmgpu", "stop"}, {"timeout", timeout.count()}, {"force", force}},
                                          Clock::now() + timeout + std::chrono::seconds(60));
        if (reply.contains("error")) throw std::runtime_error(reply["error"].value("desc", "stop failed"));
        json out = reply.at("return");
        out["supervised"] = true;
        return out;
    }
    // No supervisor: the same sequence over the rescue QMP socket.
    const auto rescue = vm.dir.rescue_socket();
    const auto quick = std::chrono::seconds(5);
    if (!force) {
        try {
            rescue_qmp(rescue, {{"execute", "system_powerdown"}}, quick);
        } catch (const std::exception&) {
        }
    }
    bool gone = !force && wait_gone(vm.state, Clock::now() + timeout);
    std::string how = "the guest powered off";
    if (!gone) {
        try {
            rescue_qmp(rescue, {{"execute", "quit"}}, quick);
        } catch (const std::exception&) {
        }
        gone = wait_gone(vm.state, Clock::now() + quick);
        how = "QEMU quit";
    }
    if (!gone && util::process_alive(vm.state.qemu_pid, vm.state.qemu_start)) {
        ::kill(vm.state.qemu_pid, SIGKILL);
        gone = wait_gone(vm.state, Clock::now() + quick);
        how = "QEMU was killed";
    }
    if (!gone) throw std::runtime_error("QEMU (pid " + std::to_string(vm.state.qemu_pid) + ") of \"" + vm.dir.name() + "\" did not end");
    json out = {{"reason", "stop-requested"}, {"detail", how}, {"supervised", false}};
    if (has_journal(ctx, vm.dir.name())) {
        out["devices_waiting"] = vm.state.devices;
        out["hint"] = "its supervisor was gone, so the devices were not given back: run `kvmgpu restore " + vm.dir.name() + "`";
    } else {
        vm.dir.remove();
    }
    return out;
}

}  // namespace kvmgpu::app
