#pragma once
// `kvmgpu init`: the GPUs of this host with their IOMMU groups, and a starter profile for one of
// them — every function of its slot with its identity, CPU and memory sized for this host,
// OVMF, and comments that explain each section to someone writing their first profile.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "app/context.hpp"
#include "host/host_model.hpp"
#include "util/error.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::app {

// One GPU (a display-class PCI function) and the devices that go with it.
struct GpuChoice {
    host::PciDeviceInfo gpu;
    // Every function of its slot (same domain:bus:slot), the GPU included, bridges excepted,
    // sorted: what the profile lists.
    std::vector<host::PciDeviceInfo> functions;
    // Members of its IOMMU group outside the slot, bridges excepted: `check` decides whether
    // the group can be passed.
    std::vector<util::PciAddress> group_others;
};

// The host's GPUs, sorted by address. A GPU that is another function of a listed GPU's slot
// (a second display function) is listed with it, not on its own.
std::vector<GpuChoice> find_gpus(const host::HostModel& host);

// What `init` sizes the VM by: half of the host's cores (at least one, leaving the rest to the
// host), SMT threads as the host has them, half of MemTotal.
struct HostSizing {
    unsigned cores = 2;
    unsigned threads = 1;
    std::vector<unsigned> pin;           // host CPU per vCPU; empty: no pinning
    std::vector<unsigned> emulator_pin;  // the host CPUs left to QEMU's other threads
    std::string memory = "4G";           // a profile size
    std::uint64_t host_memory = 0;       // MemTotal, bytes; 0 when unknown
    unsigned host_cpus = 0;
};
HostSizing size_for(const host::HostModel& host);

// The starter profile's TOML text for `gpu` on `host`. It loads and validates without errors.
std::string starter_profile(const host::HostModel& host, const GpuChoice& gpu, const std::string& name);

struct InitRequest {
    std::string name;                     // empty: the output file's stem, or "vm"
    std::optional<util::PciAddress> gpu;  // nullopt: the only GPU
    std::filesystem::path output;         // empty: nothing written (the CLI prints the text)
    bool force = false;                   // replace an existing output file
};

struct InitResult {
    bool iommu = false;
    std::vector<GpuChoice> gpus;
    std::optional<std::size_t> chosen;  // index into gpus
    std::string name;
    std::string profile;                // the starter profile; empty when none was made
    std::filesystem::path written;      // the file written; empty: none
    // Why no profile was made, once the GPUs are known (several and none chosen: bad input,
    // code "choose-gpu"; --gpu not a GPU: "not-a-gpu"; no GPU at all: runtime, "no-gpu"; the
    // output exists: "exists"). The CLI shows the list first, then this error.
    std::optional<util::Error> refused;
};

// `kvmgpu init`. Throws util::BadInput for a bad name before reading the host.
InitResult init(const Context& ctx, const InitRequest& request);

}  // namespace kvmgpu::app
