// The launch step `isolate`: QEMU in a cgroup of its own, and the host's own cgroups kept off the
// VM's CPUs while it runs (see isolate_step in launch_steps.hpp).
#include <unistd.h>

#include <cerrno>

#include "app/launch_steps.hpp"
#include "host/cpu_isolation.hpp"
#include "host/journal.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kStep = "isolate";
const std::string kMessage = "keeping the host's tasks off the VM's CPUs";

void record(LaunchRun& run, const host::HostChange& change) {
    try {
        host::record_change(host_state_dir(run.ctx), run.profile.name, ::getpid(), change);
    } catch (const std::exception& e) {
        run.fail(std::string(kStep), kMessage, e.what());
    }
}

// QEMU leaves the cgroup kvmgpu runs in (which is confined next) for one of its own, where its
// threads may use every CPU: their pinning then decides.
std::string place_qemu(LaunchRun& run, bool systemd) {
    const pid_t pid = run.qemu.pid();
    if (systemd) {
        // A transient scope ends by itself once QEMU has exited: nothing to journal.
        if (run.runner->run(host::start_scope_argv(run.profile.name, pid)) != 0)
            run.fail(std::string(kStep), kMessage,
                     "systemd did not put QEMU in a scope of its own (busctl StartTransientUnit " +
                         host::vm_scope_unit(run.profile.name) + " failed; see " + run.dir.layout().release_log().string() + ")");
        return "QEMU in machine.slice/" + host::vm_scope_unit(run.profile.name);
    }
    const fs::path on_host = host::cgroup_root() / host::vm_cgroup_name(run.profile.name);
    const fs::path dir = host::under(run.ctx.host_root, on_host);
    record(run, host::CgroupCreated{on_host});
    // One left by a launcher killed before its restore is used again.
    if (const int error = run.writer.make_dir(dir); error != 0 && error != EEXIST)
        run.fail(std::string(kStep), kMessage, "cannot create the cgroup " + dir.string() + ": " + host::errno_text(error));
    if (const int error = run.writer.write(dir / "cgroup.procs", std::to_string(pid)); error != 0)
        run.fail(std::string(kStep), kMessage,
                 "cannot move QEMU (pid " + std::to_string(pid) + ") to " + dir.string() + ": " + host::errno_text(error));
    return "QEMU in " + on_host.string();
}

// The cgroup's CPUs become those it may use now without the VM's: a second isolated VM takes
// its CPUs from what the first left.
std::string confine(LaunchRun& run, bool systemd, const std::string& cgroup) {
    const auto& root = run.ctx.host_root;
    const auto allowed = host::cgroup_cpus(root, cgroup);
    if (!allowed) run.fail(std::string(kStep), kMessage, "cannot read the CPUs " + cgroup + " may use");
    const auto left = host::cpus_without(*allowed, run.profile.cpu.pin);
    if (left.empty())
        run.fail(std::string(kStep), kMessage,
                 cgroup + " may use only CPUs " + host::format_cpu_list(*allowed) +
                     ", all of them the VM's: leave the host at least one CPU out of [cpu] pin");
    const std::string cpus = host::format_cpu_list(left);
    const fs::path file = host::cgroup_root() / cgroup / "cpuset.cpus";
    const std::string old = host::read_attr(host::under(root, file)).value_or("");
    if (systemd) {
        record(run, host::UnitCpusSet{cgroup, old});
        if (run.runner->run(host::allowed_cpus_argv(cgroup, cpus)) != 0)
            run.fail(std::string(kStep), kMessage,
                     "systemctl set-property --runtime " + cgroup + " AllowedCPUs=" + cpus + " failed; see " +
                         run.dir.layout().release_log().string());
    } else {
        record(run, host::CgroupCpusSet{host::cgroup_root() / cgroup, old});
        if (const int error = run.writer.write(host::under(root, file), cpus); error != 0)
            run.fail(std::string(kStep), kMessage,
                     "writing " + cpus + " to " + file.string() + " failed: " + host::errno_text(error));
    }
    return cgroup + " → " + cpus;
}

}  // namespace

void isolate_step(LaunchRun& run) {
    if (!run.profile.cpu.isolate) return;
    const bool systemd = host::systemd_running(run.ctx.host_root);
    const auto facts = host::scan_cgroups(run.ctx.host_root, systemd);
    if (!facts.unified)
        run.fail(std::string(kStep), kMessage, "there is no cgroup2 hierarchy at /sys/fs/cgroup to confine the host's tasks with");
    register_journal_undo(run);
    std::vector<std::string> done{place_qemu(run, systemd)};
    for (const auto& cgroup : facts.host_cgroups) done.push_back(confine(run, systemd, cgroup));
    std::string detail = util::join(done, "; ");
    if (!systemd && facts.root_processes)
        detail += "; the " + std::to_string(facts.root_processes) + " processes of the root cgroup stay on every CPU";
    run.step(std::string(kStep), kMessage, detail);
}

}  // namespace kvmgpu::app
