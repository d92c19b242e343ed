#pragma once
// How kvmgpu ends a VM, in one place for both paths that do it: the supervisor (Ctrl-C, SIGTERM,
// `kvmgpu stop`) and `kvmgpu stop` on a VM whose supervisor is gone (over QEMU's rescue QMP
// socket). The stages, each ending early as soon as QEMU has exited:
//   1. powerdown  the ACPI power button, then up to the stop timeout for the guest to power off
//                 (skipped when forced, or when the guest is not running: a paused guest
//                 cannot answer it);
//   2. quit       QMP `quit`, then up to 5 s;
//   3. terminate  SIGTERM to QEMU (it shuts down cleanly on it), then up to 5 s;
//   4. kill       SIGKILL, then up to 5 s for the kernel to reap it.
#include <chrono>
#include <string_view>
#include <vector>

namespace kvmgpu::app {

enum class StopAction { powerdown, quit, terminate, kill };
std::string_view stop_action_name(StopAction action);

struct StopStage {
    StopAction action;
    std::chrono::seconds wait;  // how long to wait for QEMU's exit after the action
};

// What a stage waits after its action once QEMU has not quit on its own.
inline constexpr std::chrono::seconds kStopStageWait{5};

// The stages of a stop, in order.
std::vector<StopStage> stop_plan(std::chrono::seconds timeout, bool force, bool guest_running);

}  // namespace kvmgpu::app
