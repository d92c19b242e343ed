#include "app/irq_steering.hpp"

#include <unistd.h>

#include "host/cpu_isolation.hpp"
#include "host/journal.hpp"
#include "util/error.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {
namespace {

std::string target_cpus(const std::filesystem::path& root, const profile::Cpu& cpu) {
    if (cpu.irq_affinity == profile::IrqAffinity::vm) return host::format_cpu_list(host::cpus_without(cpu.pin, {}));
    const auto online = host::read_attr(host::under(root, "/sys/devices/system/cpu/online"));
    const auto cpus = online ? host::parse_cpu_list(*online) : std::nullopt;
    return cpus ? host::format_cpu_list(host::cpus_without(*cpus, cpu.pin)) : std::string();
}

}  // namespace

IrqSteering::IrqSteering(std::filesystem::path root, std::filesystem::path journal_dir, std::string vm,
                         std::vector<util::PciAddress> devices, const profile::Cpu& cpu, host::SysfsWriter& writer)
    : root_(std::move(root)), journal_dir_(std::move(journal_dir)), vm_(std::move(vm)), devices_(std::move(devices)),
      target_(target_cpus(root_, cpu)), writer_(writer) {}

std::string IrqSteering::steer() {
    if (target_.empty()) throw util::RuntimeFailure("no CPU is left to steer the devices' interrupts to", "irq-affinity");
    std::vector<std::string> changed, failed;
    for (const auto& device : devices_) {
        for (unsigned irq : host::vfio_irqs(root_, device)) {
            const auto file = host::irq_affinity_file(irq);
            const auto now = host::read_attr(host::under(root_, file));
            if (!now || *now == target_) continue;
            const std::string what = "IRQ " + std::to_string(irq) + " of " + device.str();
            if (journaled_.insert(irq).second) host::record_change(journal_dir_, vm_, ::getpid(), host::SysfsValueChanged{file, *now});
            if (const int error = writer_.write(host::under(root_, file), target_); error != 0)
                failed.push_back(what + ": " + host::errno_text(error));
            else
                changed.push_back(what + " " + *now + " → " + target_);
        }
    }
    // Rounds that write are rare (an interrupt the guest's driver just enabled): no writer's
    // child is kept between them.
    if (!changed.empty() || !failed.empty()) writer_.rest();
    if (!failed.empty())
        throw util::RuntimeFailure("cannot steer " + util::join(failed, "; ") +
                                       (changed.empty() ? "" : " (steered: " + util::join(changed, "; ") + ")"),
                                   "irq-affinity");
    return util::join(changed, "; ");
}

}  // namespace kvmgpu::app
