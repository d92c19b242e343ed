// What [cpu] isolate and irq_affinity read of a host, on temporary host roots.
#include <catch2/catch.hpp>

#include "host/cpu_isolation.hpp"
#include "host_fixture.hpp"

using namespace kvmgpu;
using host::CgroupFacts;

TEST_CASE("without systemd every top-level cgroup but the VMs' own holds host tasks", "[host][isolate]") {
    test::HostFixture fx;
    fx.add_cgroups({"openrc.sshd", "system.slice", "kvmgpu-other"});
    const CgroupFacts facts = host::scan_cgroups(fx.root(), false);
    CHECK(facts.unified);
    CHECK(facts.cpuset_enabled);
    CHECK(facts.host_cgroups == std::vector<std::string>{"openrc.sshd", "system.slice"});
    CHECK(facts.root_processes == 1);
    CHECK_FALSE(host::systemd_running(fx.root()));
}

TEST_CASE("with systemd only its three top-level units are the host's", "[host][isolate]") {
    test::HostFixture fx;
    fx.add_cgroups({"init.scope", "system.slice", "user.slice", "machine.slice", "dev-hugepages.mount"});
    fx.write("run/systemd/system/.keep", "");
    REQUIRE(host::systemd_running(fx.root()));
    const CgroupFacts facts = host::scan_cgroups(fx.root(), true);
    CHECK(facts.host_cgroups == std::vector<std::string>{"init.scope", "system.slice", "user.slice"});
}

TEST_CASE("a host without cgroup2 or without the cpuset controller says so", "[host][isolate]") {
    test::HostFixture fx;
    CHECK_FALSE(host::scan_cgroups(fx.root(), false).unified);
    fx.add_cgroups({"system.slice"});
    fx.write("sys/fs/cgroup/cgroup.subtree_control", "cpu memory\n");
    const CgroupFacts facts = host::scan_cgroups(fx.root(), false);
    CHECK(facts.unified);
    CHECK_FALSE(facts.cpuset_enabled);
}

TEST_CASE("a cgroup's CPUs are its effective cpuset, else every online CPU", "[host][isolate]") {
    test::HostFixture fx;
    fx.add_cgroups({"system.slice"});
    CHECK(host::cgroup_cpus(fx.root(), "system.slice") == std::vector<unsigned>{0, 1, 2, 3, 4, 5, 6, 7});
    fx.write("sys/fs/cgroup/system.slice/cpuset.cpus.effective", "0-1,4-5\n");
    CHECK(host::cgroup_cpus(fx.root(), "system.slice") == std::vector<unsigned>{0, 1, 4, 5});
    CHECK(host::cgroup_cpus(fx.root(), "no-cpuset.slice") == std::vector<unsigned>{0, 1, 2, 3, 4, 5, 6, 7});
    CHECK(host::cpus_without({0, 1, 4, 5}, {5, 1, 9}) == std::vector<unsigned>{0, 4});
}

TEST_CASE("a device's vfio interrupts are those whose handler names it, INTx and MSI alike", "[host][irq]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto gpu = *util::PciAddress::parse("0000:01:00.0");
    const auto audio = *util::PciAddress::parse("0000:01:00.1");
    CHECK(host::vfio_irqs(fx.root(), gpu).empty());
    fx.add_irq(16, "0-7", "vfio-intx(0000:01:00.1)", "0000:01:00.1", false);
    fx.add_irq(130, "0-7", "vfio-msix[0](0000:01:00.0)", "0000:01:00.0", true);
    fx.add_irq(131, "0-7", "vfio-msix[1](0000:01:00.0)", "0000:01:00.0", true);
    // An MSI vector the host's own driver still holds, and a shared line of another device.
    fx.add_irq(132, "0-7", "nvidia", "0000:01:00.0", true);
    fx.write("proc/irq/16/ahci[0000:00:1f.2]/.keep", "");
    CHECK(host::vfio_irqs(fx.root(), gpu) == std::vector<unsigned>{130, 131});
    CHECK(host::vfio_irqs(fx.root(), audio) == std::vector<unsigned>{16});
    CHECK(host::irq_affinity_file(16) == "/proc/irq/16/smp_affinity_list");
}

TEST_CASE("systemd is asked for a scope around QEMU and for a unit's CPUs through argv", "[host][isolate]") {
    CHECK(host::start_scope_argv("win11", 4242) ==
          std::vector<std::string>{"busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                   "org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))",
                                   "kvmgpu-win11.scope", "fail", "2", "PIDs", "au", "1", "4242", "Slice", "s",
                                   "machine.slice", "0"});
    CHECK(host::allowed_cpus_argv("user.slice", "0,8") ==
          std::vector<std::string>{"systemctl", "set-property", "--runtime", "user.slice", "AllowedCPUs=0,8"});
}
