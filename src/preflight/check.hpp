#pragma once
// Preflight: does this host fit this profile? A pure function of the profile, a HostModel
// snapshot and the reservation locks; it reads nothing itself except whether the files the
// profile names (firmware, ROMs, evdev) exist under the host root, and the pci.ids names of
// the identities a [[pci]] id finding shows (ROOT/usr/share/misc/pci.ids, read when needed).
//
// Paths in a profile are host paths. An absolute path is resolved under the host root
// (HostModel::root: "/" in production, the temporary tree in tests). A relative path is taken
// relative to the profile file's directory, and that result again under the root when the
// profile file was named by an absolute path.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "host/host_model.hpp"
#include "host/lock.hpp"
#include "preflight/release_plan.hpp"
#include "profile/profile.hpp"
#include "util/layout.hpp"
#include "util/pci_address.hpp"
#include "util/user.hpp"

namespace kvmgpu::preflight {

enum class Severity { ok, warning, error };
std::string_view severity_name(Severity severity);

// One fact about the host. `code` is a stable short id for scripts and tests ("iommu-off",
// "group-not-viable", ...); what/why/fix are sentences with paths and PCI addresses quoted;
// why and fix may be empty for ok findings.
struct Finding {
    Severity severity = Severity::ok;
    std::string code;
    std::string what;
    std::string why;
    std::string fix;
    std::optional<util::PciAddress> address;

    // what, why and fix joined by spaces.
    std::string text() const;
};

// A finding about the host as a whole (no PCI address).
inline Finding host_finding(Severity severity, std::string code, std::string what, std::string why = {},
                            std::string fix = {}) {
    return Finding{severity, std::move(code), std::move(what), std::move(why), std::move(fix), std::nullopt};
}

struct CheckOptions {
    std::string vm;         // the VM's name for reservations; empty: profile.name
    pid_t self_pid = 0;     // our own pid: our own locks are not a conflict; 0: getpid()
    std::vector<host::DeviceLock> locks;  // read_locks(runtime_dir)
    // The 64-bit PCI MMIO window OVMF gives the guest when not told otherwise.
    std::uint64_t ovmf_default_mmio64 = std::uint64_t{32} << 30;
    // The OVMF files the QEMU layer uses when the profile leaves firmware.code/vars empty.
    util::OvmfDefaults ovmf;
    // Whether kvmgpu runs as root: only then does QEMU run as [security] user.
    bool as_root = false;
    // [security] user as the system knows it (util::find_user); nullopt: no such user.
    std::optional<util::SystemUser> qemu_user;
    // The group "kvm" (for the fix of a missing user), if the system has one.
    std::optional<gid_t> kvm_group;
    // Who Looking Glass's shm file is for ([looking_glass] owner, else the user who ran kvmgpu
    // through sudo, else kvmgpu's own user), and that user as found (nullopt: no such user).
    std::string looking_glass_owner;
    std::optional<util::SystemUser> looking_glass_user;
    // [audio]: the drivers the profile's QEMU has (host::qemu_audio_drivers; nullopt: it could
    // not tell), and the sound server QEMU is to use (empty: nobody's known).
    std::optional<std::vector<std::string>> qemu_audio_drivers;
    std::string audio_server;
    // Whether kvmgpu can give the QEMU it starts the locked memory VFIO pins
    // (util::can_set_memlock), and its hard RLIMIT_MEMLOCK now (nullopt: unlimited). Not asked
    // (nullopt) when nothing is passed through or QEMU runs as root, which VFIO does not limit.
    std::optional<bool> memlock_raisable;
    std::optional<std::uint64_t> memlock_hard;
};

// What to bind: the profile's devices in profile order, then the functions added for them.
struct BindPlan {
    std::vector<util::PciAddress> devices;
    // Functions of a listed card (same domain:bus:slot) in the same IOMMU group that the profile
    // does not list, bridges excepted: vfio needs the whole group, and the other functions of a
    // GPU (HDMI audio, USB-C controller) are safe to take along. Sorted.
    std::vector<util::PciAddress> auto_added;
};

// Profile devices missing from the host are kept in `devices` (check() reports them).
BindPlan plan_binding(const profile::Profile& profile, const host::HostModel& host);

struct CheckResult {
    std::vector<Finding> findings;
    BindPlan plan;
    // What the launch changes to free the card before binding it ([release]), in order.
    std::vector<PlannedRelease> release;
    // Sum of the 64-bit BAR sizes of every device in the plan.
    std::uint64_t mmio64_bytes = 0;
    // Set when OVMF's default window is too small: the value for
    // `-fw_cfg name=opt/ovmf/X-PciMmio64Mb,string=N` (MiB, a power of two ≥ 2 × mmio64_bytes).
    std::optional<std::uint64_t> mmio64_mb;

    bool ok() const;  // no error findings
    std::size_t count(Severity severity) const;
    const Finding* find(std::string_view code) const;  // the first finding with this code
};

CheckResult check(const profile::Profile& profile, const host::HostModel& host,
                  const CheckOptions& options = {});

// How a profile path maps to the host; see the comment at the top.
std::filesystem::path resolve_host_path(const profile::Profile& profile,
                                        const std::filesystem::path& root,
                                        const std::filesystem::path& path);

void to_json(nlohmann::json& j, const Finding& finding);
void to_json(nlohmann::json& j, const BindPlan& plan);
void to_json(nlohmann::json& j, const CheckResult& result);

}  // namespace kvmgpu::preflight
