#pragma once
// The environment of every program kvmgpu starts for a VM: QEMU, swtpm and the hooks. The
// caller's environment never reaches them (it may hold secrets: tokens, SSH agents, sudo's
// SUDO_* variables); they get this explicit allowlist and nothing else:
//   PATH  fixed: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
//   HOME  the home directory of the user the program runs as
//   TZ    the caller's, when set: QEMU's rtc base = "localtime" and a hook's clock read it
// This is the one place to add to: variables for hooks (the VM's name, phase, devices) are
// passed as `extra`.
#include <filesystem>
#include <string>
#include <vector>

namespace kvmgpu::app {

inline constexpr const char* kChildPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// "NAME=VALUE" strings for util::SpawnOptions::environment.
std::vector<std::string> child_environment(const std::filesystem::path& home, const std::vector<std::string>& extra = {});

// The home directory of the user kvmgpu runs as (its passwd entry), "/" when it has none.
std::filesystem::path own_home();

}  // namespace kvmgpu::app
