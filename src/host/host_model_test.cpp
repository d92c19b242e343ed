#include "host/host_model.hpp"

#include <nlohmann/json.hpp>
#include <catch2/catch.hpp>

#include "host_fixture.hpp"

using namespace kvmgpu;
using namespace kvmgpu::host;
using kvmgpu::test::HostFixture;
using util::PciAddress;

namespace {
PciAddress addr(const char* text) { return *PciAddress::parse(text); }
}  // namespace

TEST_CASE("a resource file gives sizes and flags of the assigned BARs", "[host]") {
    // A line from a real virtio device, then unassigned lines, then an I/O BAR on line 4.
    const auto bars = parse_resource(
        "0x0000004000080000 0x00000040000fffff 0x0000000000140204\n"
        "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
        "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
        "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
        "0x000000000000e000 0x000000000000e07f 0x0000000000040101\n");
    REQUIRE(bars.size() == 2);
    CHECK(bars[0].index == 0);
    CHECK(bars[0].size == 0x80000);
    CHECK(bars[0].mem());
    CHECK(bars[0].mem64());
    CHECK_FALSE(bars[0].prefetch());
    CHECK(bars[1].index == 4);
    CHECK(bars[1].size == 128);
    CHECK(bars[1].io());
}

TEST_CASE("scanning a host root reads devices, drivers, groups and BARs", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    const HostModel host = scan_host(fx.root());

    REQUIRE(host.devices.size() == 3);
    const PciDeviceInfo* gpu = host.find(addr("0000:01:00.0"));
    REQUIRE(gpu);
    CHECK(gpu->vendor == 0x10de);
    CHECK(gpu->device == 0x2484);
    CHECK(gpu->subsystem_vendor == 0x10de);
    CHECK(gpu->subsystem_device == 0x1234);
    CHECK(gpu->class_code == 0x030000);
    CHECK(gpu->is_display());
    CHECK(gpu->driver == "nouveau");
    CHECK(gpu->driver_override == std::nullopt);
    CHECK(gpu->iommu_group == 1u);
    CHECK_FALSE(gpu->boot_vga);
    CHECK(gpu->reset_method == "flr bus");
    CHECK(gpu->numa_node == -1);
    REQUIRE(gpu->bars.size() == 4);
    CHECK(gpu->mem64_bytes() == (256u << 20) + (32u << 20));

    const PciDeviceInfo* port = host.find(addr("0000:00:01.0"));
    REQUIRE(port);
    CHECK(port->is_bridge());
    CHECK(port->reset_method == std::nullopt);

    REQUIRE(host.groups.size() == 1);
    CHECK(host.groups[0].id == 1);
    CHECK(host.groups[0].devices ==
          std::vector<PciAddress>{addr("0000:00:01.0"), addr("0000:01:00.0"), addr("0000:01:00.1")});
}

TEST_CASE("scanning a host root reads IOMMU, KVM, vfio, hugepages and CPUs", "[host]") {
    HostFixture fx;
    fx.set_cmdline("root=/dev/sda1 intel_iommu=on iommu=pt -- init-arg iommu=off");
    fx.set_hugepages(2048, 4096, 4000);
    const HostModel host = scan_host(fx.root());

    CHECK(host.iommu_present());
    CHECK(host.iommu_units == std::vector<std::string>{"dmar0"});
    CHECK(host.iommu_cmdline == std::vector<std::string>{"intel_iommu=on", "iommu=pt"});
    CHECK(host.kvm_exists);
    CHECK(host.kvm_usable);
    CHECK(host.vfio_pci_driver);
    const HugepagePool* pool = host.hugepage_pool(2 << 20);
    REQUIRE(pool);
    CHECK(pool->total == 4096);
    CHECK(pool->free == 4000);
    REQUIRE(host.hugepage_pool(1 << 30));
    CHECK(host.hugepage_pool(1 << 30)->free == 0);
    CHECK(std::count_if(host.hugepages.begin(), host.hugepages.end(),
                        [](const HugepagePool& p) { return p.node == 0u; }) == 1);
    CHECK(host.online_cpus == std::vector<unsigned>{0, 1, 2, 3, 4, 5, 6, 7});
    CHECK(host.thread_siblings.at(5) == std::vector<unsigned>{1, 5});
}

TEST_CASE("framebuffers name the PCI device they hold when sysfs links one", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    fx.add_framebuffer(0, "EFI VGA", std::nullopt);
    fx.add_framebuffer(1, "nouveaudrmfb", "0000:01:00.0");
    const HostModel host = scan_host(fx.root());
    REQUIRE(host.framebuffers.size() == 2);
    CHECK(host.framebuffers[0].driver == "EFI VGA");
    CHECK(host.framebuffers[0].device == std::nullopt);
    CHECK(host.framebuffers[1].device == addr("0000:01:00.0"));
}

TEST_CASE("a bare root gives an empty model, not an error", "[host]") {
    HostFixture fx;
    fx.remove("sys");
    fx.remove("dev");
    fx.remove("proc");
    const HostModel host = scan_host(fx.root());
    CHECK(host.devices.empty());
    CHECK_FALSE(host.iommu_present());
    CHECK_FALSE(host.kvm_exists);
    CHECK_FALSE(host.vfio_pci_driver);
    CHECK(host.online_cpus.empty());
}

TEST_CASE("the host model renders to JSON with addresses and hex ids", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    const nlohmann::json j = scan_host(fx.root());
    CHECK(j["devices"][1]["address"] == "0000:01:00.0");
    CHECK(j["devices"][1]["vendor"] == "10de");
    CHECK(j["devices"][1]["class"] == "030000");
    CHECK(j["devices"][1]["driver"] == "nouveau");
    CHECK(j["devices"][1]["driver_override"].is_null());
    CHECK(j["devices"][1]["iommu_group"] == 1);
    CHECK(j["iommu_groups"][0]["devices"].size() == 3);
    CHECK(j["kvm"]["usable"] == true);
}

TEST_CASE("a scan without PCI reads no device or group but the rest of the host", "[host]") {
    HostFixture fx;
    kvmgpu::test::add_gpu_with_audio(fx);
    const auto full = scan_host(fx.root());
    const auto lean = scan_host(fx.root(), {.names = false, .pci = false, .only = std::nullopt, .hugepages = true});
    CHECK(full.devices.size() == 3);
    CHECK_FALSE(full.groups.empty());
    CHECK(lean.devices.empty());
    CHECK(lean.groups.empty());
    CHECK(lean.iommu_units == full.iommu_units);
    CHECK(lean.kvm_exists == full.kvm_exists);
    CHECK(lean.online_cpus == full.online_cpus);
}

TEST_CASE("scanning reads MemTotal and whether the vendor-reset module is loaded", "[host]") {
    HostFixture fx;
    SECTION("neither file: zero memory and no module") {
        fx.remove("proc/meminfo");
        const HostModel host = scan_host(fx.root());
        CHECK(host.mem_total == 0);
        CHECK_FALSE(host.vendor_reset_loaded);
    }
    SECTION("both present") {
        fx.write("proc/meminfo", "MemTotal:       32795164 kB\nMemFree:         1234 kB\n");
        fx.write("sys/module/vendor_reset/refcnt", "0\n");
        const HostModel host = scan_host(fx.root());
        CHECK(host.mem_total == 32795164ull * 1024);
        CHECK(host.vendor_reset_loaded);
    }
}

TEST_CASE("a scan of some devices reads them, their groups and the groups' other members only", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx, 1);  // the port 00:01.0, the GPU 01:00.0 and its audio 01:00.1
    test::DeviceSpec nic;
    nic.address = "0000:03:00.0";
    nic.vendor = 0x8086;
    nic.device = 0x1533;
    nic.class_code = 0x020000;
    nic.driver = "igb";
    nic.group = 7;
    fx.add_device(nic);

    const HostModel whole = scan_host(fx.root(), {.names = false, .pci = true, .only = std::nullopt, .hugepages = true});
    const HostModel some = scan_host(fx.root(), {.names = false, .pci = true,
                                                 .only = std::vector{addr("0000:01:00.0"), addr("0000:09:00.0")},
                                                 .hugepages = true});
    REQUIRE(whole.devices.size() == 4);
    REQUIRE(whole.groups.size() == 2);
    // The GPU's group brings the port and the audio function along; the NIC's group is not read,
    // and an address the host does not have is left out, as in a whole scan.
    REQUIRE(some.devices.size() == 3);
    CHECK(some.find(addr("0000:00:01.0")));
    CHECK(some.find(addr("0000:01:00.1")));
    CHECK_FALSE(some.find(addr("0000:03:00.0")));
    CHECK_FALSE(some.find(addr("0000:09:00.0")));
    REQUIRE(some.groups.size() == 1);
    CHECK(some.groups[0].id == 1);
    CHECK(some.groups[0].devices == whole.group(1)->devices);
    // What was read is what a whole scan reads.
    for (const auto& d : some.devices) CHECK(nlohmann::json(d) == nlohmann::json(*whole.find(d.address)));
    CHECK(some.mem_total == whole.mem_total);
    CHECK(some.hugepages.size() == whole.hugepages.size());
    REQUIRE_FALSE(whole.hugepages.empty());
    const HostModel lean = scan_host(fx.root(), {.names = false, .pci = true, .only = std::nullopt, .hugepages = false});
    CHECK(lean.hugepages.empty());
    CHECK(lean.devices.size() == whole.devices.size());
}
