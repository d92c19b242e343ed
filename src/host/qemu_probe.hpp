#pragma once
// What the QEMU binary a profile names can do, asked of QEMU itself. Debian splits QEMU's
// audio backends into modules and ships the PulseAudio one (`pa`, what kvmgpu uses for
// PipeWire and PulseAudio) in qemu-system-gui: without it QEMU fails at start with "Unknown
// audio driver", after the devices were bound. `check` asks first.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace kvmgpu::host {

// The audio drivers `QEMU -audiodev help` lists ("none", "alsa", "pa", …), without the ones it
// says are missing modules. nullopt when QEMU could not be run or did not answer within
// `timeout` (it is then killed). `qemu` is a path or a name looked up in PATH.
std::optional<std::vector<std::string>> qemu_audio_drivers(const std::string& qemu,
                                                           std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The driver list in the text of `-audiodev help` (exposed for tests).
std::vector<std::string> parse_audio_drivers(const std::string& help_text);

}  // namespace kvmgpu::host
