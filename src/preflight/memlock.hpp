#pragma once
// VFIO pins all of a guest's RAM (and Looking Glass's shared memory) in the locked memory of the
// QEMU process: with a locked-memory limit (RLIMIT_MEMLOCK) below that, QEMU fails at start with
// "VFIO_MAP_DMA failed: Cannot allocate memory" after the devices were bound. kvmgpu raises the
// limit for the QEMU it starts when it can (root with CAP_SYS_RESOURCE, or a hard limit high
// enough); `check` says which, and warns when QEMU would stay below it.
#include <cstdint>
#include <optional>
#include <vector>

#include "preflight/check.hpp"
#include "profile/profile.hpp"

namespace kvmgpu::preflight {

// What QEMU needs locked for `p`: guest RAM, Looking Glass's memory and 1 GiB for QEMU's own
// mappings and the IOMMU's bookkeeping. 0 when nothing is passed through (nothing is pinned).
std::uint64_t vfio_locked_bytes(const profile::Profile& p);

// The finding for a profile that passes devices (none otherwise), from what kvmgpu may give
// QEMU: `can_raise` (util::can_set_memlock of the bytes needed) and the hard limit it has now
// (nullopt: unlimited).
std::vector<Finding> memlock_findings(const profile::Profile& p, bool can_raise,
                                      std::optional<std::uint64_t> hard_limit);

}  // namespace kvmgpu::preflight
