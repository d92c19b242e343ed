// `kvmgpu isolate PROFILE [--dry-run]`, `kvmgpu isolate --undo [PROFILE] [--dry-run]`.
#include <ostream>

#include <nlohmann/json.hpp>

#include "app/isolate.hpp"
#include "app/profile_lookup.hpp"
#include "cli/command.hpp"
#include "cli/output.hpp"
#include "profile/validate.hpp"

namespace kvmgpu::cli {

void isolate_options(po::options_description& desc) {
    desc.add_options()
        ("undo", "remove the file `kvmgpu isolate` wrote (refused when it was edited since); a PROFILE "
                 "given: only when written for that VM")
        ("dry-run,n", "show the file and the steps, write nothing");
}

int isolate_command(Invocation& inv) {
    const bool undo = inv.options.count("undo") > 0;
    const bool dry_run = inv.options.count("dry-run") > 0;
    if (inv.args.size() > 1 || (!undo && inv.args.empty()))
        throw UsageError("usage: kvmgpu isolate PROFILE [--dry-run] | kvmgpu isolate --undo [PROFILE] [--dry-run]");

    std::optional<profile::Profile> profile;
    if (!inv.args.empty()) {
        const auto found = app::find_profile(inv.ctx, inv.args.front());
        const auto file = found.file.string();
        auto loaded = profile::load_and_validate(file);
        if (inv.json && profile::has_errors(loaded.diagnostics))
            inv.out << nlohmann::json{{"diagnostics", to_json(loaded.diagnostics)}}.dump() << "\n";
        print_diagnostics(inv.err, loaded.diagnostics, file);
        app::check_found_name(found, loaded.profile.name);
        profile = std::move(loaded.profile);
    }

    const auto r = undo ? app::isolate_undo(inv.ctx, profile ? std::optional(profile->name) : std::nullopt, dry_run)
                        : app::isolate(*profile, inv.ctx, dry_run);
    for (const auto& w : r.warnings) inv.err << "kvmgpu: warning: " << w << "\n";
    if (inv.json) {
        inv.out << nlohmann::json(r).dump() << "\n";
        return ok;
    }
    const auto file = r.file.string();
    if (r.outcome == "would-write") {
        inv.out << "would write " << file << " (mode 0644; --dry-run: nothing written):\n" << r.content;
    } else if (r.outcome == "written") {
        inv.err << "writing " << file << " … ok\n";
    } else if (r.outcome == "unchanged") {
        inv.err << file << " is already up to date\n";
    } else if (r.outcome == "would-remove") {
        inv.out << "would remove " << file << " (--dry-run: nothing removed)\n";
    } else if (r.outcome == "removed") {
        inv.err << "removing " << file << " … ok\n";
    } else if (r.outcome == "absent") {
        inv.err << file << " does not exist: nothing to undo\n";
    }
    if (!r.steps.empty()) {
        if (r.outcome == "would-write") inv.out << "\n";
        inv.out << (undo ? "Then, to boot without it:\n" : "Steps kvmgpu cannot take itself:\n");
        int n = 0;
        for (const auto& s : r.steps) inv.out << "  " << ++n << ". " << (s.needed ? "" : "(done) ") << s.text << "\n";
    }
    return ok;
}

}  // namespace kvmgpu::cli
