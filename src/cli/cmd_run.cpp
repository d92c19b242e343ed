#include <ostream>

#include <nlohmann/json.hpp>

#include "app/dry_run.hpp"
#include "app/launch.hpp"
#include "app/launch_steps.hpp"
#include "cli/report.hpp"
#include "profile/validate.hpp"
#include "cli/command.hpp"
#include "cli/output.hpp"
#include "util/text.hpp"

namespace kvmgpu::cli {

void run_options(po::options_description& desc) {
    desc.add_options()
        ("stop-timeout", po::value<unsigned>()->default_value(kDefaultStopTimeout)->value_name("S"),
         "on Ctrl-C or SIGTERM, wait S seconds for the guest to power off before QEMU quits")
        ("qmp-timeout", po::value<unsigned>()->default_value(30)->value_name("S"),
         "give up when QEMU's QMP socket is not ready after S seconds")
        ("dry-run,n",
                       "print the QEMU command line (one shell-quoted line, or {\"argv\": [...]} "
                       "with --json) and change nothing");
}

int run_command(Invocation& inv) {
    if (inv.args.size() != 1)
        throw UsageError(inv.args.empty() ? "run needs a profile: kvmgpu run PROFILE.toml"
                                          : "run takes one profile, not " +
                                                std::to_string(inv.args.size()));
    const std::string file = inv.args.front();
    if (!inv.options.count("dry-run")) {
        auto loaded = profile::load_and_validate(file);
        if (inv.json && profile::has_errors(loaded.diagnostics))
            inv.out << nlohmann::json{{"event", "invalid"}, {"diagnostics", to_json(loaded.diagnostics)}}.dump() << "\n";
        print_diagnostics(inv.err, loaded.diagnostics, file);
        app::LaunchOptions options;
        options.stop_timeout = std::chrono::seconds(inv.options["stop-timeout"].as<unsigned>());
        options.connect_timeout = std::chrono::seconds(inv.options["qmp-timeout"].as<unsigned>());
        try {
            return app::launch(loaded.profile, inv.ctx, options, make_reporter(inv.out, inv.err, inv.json));
        } catch (const app::StepFailed& e) {
            // Already reported as a failed step (with its "kvmgpu: error:" line); JSON gets the
            // closing error object every failed command ends with.
            if (inv.json) print_json_error(inv.out, e.what(), e.exit_code(), e.code());
            return e.exit_code();
        }
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
