#include <iostream>
#include <ostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "app/background.hpp"
#include "app/dry_run.hpp"
#include "app/launch.hpp"
#include "app/launch_steps.hpp"
#include "app/profile_lookup.hpp"
#include "app/service_notify.hpp"
#include "cli/report.hpp"
#include "profile/validate.hpp"
#include "cli/command.hpp"
#include "cli/output.hpp"
#include "util/detach.hpp"
#include "util/sd_notify.hpp"
#include "util/text.hpp"

namespace kvmgpu::cli {
namespace {

// Runs the launch with `report`; a failed step was reported already (with its "kvmgpu: error:"
// line), so JSON only gets the closing error object every failed command ends with.
int launch_with(Invocation& inv, const profile::Profile& p, const app::LaunchOptions& options, const app::Report& report) {
    try {
        return app::launch(p, inv.ctx, options, report);
    } catch (const app::StepFailed& e) {
        if (inv.json) print_json_error(inv.out, e.what(), e.exit_code(), e.code());
        return e.exit_code();
    }
}

// Under systemd (Type=notify) the events also go to NOTIFY_SOCKET (app/service_notify.hpp). The
// variable is taken out of the environment either way: no child may notify in kvmgpu's name.
int launch_in_foreground(Invocation& inv, const profile::Profile& p, const app::LaunchOptions& options) {
    const char* address = inv.getenv ? inv.getenv("NOTIFY_SOCKET") : nullptr;
    util::SdNotifier notifier(address ? address : "");
    if (address) util::unset_notify_socket();
    if (!notifier.error().empty()) inv.err << "kvmgpu: warning: " << notifier.error() << "\n";
    return launch_with(inv, p, options, app::notifying_systemd(make_reporter(inv.out, inv.err, inv.json), notifier));
}

// What the waiting foreground process prints once the VM runs in the background.
std::string reach_it(const app::RunningEvent& e, pid_t supervisor, const std::string& log, bool json) {
    if (json)
        return nlohmann::json(app::Event(e)).dump() + "\n" +
               nlohmann::json{{"event", "detached"}, {"name", e.name}, {"supervisor_pid", supervisor}, {"log", log}}.dump() +
               "\n";
    return "running: " + e.name + " (QEMU pid " + std::to_string(e.qemu_pid) + ") in the background; its supervisor (pid " +
           std::to_string(supervisor) + ") writes to " + log + "\n  kvmgpu status " + e.name + "     its state\n  kvmgpu stop " +
           e.name + "       shut it down (devices come back)\n";
}

// The background process: the launch with its output in the log, and everything up to the VM
// running (or the error that ended the launch) sent to the waiting foreground process too.
int launch_in_background(Invocation& inv, const profile::Profile& p, const app::LaunchOptions& options,
                         util::ForegroundLink& link, const std::string& log) {
    const auto to_log = make_reporter(inv.out, inv.err, inv.json);
    const app::Report report = [&](const app::Event& e) {
        const auto* running = std::get_if<app::RunningEvent>(&e);
        // No "Ctrl-C here stops it" in the log: there is no terminal.
        if (running && !inv.json) inv.err << reach_it(*running, ::getpid(), log, false) << std::flush;
        else to_log(e);
        if (!link) return;
        if (running) {
            link.send(reach_it(*running, ::getpid(), log, inv.json));
            link.ready();
            return;
        }
        std::ostringstream text;
        make_reporter(text, text, inv.json)(e);
        link.send(text.str());
    };
    auto error_json = [](const util::Error& e) {
        return nlohmann::json{{"error", e.what()}, {"exit", e.exit_code()}, {"code", e.code()}}.dump() + "\n";
    };
    try {
        return app::launch(p, inv.ctx, options, report);
    } catch (const app::StepFailed& e) {
        // The failed step, with its error line, went to both already.
        if (inv.json) {
            print_json_error(inv.out, e.what(), e.exit_code(), e.code());
            if (link) link.send(error_json(e));
        }
        return e.exit_code();
    } catch (const util::Error& e) {
        if (link) link.send(inv.json ? error_json(e) : "kvmgpu: error: " + std::string(e.what()) + "\n");
        throw;
    } catch (const std::exception& e) {
        if (link) link.send(inv.json ? nlohmann::json{{"error", e.what()}, {"exit", 1}, {"code", "failed"}}.dump() + "\n"
                                     : "kvmgpu: error: " + std::string(e.what()) + "\n");
        throw;
    }
}

// `run --detach`: the launcher forks; the foreground process shows the launch until the VM runs
// and exits 0, or with the launch's exit code when it failed.
int launch_detached(Invocation& inv, const profile::Profile& p, const app::LaunchOptions& options) {
    if (const char* address = inv.getenv ? inv.getenv("NOTIFY_SOCKET") : nullptr; address)
        util::unset_notify_socket();  // systemd's main process would be the one that exits
    const auto log = inv.ctx.vm_layout(p.name).launcher_log().string();
    auto log_fd = app::open_launcher_log(inv.ctx.vm_layout(p.name), p.name);
    inv.out.flush();
    inv.err.flush();
    auto detached = util::detach(log_fd.get());
    log_fd.reset();
    if (detached.in_child) return launch_in_background(inv, p, options, detached.link, log);
    std::ostream& shown = inv.json ? inv.out : inv.err;
    return util::wait_until_ready(detached.child, std::move(detached.from_child),
                                  [&](std::string_view text) { shown << text << std::flush; });
}

}  // namespace

void run_options(po::options_description& desc) {
    desc.add_options()
        ("stop-timeout", po::value<unsigned>()->default_value(kDefaultStopTimeout)->value_name("S"),
         "on Ctrl-C or SIGTERM, wait S seconds for the guest to power off before QEMU quits")
        ("qmp-timeout", po::value<unsigned>()->default_value(30)->value_name("S"),
         "give up when QEMU's QMP socket is not ready after S seconds")
        ("detach,d", "go to the background once the VM runs (its output in STATE/NAME/launcher.log); "
                     "`kvmgpu stop NAME` ends it")
        ("dry-run,n",
                       "print the QEMU command line (one shell-quoted line, or {\"argv\": [...]} "
                       "with --json) and change nothing");
}

int run_command(Invocation& inv) {
    if (inv.args.size() != 1)
        throw UsageError(inv.args.empty() ? "run needs a profile: kvmgpu run NAME, or kvmgpu run PROFILE.toml"
                                          : "run takes one profile, not " +
                                                std::to_string(inv.args.size()));
    const bool detach = inv.options.count("detach") > 0;
    if (detach && inv.options.count("dry-run"))
        throw UsageError("--detach starts the VM in the background and --dry-run starts nothing; give one of them");
    const auto found = app::find_profile(inv.ctx, inv.args.front());
    const std::string file = found.file.string();
    if (!inv.options.count("dry-run")) {
        auto loaded = profile::load_and_validate(file);
        if (inv.json && profile::has_errors(loaded.diagnostics))
            inv.out << nlohmann::json{{"event", "invalid"}, {"diagnostics", to_json(loaded.diagnostics)}}.dump() << "\n";
        print_diagnostics(inv.err, loaded.diagnostics, file);
        app::check_found_name(found, loaded.profile.name);
        app::LaunchOptions options;
        options.stop_timeout = std::chrono::seconds(inv.options["stop-timeout"].as<unsigned>());
        options.connect_timeout = std::chrono::seconds(inv.options["qmp-timeout"].as<unsigned>());
        return detach ? launch_detached(inv, loaded.profile, options) : launch_in_foreground(inv, loaded.profile, options);
    }
    const auto result = app::dry_run(file, inv.ctx);
    const bool errors = profile::has_errors(result.diagnostics);
    if (inv.json) {
        nlohmann::json j;
        j["profile"] = file;
        j["name"] = result.profile.name;
        j["diagnostics"] = to_json(result.diagnostics);
        if (!errors) {
            j["argv"] = result.argv;
            j["warnings"] = result.warnings;
            j["runtime_dir"] = result.facts.layout.runtime_dir.string();
            j["state_dir"] = result.facts.layout.state_dir.string();
        }
        inv.out << j.dump() << "\n";
        // People reading a terminal still see the problems.
        print_diagnostics(inv.err, result.diagnostics, file);
        return ok;
    }
    print_diagnostics(inv.err, result.diagnostics, file);
    for (const auto& w : result.warnings) inv.err << "kvmgpu: warning: " << w << "\n";
    inv.out << util::shell_join(result.argv) << "\n";
    return ok;
}

}  // namespace kvmgpu::cli
