#include <catch2/catch.hpp>

#include <array>

#include "util/pci_address.hpp"
#include "util/text.hpp"

using namespace kvmgpu::util;

TEST_CASE("PCI addresses parse in long and short form and print canonically", "[util]") {
    struct Case { const char* text; const char* canonical; };
    for (auto c : {Case{"0000:01:00.0", "0000:01:00.0"}, Case{"01:00.1", "0000:01:00.1"},
                   Case{"0000:0A:1f.7", "0000:0a:1f.7"}, Case{"10de:ff:00.3", "10de:ff:00.3"}}) {
        auto a = PciAddress::parse(c.text);
        REQUIRE(a);
        CHECK(a->str() == c.canonical);
    }
}

TEST_CASE("PCI addresses outside the spec are rejected", "[util]") {
    for (auto text : {"", "01:00", "01:20.0", "01:00.8", "0:01:00.0", "0000:01:00.0 ", "gg:00.0",
                      "0000:001:00.0", "0000-01-00.0", "01:00.0.0", "0000:01:00:0"}) {
        INFO(text);
        CHECK_FALSE(PciAddress::parse(text));
    }
}

TEST_CASE("same_slot groups the functions of one card", "[util]") {
    auto a = *PciAddress::parse("0000:01:00.0");
    CHECK(a.same_slot(*PciAddress::parse("0000:01:00.1")));
    CHECK_FALSE(a.same_slot(*PciAddress::parse("0000:02:00.0")));
    CHECK_FALSE(a.same_slot(*PciAddress::parse("0001:01:00.0")));
}

TEST_CASE("sizes parse with binary suffixes", "[util]") {
    CHECK(parse_size("4096") == 4096u);
    CHECK(parse_size("64K") == 64u << 10);
    CHECK(parse_size("512M") == 512u << 20);
    CHECK(parse_size("16G") == 16ull << 30);
    CHECK(parse_size("16GiB") == 16ull << 30);
    CHECK(parse_size("2T") == 2ull << 40);
    CHECK(parse_size("1g") == 1ull << 30);
    for (auto bad : {"", "G", "16 G", "1.5G", "-1G", "16Q", "16GG", "99999999999999999999",
                     "17179869184G"}) {
        INFO(bad);
        CHECK_FALSE(parse_size(bad));
    }
}

TEST_CASE("sizes print in the largest exact unit", "[util]") {
    CHECK(format_size(16ull << 30) == "16G");
    CHECK(format_size(1536ull << 20) == "1536M");
    CHECK(format_size(1000) == "1000");
    CHECK(format_size(2ull << 40) == "2T");
}

TEST_CASE("closest_match suggests typos, swaps and prefixes, not other words", "[util]") {
    const std::array<std::string_view, 4> words{"hide_kvm", "hyperv", "kvm", "virtio-net-pci"};
    CHECK(closest_match("hide_kmv", words) == std::optional<std::string>("hide_kvm"));
    CHECK(closest_match("hypervv", words) == std::optional<std::string>("hyperv"));
    CHECK(closest_match("kmv", words) == std::optional<std::string>("kvm"));
    CHECK(closest_match("virtio-net", words) == std::optional<std::string>("virtio-net-pci"));
    CHECK_FALSE(closest_match("memory", words));
}

TEST_CASE("shell quoting gives back every word exactly", "[util]") {
    CHECK(shell_quote("-device") == "-device");
    CHECK(shell_quote("vfio-pci,host=0000:01:00.0") == "vfio-pci,host=0000:01:00.0");
    CHECK(shell_quote("a b") == "'a b'");
    CHECK(shell_quote("it's") == "'it'\\''s'");
    CHECK(shell_quote("") == "''");
    CHECK(shell_quote("$HOME;rm") == "'$HOME;rm'");
    CHECK(shell_join({"qemu", "-name", "a b"}) == "qemu -name 'a b'");
}

TEST_CASE("control characters are found and quoted visibly", "[util]") {
    CHECK(find_control_char("/dev/input/a\nb") == '\n');
    CHECK_FALSE(find_control_char("/dev/input/by-id/usb-Logitech"));
    CHECK(quoted("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST_CASE("split_words splits at spaces tabs and newlines and keeps no empty word", "[util]") {
    using V = std::vector<std::string_view>;
    CHECK(kvmgpu::util::split_words("") == V{});
    CHECK(kvmgpu::util::split_words(" \t\n") == V{});
    CHECK(kvmgpu::util::split_words("0x1 0x2\t0x3\n") == V{"0x1", "0x2", "0x3"});
    CHECK(kvmgpu::util::split_words("  a  \r\n b") == V{"a", "b"});
}

TEST_CASE("constant_time_equal is equality", "[util]") {
    using kvmgpu::util::constant_time_equal;
    CHECK(constant_time_equal("", ""));
    CHECK(constant_time_equal("aZ09", "aZ09"));
    CHECK_FALSE(constant_time_equal("aZ09", "aZ08"));
    CHECK_FALSE(constant_time_equal("aZ09", "bZ09"));
    CHECK_FALSE(constant_time_equal("aZ0", "aZ09"));
    CHECK_FALSE(constant_time_equal(std::string_view("a\0", 2), "a"));
}
