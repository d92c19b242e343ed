#include "app/console.hpp"

#include "app/control.hpp"
#include "app/vnc_secret.hpp"

namespace kvmgpu::app {

ConsoleTarget console_target(const Context& ctx, const std::string& name, bool guest) {
    const auto vm = find_vm(ctx, name);
    const auto& s = vm.state;
    if (vm.liveness == Liveness::starting)
        throw NotRunning("\"" + name + "\" has no QEMU running (its supervisor is still starting it); try again");
    ConsoleTarget t;
    t.qemu_pid = s.qemu_pid;
    t.qemu_start = s.qemu_start;
    if (guest) {
        if (s.guest_websocket == 0)
            throw util::RuntimeFailure("\"" + name + "\" forwards no port to a VNC server in the guest; set [display] "
                                       "guest_websocket = PORT in its profile (the port websockify listens on in the guest) "
                                       "and start it again",
                                       "no-console");
        t.host = "127.0.0.1";
        t.port = s.guest_websocket;
        return t;
    }
    const auto colon = s.websocket.rfind(':');
    if (s.websocket.empty() || colon == std::string::npos)
        throw util::RuntimeFailure("\"" + name + "\" has no VNC WebSocket; set [display] type = \"vnc\" and websocket = PORT "
                                   "in its profile and start it again",
                                   "no-console");
    t.host = s.websocket.substr(0, colon);
    t.port = static_cast<unsigned>(std::stoul(s.websocket.substr(colon + 1)));
    if (s.vnc_password) t.password = read_vnc_secret(ctx.vm_layout(name));
    return t;
}

}  // namespace kvmgpu::app
