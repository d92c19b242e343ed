#pragma once
// Temporary host roots with the kernel's real sysfs layout, and a simulated kernel that reacts
// to sysfs writes the way Linux does, for the host/ tests. Nothing here touches the real /sys:
// every path is under a fresh mkdtemp() directory removed by the destructor.
//
// Layout built (as on a real machine):
//   sys/devices/pci0000:00/[BRIDGE/]ADDR/{vendor,device,class,driver_override,resource,...}
//   sys/bus/pci/devices/ADDR -> ../../../devices/pci0000:00/.../ADDR
//   ADDR/driver -> .../bus/pci/drivers/NAME, drivers/NAME/ADDR -> the device dir
//   ADDR/iommu_group -> .../kernel/iommu_groups/N, iommu_groups/N/devices/ADDR -> the device
//   sys/bus/pci/drivers/NAME/{bind,unbind,new_id,remove_id}, sys/bus/pci/drivers_probe
//   dev/kvm, dev/vfio/vfio, dev/vfio/N, proc/cmdline, sys/class/iommu/dmar0, cpu and hugepages
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "host/sysfs.hpp"
#include "profile/profile.hpp"

namespace kvmgpu::test {

struct BarSpec {
    unsigned index = 0;
    std::uint64_t start = 0;
    std::uint64_t size = 0;
    std::uint64_t flags = 0;
};

// A 64-bit prefetchable memory BAR as the kernel prints its flags (MEM | PREFETCH | MEM_64 |
// SIZEALIGN | the BAR's own type bits).
BarSpec mem64_bar(unsigned index, std::uint64_t start, std::uint64_t size);
BarSpec mem32_bar(unsigned index, std::uint64_t start, std::uint64_t size);
BarSpec io_bar(unsigned index, std::uint64_t start, std::uint64_t size);

struct DeviceSpec {
    std::string address;
    std::uint16_t vendor = 0x8086;
    std::uint16_t device = 0x100e;
    std::uint32_t class_code = 0x020000;
    std::string driver;         // bound now; empty: no driver
    std::string native_driver;  // what drivers_probe binds without an override; empty: = driver
    std::optional<unsigned> group;
    std::string parent;         // upstream bridge's address; empty: the root bus
    bool boot_vga = false;      // only written for display-class devices, as the kernel does
    std::optional<std::string> reset_method = std::string("flr bus");
    std::string driver_override;  // empty: "(null)"
    std::vector<BarSpec> bars;
};

class HostFixture {
public:
    // A working host: IOMMU on (dmar0), intel_iommu=on, dev/kvm, vfio-pci/pci-stub/pcieport
    // drivers, CPUs 0-7 online with SMT siblings (0,4) (1,5) (2,6) (3,7), empty 2 MiB and 1 GiB
    // hugepage pools, and Debian's default OVMF files.
    HostFixture();
    ~HostFixture();
    HostFixture(const HostFixture&) = delete;
    HostFixture& operator=(const HostFixture&) = delete;

    const std::filesystem::path& root() const { return root_; }
    std::filesystem::path runtime() const { return root_ / "run" / "kvmgpu"; }
    std::filesystem::path path(const std::filesystem::path& rel) const { return root_ / rel; }

    void add_device(const DeviceSpec& spec);
    void add_driver(const std::string& name);
    void remove_driver(const std::string& name);
    // Removes sys/class/iommu/* and every group (what a host without IOMMU looks like).
    void set_iommu(bool on);
    void set_cmdline(const std::string& cmdline);
    void set_hugepages(std::uint64_t page_kb, std::uint64_t total, std::uint64_t free);
    void set_cpus(const std::string& online, const std::map<unsigned, std::string>& siblings);
    void add_framebuffer(unsigned index, const std::string& name,
                         const std::optional<std::string>& pci_address);
    // sys/class/vtconsole/vtconN with its name ("(M) frame buffer device") and bind.
    void add_vtconsole(unsigned index, const std::string& name, bool bound);
    // A platform device bound to a platform driver: sys/bus/platform/drivers/DRIVER/DEVICE
    // (with bind and unbind), as efi-framebuffer.0 is.
    void add_platform_device(const std::string& driver, const std::string& device);
    // sys/module/NAME with refcnt, holders/HOLDER and drivers/pci:DRIVER → the PCI driver.
    void add_module(const std::string& name, unsigned refcnt, const std::vector<std::string>& holders = {},
                    const std::vector<std::string>& pci_drivers = {});
    // A device's class nodes: ADDR/drm/card0, ADDR/graphics/fb0, … and the /dev node for each.
    void add_device_node(const std::string& address, const std::string& class_node, const std::string& dev_node);
    // A cgroup2 hierarchy at sys/fs/cgroup with the cpuset controller enabled, and a top-level
    // cgroup for each name (cpuset.cpus empty, cpuset.cpus.effective every online CPU).
    void add_cgroups(const std::vector<std::string>& names);
    // proc/irq/IRQ with smp_affinity_list `cpus` and a handler directory `handler`
    // ("vfio-intx(0000:01:00.1)"); `address`'s INTx line (its `irq`) or, with msi, an entry of
    // its msi_irqs.
    void add_irq(unsigned irq, const std::string& cpus, const std::string& handler, const std::string& address, bool msi);
    void write(const std::filesystem::path& rel, const std::string& content);
    void remove(const std::filesystem::path& rel);

    // State as the kernel shows it.
    std::string driver_of(const std::string& address) const;    // "" when unbound
    std::string override_of(const std::string& address) const;  // "(null)" when none
    const DeviceSpec& spec(const std::string& address) const;
    std::filesystem::path device_dir(const std::string& address) const;  // under sys/devices

    // Every file, directory and symlink under the root except run/: path → "dir",
    // "link -> TARGET" or "file: CONTENT".
    std::map<std::string, std::string> snapshot() const;

    // Bind/unbind as the kernel does it: the device's `driver` link and the driver's link to the
    // device; the dev/vfio node appears with the first vfio-pci device of a group and goes with
    // the last.
    void link_driver(const std::string& address, const std::string& driver);
    void unlink_driver(const std::string& address);

    bool create_vfio_nodes = true;  // false: udev never makes dev/vfio/N

private:
    std::filesystem::path root_;
    std::map<std::string, DeviceSpec> specs_;
    std::map<std::string, std::filesystem::path> dirs_;
};

// The differences between two snapshots, one line each; empty when they are identical.
std::string snapshot_diff(const std::map<std::string, std::string>& before,
                          const std::map<std::string, std::string>& after);

// A SysfsWriter applying Linux's semantics to a HostFixture:
//   driver_override: a trailing newline is dropped; an empty result clears it to "(null)".
//   DEV/driver/unbind, drivers/D/unbind: ENODEV unless the written device is bound to D.
//   drivers/D/bind: ENODEV for an unknown device or one D does not match (a set override
//     names another driver, or D is not its native driver); EBUSY when it has a driver.
//   sys/class/vtconsole/vtconN/bind: takes "0" or "1" (EINVAL otherwise).
//   sys/bus/platform/drivers/D/unbind, bind: removes / adds D/DEVICE (ENODEV when it is not
//     bound there / is bound already); efi-framebuffer's unbind takes efifb's line out of
//     proc/iomem, and its bind puts the file back as it was.
//   drivers_probe: ENODEV for an unknown device; a bound device stays; otherwise binds the
//     override's driver if set, else the native driver, if that driver is loaded and does not
//     refuse the device (refuse_probe), else leaves it unbound and still succeeds, as Linux.
// Each write is counted; fail_write(n) makes the n-th write (1-based) fail with `error` and no
// effect.
class SimulatedKernel final : public host::SysfsWriter {
public:
    explicit SimulatedKernel(HostFixture& fixture) : fx_(fixture) {}
    int write(const std::filesystem::path& file, std::string_view data) override;
    // A cgroup under sys/fs/cgroup gets cgroup.procs and cpuset files, and is refused removal
    // (EBUSY) while cgroup.procs names a live process; other directories as the file system does.
    int make_dir(const std::filesystem::path& dir) override;
    int remove_dir(const std::filesystem::path& dir) override;

    // Writes number n .. n+count-1 (1-based, counting from this kernel's first write) fail.
    void fail_write(int n, int error = EIO, int count = 1) {
        fail_at_ = n;
        fail_count_ = count;
        fail_errno_ = error;
    }
    int writes() const { return count_; }
    std::set<std::string> refuse_probe;  // drivers whose probe fails on every device
    // A hugepage pool grows to at most this many pages, as a fragmented kernel's would.
    std::uint64_t hugepage_limit = std::uint64_t{1} << 30;
    // Every write: "REL-PATH <- DATA" (newlines shown as \n), failed ones included.
    std::vector<std::string> log;

private:
    int apply(const std::filesystem::path& rel, std::string_view data);
    int resize_hugepage_pool(const std::filesystem::path& rel, const std::string& value);
    // sys/fs/cgroup/**/cpuset.cpus (a CPU list of online CPUs, or empty: the parent's) and
    // cgroup.procs (a pid, appended); proc/irq/N/smp_affinity_list (a non-empty list of
    // online CPUs).
    int write_cgroup(const std::filesystem::path& rel, const std::string& value);
    int write_irq_affinity(const std::filesystem::path& rel, const std::string& value);
    // efifb's request in proc/iomem goes with its unbind and comes back with its bind.
    void drop_iomem_line(const std::string& name);
    void restore_iomem_line(const std::string& name);
    bool matches(const std::string& address, const std::string& driver) const;
    int probe(const std::string& address, const std::string& driver);

    HostFixture& fx_;
    int count_ = 0;
    int fail_at_ = 0;
    int fail_count_ = 0;
    int fail_errno_ = EIO;
};

// A profile passing the given devices, 8 GiB, kvm, OVMF defaults.
profile::Profile make_profile(const std::vector<std::string>& addresses);

// Builds the common topology: an NVIDIA GPU at 0000:01:00.0 (nouveau, boot_vga off; a 16 MiB
// 32-bit BAR 0, 64-bit BARs 1 (256 MiB) and 3 (32 MiB), an I/O BAR 5) and its HDMI audio at
// 0000:01:00.1 (snd_hda_intel), both in `group` behind the root port 0000:00:01.0 (pcieport,
// in the same group: a bridge).
void add_gpu_with_audio(HostFixture& fx, unsigned group = 1);

}  // namespace kvmgpu::test
