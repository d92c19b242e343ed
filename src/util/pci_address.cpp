#include "util/pci_address.hpp"

#include "util/text.hpp"

#include <algorithm>
#include <cstdio>

namespace kvmgpu::util {
namespace {

// Parses exactly `digits` hex digits from the front of `text`.
std::optional<unsigned> take_hex(std::string_view& text, std::size_t digits) {
    if (text.size() < digits) return std::nullopt;
    unsigned value = 0;
    for (std::size_t i = 0; i < digits; ++i) {
        const auto d = hex_digit(text[i]);
        if (!d) return std::nullopt;
        value = value * 16 + *d;
    }
    text.remove_prefix(digits);
    return value;
}

bool take_char(std::string_view& text, char c) {
    if (text.empty() || text.front() != c) return false;
    text.remove_prefix(1);
    return true;
}

}  // namespace

std::optional<PciAddress> PciAddress::parse(std::string_view text) {
    PciAddress a;
    // The long form has two colons; the short form one.
    const auto colons = std::count(text.begin(), text.end(), ':');
    if (colons == 2) {
        auto d = take_hex(text, 4);
        if (!d || !take_char(text, ':')) return std::nullopt;
        a.domain = static_cast<std::uint16_t>(*d);
    } else if (colons != 1) {
        return std::nullopt;
    }
    auto b = take_hex(text, 2);
    if (!b || !take_char(text, ':')) return std::nullopt;
    auto s = take_hex(text, 2);
    if (!s || !take_char(text, '.')) return std::nullopt;
    auto f = take_hex(text, 1);
    if (!f || !text.empty()) return std::nullopt;
    if (*s > 0x1f || *f > 7) return std::nullopt;
    a.bus = static_cast<std::uint8_t>(*b);
    a.slot = static_cast<std::uint8_t>(*s);
    a.function = static_cast<std::uint8_t>(*f);
    return a;
}

std::string PciAddress::str() const {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain, bus, slot, function);
    return buf;
}

}  // namespace kvmgpu::util
