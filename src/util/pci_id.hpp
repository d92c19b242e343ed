#pragma once
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvmgpu::util {

// What a PCI function is, as opposed to where it sits: "vendor:device" (`10de:2684`, an RTX
// 4090), or a subsystem's "vendor:device" (`1043:8870`, the board maker's). The text form is
// the one `lspci -nn` and sysfs use: 4 lower-case hex digits on each side.
struct PciId {
    std::uint16_t vendor = 0;
    std::uint16_t device = 0;

    // Exactly "VVVV:DDDD", hex in either case; nullopt for anything else.
    static std::optional<PciId> parse(std::string_view text);

    std::string str() const;
    auto operator<=>(const PciId&) const = default;
};

}  // namespace kvmgpu::util
