#include "preflight/isolation.hpp"

#include "host/cpu_isolation.hpp"
#include "host/sysfs.hpp"
#include "util/text.hpp"

namespace kvmgpu::preflight {
namespace {

std::vector<Finding> isolate_findings(const profile::Profile& p, const std::filesystem::path& root,
                                      const std::vector<unsigned>& host_cpus) {
    const bool systemd = host::systemd_running(root);
    const auto facts = host::scan_cgroups(root, systemd);
    if (!facts.unified)
        return {host_finding(Severity::error, "isolate-no-cgroup2",
                             "cpu.isolate needs the cgroup2 hierarchy at /sys/fs/cgroup, and there is none.",
                             "Its cpusets are what keeps the host's tasks off the VM's CPUs.",
                             "Boot with systemd.unified_cgroup_hierarchy=1 (the default since Debian 11), or mount "
                             "cgroup2 there; else remove isolate.")};
    if (!systemd && !facts.cpuset_enabled)
        return {host_finding(Severity::error, "isolate-no-cpuset",
                             "cpu.isolate needs the cpuset controller, which /sys/fs/cgroup/cgroup.subtree_control does "
                             "not enable.",
                             "", "Enable it: echo +cpuset > /sys/fs/cgroup/cgroup.subtree_control")};
    const std::string cpus = host::format_cpu_list(host_cpus);
    const std::string how = systemd ? "systemctl set-property --runtime UNIT AllowedCPUs=" + cpus
                                    : "their cpuset.cpus set to " + cpus;
    std::vector<Finding> findings;
    if (facts.host_cgroups.empty())
        findings.push_back(host_finding(Severity::warning, "isolate-nothing",
                                        "cpu.isolate finds no cgroup of the host's tasks to confine under /sys/fs/cgroup.",
                                        "Every host process stays free to run on the VM's CPUs.",
                                        "Put the host's services in cgroups (systemd does), or pin them yourself."));
    else
        findings.push_back(host_finding(Severity::ok, "isolate",
                                        "While the VM runs, " + util::join(facts.host_cgroups, ", ") + " keep to CPUs " +
                                            cpus + " (" + how + "), and QEMU runs in " +
                                            (systemd ? "machine.slice/" + host::vm_scope_unit(p.name)
                                                     : "/sys/fs/cgroup/" + host::vm_cgroup_name(p.name)) +
                                            "; given back when it ends."));
    if (!systemd && facts.root_processes)
        findings.push_back(host_finding(Severity::warning, "isolate-root-processes",
                                        std::to_string(facts.root_processes) +
                                            " processes are in the root cgroup, which no cpuset confines.",
                                        "They stay free to run on the VM's CPUs.",
                                        "Move them to a cgroup under /sys/fs/cgroup, or isolate the CPUs at boot "
                                        "(isolcpus=, nohz_full=)."));
    return findings;
}

}  // namespace

std::vector<Finding> isolation_findings(const profile::Profile& p, const std::filesystem::path& root,
                                        const std::vector<unsigned>& online) {
    const auto& cpu = p.cpu;
    const bool irq_host = cpu.irq_affinity == profile::IrqAffinity::host;
    if (cpu.pin.empty() || (!cpu.isolate && !irq_host)) return {};
    const auto host_cpus = host::cpus_without(online, cpu.pin);
    if (host_cpus.empty())
        return {host_finding(Severity::error, "isolate-no-host-cpus",
                             std::string(cpu.isolate ? "cpu.isolate" : "cpu.irq_affinity = \"host\"") +
                                 " leaves the host no CPU: cpu.pin takes every online CPU (" +
                                 host::format_cpu_list(online) + ").",
                             "", "Leave at least one CPU out of cpu.pin for the host.")};
    return cpu.isolate ? isolate_findings(p, root, host_cpus) : std::vector<Finding>{};
}

}  // namespace kvmgpu::preflight
