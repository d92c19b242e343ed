#pragma once
// `kvmgpu run`: check → reserve → bind → prestart hooks → spawn QEMU paused → supervise → restore
// → poststop hooks. Every host change registers its undo first; a failure anywhere before the VM
// runs undoes everything, and the end of the VM (shutdown, stop, crash, signal) undoes it too.
#include <chrono>

#include "app/context.hpp"
#include "host/lock.hpp"
#include "host/sysfs.hpp"
#include "app/supervisor.hpp"
#include "profile/profile.hpp"

namespace kvmgpu::app {

struct LaunchOptions {
    std::chrono::seconds stop_timeout{60};
    std::chrono::seconds connect_timeout{30};
    // Where sysfs writes go: null for the real kernel (files under ctx.host_root); tests pass a
    // simulated kernel working on a temporary host root.
    host::SysfsWriter* writer = nullptr;
};

// Runs the VM to its end and returns the exit code: 0 for a guest shutdown or a requested stop,
// 1 for a host that is not ready, a failed start, or a QEMU crash. `report` gets every step
// and lifecycle event. The profile must be valid (profile::validate without errors).
int launch(const profile::Profile& profile, const Context& ctx, const LaunchOptions& options,
           const Report& report);

// Where kvmgpu's host bookkeeping (restore journals, device locks) lives: RUNTIME/.host.
std::filesystem::path host_state_dir(const Context& ctx);

// Whether the owner of a device lock still holds the device. A lock records the pid of the
// `kvmgpu run` that took it; when that process was killed (-9) but its QEMU still runs, the
// devices are still in use, so the lock counts as live for as long as that QEMU lives.
host::PidAlive lock_liveness(const Context& ctx);

}  // namespace kvmgpu::app
