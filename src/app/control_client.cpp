#include "app/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "qmp/client.hpp"

namespace kvmgpu::app {

std::optional<ControlClient> ControlClient::connect(const std::filesystem::path& socket) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const auto& p = socket.native();
    if (p.size() >= sizeof addr.sun_path)
        throw std::runtime_error("the socket path \"" + p + "\" is too long for a unix socket");
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
    util::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw std::system_error(errno, std::generic_category(), "socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (errno == ENOENT || errno == ECONNREFUSED) return std::nullopt;
        throw std::system_error(errno, std::generic_category(), "cannot connect to \"" + p + "\"");
    }
    return ControlClient(std::move(fd));
}

void ControlClient::send(const nlohmann::json& req) {
    const std::string line = req.dump() + "\n";
    std::size_t done = 0;
    while (done < line.size()) {
        const auto n = ::send(fd_.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "cannot send to the supervisor");
        }
        done += static_cast<std::size_t>(n);
    }
}

std::optional<nlohmann::json> ControlClient::next(std::optional<Clock::time_point> deadline) {
    while (true) {
        if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
            const std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return nlohmann::json::parse(line);
        }
        int timeout_ms = -1;
        if (deadline) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
            if (left.count() <= 0) throw NoAnswer("the supervisor did not answer in time");
            timeout_ms = static_cast<int>(left.count());
        }
        pollfd pfd{fd_.get(), POLLIN, 0};
        const int ready = ::poll(&pfd, 1, timeout_ms);
        if (ready < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "poll");
        }
        if (ready == 0) continue;  // the deadline check above throws
        char chunk[65536];
        const auto n = ::read(fd_.get(), chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "cannot read from the supervisor");
        }
        if (n == 0) return std::nullopt;
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
}

nlohmann::json ControlClient::request(const nlohmann::json& req, Clock::time_point deadline) {
    send(req);
    auto reply = next(deadline);
    if (!reply) throw std::runtime_error("the supervisor closed the connection without answering");
    return *reply;
}

nlohmann::json rescue_qmp(const std::filesystem::path& socket, const nlohmann::json& request,
                          std::chrono::milliseconds timeout) {
    qmp::SyncClient client;
    qmp::ConnectOptions options;
    options.deadline = qmp::Clock::now() + timeout;
    // Nothing listening means QEMU is gone: fail at once instead of retrying until the deadline.
    std::error_code ec;
    if (!std::filesystem::exists(socket, ec))
        throw std::runtime_error("QEMU's rescue socket \"" + socket.string() + "\" is gone");
    client.connect(socket, options);
    return client.execute_raw(request, timeout);
}

}  // namespace kvmgpu::app
