#pragma once
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvmgpu::util {

// A PCI function address, domain:bus:slot.function. The canonical text form is the one the
// kernel uses in sysfs: "0000:01:00.0" (lower-case hex).
struct PciAddress {
    std::uint16_t domain = 0;
    std::uint8_t bus = 0;
    std::uint8_t slot = 0;      // 0..0x1f
    std::uint8_t function = 0;  // 0..7

    // Accepts "DDDD:BB:SS.F" and the short "BB:SS.F" (domain 0). Hex is case-insensitive.
    // Returns nullopt for anything else, including slot > 0x1f or function > 7.
    static std::optional<PciAddress> parse(std::string_view text);

    std::string str() const;
    // The same card: every field but the function.
    bool same_slot(const PciAddress& other) const {
        return domain == other.domain && bus == other.bus && slot == other.slot;
    }
    auto operator<=>(const PciAddress&) const = default;
};

}  // namespace kvmgpu::util
