#include "util/pci_id.hpp"

#include <catch2/catch.hpp>

using kvmgpu::util::PciId;

TEST_CASE("a PCI identity is four hex digits a side and prints in lower case", "[util]") {
    struct Row {
        const char* text;
        std::optional<PciId> parsed;
    };
    const Row rows[] = {
        {"10de:2684", PciId{0x10de, 0x2684}},
        {"10DE:22BA", PciId{0x10de, 0x22ba}},
        {"1002:744c", PciId{0x1002, 0x744c}},
        {"0000:0000", PciId{0, 0}},
        {"10de2684", std::nullopt},
        {"10de:268", std::nullopt},
        {"10de:26845", std::nullopt},
        {"0x10de:2684", std::nullopt},
        {"10de-2684", std::nullopt},
        {"10dg:2684", std::nullopt},
        {" 10de:2684", std::nullopt},
        {"", std::nullopt},
    };
    for (const Row& row : rows) {
        INFO(row.text);
        CHECK(PciId::parse(row.text) == row.parsed);
        if (row.parsed) CHECK(row.parsed->str() == PciId::parse(row.text)->str());
    }
    CHECK(PciId{0x10de, 0x22ba}.str() == "10de:22ba");
}
