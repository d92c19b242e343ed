#pragma once
// What the host shows for [cpu] isolate and irq_affinity: which cgroups hold the host's own
// tasks, where a VM's QEMU goes so that it stays free to use the VM's CPUs, and which
// interrupts vfio requested for a passed device. Reads only; the launch makes the changes
// (app/isolate_step.cpp, app/irq_steering.cpp).
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/pci_address.hpp"

namespace kvmgpu::host {

// Where the cgroup2 hierarchy is mounted, as on the host.
std::filesystem::path cgroup_root();

// Whether systemd manages the host: /run/systemd/system exists (what sd_booted() tests).
bool systemd_running(const std::filesystem::path& root);

struct CgroupFacts {
    bool unified = false;         // cgroup2 at /sys/fs/cgroup (its cgroup.controllers exists)
    bool cpuset_enabled = false;  // "cpuset" in the root's cgroup.subtree_control
    // The top-level cgroups that hold the host's own tasks, by name: with systemd, those of
    // init.scope, system.slice and user.slice that exist; without, every top-level cgroup but
    // the VMs' own (kvmgpu-*).
    std::vector<std::string> host_cgroups;
    // Processes in the root cgroup itself, which no cpuset confines (without systemd, a host's
    // init and whatever it started that no cgroup took).
    std::size_t root_processes = 0;
};
CgroupFacts scan_cgroups(const std::filesystem::path& root, bool systemd);

// The cgroup a VM's QEMU runs in without systemd: "kvmgpu-NAME", at the top of the hierarchy,
// outside every confined one.
std::string vm_cgroup_name(std::string_view vm);
// With systemd: the transient scope "kvmgpu-NAME.scope", in machine.slice, that holds QEMU.
std::string vm_scope_unit(std::string_view vm);
// The argv that asks systemd (over D-Bus, through busctl) to start that scope around `pid`:
// what `systemd-run --scope` does for a process it starts itself. The scope ends with QEMU.
std::vector<std::string> start_scope_argv(std::string_view vm, pid_t pid);
// `systemctl set-property --runtime UNIT AllowedCPUs=CPUS`: gone at the next boot.
std::vector<std::string> allowed_cpus_argv(const std::string& unit, const std::string& cpus);

// The CPUs a host cgroup may use now (cpuset.cpus.effective; every online CPU when the cgroup
// has no cpuset controller); nullopt when neither can be read.
std::optional<std::vector<unsigned>> cgroup_cpus(const std::filesystem::path& root, const std::string& cgroup);

// `cpus` without those in `taken`, sorted.
std::vector<unsigned> cpus_without(const std::vector<unsigned>& cpus, const std::vector<unsigned>& taken);

// The interrupts vfio requested for the device: IRQ N of its msi_irqs or its INTx line whose
// /proc/irq/N holds a handler named "vfio-…(ADDRESS)". Empty until QEMU has set the device
// up, and MSI/MSI-X ones only once the guest's driver enabled them. Sorted.
std::vector<unsigned> vfio_irqs(const std::filesystem::path& root, const util::PciAddress& address);
// "/proc/irq/N/smp_affinity_list"
std::filesystem::path irq_affinity_file(unsigned irq);

}  // namespace kvmgpu::host
