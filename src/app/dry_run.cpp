#include "app/dry_run.hpp"

#include <system_error>

#include "profile/validate.hpp"

namespace kvmgpu::app {

qemu::HostFacts gather_facts(const profile::Profile& p, const Context& ctx,
                             std::vector<std::string>& warnings) {
    qemu::HostFacts facts;
    facts.runtime_dir = ctx.vm_runtime_dir(p.name);
    facts.state_dir = ctx.vm_state_dir(p.name);
    std::error_code ec;
    for (const auto& d : p.pci) {
        const auto dir = ctx.host("/sys/bus/pci/devices") / d.address.str();
        if (!std::filesystem::exists(dir, ec))
            warnings.push_back("PCI device \"" + d.address.str() + "\" does not exist on this host (" +
                               dir.string() + "); a real run would refuse to start");
    }
    return facts;
}

DryRun dry_run(const std::filesystem::path& profile_file, const Context& ctx) {
    DryRun out;
    auto loaded = profile::load_and_validate(profile_file);
    out.profile = std::move(loaded.profile);
    out.diagnostics = std::move(loaded.diagnostics);
    if (profile::has_errors(out.diagnostics)) return out;
    out.facts = gather_facts(out.profile, ctx, out.warnings);
    out.argv = qemu::build_argv(out.profile, out.facts);
    return out;
}

}  // namespace kvmgpu::app
