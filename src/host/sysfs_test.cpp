#include "host/sysfs.hpp"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using namespace kvmgpu::host;

TEST_CASE("CPU lists in the kernel's format parse to sorted CPU numbers", "[host]") {
    struct Row {
        const char* text;
        std::optional<std::vector<unsigned>> cpus;
    };
    const Row rows[] = {
        {"0-3,8", std::vector<unsigned>{0, 1, 2, 3, 8}},
        {"0", std::vector<unsigned>{0}},
        {"0,4\n", std::vector<unsigned>{0, 4}},
        {"10-11,2", std::vector<unsigned>{2, 10, 11}},
        {"", std::vector<unsigned>{}},
        {"3-1", std::nullopt},
        {"0,", std::nullopt},
        {"a", std::nullopt},
        {"1--2", std::nullopt},
    };
    for (const Row& row : rows) {
        INFO(row.text);
        CHECK(parse_cpu_list(row.text) == row.cpus);
    }
}

TEST_CASE("CPU lists format back to ranges", "[host]") {
    CHECK(format_cpu_list({0, 1, 2, 3, 8}) == "0-3,8");
    CHECK(format_cpu_list({1, 5}) == "1,5");
    CHECK(format_cpu_list({}) == "");
}

TEST_CASE("hex attributes parse with and without the 0x prefix", "[host]") {
    CHECK(parse_hex("0x10de") == 0x10de);
    CHECK(parse_hex("030000") == 0x030000);
    CHECK(parse_hex("0x") == std::nullopt);
    CHECK(parse_hex("zz") == std::nullopt);
}

TEST_CASE("paths are built under the root, absolute or not", "[host]") {
    CHECK(under("/tmp/x", "/sys/bus/pci") == fs::path("/tmp/x/sys/bus/pci"));
    CHECK(under("/tmp/x", "proc/cmdline") == fs::path("/tmp/x/proc/cmdline"));
    CHECK(under("/", "/sys") == fs::path("/sys"));
}

TEST_CASE("the real sysfs writer writes an existing file and never creates one", "[host]") {
    std::string pattern = (fs::temp_directory_path() / "kvmgpu-writer-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()));
    const fs::path dir = pattern;
    std::ofstream(dir / "attr") << "old content";

    RealSysfsWriter writer;
    CHECK(writer.write(dir / "attr", "vfio-pci") == 0);
    CHECK(read_attr(dir / "attr") == "vfio-pci");
    CHECK(writer.write(dir / "missing", "x") == ENOENT);
    CHECK_FALSE(fs::exists(dir / "missing"));
    fs::remove_all(dir);
}
