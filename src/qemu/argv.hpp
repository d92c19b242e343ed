#pragma once
// The QEMU command line: a pure function from a checked profile plus host facts to argv.
// Devices are built as Option structs and rendered in one place (qemu/options.hpp).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "profile/profile.hpp"
#include "util/layout.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::qemu {

// What the command line needs to know beyond the profile. Gathered by app/ from the host
// (or, for a dry run, from what is readable) so that this layer stays pure.
struct HostFacts {
    util::VmLayout layout;  // where the VM's sockets, pidfile, OVMF vars and TPM socket are
    // Functions of a listed card that must go with it (same slot, same IOMMU group).
    std::vector<util::PciAddress> extra_functions;
    // The 64-bit MMIO window OVMF must give large BARs, in MiB (opt/ovmf/X-PciMmio64Mb).
    std::optional<std::uint64_t> mmio64_mb;
    // [network] mode = "bridge": the tap kvmgpu had qemu-bridge-helper open, as the descriptor
    // number QEMU inherits (-netdev tap,fd=N). build_argv throws std::logic_error without it.
    std::optional<int> bridge_tap_fd;
    // [audio]: the sound server QEMU connects to ("unix:/run/user/1000/pulse/native"), the
    // profile's or the desktop user's session's; empty: the profile's (or PulseAudio's default).
    std::string audio_server;
};

// The MAC of the VM's NIC: the profile's, or one derived from the VM name (stable across runs,
// so a guest does not see a new network card each boot), in QEMU's 52:54:00 range.
std::string mac_address(const profile::Profile& p);

// Hyper-V enlightenments rendered for `accel`. Under TCG QEMU rejects those that need KVM's
// in-kernel help (vpindex and the ones built on it), so they are left out there.
std::vector<std::string> hyperv_flags(profile::Accel accel);

std::vector<std::string> build_argv(const profile::Profile& p, const HostFacts& facts);

}  // namespace kvmgpu::qemu
