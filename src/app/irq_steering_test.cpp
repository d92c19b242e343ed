// [cpu] irq_affinity on a simulated kernel: the devices' vfio interrupts steered, journaled first,
// and given back by a restore.
#include <catch2/catch.hpp>

#include "app/host_ops.hpp"
#include "app/irq_steering.hpp"
#include "host/binder.hpp"
#include "host/journal.hpp"
#include "host_fixture.hpp"

using namespace kvmgpu;
namespace fs = std::filesystem;

namespace {

profile::Cpu pinned(profile::IrqAffinity where) {
    profile::Cpu cpu;
    cpu.pin = {3, 2};
    cpu.irq_affinity = where;
    return cpu;
}

std::string affinity(const test::HostFixture& fx, unsigned irq) {
    return host::read_attr(fx.path("proc/irq/" + std::to_string(irq) + "/smp_affinity_list")).value_or("missing");
}

}  // namespace

TEST_CASE("the devices' vfio interrupts go to the VM's CPUs or the host's and come back after", "[app][irq]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    test::SimulatedKernel kernel(fx);
    const auto journal = fx.runtime() / ".host";
    const std::vector devices{*util::PciAddress::parse("0000:01:00.0"), *util::PciAddress::parse("0000:01:00.1")};
    fx.add_irq(16, "0-7", "vfio-intx(0000:01:00.1)", "0000:01:00.1", false);
    fx.add_irq(40, "0-7", "ahci[0000:00:1f.2]", "0000:01:00.0", false);  // not vfio's: left alone

    const bool to_vm = GENERATE(true, false);
    const std::string target = to_vm ? "2-3" : "0-1,4-7";
    app::IrqSteering steering(fx.root(), journal, "vm", devices,
                              pinned(to_vm ? profile::IrqAffinity::vm : profile::IrqAffinity::host), kernel);
    CHECK(steering.target() == target);
    CHECK(steering.steer() == "IRQ 16 of 0000:01:00.1 0-7 → " + target);
    CHECK(affinity(fx, 16) == target);
    CHECK(affinity(fx, 40) == "0-7");
    CHECK(steering.steer().empty());  // nothing new

    // The guest's driver enables MSI-X: two vectors appear, and are steered on the next look.
    fx.add_irq(130, "0-7", "vfio-msix[0](0000:01:00.0)", "0000:01:00.0", true);
    fx.add_irq(131, "0-7", "vfio-msix[1](0000:01:00.0)", "0000:01:00.0", true);
    CHECK(steering.steer() == "IRQ 130 of 0000:01:00.0 0-7 → " + target + "; IRQ 131 of 0000:01:00.0 0-7 → " + target);
    // Something else moves one back: it is steered again, and journaled once only.
    fx.write("proc/irq/130/smp_affinity_list", "0-7\n");
    CHECK_FALSE(steering.steer().empty());
    CHECK(affinity(fx, 130) == target);
    const auto journaled = host::read_changes(journal, "vm");
    REQUIRE(journaled);
    CHECK(journaled->changes.size() == 3);

    const auto restored = host::restore_changes(fx.root(), journal, "vm", kernel, nullptr);
    CHECK(restored.ok());
    for (unsigned irq : {16u, 130u, 131u}) CHECK(affinity(fx, irq) == "0-7");
    CHECK_FALSE(host::read_changes(journal, "vm"));
}

TEST_CASE("an interrupt the kernel will not move is reported and the others are still steered", "[app][irq]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    test::SimulatedKernel kernel(fx);
    const std::vector devices{*util::PciAddress::parse("0000:01:00.0")};
    fx.add_irq(130, "0-7", "vfio-msix[0](0000:01:00.0)", "0000:01:00.0", true);
    fx.add_irq(131, "0-7", "vfio-msix[1](0000:01:00.0)", "0000:01:00.0", true);
    kernel.fail_write(1, EIO);
    app::IrqSteering steering(fx.root(), fx.runtime() / ".host", "vm", devices, pinned(profile::IrqAffinity::host), kernel);
    try {
        steering.steer();
        FAIL("no error");
    } catch (const std::exception& e) {
        CHECK_THAT(e.what(), Catch::Contains("cannot steer IRQ 130 of 0000:01:00.0: Input/output error") &&
                                 Catch::Contains("steered: IRQ 131"));
    }
    CHECK(affinity(fx, 131) == "0-1,4-7");
}

TEST_CASE("with every online CPU pinned there is nowhere to steer the host's share", "[app][irq]") {
    test::HostFixture fx;
    test::SimulatedKernel kernel(fx);
    profile::Cpu cpu = pinned(profile::IrqAffinity::host);
    cpu.pin = {0, 1, 2, 3, 4, 5, 6, 7};
    app::IrqSteering steering(fx.root(), fx.runtime() / ".host", "vm", {}, cpu, kernel);
    CHECK_THROWS_WITH(steering.steer(), Catch::Contains("no CPU is left"));
}
