#pragma once
#include <filesystem>

namespace kvmgpu::app {

// Where kvmgpu keeps things and reads the host, as chosen by the global options.
struct Context {
    std::filesystem::path runtime_dir;  // RUNTIME: one directory per running VM, journals, locks
    std::filesystem::path state_dir;    // STATE: one directory per VM that outlives a run
    std::filesystem::path host_root = "/";  // every host path (sys, proc, dev) is read under it

    std::filesystem::path vm_runtime_dir(const std::string& name) const { return runtime_dir / name; }
    std::filesystem::path vm_state_dir(const std::string& name) const { return state_dir / name; }
    // A host path such as "/sys/bus/pci/devices" under the host root.
    std::filesystem::path host(const std::filesystem::path& absolute) const {
        return host_root / absolute.relative_path();
    }
};

}  // namespace kvmgpu::app
