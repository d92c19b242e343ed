#pragma once
// GPUs whose own reset does not work: after a VM the card stays in a state the kernel's
// resets (FLR, bus reset) cannot clear, and it fails to start again until the host reboots.
// The out-of-tree `vendor_reset` module (github.com/gnif/vendor-reset) knows how to reset
// them. This table is the one place kvmgpu lists them; `check` warns for a planned device in
// it when the module is not loaded.
#include <cstdint>
#include <optional>
#include <string_view>

namespace kvmgpu::preflight {

// The GPU family ("Polaris 10", "Vega 20", "Navi 14"), or nullopt when the device resets fine
// as far as kvmgpu knows. Only display functions are listed: a card's HDMI audio function is
// reset together with its GPU.
std::optional<std::string_view> vendor_reset_family(std::uint16_t vendor, std::uint16_t device);

}  // namespace kvmgpu::preflight
