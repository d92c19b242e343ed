#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "app/context.hpp"
#include "preflight/check.hpp"
#include "profile/diagnostic.hpp"
#include "profile/profile.hpp"
#include "qemu/argv.hpp"

namespace kvmgpu::app {

// What `kvmgpu run --dry-run` shows: the argv QEMU would get, and why it might not work here.
// A dry run reads the profile and the host and writes nothing.
struct DryRun {
    profile::Profile profile;
    profile::Diagnostics diagnostics;  // profile problems; argv is empty when any is an error
    std::vector<std::string> warnings;  // host facts that would stop or change a real run
    qemu::HostFacts facts;
    std::vector<std::string> argv;
};

// What the dry run's argv shows for the bridge tap's descriptor ([network] mode = "bridge"), which
// only a real run opens.
inline constexpr int kDryRunBridgeTapFd = 3;

DryRun dry_run(const std::filesystem::path& profile_file, const Context& ctx);

// The host facts the argv needs, read under ctx.host_root; problems become `warnings`.
qemu::HostFacts gather_facts(const profile::Profile& p, const Context& ctx,
                             std::vector<std::string>& warnings);

// The argv's facts from a host check: the VM's directories, the functions the check added,
// OVMF's MMIO window.
qemu::HostFacts facts_from_check(const profile::Profile& p, const Context& ctx,
                                 const preflight::CheckResult& checked);

}  // namespace kvmgpu::app
