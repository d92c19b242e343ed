#include <ostream>

#include "app/dry_run.hpp"
#include "cli/command.hpp"
#include "cli/output.hpp"
#include "util/text.hpp"

namespace kvmgpu::cli {

void run_options(po::options_description& desc) {
    desc.add_options()("dry-run,n",
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
        inv.err << "kvmgpu: error: starting a VM is not available in this version yet; it "
                   "arrives with the runtime work. `kvmgpu run --dry-run "
                << util::shell_quote(file) << "` prints the QEMU command line\n";
        return failure;
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
            j["runtime_dir"] = result.facts.runtime_dir.string();
            j["state_dir"] = result.facts.state_dir.string();
        }
        inv.out << j.dump() << "\n";
        // People reading a terminal still see the problems.
        if (errors) print_diagnostics(inv.err, result.diagnostics, file);
        return errors ? bad_input : ok;
    }
    if (print_diagnostics(inv.err, result.diagnostics, file)) return bad_input;
    for (const auto& w : result.warnings) inv.err << "kvmgpu: warning: " << w << "\n";
    inv.out << util::shell_join(result.argv) << "\n";
    return ok;
}

}  // namespace kvmgpu::cli
