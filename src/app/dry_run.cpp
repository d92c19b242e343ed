#include "app/dry_run.hpp"

#include <system_error>

#include "app/host_ops.hpp"
#include "profile/validate.hpp"

namespace kvmgpu::app {

qemu::HostFacts facts_from_check(const profile::Profile& p, const Context& ctx,
                                 const preflight::CheckResult& checked) {
    qemu::HostFacts facts;
    facts.layout = ctx.vm_layout(p.name);
    facts.extra_functions = checked.plan.auto_added;
    facts.mmio64_mb = checked.mmio64_mb;
    if (p.audio.backend != profile::AudioBackend::none) facts.audio_server = resolved_audio_server(p, ctx);
    return facts;
}

qemu::HostFacts gather_facts(const profile::Profile& p, const Context& ctx,
                             std::vector<std::string>& warnings) {
    // The same check a real run makes; here its errors are only warnings, so that a profile can
    // be looked at on a machine without its GPU.
    const auto checked = check_host(p, ctx);
    for (const auto& f : checked.findings) {
        if (f.severity == preflight::Severity::ok) continue;
        warnings.push_back(f.text() + (f.severity == preflight::Severity::error ? " (a real run would refuse to start)" : ""));
    }
    return facts_from_check(p, ctx, checked);
}

DryRun dry_run(const std::filesystem::path& profile_file, const Context& ctx) {
    DryRun out;
    auto loaded = profile::load_and_validate(profile_file);
    out.profile = std::move(loaded.profile);
    out.diagnostics = std::move(loaded.diagnostics);
    if (profile::has_errors(out.diagnostics)) return out;
    out.facts = gather_facts(out.profile, ctx, out.warnings);
    // A real run passes the tap qemu-bridge-helper opened; fd 3 stands for it here.
    if (out.profile.network.mode == profile::NetworkMode::bridge) out.facts.bridge_tap_fd = kDryRunBridgeTapFd;
    out.argv = qemu::build_argv(out.profile, out.facts);
    return out;
}

}  // namespace kvmgpu::app
