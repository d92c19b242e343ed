#include "preflight/reset_quirks.hpp"

#include <algorithm>
#include <span>

namespace kvmgpu::preflight {
namespace {

constexpr std::uint16_t kAmd = 0x1002;

// AMD discrete GPUs (vendor 1002) of the families vendor-reset handles, by device id: the ids
// pci.ids gives each family's chips (Ellesmere = Polaris 10, Baffin = Polaris 11, Lexa =
// Polaris 12), plus the few more that vendor-reset's own table lists. Integrated GPUs (APUs)
// are left out: nobody passes them through.
// clang-format off
constexpr std::uint16_t kPolaris10[] = {0x67c0, 0x67c1, 0x67c2, 0x67c4, 0x67c7, 0x67c8, 0x67c9, 0x67ca, 0x67cc, 0x67cf, 0x67d0, 0x67d4, 0x67d7, 0x67df, 0x6fdf};
constexpr std::uint16_t kPolaris11[] = {0x67e0, 0x67e1, 0x67e3, 0x67e7, 0x67e8, 0x67e9, 0x67eb, 0x67ef, 0x67ff};
constexpr std::uint16_t kPolaris12[] = {0x6980, 0x6981, 0x6985, 0x6986, 0x6987, 0x698f, 0x6995, 0x6997, 0x699f};
constexpr std::uint16_t kVega10[] = {0x6860, 0x6861, 0x6862, 0x6863, 0x6864, 0x6867, 0x6868, 0x6869, 0x686a, 0x686b, 0x686c, 0x686d, 0x686e, 0x686f, 0x687f};
constexpr std::uint16_t kVega20[] = {0x66a0, 0x66a1, 0x66a2, 0x66a3, 0x66a4, 0x66a7, 0x66af};
constexpr std::uint16_t kNavi10[] = {0x7310, 0x7312, 0x7318, 0x7319, 0x731a, 0x731b, 0x731e, 0x731f};
constexpr std::uint16_t kNavi12[] = {0x7360, 0x7362};
constexpr std::uint16_t kNavi14[] = {0x7340, 0x7341, 0x7347, 0x734f};
// clang-format on

struct Family {
    std::string_view name;
    std::span<const std::uint16_t> devices;
};

constexpr Family kFamilies[] = {
    {"Polaris 10", kPolaris10},
    {"Polaris 11", kPolaris11},
    {"Polaris 12", kPolaris12},
    {"Vega 10", kVega10},
    {"Vega 20", kVega20},
    {"Navi 10", kNavi10},
    {"Navi 12", kNavi12},
    {"Navi 14", kNavi14},
};

}  // namespace

std::optional<std::string_view> vendor_reset_family(std::uint16_t vendor, std::uint16_t device) {
    if (vendor != kAmd) return std::nullopt;
    for (const Family& f : kFamilies)
        if (std::find(f.devices.begin(), f.devices.end(), device) != f.devices.end()) return f.name;
    return std::nullopt;
}

}  // namespace kvmgpu::preflight
