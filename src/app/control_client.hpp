#pragma once
// The client side of a supervisor's control socket: newline-delimited JSON, one request object
// per line, one reply object per line, in order. Blocking, with a deadline per call — what a
// short-lived CLI process needs, at the cost of one connect and one round trip.
//
// Requests: any QMP command object ({"execute": ..., "arguments": ...}) is forwarded to QEMU
// and QEMU's reply comes back; {"kvmgpu": "status"} returns the supervisor's view of the VM;
// {"kvmgpu": "stop", "timeout": S, "force": B} answers once the VM has ended and its devices
// are back; {"kvmgpu": "events"} turns the connection into a stream of event objects.
#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "util/fd.hpp"

namespace kvmgpu::app {

// The supervisor did not answer before the deadline (stopped, hung, or slower than allowed).
struct NoAnswer : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class ControlClient {
public:
    using Clock = std::chrono::steady_clock;

    // Nullopt when nothing listens on `socket` (no file, or connection refused: the supervisor is
    // gone). Throws std::system_error for other failures.
    static std::optional<ControlClient> connect(const std::filesystem::path& socket);

    // Sends one request and returns its reply. Throws NoAnswer at the deadline, std::runtime_error
    // on EOF.
    nlohmann::json request(const nlohmann::json& req, Clock::time_point deadline);
    // Sends one line without waiting for a reply.
    void send(const nlohmann::json& req);
    // The next line as JSON; nullopt at EOF. Throws NoAnswer at the deadline.
    std::optional<nlohmann::json> next(std::optional<Clock::time_point> deadline);

private:
    explicit ControlClient(util::Fd fd) : fd_(std::move(fd)) {}
    util::Fd fd_;
    std::string buffer_;
};

// Sends one QMP command over a QMP socket directly (the rescue socket, when the supervisor is
// gone): greeting, qmp_capabilities, the command. Returns QEMU's reply object.
nlohmann::json rescue_qmp(const std::filesystem::path& socket, const nlohmann::json& request,
                          std::chrono::milliseconds timeout);

}  // namespace kvmgpu::app
