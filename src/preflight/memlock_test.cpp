// What `check` says about the locked memory VFIO pins in QEMU.
#include <catch2/catch.hpp>

#include "preflight/memlock.hpp"
#include "util/pci_address.hpp"

using namespace kvmgpu;
using namespace kvmgpu::preflight;

namespace {

profile::Profile with_gpu(std::uint64_t memory) {
    profile::Profile p;
    p.machine.memory = memory;
    profile::PciDevice d;
    d.address = *util::PciAddress::parse("0000:01:00.0");
    p.pci.push_back(d);
    return p;
}

constexpr std::uint64_t GiB = std::uint64_t{1} << 30;

}  // namespace

TEST_CASE("VFIO's locked memory is the guest's RAM and Looking Glass's with 1G to spare", "[preflight][memlock]") {
    auto p = with_gpu(16 * GiB);
    CHECK(vfio_locked_bytes(p) == 17 * GiB);
    p.looking_glass.enabled = true;
    p.looking_glass.size_auto = false;
    p.looking_glass.size = std::uint64_t{64} << 20;
    CHECK(vfio_locked_bytes(p) == 17 * GiB + (std::uint64_t{64} << 20));
    p.pci.clear();
    CHECK(vfio_locked_bytes(p) == 0);
    CHECK(memlock_findings(p, false, 0).empty());  // nothing passed, nothing pinned
}

TEST_CASE("a locked-memory limit kvmgpu cannot raise is a warning with the fix", "[preflight][memlock]") {
    const auto p = with_gpu(8 * GiB);
    const auto ok = memlock_findings(p, true, std::nullopt);
    REQUIRE(ok.size() == 1);
    CHECK(ok[0].severity == Severity::ok);
    CHECK_THAT(ok[0].what, Catch::Contains("raised to 9G"));
    const auto low = memlock_findings(p, false, std::uint64_t{8} << 20);
    REQUIRE(low.size() == 1);
    CHECK(low[0].severity == Severity::warning);
    CHECK(low[0].code == "memlock-too-low");
    CHECK_THAT(low[0].what, Catch::Contains("hard limit 8M") && Catch::Contains("below the 9G"));
    CHECK_THAT(low[0].fix, Catch::Contains("hard memlock unlimited"));
}
