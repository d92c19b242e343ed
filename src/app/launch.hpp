#pragma once
// `kvmgpu run`: check → reserve → bind → prestart hooks → spawn QEMU paused → supervise → restore
// → poststop hooks. Every host change registers its undo first; a failure anywhere before the VM
// runs undoes everything, and the end of the VM (shutdown, stop, crash, signal) undoes it too.
#include <chrono>
#include <functional>
#include <string_view>

#include "app/context.hpp"
#include "host/host_change.hpp"
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
    // How long one sysfs write to the real kernel may take before the launch gives up on it
    // (an unbind of a device in use can block in the kernel until the device is released).
    std::chrono::milliseconds sysfs_timeout{10000};
    // Runs `systemctl` and `modprobe` for [release]: null for the real programs (their output
    // appended to STATE/NAME/release.log); tests pass a recording fake.
    host::CommandRunner* runner = nullptr;
    // Called with each step's name just before it runs (tests stop the launch there).
    std::function<void(std::string_view step)> before_step;
};

// Runs the VM to its end and returns the exit code: 0 for a guest shutdown or a requested stop,
// 1 for a QEMU crash or a device not given back. A launch that fails before the VM runs (host
// not ready, a failed step, a stop signal) is reported as a failed step, undone, and thrown as
// util::RuntimeFailure. `report` gets every step and lifecycle event. The profile must be valid
// (profile::validate without errors).
int launch(const profile::Profile& profile, const Context& ctx, const LaunchOptions& options,
           const Report& report);

// Where kvmgpu's host bookkeeping (restore journals, device locks) lives: RUNTIME/.host.
std::filesystem::path host_state_dir(const Context& ctx);

// Whether the owner of a device lock still holds the device. A lock records the pid and start
// time of the `kvmgpu run` that took it; when that process was killed (-9) but its QEMU still
// runs, the devices are still in use, so the lock counts as live for as long as that QEMU lives.
host::OwnerAlive lock_liveness(const Context& ctx);

}  // namespace kvmgpu::app
