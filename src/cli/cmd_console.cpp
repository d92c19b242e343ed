// `kvmgpu console NAME`: a noVNC page for a running VM, served on the host's loopback.
#include <chrono>
#include <optional>
#include <ostream>

#include <nlohmann/json.hpp>

#include "app/console.hpp"
#include "app/console_server.hpp"
#include "app/control.hpp"
#include "app/vnc_secret.hpp"
#include "cli/command.hpp"
#include "util/proc.hpp"
#include "util/text.hpp"

namespace kvmgpu::cli {

void console_options(po::options_description& desc) {
    desc.add_options()
        ("guest", "serve the VNC server inside the guest (websockify on [display] guest_websocket) instead of QEMU's")
        ("port", po::value<std::string>()->value_name("P"), "listen on 127.0.0.1:P (default: a free port)")
        ("novnc-dir", po::value<std::string>()->default_value("/usr/share/novnc")->value_name("DIR"),
         "noVNC's files (Debian's novnc package)")
        ("once", "end when the first browser session ends (for scripts and tests)");
}

int console_command(Invocation& inv) {
    if (inv.args.size() != 1)
        throw UsageError("usage: kvmgpu console NAME [--guest] [--port P] [--novnc-dir DIR] [--once]");
    const auto& name = inv.args.front();
    app::ConsoleOptions o;
    o.name = name;
    o.novnc_dir = inv.options["novnc-dir"].as<std::string>();
    o.once = inv.options.count("once") > 0;
    if (inv.options.count("port")) {
        // Read as text: a number type would take "-1" as 4294967295.
        const auto text = inv.options["port"].as<std::string>();
        const auto port = text.size() <= 5 && text.find_first_not_of("0123456789") == std::string::npos
                              ? std::optional<unsigned>(text.empty() ? 0 : std::stoul(text))
                              : std::nullopt;
        if (!port || *port == 0 || *port > 65535)
            throw UsageError("--port " + util::quoted(text) + " is not a port; give 1 to 65535, or leave it out for a free one");
        o.port = *port;
    }
    // The VM first: whether it runs matters before where noVNC is.
    const auto target = app::console_target(inv.ctx, name, inv.options.count("guest") > 0);
    if (!std::filesystem::is_regular_file(o.novnc_dir / "core" / "rfb.js"))
        throw UsageError("noVNC is not in " + util::quoted(o.novnc_dir.string()) +
                         " (no core/rfb.js); install Debian's novnc package (apt-get install novnc) or give --novnc-dir");
    o.target_host = target.host;
    o.target_port = target.port;
    o.password = target.password;
    o.target_alive = [pid = target.qemu_pid, start = target.qemu_start] { return util::process_alive(pid, start); };
    o.token = app::random_alphanumeric(24);
    app::ConsoleServer server(std::move(o));
    const auto where = target.host + ":" + std::to_string(target.port);
    if (inv.json)
        inv.out << nlohmann::json{{"event", "console"}, {"name", name}, {"url", server.url()}, {"websocket", where}}.dump()
                << std::endl;
    else
        inv.out << server.url() << std::endl;
    inv.err << "kvmgpu: the console of " << name << " (VNC WebSocket " << where
            << ") is served at the URL above, on this host's loopback only; Ctrl-C ends it\n";
    if (!server.run([&inv](const std::string& line) { inv.err << "kvmgpu: " << line << std::endl; }))
        throw app::NotRunning("\"" + name + "\" is not running any more; its console ended");
    return ok;
}

}  // namespace kvmgpu::cli
