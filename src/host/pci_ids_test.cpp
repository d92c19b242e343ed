#include "host/pci_ids.hpp"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <fstream>

namespace fs = std::filesystem;
using kvmgpu::host::PciIds;

TEST_CASE("pci.ids names vendors and devices, skipping subsystem lines", "[host]") {
    std::string pattern = (fs::temp_directory_path() / "kvmgpu-ids-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()));
    const fs::path dir = pattern;
    std::ofstream(dir / "pci.ids") << "# comment\n"
                                      "10de  NVIDIA Corporation\n"
                                      "\t1c82  GP107 [GeForce GTX 1050 Ti]\n"
                                      "\t\t1043 8613  PH-GTX1050TI-4G\n"
                                      "\t2484  GA104 [GeForce RTX 3070]\n"
                                      "8086  Intel Corporation\n"
                                      "\t100e  82540EM Gigabit Ethernet Controller\n"
                                      "C 03  Display controller\n"
                                      "\t00  VGA compatible controller\n";
    PciIds ids(dir / "pci.ids");
    CHECK(ids.vendor(0x10de) == "NVIDIA Corporation");
    CHECK(ids.device(0x10de, 0x2484) == "GA104 [GeForce RTX 3070]");
    CHECK(ids.device(0x8086, 0x100e) == "82540EM Gigabit Ethernet Controller");
    CHECK(ids.device(0x10de, 0x1043) == std::nullopt);  // a subsystem id, not a device
    CHECK(ids.device(0x10de, 0x100e) == std::nullopt);  // another vendor's device
    CHECK(ids.vendor(0x1234) == std::nullopt);
    fs::remove_all(dir);
}

TEST_CASE("a missing pci.ids gives no names", "[host]") {
    PciIds ids("/nonexistent/pci.ids");
    CHECK(ids.vendor(0x10de) == std::nullopt);
    CHECK(ids.device(0x10de, 0x2484) == std::nullopt);
}

TEST_CASE("the installed pci.ids, when present, knows NVIDIA's GA104", "[host]") {
    if (!fs::exists("/usr/share/misc/pci.ids")) return;
    PciIds ids = PciIds::for_root("/");
    CHECK(ids.vendor(0x10de) == "NVIDIA Corporation");
    CHECK(ids.device(0x10de, 0x2484).value_or("").find("GA104") != std::string::npos);
}
