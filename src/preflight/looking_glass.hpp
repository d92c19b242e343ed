#pragma once
// What Looking Glass needs from the host, checked before a launch (docs/profile.md
// [looking_glass]):
//   shm    kvmgpu creates the file for `owner` (the desktop user who runs the client) at the
//          launch and removes it after; the user must exist, and a path that exists must be a
//          regular file (an existing one is used as it is: its owner made it for this);
//   kvmfr  the kvmfr module must be loaded, the path must be its character device (a plain file
//          there means QEMU ran before the module was loaded and made one), and the module's
//          static_size_mb for that device must hold the profile's size.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "preflight/check.hpp"
#include "profile/profile.hpp"
#include "util/user.hpp"

namespace kvmgpu::preflight {

// The findings for a profile with Looking Glass enabled (none otherwise). `owner` is the user
// the shm file is for (`owner_name` as found on the system; nullopt: no such user). Device nodes
// and /sys are read under `root`.
std::vector<Finding> looking_glass_findings(const profile::LookingGlass& lg, const std::filesystem::path& root,
                                            const std::string& owner_name,
                                            const std::optional<util::SystemUser>& owner);

}  // namespace kvmgpu::preflight
