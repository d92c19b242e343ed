#include "host/journal.hpp"

#include <catch2/catch.hpp>
#include <fstream>

#include "host_fixture.hpp"

namespace fs = std::filesystem;
using namespace kvmgpu;
using namespace kvmgpu::host;

namespace {
util::PciAddress addr(const char* text) { return *util::PciAddress::parse(text); }
}  // namespace

TEST_CASE("a journal written to disk reads back the same and leaves no temporary file", "[host]") {
    test::HostFixture fx;
    Journal j{"win11", 4242,
              {{addr("0000:01:00.0"), std::string("nouveau"), std::nullopt},
               {addr("0000:01:00.1"), std::nullopt, std::string("snd_hda_intel")}}};
    write_journal(fx.runtime(), j);
    CHECK(fs::exists(fx.runtime() / "journal/win11.json"));
    CHECK_FALSE(fs::exists(fx.runtime() / "journal/.win11.json.tmp"));
    const auto back = read_journal(fx.runtime(), "win11");
    REQUIRE(back);
    CHECK(back->vm == "win11");
    CHECK(back->pid == 4242);
    CHECK(back->devices == j.devices);
    CHECK(list_journals(fx.runtime()) == std::vector<std::string>{"win11"});

    const auto json = nlohmann::json::parse(std::ifstream(fx.runtime() / "journal/win11.json"));
    CHECK(json["devices"][0]["driver"] == "nouveau");
    CHECK(json["devices"][1]["driver"].is_null());

    j.devices.clear();
    write_journal(fx.runtime(), j);
    CHECK_FALSE(fs::exists(fx.runtime() / "journal/win11.json"));
    CHECK(read_journal(fx.runtime(), "win11") == std::nullopt);
    CHECK(list_journals(fx.runtime()).empty());
}

TEST_CASE("a damaged journal is an error naming the file, not an empty journal", "[host]") {
    test::HostFixture fx;
    fs::create_directories(fx.runtime() / "journal");
    std::ofstream(fx.runtime() / "journal/vm.json") << "{\"vm\": \"vm\", \"pid\": 1, \"devi";
    try {
        read_journal(fx.runtime(), "vm");
        FAIL("no exception");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("journal/vm.json\" is damaged") != std::string::npos);
    }
}

TEST_CASE("a VM name that is not a plain file name cannot name a journal", "[host]") {
    for (const char* name : {"", ".", "..", "a/b"}) {
        INFO(name);
        CHECK_THROWS_AS(journal_path("/run/kvmgpu", name), std::invalid_argument);
    }
    CHECK(journal_path("/run/kvmgpu", "win11") == "/run/kvmgpu/journal/win11.json");
}
