#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "util/layout.hpp"

namespace kvmgpu::app {

// Where kvmgpu keeps things and reads the host, as chosen by the global options.
struct Context {
    std::filesystem::path runtime_dir;  // RUNTIME: one directory per running VM, journals, locks
    std::filesystem::path state_dir;    // STATE: one directory per VM that outlives a run
    std::filesystem::path host_root = "/";  // every host path (sys, proc, dev) is read under it
    // The desktop user behind a root kvmgpu (SUDO_USER), for files made for them (Looking
    // Glass's shared memory); empty when kvmgpu was not started through sudo.
    std::string invoking_user;
    // Where `kvmgpu run NAME` looks for NAME.toml, first found wins (app/profile_lookup.hpp):
    // ~/.config/kvmgpu then /etc/kvmgpu for a user, /etc/kvmgpu for root.
    std::vector<std::filesystem::path> profile_dirs;

    // Every path of one VM (util/layout.hpp), and of kvmgpu's host bookkeeping.
    util::VmLayout vm_layout(const std::string& name) const { return util::VmLayout::of(runtime_dir, state_dir, name); }
    util::HostStateLayout host_layout() const { return util::HostStateLayout::of(runtime_dir); }
    // A host path such as "/sys/bus/pci/devices" under the host root.
    std::filesystem::path host(const std::filesystem::path& absolute) const {
        return host_root / absolute.relative_path();
    }
};

}  // namespace kvmgpu::app
