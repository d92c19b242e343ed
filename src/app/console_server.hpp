#pragma once
// `kvmgpu console`'s web server: on the host's loopback only, it serves noVNC's files (Debian's
// novnc package, /usr/share/novnc) and a page of its own that connects noVNC to the VM, and it
// relays that page's WebSocket to the VM's VNC WebSocket (QEMU's, or a forwarded websockify in
// the guest), rewriting the request path to "/" (QEMU accepts no other).
//
// Every URL starts with a random token (/TOKEN/...): another user of the host who can reach the
// loopback port but has not seen the printed URL gets 404 for everything, the page with the VNC
// password included. Requests are bounded (kMaxRequestHead, a 10 s deadline for the head, files
// up to 4 MiB, 64 connections at once, the oldest still without its head giving way to a new
// one); paths are normalised and never leave the noVNC directory. The relay refuses, and the
// server ends, once the VM is gone (target_alive).
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace kvmgpu::app {

struct ConsoleOptions {
    std::string name;                                 // the VM, for the page's title
    std::filesystem::path novnc_dir = "/usr/share/novnc";
    std::string token;                                // the URL's first segment
    std::string password;                             // given to the page; empty: none
    std::string target_host;                          // the VNC WebSocket: "127.0.0.1", "::1"
    unsigned target_port = 0;
    unsigned port = 0;                                // where to listen on 127.0.0.1; 0: any free port
    bool once = false;                                // end when the first relayed session ends
    // Whether the VM (its QEMU) still runs; asked before every relay. Once it says no, the
    // WebSocket is refused (503) and the server ends: the port the VM listened on is free, and
    // whoever binds it next would get the browser's keys and the VNC password's challenge reply.
    std::function<bool()> target_alive;
};

class ConsoleServer {
public:
    // Binds 127.0.0.1:port at once (throws naming the port when it cannot).
    explicit ConsoleServer(ConsoleOptions options);
    ~ConsoleServer();
    ConsoleServer(const ConsoleServer&) = delete;
    ConsoleServer& operator=(const ConsoleServer&) = delete;

    unsigned port() const;
    std::string url() const;  // "http://127.0.0.1:PORT/TOKEN/"

    // Serves until SIGINT or SIGTERM (or, with `once`, the end of the first relayed session).
    // `log` receives one line per relayed session and per refused relay. False when it ended
    // because the VM was gone (target_alive).
    bool run(const std::function<void(const std::string&)>& log);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace kvmgpu::app
