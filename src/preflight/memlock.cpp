#include "preflight/memlock.hpp"

#include "util/text.hpp"

namespace kvmgpu::preflight {

std::uint64_t vfio_locked_bytes(const profile::Profile& p) {
    if (p.pci.empty()) return 0;
    const auto& lg = p.looking_glass;
    return p.machine.memory + (std::uint64_t{1} << 30) + (lg.enabled ? lg.shared_memory_bytes() : 0);
}

std::vector<Finding> memlock_findings(const profile::Profile& p, bool can_raise, std::optional<std::uint64_t> hard_limit) {
    const auto needed = vfio_locked_bytes(p);
    if (needed == 0) return {};
    const std::string size = util::format_size(needed);
    if (can_raise)
        return {host_finding(Severity::ok, "memlock",
                             "QEMU's locked-memory limit is raised to " + size + " for VFIO (guest RAM" +
                                 (p.looking_glass.enabled ? ", Looking Glass" : "") + " and 1G to spare).")};
    const std::string now = hard_limit ? util::format_size(*hard_limit) : std::string("unlimited");
    // A warning, not an error: what VFIO counts against the limit depends on the kernel (and a
    // QEMU user may have been given CAP_IPC_LOCK some other way), so the start is the judge.
    return {host_finding(Severity::warning, "memlock-too-low",
                    "QEMU's locked-memory limit (RLIMIT_MEMLOCK, hard limit " + now + ") is below the " + size +
                        " VFIO pins, and kvmgpu cannot raise it (no CAP_SYS_RESOURCE).",
                    "QEMU is then likely to stop at start with \"VFIO_MAP_DMA failed: Cannot allocate memory\".",
                    "Run kvmgpu as root, or raise the limit for your user: a line `USER hard memlock unlimited` "
                    "in /etc/security/limits.d/kvmgpu.conf (log in again), or LimitMEMLOCK=infinity for a unit.")};
}

}  // namespace kvmgpu::preflight
