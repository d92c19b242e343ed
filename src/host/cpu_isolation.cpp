#include "host/cpu_isolation.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "host/sysfs.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {
namespace {

namespace fs = std::filesystem;

bool lists_word(const std::optional<std::string>& text, const std::string& word) {
    if (!text) return false;
    std::istringstream words(*text);
    for (std::string w; words >> w;)
        if (w == word) return true;
    return false;
}

std::size_t count_lines(const fs::path& file) {
    std::ifstream in(file);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) ++n;
    return n;
}

bool is_vm_cgroup(const std::string& name) { return name.rfind("kvmgpu-", 0) == 0; }

}  // namespace

fs::path cgroup_root() { return "/sys/fs/cgroup"; }

bool systemd_running(const fs::path& root) {
    std::error_code ec;
    return fs::is_directory(under(root, "/run/systemd/system"), ec);
}

CgroupFacts scan_cgroups(const fs::path& root, bool systemd) {
    CgroupFacts facts;
    const fs::path top = under(root, cgroup_root());
    std::error_code ec;
    facts.unified = fs::exists(top / "cgroup.controllers", ec);
    if (!facts.unified) return facts;
    facts.cpuset_enabled = lists_word(read_attr(top / "cgroup.subtree_control"), "cpuset");
    facts.root_processes = count_lines(top / "cgroup.procs");
    if (systemd) {
        for (const char* unit : {"init.scope", "system.slice", "user.slice"})
            if (fs::is_directory(top / unit, ec)) facts.host_cgroups.emplace_back(unit);
        return facts;
    }
    for (const auto& name : entry_names(top))
        if (!is_vm_cgroup(name) && fs::is_directory(top / name, ec) && !fs::is_symlink(top / name, ec))
            facts.host_cgroups.push_back(name);
    return facts;
}

std::string vm_cgroup_name(std::string_view vm) { return "kvmgpu-" + std::string(vm); }

std::string vm_scope_unit(std::string_view vm) { return vm_cgroup_name(vm) + ".scope"; }

std::vector<std::string> start_scope_argv(std::string_view vm, pid_t pid) {
    // StartTransientUnit(name, mode, properties a(sv), aux a(sa(sv))): PIDs = [pid], Slice =
    // machine.slice, where VMs live on a systemd host (libvirt's and machined's too).
    return {"busctl",        "call",         "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",   "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",          "ssa(sv)a(sa(sv))",
            vm_scope_unit(vm),             "fail",
            "2",             "PIDs",         "au",
            "1",             std::to_string(pid),
            "Slice",         "s",            "machine.slice",
            "0"};
}

std::vector<std::string> allowed_cpus_argv(const std::string& unit, const std::string& cpus) {
    return {"systemctl", "set-property", "--runtime", unit, "AllowedCPUs=" + cpus};
}

std::optional<std::vector<unsigned>> cgroup_cpus(const fs::path& root, const std::string& cgroup) {
    if (auto text = read_attr(under(root, cgroup_root() / cgroup / "cpuset.cpus.effective")))
        if (auto cpus = parse_cpu_list(*text); cpus && !cpus->empty()) return cpus;
    if (auto text = read_attr(under(root, "/sys/devices/system/cpu/online"))) return parse_cpu_list(*text);
    return std::nullopt;
}

std::vector<unsigned> cpus_without(const std::vector<unsigned>& cpus, const std::vector<unsigned>& taken) {
    const std::set<unsigned> out(taken.begin(), taken.end());
    std::set<unsigned> left;
    for (unsigned c : cpus)
        if (!out.count(c)) left.insert(c);
    return {left.begin(), left.end()};
}

std::vector<unsigned> vfio_irqs(const fs::path& root, const util::PciAddress& address) {
    const fs::path device = under(root, "/sys/bus/pci/devices") / address.str();
    std::set<unsigned> candidates;
    for (const auto& name : entry_names(device / "msi_irqs"))
        if (auto irq = parse_dec(name)) candidates.insert(*irq);
    if (auto line = read_attr(device / "irq"))
        if (auto irq = parse_dec(*line); irq && *irq != 0) candidates.insert(*irq);
    const std::string handler_tail = "(" + address.str() + ")";
    std::vector<unsigned> irqs;
    for (unsigned irq : candidates) {
        for (const auto& handler : entry_names(under(root, "/proc/irq") / std::to_string(irq))) {
            const bool vfio = handler.rfind("vfio", 0) == 0 && handler.size() > handler_tail.size() &&
                              handler.compare(handler.size() - handler_tail.size(), handler_tail.size(), handler_tail) == 0;
            if (vfio) {
                irqs.push_back(irq);
                break;
            }
        }
    }
    return irqs;
}

fs::path irq_affinity_file(unsigned irq) { return fs::path("/proc/irq") / std::to_string(irq) / "smp_affinity_list"; }

}  // namespace kvmgpu::host
