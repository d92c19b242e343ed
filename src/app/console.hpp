#pragma once
// What `kvmgpu console NAME` connects to: a running VM's VNC WebSocket (QEMU's, from its state
// file) with its password, or the loopback port forwarded to a WebSocket VNC server inside the
// guest ([display] guest_websocket).
#include <string>

#include "app/context.hpp"

namespace kvmgpu::app {

struct ConsoleTarget {
    std::string host;      // "127.0.0.1", "::1", or the address QEMU listens on
    unsigned port = 0;
    std::string password;  // empty: VNC asks for none (a guest's VNC server asks for its own)
};

// Throws NotRunning for a VM that does not run, and util::RuntimeFailure naming the profile key
// to set when the VM has no such WebSocket.
ConsoleTarget console_target(const Context& ctx, const std::string& name, bool guest);

}  // namespace kvmgpu::app
