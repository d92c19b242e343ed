#pragma once
// A read-only snapshot of the host facts kvmgpu needs: PCI devices and IOMMU groups, KVM,
// vfio-pci, hugepages, CPUs and framebuffers. Built by scan_host() from files under a root
// directory ("/" in production, a temporary tree in tests); check() and the CLI's `list` read
// it, nothing in it writes.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "host/release.hpp"
#include "host/holders.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::host {

// Linux's include/linux/ioport.h resource flags, as printed in a device's `resource` file.
inline constexpr std::uint64_t kResourceIo = 0x00000100;
inline constexpr std::uint64_t kResourceMem = 0x00000200;
inline constexpr std::uint64_t kResourcePrefetch = 0x00002000;
inline constexpr std::uint64_t kResourceMem64 = 0x00100000;

// One assigned resource of a device: a line "start end flags" of its `resource` file.
// Lines 0..5 are the BARs, 6 the expansion ROM, the rest bridge windows or SR-IOV BARs.
struct Bar {
    unsigned index = 0;
    std::uint64_t start = 0;
    std::uint64_t size = 0;  // end - start + 1
    std::uint64_t flags = 0;

    bool io() const { return flags & kResourceIo; }
    bool mem() const { return flags & kResourceMem; }
    bool mem64() const { return flags & kResourceMem64; }
    bool prefetch() const { return flags & kResourcePrefetch; }
    bool rom() const { return index == 6; }
};

// Parses the text of a `resource` file; unassigned lines (start 0) and malformed lines are left
// out.
std::vector<Bar> parse_resource(std::string_view text);

struct PciDeviceInfo {
    util::PciAddress address;
    std::uint16_t vendor = 0;
    std::uint16_t device = 0;
    std::uint16_t subsystem_vendor = 0;
    std::uint16_t subsystem_device = 0;
    std::uint32_t class_code = 0;                // 24 bits: 0xCCSSPP (0x030000 VGA)
    std::string driver;                          // bound driver; empty: none
    std::optional<std::string> driver_override;  // nullopt: "(null)", none set
    std::optional<unsigned> iommu_group;         // nullopt: no IOMMU group (IOMMU off)
    bool boot_vga = false;
    std::optional<std::string> reset_method;     // nullopt: no `reset_method` file
    int numa_node = -1;
    std::vector<Bar> bars;
    std::string vendor_name;  // from pci.ids; empty when unknown
    std::string device_name;

    // Bridges (class 0x0604xx) are part of IOMMU groups but are never bound or passed; vfio
    // accepts a group whose bridges stay on their driver.
    bool is_bridge() const { return (class_code >> 8) == 0x0604; }
    bool is_display() const { return (class_code >> 16) == 0x03; }
    // Chipset functions the host itself needs: host bridge (0x0600), ISA/LPC bridge (0x0601),
    // SMBus (0x0c05). A group holding one of them is the platform's, never a passthrough group.
    bool is_chipset() const {
        const auto sub = class_code >> 8;
        return sub == 0x0600 || sub == 0x0601 || sub == 0x0c05;
    }
    // Sum of the sizes of the 64-bit memory BARs (0..5): what the guest's 64-bit MMIO window
    // must hold for this device.
    std::uint64_t mem64_bytes() const;
    // "NVIDIA Corporation GA104 [GeForce RTX 3070]" or "10de:2484" when pci.ids has no name.
    std::string name() const;
};

struct IommuGroup {
    unsigned id = 0;
    std::vector<util::PciAddress> devices;  // sorted
};

struct HugepagePool {
    std::uint64_t page_size = 0;  // bytes
    std::uint64_t total = 0;      // nr_hugepages
    std::uint64_t free = 0;       // free_hugepages
    std::optional<unsigned> node; // nullopt: the system-wide pool
};

struct Framebuffer {
    unsigned index = 0;
    std::string driver;                     // the proc/fb name: "EFI VGA", "simple", "amdgpudrmfb"
    std::optional<util::PciAddress> device; // from sys/class/graphics/fbN/device when it is PCI
};

struct HostModel {
    std::filesystem::path root;
    // Whether names were looked up in pci.ids (ScanOptions::names). A launch scans without them,
    // and what reads the model (the check's findings) then names devices by their ids only:
    // reading pci.ids (1.3 MB) costs more than the rest of a launch's check.
    bool names = true;

    std::vector<PciDeviceInfo> devices;  // sorted by address
    std::vector<IommuGroup> groups;      // sorted by id

    std::vector<std::string> iommu_units;     // names in sys/class/iommu ("dmar0", "ivhd0")
    std::string kernel_cmdline;               // proc/cmdline
    std::vector<std::string> iommu_cmdline;   // the intel_iommu=, amd_iommu=, iommu= words

    bool kvm_exists = false;
    bool kvm_usable = false;  // dev/kvm opened read-write
    int kvm_errno = 0;        // why opening failed

    bool vfio_pci_driver = false;  // sys/bus/pci/drivers/vfio-pci exists
    bool vfio_dir = false;         // dev/vfio exists

    std::vector<HugepagePool> hugepages;  // system-wide pools first, then per node
    std::vector<unsigned> online_cpus;
    std::map<unsigned, std::vector<unsigned>> thread_siblings;  // cpu → its siblings, itself included
    std::vector<Framebuffer> framebuffers;
    ReleaseFacts release;  // empty unless scan_release() filled it
    // Who holds the devices a launch would bind: not filled by scan_host(), which does not know
    // them; the caller sets it with find_holders() (scanned = false until then).
    HolderScan holders;
    std::uint64_t mem_total = 0;       // bytes: MemTotal of proc/meminfo; 0 when unreadable
    bool vendor_reset_loaded = false;  // sys/module/vendor_reset exists (gnif/vendor-reset)

    bool iommu_present() const { return !iommu_units.empty(); }
    const PciDeviceInfo* find(const util::PciAddress& address) const;
    const IommuGroup* group(unsigned id) const;
    // The system-wide pool of `page_size` bytes, if the kernel has one.
    const HugepagePool* hugepage_pool(std::uint64_t page_size) const;
    bool cpu_online(unsigned cpu) const;
};

struct ScanOptions {
    bool names = true;  // look names up in pci.ids
    // Read PCI devices and IOMMU groups; a launch without [[pci]] devices needs neither.
    bool pci = true;
    // When set, read only these PCI devices, the IOMMU groups they are in and the other members
    // of those groups, not every device of the host: all a launch's check needs to plan and
    // check its binding (each device is a dozen sysfs reads). Unknown addresses are left out,
    // as a full scan leaves them out.
    std::optional<std::vector<util::PciAddress>> only;
    // Read the hugepage pools (the system's and each NUMA node's); a launch whose profile uses no
    // hugepages needs none of them.
    bool hugepages = true;
};

// Reads everything from ROOT/sys, ROOT/proc and ROOT/dev. Missing files give empty or false
// facts rather than errors: check() turns them into findings.
HostModel scan_host(const std::filesystem::path& root, const ScanOptions& options = {});

void to_json(nlohmann::json& j, const Bar& bar);
void to_json(nlohmann::json& j, const PciDeviceInfo& device);
void to_json(nlohmann::json& j, const IommuGroup& group);
void to_json(nlohmann::json& j, const HugepagePool& pool);
void to_json(nlohmann::json& j, const Framebuffer& framebuffer);
void to_json(nlohmann::json& j, const HostModel& host);

}  // namespace kvmgpu::host
