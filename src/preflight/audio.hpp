#pragma once
// What [audio] needs from the host, checked before a launch: QEMU's PulseAudio driver (Debian's
// qemu-system-gui; PipeWire serves the same protocol through pipewire-pulse), and the desktop
// user's sound server socket, reachable by the user QEMU runs as.
#include <filesystem>
#include <vector>

#include "preflight/check.hpp"
#include "profile/profile.hpp"

namespace kvmgpu::preflight {

// The findings for a profile with audio (none for backend = "none"). The server's socket is
// looked up under `root`.
std::vector<Finding> audio_findings(const profile::Profile& p, const std::filesystem::path& root,
                                    const CheckOptions& options);

}  // namespace kvmgpu::preflight
