#pragma once
// The supervisor: from a freshly spawned, paused QEMU to its end. One thread, one io_context:
// QMP (negotiate, pin vCPUs, cont), QMP events, SIGINT/SIGTERM, QEMU's exit (pidfd), and the
// control socket that `kvmgpu pause|resume|stop|status|qmp|events` talk to.
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "app/events.hpp"
#include "app/exit_reason.hpp"
#include "app/vm_dir.hpp"
#include "util/process.hpp"

namespace kvmgpu::app {


struct SuperviseOptions {
    // How long a stop (Ctrl-C, SIGTERM, `kvmgpu stop`) waits for the guest to power off after
    // the ACPI power button before QEMU is told to quit.
    std::chrono::seconds stop_timeout{60};
    std::chrono::seconds connect_timeout{30};
    std::vector<unsigned> pin;           // host CPU per vCPU
    std::vector<unsigned> emulator_pin;  // host CPUs for QEMU's other threads
    std::vector<unsigned> iothread_pin;  // host CPUs for QEMU's iothreads (query-iothreads)
    int realtime_priority = 0;           // 1..99: the vCPU threads run SCHED_FIFO at it; 0: they do not
    // Called once the VM runs, then every `steer_interval` until it ends ([cpu] irq_affinity,
    // app/irq_steering.hpp): it returns what it changed ("" for nothing), or throws what failed.
    // Each is reported as an "irq" step; a failure does not end the VM.
    std::function<std::string()> steer_irqs;
    std::chrono::milliseconds steer_interval{1000};
    std::vector<std::string> devices;    // for status
    // The VNC password, set over QMP (set_password) before the guest runs; empty: none.
    std::string vnc_password;
};

// Runs until QEMU has exited and returns why it ended. `on_end` runs once QEMU is gone and
// before `kvmgpu stop` clients get their answer (so that they return with the devices already
// back); what it returns is their reply and the final event.
using OnEnd = std::function<StoppedEvent(const ExitVerdict&)>;
ExitVerdict supervise(const VmDir& dir, util::ChildProcess& qemu, VmState state, const SuperviseOptions& options,
                      const Report& report, const OnEnd& on_end);

}  // namespace kvmgpu::app
