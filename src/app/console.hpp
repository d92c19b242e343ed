#pragma once
// What `kvmgpu console NAME` connects to: a running VM's VNC WebSocket (QEMU's, from its state
// file) with its password, or the loopback port forwarded to a WebSocket VNC server inside the
// guest ([display] guest_websocket).
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "app/context.hpp"

namespace kvmgpu::app {

struct ConsoleTarget {
    std::string host;      // "127.0.0.1", "::1", or the address QEMU listens on
    unsigned port = 0;
    std::string password;  // empty: VNC asks for none (a guest's VNC server asks for its own)
    pid_t qemu_pid = 0;    // the QEMU that listens there (pid and start time): the target is
    std::uint64_t qemu_start = 0;  // the VM's only while it runs
};

// Throws NotRunning for a VM that does not run (or whose QEMU has not started yet), and util::RuntimeFailure naming the profile key
// to set when the VM has no such WebSocket.
ConsoleTarget console_target(const Context& ctx, const std::string& name, bool guest);

}  // namespace kvmgpu::app
