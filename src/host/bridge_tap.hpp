#pragma once
// A tap in a host bridge, opened by qemu-bridge-helper for kvmgpu rather than for QEMU: QEMU runs
// unprivileged under a seccomp filter that forbids it to start programs, so kvmgpu runs the
// (set-user-ID) helper itself and hands QEMU the tap as an inherited descriptor (fd=N).
//
// The helper's interface (QEMU's own): `qemu-bridge-helper --use-vnet --br=BRIDGE --fd=N`
// creates a tap, checks BRIDGE against /etc/qemu/bridge.conf, adds the tap to it, brings it
// up, sends the tap's descriptor over the unix socket N (SCM_RIGHTS) and exits 0.
//
// Nothing needs undoing: the tap is a non-persistent tun device, which the kernel deletes (and
// takes out of the bridge) when its last descriptor is closed, that is when QEMU ends.
#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "util/fd.hpp"
#include "util/interrupt.hpp"

namespace kvmgpu::host {

inline constexpr const char* kDefaultBridgeHelper = "/usr/lib/qemu/qemu-bridge-helper";

struct BridgeTapRequest {
    std::filesystem::path helper = kDefaultBridgeHelper;
    std::string bridge;
    // Where the helper's stdout and stderr are appended (its refusals say why); nullopt: ours.
    std::optional<std::filesystem::path> log_file;
    // The helper's environment ("NAME=VALUE"); nullopt: ours.
    std::optional<std::vector<std::string>> environment;
    std::chrono::milliseconds timeout{10000};
};

// The helper did not give us a tap: what() says why (its exit status, a timeout, a signal).
class BridgeTapError : public std::runtime_error {
public:
    BridgeTapError(const std::string& what, bool interrupted)
        : std::runtime_error(what), interrupted_(interrupted) {}
    // True when a pending stop signal (the Interrupt) ended the wait.
    bool interrupted() const { return interrupted_; }

private:
    bool interrupted_;
};

// Runs the helper (no shell) and returns the tap it sends, close-on-exec in this process. The
// helper is waited for; a helper that sends nothing, fails, or takes longer than the timeout
// (then killed) throws BridgeTapError, as does a stop signal pending in `interrupt` (may be null).
util::Fd open_bridge_tap(const BridgeTapRequest& request, const util::Interrupt* interrupt);

}  // namespace kvmgpu::host
