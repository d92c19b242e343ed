#include "app/launch.hpp"

#include <algorithm>
#include <set>

#include "app/irq_steering.hpp"
#include "app/launch_steps.hpp"
#include "app/vm_dir.hpp"
#include "host/lock.hpp"
#include "qemu/swtpm.hpp"
#include "util/interrupt.hpp"

namespace kvmgpu::app {
namespace {

// What `kvmgpu stop` clients and the final event learn once the VM has ended and the undos ran.
StoppedEvent give_everything_back(LaunchRun& run, const ExitVerdict& verdict) {
    if (!verdict.ok()) run.report(LogEvent{run.dir.log_tail()});
    run.revert.run();  // devices back, locks released, runtime directory removed
    run.writer.rest();
    StoppedEvent stopped;
    stopped.name = run.profile.name;
    stopped.reason = std::string(exit_reason_name(verdict.reason));
    stopped.detail = verdict.detail;
    for (const auto& d : run.devices) {
        const bool failed = std::count(run.not_restored.begin(), run.not_restored.end(), d) > 0;
        (failed ? stopped.devices_not_restored : stopped.devices_restored).push_back(d.str());
    }
    for (const auto& d : run.not_working) stopped.devices_not_working.push_back(d.str());
    stopped.changes_not_restored = run.changes_not_restored;
    if (!stopped.devices_not_restored.empty() || !stopped.changes_not_restored.empty())
        stopped.hint = "some devices or host settings could not be given back (see above); fix the cause and run `kvmgpu restore " +
                       run.profile.name + "`";
    else if (!stopped.devices_not_working.empty())
        stopped.hint = "some devices came back but do not work (see the verify lines above for what is missing and the fix)";
    try {
        run_hook(run, "poststop", run.profile.hooks.poststop, {"KVMGPU_EXIT_REASON=" + stopped.reason});
    } catch (const StepFailed&) {
        stopped.poststop_failed = true;
    }
    const bool all_back = run.not_restored.empty() && run.changes_not_restored.empty() && run.not_working.empty();
    stopped.exit_code = verdict.ok() && all_back ? 0 : 1;
    return stopped;
}

SuperviseOptions supervise_options(const LaunchRun& run) {
    SuperviseOptions sup;
    sup.stop_timeout = run.options.stop_timeout;
    sup.connect_timeout = run.options.connect_timeout;
    sup.pin = run.profile.cpu.pin;
    sup.emulator_pin = run.profile.cpu.emulator_pin;
    sup.iothread_pin = run.profile.cpu.iothread_pin;
    if (run.profile.cpu.realtime) sup.realtime_priority = static_cast<int>(run.profile.cpu.realtime_priority);
    sup.devices = run.state.devices;
    sup.vnc_password = run.vnc_password;
    return sup;
}

// Supervises QEMU to its end. When the supervisor itself fails while QEMU still runs, the guest's
// data matters more than our process: QEMU is left running and holds its devices.
int supervise_to_the_end(LaunchRun& run) {
    try {
        int exit_code = 1;  // the outcome's, once everything was given back
        auto options = supervise_options(run);
        std::optional<IrqSteering> irqs;
        if (run.profile.cpu.irq_affinity != profile::IrqAffinity::leave && !run.devices.empty()) {
            irqs.emplace(run.ctx.host_root, host_state_dir(run.ctx), run.profile.name, run.devices, run.profile.cpu, run.writer);
            options.steer_irqs = [&irqs] { return irqs->steer(); };
        }
        supervise(run.dir, run.qemu, run.state, options, run.report, [&](const ExitVerdict& v) {
            const auto stopped = give_everything_back(run, v);
            exit_code = stopped.exit_code;
            return stopped;
        });
        return exit_code;
    } catch (const std::exception& e) {
        if (run.qemu.try_wait()) throw;
        run.qemu.release();
        run.swtpm.release();
        run.revert.commit();
        const std::string name = run.profile.name;
        run.report(UnsupervisedEvent{e.what(), "the supervisor failed (" + std::string(e.what()) +
                                                   "); the VM keeps running unsupervised: `kvmgpu stop " + name +
                                                   "` ends it, then `kvmgpu restore " + name +
                                                   "` gives the devices back"});
        return 1;
    }
}

}  // namespace

std::filesystem::path host_state_dir(const Context& ctx) { return ctx.host_layout().root; }

host::OwnerAlive lock_liveness(const Context& ctx) {
    // Supervisors whose QEMU outlived them, by pid and start time: the same process a lock names.
    std::set<std::pair<pid_t, std::uint64_t>> holding;
    for (const auto& dir : list_vm_dirs(ctx)) {
        try {
            if (auto state = dir.read_state(); state && dir.liveness(*state) == Liveness::unsupervised)
                holding.emplace(state->supervisor_pid, state->supervisor_start);
        } catch (const std::exception&) {
        }
    }
    return [holding](const host::LockOwner& owner) {
        if (host::owner_alive(owner)) return true;
        // A start time of 0 is unknown (a lock or state file of an older kvmgpu): the pid decides.
        for (const auto& [pid, start] : holding)
            if (pid == owner.pid && (owner.start_time == 0 || start == 0 || start == owner.start_time)) return true;
        return false;
    };
}

int launch(const profile::Profile& p, const Context& ctx, const LaunchOptions& options, const Report& report) {
    // Paths that swtpm could not read are bad input, refused before anything changes.
    if (p.tpm.enabled) qemu::swtpm_argv(ctx.vm_layout(p.name));
    // From here SIGINT/SIGTERM/SIGHUP arrive through a signalfd: every step and every wait in it
    // checks it, so a Ctrl-C or `kvmgpu stop --force` ends the launch and undoes what was done
    // (the journal covers a launcher killed with -9). The supervisor takes the signals over.
    util::Interrupt interrupt;
    host::RealSysfsWriter real_writer({.timeout = options.sysfs_timeout, .interrupt = &interrupt});
    // Before the run: its undos use it.
    host::ExecRunner exec_runner(ctx.vm_layout(p.name).release_log());
    // Every event goes to the caller and to STATE/NAME/logs/events.log, kept after the run.
    EventLog event_log;
    util::Fd hugepages_lock;
    const Report report_and_keep = [&report, &event_log, &hugepages_lock](const Event& e) {
        // QEMU answers QMP once its memory is allocated (prealloc): other launches may count
        // the free hugepages again.
        if (const auto* step = std::get_if<StepEvent>(&e); step && step->step == "qmp") hugepages_lock.reset();
        event_log.record(e);
        report(e);
    };
    LaunchRun run(p, ctx, options, report_and_keep, interrupt, options.writer ? *options.writer : real_writer);
    run.runner = options.runner ? options.runner : &exec_runner;
    run.event_log = &event_log;
    run.hugepages_lock = &hugepages_lock;
    try {
        for (const auto& step : launch_steps()) {
            if (options.before_step) options.before_step(step.name);
            run.check_interrupt(step.name);
            step.run(run);
        }
        if (options.before_step) options.before_step("qmp");
        run.check_interrupt("qmp");
        // The host changes of the launch are made: none is due while the VM runs.
        run.writer.rest();
    } catch (const StepFailed&) {
        // The stop signals that failed a step (a sysfs write abandoned with EINTR) are taken
        // here, all of them, so that the undos' own writes are not abandoned too; a signal that
        // comes during the undos abandons them, and then the journal keeps what `kvmgpu restore`
        // must finish.
        while (interrupt.pending()) {
        }
        run.revert.run();
        run.writer.rest();
        // Taken too: one that came during the undos would otherwise be delivered, with its
        // default action, when the Interrupt goes, before the error is printed.
        while (interrupt.pending()) {
        }
        throw;
    }
    return supervise_to_the_end(run);
}

}  // namespace kvmgpu::app
