#include "util/pci_id.hpp"

#include <cstdio>

#include "util/text.hpp"

namespace kvmgpu::util {

std::optional<PciId> PciId::parse(std::string_view text) {
    if (text.size() != 9 || text[4] != ':') return std::nullopt;
    auto four = [&](std::size_t at) -> std::optional<std::uint16_t> {
        unsigned value = 0;
        for (std::size_t i = at; i < at + 4; ++i) {
            const auto d = hex_digit(text[i]);
            if (!d) return std::nullopt;
            value = value * 16 + *d;
        }
        return static_cast<std::uint16_t>(value);
    };
    const auto vendor = four(0);
    const auto device = four(5);
    if (!vendor || !device) return std::nullopt;
    return PciId{*vendor, *device};
}

std::string PciId::str() const {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04x:%04x", vendor, device);
    return buf;
}

}  // namespace kvmgpu::util
