#pragma once
// [cpu] irq_affinity: the interrupts vfio requested for the passed devices, steered to the VM's
// pinned CPUs ("vm") or to the others ("host") while the VM runs. vfio requests them late (the
// INTx line when QEMU sets a device up, MSI and MSI-X vectors only once the guest's driver
// enables them), so the supervisor calls steer() as the VM starts and then every second.
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "host/sysfs.hpp"
#include "profile/profile.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::app {

class IrqSteering {
public:
    // `journal_dir` and `vm`: where each change is recorded (host/journal.hpp) before it is made.
    IrqSteering(std::filesystem::path root, std::filesystem::path journal_dir, std::string vm,
                std::vector<util::PciAddress> devices, const profile::Cpu& cpu, host::SysfsWriter& writer);

    // Steers every vfio interrupt of the devices that does not point where the profile says:
    // one seen for the first time is journaled (its smp_affinity_list as it was) and then
    // written; one steered before that has drifted is written again. Returns what it changed
    // ("IRQ 24 (vfio-intx 0000:01:00.1) → 2-3", "" for nothing); throws util::RuntimeFailure
    // naming the IRQ when a write fails (the others are still steered).
    std::string steer();

    // The CPU list the interrupts go to ("2-3"); empty when there is none (every CPU pinned).
    const std::string& target() const { return target_; }

private:
    std::filesystem::path root_;
    std::filesystem::path journal_dir_;
    std::string vm_;
    std::vector<util::PciAddress> devices_;
    std::string target_;
    host::SysfsWriter& writer_;
    std::set<unsigned> journaled_;
};

}  // namespace kvmgpu::app
