#include "app/launch.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <set>
#include <thread>
#include <filesystem>

#include "app/dry_run.hpp"
#include "app/host_ops.hpp"
#include "app/vm_dir.hpp"
#include "host/binder.hpp"
#include "preflight/check.hpp"
#include "host/host_model.hpp"
#include "host/lock.hpp"
#include "host/sysfs.hpp"
#include "qemu/argv.hpp"
#include "util/proc.hpp"
#include "util/process.hpp"
#include "util/revert.hpp"
#include "util/signals.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

void step(const Report& report, const std::string& name, const std::string& message, json extra = json::object()) {
    report_step(report, name, message, std::move(extra));
}

// Thrown for a failure of the launch sequence that was already reported as a failed step.
struct LaunchFailed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void fail(const Report& report, const std::string& name, const std::string& message, const std::string& error) {
    step(report, name, message, {{"ok", false}, {"error", error}});
    throw LaunchFailed(error);
}

// Runs a hook to completion, its output appended to `log`. No shell: argv as given.
void run_hook(const Report& report, const char* which, const std::vector<std::string>& argv, const fs::path& log) {
    if (argv.empty()) return;
    const std::string message = std::string("running ") + which + " hook " + util::shell_join(argv);
    try {
        util::SpawnOptions options;
        options.log_file = log;
        auto child = util::spawn(argv, options);
        const int status = child.wait();
        if (!util::exited_successfully(status))
            fail(report, which, message, "the hook " + util::describe_wait_status(status) + " (its output is in " + log.string() + ")");
        step(report, which, message);
    } catch (const util::SpawnError& e) {
        fail(report, which, message, e.what());
    }
}

std::string original_driver(const host::HostModel& model, const util::PciAddress& a) {
    for (const auto& d : model.devices)
        if (d.address == a) return d.driver.empty() ? "no driver" : d.driver;
    return "?";
}

}  // namespace

fs::path host_state_dir(const Context& ctx) { return ctx.runtime_dir / ".host"; }

host::PidAlive lock_liveness(const Context& ctx) {
    std::set<pid_t> holding;  // supervisors whose QEMU outlived them
    for (const auto& dir : list_vm_dirs(ctx)) {
        try {
            if (auto state = dir.read_state(); state && dir.liveness(*state) == Liveness::unsupervised)
                holding.insert(state->supervisor_pid);
        } catch (const std::exception&) {
        }
    }
    return [holding](pid_t pid) { return host::pid_alive(pid) || holding.count(pid) > 0; };
}

int launch(const profile::Profile& p, const Context& ctx, const LaunchOptions& options, const Report& report) {
    // Until the supervisor's loop handles them, Ctrl-C and SIGTERM wait: a launcher killed
    // halfway through binding would strand devices.
    util::BlockSignals block{SIGINT, SIGTERM, SIGHUP};
    host::RealSysfsWriter real_writer;
    host::SysfsWriter& writer = options.writer ? *options.writer : real_writer;
    const auto host_dir = host_state_dir(ctx);
    VmDir dir(ctx, p.name);
    std::vector<util::PciAddress> not_restored;  // filled by the restore undo
    // Declared after what its undos use, so that it runs before they are destroyed.
    util::Revert revert;
    try {
        // 1. Check the host; refuse on any error before touching anything.
        // Device names (pci.ids) are for people reading `list` and `check`; a launch skips them.
        const auto model = scan(ctx, false, !p.pci.empty());
        const auto alive = lock_liveness(ctx);
        preflight::CheckOptions check_options;
        check_options.locks = host::read_locks(host_dir, alive);
        const auto checked = preflight::check(p, model, check_options);
        for (const auto& f : checked.findings) {
            if (f.severity == preflight::Severity::ok) continue;
            report({{"event", "finding"}, {"severity", preflight::severity_name(f.severity)}, {"code", f.code}, {"message", f.text()}});
        }
        if (!checked.ok())
            fail(report, "check", "checking the host",
                 "the host is not ready for \"" + p.name + "\" (" + std::to_string(checked.count(preflight::Severity::error)) +
                     " errors above); nothing was changed. `kvmgpu check " + p.file.string() + "` explains each");
        step(report, "check", "checking the host");

        // The plan lists the profile's devices and then the functions the check added.
        const std::vector<util::PciAddress> devices = checked.plan.devices;
        std::vector<std::string> device_names;
        for (const auto& d : devices) device_names.push_back(d.str());

        // 2. The runtime directory; a second run of a running VM stops here.
        VmState state;
        state.name = p.name;
        state.profile = fs::absolute(p.file).string();
        state.supervisor_pid = ::getpid();
        state.supervisor_start = util::process_start_time(::getpid()).value_or(0);
        state.devices = device_names;
        state.started_at = static_cast<std::int64_t>(std::time(nullptr));
        try {
            dir.create(state);
        } catch (const std::exception& e) {
            fail(report, "runtime-dir", "creating " + dir.path().string(), e.what());
        }
        revert.add([&] { dir.remove(); });
        // The VM's own files (OVMF variables, TPM state, the poststop hook's log) live here.
        const auto state_dir = ctx.vm_state_dir(p.name);
        fs::create_directories(state_dir);
        ::chmod(state_dir.c_str(), 0700);

        // 3. Reserve and bind the devices, restore registered first.
        if (!devices.empty()) {
            fs::create_directories(host_dir);
            try {
                host::acquire_locks(host_dir, p.name, ::getpid(), devices, alive);
            } catch (const std::exception& e) {
                fail(report, "reserve", "reserving the devices", e.what());
            }
            // A device that could not be restored keeps its journal entry and its lock, so that no
            // other VM takes it and `kvmgpu restore` can finish the job.
            revert.add([&, devices] {
                std::vector<util::PciAddress> release;
                for (const auto& d : devices)
                    if (!std::count(not_restored.begin(), not_restored.end(), d)) release.push_back(d);
                host::release_locks(host_dir, p.name, release);
            });
            revert.add([&] {
                const auto restored = host::restore_devices(ctx.host_root, host_dir, p.name, writer);
                for (const auto& o : restored.devices) {
                    step(report, "restore", "restoring " + o.address.str(), {{"ok", o.ok}, {"detail", o.message}});
                    if (!o.ok) not_restored.push_back(o.address);
                }
            });
            try {
                const auto bound = host::bind_devices(ctx.host_root, host_dir, p.name, devices, writer);
                for (const auto& a : bound.bound)
                    step(report, "bind", "binding " + a.str() + " " + original_driver(model, a) + " → vfio-pci");
                for (const auto& a : bound.already_vfio)
                    step(report, "bind", "binding " + a.str() + " (already on vfio-pci)");
            } catch (const host::BindError& e) {
                fail(report, "bind", "binding " + e.address.str() + " to vfio-pci", e.what());
            }
        }

        // 4. Hooks, firmware variables, then QEMU.
        run_hook(report, "prestart", p.hooks.prestart, dir.path() / "hooks.log");

        const auto facts = facts_from_check(p, ctx, checked);
        if (p.firmware.type == profile::FirmwareType::ovmf) {
            const auto copy = qemu::vars_copy(facts);
            if (!fs::exists(copy)) {
                const auto tmpl = p.firmware.vars.empty() ? qemu::default_ovmf_vars(p.firmware.secure_boot) : p.firmware.vars;
                try {
                    fs::copy_file(tmpl, copy);
                } catch (const std::exception& e) {
                    fail(report, "firmware", "copying the OVMF variables template", e.what());
                }
                step(report, "firmware", "copying " + tmpl.string() + " → " + copy.string());
            }
        }

        // A software TPM for the guest: swtpm serves the socket the argv names and ends by
        // itself when QEMU disconnects (--terminate). Its state persists in STATE/NAME/tpm.
        util::ChildProcess swtpm;
        if (p.tpm.enabled) {
            const auto tpm_state = facts.state_dir / "tpm";
            const auto socket = facts.runtime_dir / "swtpm.sock";
            fs::create_directories(tpm_state);
            const std::vector<std::string> tpm_argv{
                "swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + tpm_state.string() + ",mode=0600",
                "--ctrl", "type=unixio,path=" + socket.string(), "--terminate",
                "--log", "file=" + (facts.runtime_dir / "swtpm.log").string()};
            try {
                util::SpawnOptions tpm_options;
                tpm_options.new_session = true;  // ends with QEMU (--terminate), not with a Ctrl-C
                swtpm = util::spawn(tpm_argv, tpm_options);
            } catch (const util::SpawnError& e) {
                fail(report, "tpm", "starting swtpm", std::string(e.what()) + " (install the swtpm package)");
            }
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
            while (!fs::exists(socket)) {
                if (auto status = swtpm.try_wait())
                    fail(report, "tpm", "starting swtpm", "swtpm " + util::describe_wait_status(*status));
                if (std::chrono::steady_clock::now() > deadline)
                    fail(report, "tpm", "starting swtpm", "swtpm did not open " + socket.string() + " within 10 s");
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            step(report, "tpm", "starting swtpm", {{"detail", "state in " + tpm_state.string()}});
        }

        const auto argv = qemu::build_argv(p, facts);
        util::ChildProcess qemu;
        try {
            util::SpawnOptions spawn_options;
            spawn_options.log_file = dir.log_file();
            spawn_options.new_session = true;  // a terminal's Ctrl-C reaches only the supervisor
            qemu = util::spawn(argv, spawn_options);
        } catch (const util::SpawnError& e) {
            fail(report, "spawn", "starting " + argv.front(), e.what());
        }

        state.qemu_pid = qemu.pid();
        state.qemu_start = util::process_start_time(qemu.pid()).value_or(0);
        dir.write_state(state);
        step(report, "spawn", "starting " + argv.front() + " paused", {{"detail", "pid " + std::to_string(qemu.pid()) + ", log " + dir.log_file().string()}});

        // 5. Supervise until QEMU is gone; then give everything back.
        SuperviseOptions sup;
        sup.stop_timeout = options.stop_timeout;
        sup.connect_timeout = options.connect_timeout;
        sup.pin = p.cpu.pin;
        sup.emulator_pin = p.cpu.emulator_pin;
        sup.devices = device_names;
        SupervisionResult result;
        try {
            result = supervise(dir, qemu, state, sup, report, [&](const SupervisionResult& r) {
                if (!r.ok()) report({{"event", "log"}, {"tail", dir.log_tail()}});
                revert.run();  // devices back, locks released, runtime directory removed
                json restored = json::array(), failed = json::array();
                for (const auto& d : devices)
                    (std::count(not_restored.begin(), not_restored.end(), d) ? failed : restored).push_back(d.str());
                json outcome = {{"devices_restored", restored}};
                if (!failed.empty()) {
                    outcome["devices_not_restored"] = failed;
                    outcome["hint"] = "some devices could not be given back (see above); fix the cause and run "
                                      "`kvmgpu restore " + p.name + "`";
                }
                try {
                    run_hook(report, "poststop", p.hooks.poststop, facts.state_dir / "poststop.log");
                } catch (const LaunchFailed&) {
                    outcome["poststop_failed"] = true;
                }
                outcome["exit_code"] = r.ok() && not_restored.empty() ? 0 : 1;
                return outcome;
            });
        } catch (const std::exception& e) {
            // The supervisor itself failed while QEMU may still run: the guest's data matters
            // more than our process, so QEMU is left running and holds its devices.
            if (!qemu.try_wait()) {
                qemu.release();
                swtpm.release();
                revert.commit();
                report({{"event", "unsupervised"},
                        {"error", e.what()},
                        {"message", "the supervisor failed (" + std::string(e.what()) +
                                        "); the VM keeps running unsupervised: `kvmgpu stop " + p.name +
                                        "` ends it, then `kvmgpu restore " + p.name + "` gives the devices back"}});
                return 1;
            }
            throw;
        }
        return result.ok() && not_restored.empty() ? 0 : 1;
    } catch (const LaunchFailed&) {
        return 1;  // reported; `revert` undoes what was done
    }
}

}  // namespace kvmgpu::app
