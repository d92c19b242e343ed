#pragma once
// The host sequences behind `kvmgpu list`, `check`, `bind` and `restore` (and the check that
// `run` and a dry run make): the host layer's pieces put together with kvmgpu's own state —
// where journals and locks live, which VMs run.
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "app/context.hpp"
#include "util/error.hpp"
#include "host/binder.hpp"
#include "preflight/check.hpp"
#include "host/host_model.hpp"
#include "profile/profile.hpp"

namespace kvmgpu::app {

// Bad input for a host command, found before anything changed (exit 2).
struct HostInputError : util::BadInput {
    explicit HostInputError(const std::string& message) : util::BadInput(message, "bad-device") {}
};

// The host as it is now; `names` looks device names up in pci.ids (for people, not launches);
// without `pci` no PCI device or IOMMU group is read.
host::HostModel scan(const Context& ctx, bool names = true, bool pci = true);

// The host as a launch of `profile` meets it: scan() (PCI devices only when the profile passes
// some), who holds the devices it would bind (HostModel::holders), and when the profile asks
// kvmgpu to free its card, what freeing it would touch (HostModel::release).
// `scope` says how much of the host is read: every device (what `kvmgpu check` shows), or only
// the profile's devices, their IOMMU groups and the groups' other members, which is all the
// binding plan and its checks use, and the hugepage pools only when the profile uses hugepages
// (a launch; a refused one scans again to say what check says).
enum class ScanScope { every_device, profile_devices };
host::HostModel scan_for(const profile::Profile& profile, const Context& ctx, bool names = true,
                         ScanScope scope = ScanScope::every_device);

// check() for a profile, with the reservations of the VMs that run now.
// The check's facts beyond the host model: the device locks, and who QEMU runs as ([security]
// user, looked up only when kvmgpu runs as root).
// Who Looking Glass's shm file is for: [looking_glass] owner, else ctx.invoking_user, else the
// user kvmgpu runs as.
std::string looking_glass_owner_name(const profile::Profile& profile, const Context& ctx);

// The sound server QEMU connects to for [audio]: the profile's server, else the PulseAudio socket
// of the desktop user's session (/run/user/UID/pulse/native: the caller's, or SUDO_USER's when
// root), else empty (root, not through sudo: nobody's known). QEMU gets only a minimal
// environment, never XDG_RUNTIME_DIR, so the server is always named.
std::string resolved_audio_server(const profile::Profile& profile, const Context& ctx);

preflight::CheckOptions check_options(const profile::Profile& profile, const Context& ctx);

preflight::CheckResult check_host(const profile::Profile& profile, const Context& ctx, bool names = true);

// `kvmgpu bind`: every address is checked first (a missing device, a bridge or a chipset
// function is HostInputError and nothing changes); a device a running VM holds is refused.
// The journal is written under `name`; throws host::BindError after rolling back.
host::BindResult bind_by_hand(const Context& ctx, const std::string& name,
                              const std::vector<util::PciAddress>& devices);

struct RestoreResult {
    std::string name;
    std::string refused;  // non-empty: not restored, and why (the VM still runs)
    std::vector<std::string> warnings;
    host::RestoreReport report;
    // Every change undone and every device given back in working order.
    bool ok() const { return refused.empty() && report.working(); }
};

// `kvmgpu restore NAME`: gives the devices in NAME's journal back, unless its QEMU still runs;
// releases the locks of what came back; removes a left-over runtime directory once all did.
// `writer`: where sysfs writes go; null for the real kernel (tests pass a simulated one).
// `runner`: what runs systemctl and modprobe; null for the real programs (tests pass a fake).
RestoreResult restore_vm(const Context& ctx, const std::string& name, host::SysfsWriter* writer = nullptr,
                         host::CommandRunner* runner = nullptr);

// Every name that has a journal, for `kvmgpu restore --all`.
std::vector<std::string> journal_names(const Context& ctx);

}  // namespace kvmgpu::app
