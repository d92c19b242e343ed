#include "app/launch_steps.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <thread>

#include "app/child_env.hpp"
#include "app/start_count.hpp"
#include "app/dry_run.hpp"
#include "app/host_ops.hpp"
#include "app/vnc_secret.hpp"
#include "host/binder.hpp"
#include "host/bridge_tap.hpp"
#include "host/device_health.hpp"
#include "preflight/memlock.hpp"
#include "host/lock.hpp"
#include "qemu/swtpm.hpp"
#include "util/proc.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string signal_name(int sig) {
    switch (sig) {
        case SIGINT: return "SIGINT";
        case SIGTERM: return "SIGTERM";
        case SIGHUP: return "SIGHUP";
        default: return "signal " + std::to_string(sig);
    }
}

// 1. The host check; refuses on any error before anything changes.
void check_step(LaunchRun& run) {
    const auto& p = run.profile;
    // Device names (pci.ids) are for people reading `list` and `check`; a launch skips them,
    // and reads only the devices it plans to bind. A refusal is rare and is worth its findings
    // being the same as `kvmgpu check`'s (a card found at another address): then it reads all.
    auto model = scan_for(p, run.ctx, false, ScanScope::profile_devices);
    const auto options = check_options(p, run.ctx);
    run.checked = preflight::check(p, model, options);
    if (!run.checked.ok()) {
        model = scan_for(p, run.ctx, false, ScanScope::every_device);
        run.checked = preflight::check(p, model, options);
    }
    // The check refused a missing user; here one exists, or QEMU keeps kvmgpu's own user.
    if (options.as_root && !p.security.runs_as_root()) run.qemu_user = options.qemu_user;
    for (const auto& f : run.checked.findings) {
        if (f.severity == preflight::Severity::ok) continue;
        run.report(FindingEvent{std::string(preflight::severity_name(f.severity)), f.code, f.text()});
    }
    if (!run.checked.ok())
        run.fail("check", "checking the host",
                 "the host is not ready for \"" + p.name + "\" (" +
                     std::to_string(run.checked.count(preflight::Severity::error)) +
                     " errors above); nothing was changed. `kvmgpu check " + p.file.string() + "` explains each");
    // The plan lists the profile's devices and then the functions the check added.
    run.devices = run.checked.plan.devices;
    for (const auto& a : run.devices) {
        const auto* d = model.find(a);
        run.original_driver[a] = !d ? "?" : d->driver.empty() ? "no driver" : d->driver;
        if (d && !d->driver.empty()) run.before[a] = {d->driver, host::device_nodes(run.ctx.host_root, a)};
    }
    run.facts = facts_from_check(p, run.ctx, run.checked);
    run.step("check", "checking the host");
}

// 2. The runtime directory, with a provisional state file; a second run of a running VM stops here.
void runtime_dir_step(LaunchRun& run) {
    const auto& p = run.profile;
    run.state.name = p.name;
    run.state.profile = fs::absolute(p.file).string();
    run.state.supervisor_pid = ::getpid();
    run.state.supervisor_start = util::process_start_time(::getpid()).value_or(0);
    for (const auto& d : run.devices) run.state.devices.push_back(d.str());
    run.state.started_at = static_cast<std::int64_t>(std::time(nullptr));
    run.state.restarts = previous_starts(run.ctx, p.name);
    run.state.websocket = p.display.websocket_endpoint();
    run.state.vnc_password = p.display.vnc_password();
    run.state.guest_websocket = p.display.guest_websocket.value_or(0);
    try {
        run.dir.create(run.state);
        // Counted once the run is this VM's only one (create refuses a second).
        record_starts(run.ctx, p.name, run.state.restarts + 1);
    } catch (const std::exception& e) {
        run.fail("runtime-dir", "creating " + run.dir.path().string(), e.what());
    }
    run.revert.add([&run] { run.dir.remove(); });
    // The VM's own files (OVMF variables, TPM state, the poststop hook's log) live here; root's
    // QEMU writes them, so nobody else may have a say in where they lead.
    try {
        ensure_vm_state_dir(run.facts.layout);
        start_run_logs(run.facts.layout);
        if (run.profile.display.vnc_password()) run.vnc_password = ensure_vnc_secret(run.facts.layout);
        if (run.event_log) run.event_log->open(run.facts.layout.events_log());
    } catch (const std::exception& e) {
        run.fail("runtime-dir", "checking the state directory " + run.facts.layout.state_dir.string(), e.what());
    }
}

// 3. Device reservations, so that no other VM takes them while this one runs.
void reserve_step(LaunchRun& run) {
    if (run.devices.empty()) return;
    const auto host_dir = host_state_dir(run.ctx);
    fs::create_directories(host_dir);
    try {
        host::acquire_locks(host_dir, run.profile.name, ::getpid(), run.devices, lock_liveness(run.ctx));
    } catch (const std::exception& e) {
        run.fail("reserve", "reserving the devices", e.what());
    }
    // A device that could not be restored keeps its journal entry and its lock, so that
    // `kvmgpu restore` can finish the job. (Once this launcher has exited, the lock no longer
    // counts as held: see the note on restore and other VMs in docs/design.md.)
    run.revert.add([&run, host_dir] {
        std::vector<util::PciAddress> release;
        for (const auto& d : run.devices)
            if (std::count(run.not_restored.begin(), run.not_restored.end(), d) == 0) release.push_back(d);
        host::release_locks(host_dir, run.profile.name, release);
    });
}

// 4. The prepare hook: the devices are reserved, nothing on the host has changed for them yet.
void prepare_step(LaunchRun& run) { run_hook(run, "prepare", run.profile.hooks.prepare); }

// 5. Every device to vfio-pci, once the release step (release_step.cpp) freed them; the journal
// records each before its first sysfs write.
void bind_step(LaunchRun& run) {
    if (run.devices.empty()) return;
    const auto host_dir = host_state_dir(run.ctx);
    register_journal_undo(run);
    try {
        host::BindOptions options;
        options.before = run.before;
        const auto bound = host::bind_devices(run.ctx.host_root, host_dir, run.profile.name, run.devices, run.writer, options);
        for (const auto& a : bound.bound) run.step("bind", "binding " + a.str() + " " + run.original_driver[a] + " → vfio-pci");
        for (const auto& a : bound.already_vfio) run.step("bind", "binding " + a.str() + " (already on vfio-pci)");
    } catch (const host::BindError& e) {
        run.fail("bind", "binding " + e.address.str() + " to vfio-pci", e.what());
    }
}

// 6. The prestart hook: the devices are on vfio-pci.
void prestart_step(LaunchRun& run) { run_hook(run, "prestart", run.profile.hooks.prestart); }

// 7. The VM's own copy of the OVMF variables, made once and kept across runs.
void firmware_step(LaunchRun& run) {
    const auto& p = run.profile;
    if (p.firmware.type != profile::FirmwareType::ovmf) return;
    const auto copy = run.facts.layout.ovmf_vars();
    if (fs::exists(copy)) return;
    const auto tmpl = p.firmware.vars.empty() ? util::OvmfDefaults{}.vars_for(p.firmware.secure_boot) : p.firmware.vars;
    try {
        fs::copy_file(tmpl, copy);
    } catch (const std::exception& e) {
        run.fail("firmware", "copying the OVMF variables template", e.what());
    }
    run.step("firmware", "copying " + tmpl.string() + " → " + copy.string());
}

// 8. A software TPM: swtpm serves the socket the argv names and ends by itself when QEMU
// disconnects (--terminate). Its state persists in STATE/NAME/tpm.
void tpm_step(LaunchRun& run) {
    if (!run.profile.tpm.enabled) return;
    const auto tpm_state = run.facts.layout.tpm_state();
    const auto socket = run.facts.layout.swtpm_socket();
    fs::create_directories(tpm_state);
    // Its log is its stdout (swtpm 0.7 refuses fd=2), the file spawn opens: none of its output
    // reaches kvmgpu's own.
    const auto argv = qemu::swtpm_argv(run.facts.layout);  // launch() refused bad paths already
    run.revert.add([&run] { run.swtpm = util::ChildProcess(); });
    try {
        auto options = confined_spawn_options(run);  // ends with QEMU (--terminate), not with a Ctrl-C
        options.log_file = run.facts.layout.swtpm_log();
        run.swtpm = util::spawn(argv, options);
    } catch (const util::SpawnError& e) {
        run.fail("tpm", "starting swtpm", std::string(e.what()) + " (install the swtpm package)");
    }
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!fs::exists(socket)) {
        if (auto status = run.swtpm.try_wait())
            run.fail("tpm", "starting swtpm", "swtpm " + util::describe_wait_status(*status));
        if (Clock::now() > deadline)
            run.fail("tpm", "starting swtpm", "swtpm did not open " + socket.string() + " within 10 s");
        // swtpm creates its socket some milliseconds after exec; nothing to wait on but the file.
        if (util::wait_readable(-1, Clock::now() + std::chrono::milliseconds(5), &run.interrupt) ==
            util::WaitResult::interrupted)
            run.check_interrupt("tpm");
    }
    run.step("tpm", "starting swtpm", "state in " + tpm_state.string());
}

// 9. [network] mode = "bridge": kvmgpu runs qemu-bridge-helper (QEMU may not: -sandbox
// spawn=deny, no privileges) and keeps the tap it sends for QEMU to inherit. Nothing to undo or
// journal: the tap is not persistent, so the kernel removes it, and takes it out of the bridge,
// when its last holder closes it (QEMU, or this launcher if QEMU never starts).
void network_step(LaunchRun& run) {
    const auto& n = run.profile.network;
    if (n.mode != profile::NetworkMode::bridge) return;
    host::BridgeTapRequest request;
    request.bridge = n.bridge;
    request.log_file = run.dir.log_file();  // its refusals (bridge.conf) land beside QEMU's output
    request.environment = child_environment(own_home());
    const std::string message = "opening a tap in the bridge " + util::quoted(n.bridge);
    try {
        run.bridge_tap = host::open_bridge_tap(request, &run.interrupt);
    } catch (const host::BridgeTapError& e) {
        if (e.interrupted()) run.check_interrupt("network");
        run.fail("network", message, e.what());
    }
    run.facts.bridge_tap_fd = run.bridge_tap.get();
    run.step("network", message, "by " + request.helper.string() + ", passed to QEMU as fd " +
                                     std::to_string(run.bridge_tap.get()));
}

// 10. QEMU, paused (-S); the supervisor takes it from here.
void spawn_step(LaunchRun& run) {
    const auto argv = qemu::build_argv(run.profile, run.facts);
    // What the isolate step and the supervisor's IRQ steering journal is undone after QEMU has
    // ended (an empty cgroup can be removed): the journal's undo is registered before QEMU's.
    if (run.profile.cpu.isolate || run.profile.cpu.irq_affinity != profile::IrqAffinity::leave) register_journal_undo(run);
    // QEMU ends before any undo gives its devices back (ChildProcess's kill policy: SIGKILL and
    // reap; a no-op once it has exited).
    run.revert.add([&run] { run.qemu = util::ChildProcess(); });
    std::string memlock_note;
    try {
        auto options = confined_spawn_options(run);
        options.log_file = run.dir.log_file();
        // VFIO pins all guest RAM (and the Looking Glass memory) in QEMU's locked memory; a root
        // QEMU needs no limit, any other gets one sized for it (preflight/memlock.hpp).
        if ((run.qemu_user || ::geteuid() != 0) && !run.devices.empty()) {
            const std::uint64_t memlock = preflight::vfio_locked_bytes(run.profile);
            if (util::can_set_memlock(memlock)) options.memlock_limit = memlock;
            else
                memlock_note = "; its locked-memory limit stays below the " + util::format_size(memlock) +
                               " VFIO pins (kvmgpu lacks CAP_SYS_RESOURCE to raise it)";
        }
        if (run.bridge_tap) options.inherit_fds.push_back(run.bridge_tap.get());
        run.qemu = util::spawn(argv, options);
    } catch (const util::SpawnError& e) {
        run.fail("spawn", "starting " + argv.front(), e.what());
    }
    // QEMU holds the tap now; our copy would keep it alive after QEMU exits.
    run.bridge_tap.reset();
    run.state.qemu_pid = run.qemu.pid();
    run.state.qemu_start = util::process_start_time(run.qemu.pid()).value_or(0);
    run.dir.write_state(run.state);
    std::string who;
    if (run.qemu_user) who = ", as " + util::quoted(run.qemu_user->name);
    run.step("spawn", "starting " + argv.front() + " paused",
             "pid " + std::to_string(run.qemu.pid()) + who + (run.profile.security.sandbox ? ", sandboxed" : "") + ", log " +
                 run.dir.log_file().string() + memlock_note);
}

constexpr std::array kSteps{
    LaunchStep{"check", check_step},       LaunchStep{"runtime-dir", runtime_dir_step},
    LaunchStep{"reserve", reserve_step},   LaunchStep{"prepare", prepare_step},
    LaunchStep{"hugepages", hugepages_step},
    LaunchStep{"release", release_step},
    LaunchStep{"bind", bind_step},
    LaunchStep{"prestart", prestart_step}, LaunchStep{"firmware", firmware_step},
    LaunchStep{"looking-glass", looking_glass_step},
    LaunchStep{"access", access_step},     LaunchStep{"tpm", tpm_step},
    LaunchStep{"network", network_step},   LaunchStep{"spawn", spawn_step},
    LaunchStep{"isolate", isolate_step},
};

}  // namespace

void LaunchRun::step(std::string name, std::string message, std::string detail) const {
    report(StepEvent{std::move(name), std::move(message), true, std::move(detail), ""});
}

void LaunchRun::fail(std::string name, std::string message, const std::string& error) const {
    report(StepEvent{std::move(name), std::move(message), false, "", error});
    throw StepFailed(error);
}

void LaunchRun::check_interrupt(std::string_view next_step) {
    const auto sig = interrupt.pending();
    if (!sig) return;
    fail(std::string(next_step), "stopping the launch",
         signal_name(*sig) + " arrived while launching \"" + profile.name + "\"; everything done so far is undone");
}

std::span<const LaunchStep> launch_steps() { return kSteps; }

void register_journal_undo(LaunchRun& run) {
    if (run.journal_undo_registered) return;
    run.journal_undo_registered = true;
    run.revert.add([&run] {
        const auto restored =
            host::restore_changes(run.ctx.host_root, host_state_dir(run.ctx), run.profile.name, run.writer, run.runner);
        for (const auto& o : restored.changes) {
            const bool device = o.kind == host::DeviceToVfio::kind;
            run.report(StepEvent{"restore", "restoring " + (device ? o.address.str() : o.what), o.ok, o.ok ? o.message : "",
                                 o.ok ? "" : o.message});
            if (!o.ok) {
                if (device) run.not_restored.push_back(o.address);
                else run.changes_not_restored.push_back(o.what);
            }
        }
        for (const auto& o : restored.devices) {
            if (!o.working) continue;
            run.report(StepEvent{"verify", "checking " + o.address.str(), *o.working, *o.working ? o.health : "",
                                 *o.working ? "" : o.health});
            if (!*o.working) run.not_working.push_back(o.address);
        }
    });
}

}  // namespace kvmgpu::app
