#include "util/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace kvmgpu::util {

SdNotifier::SdNotifier(std::string_view address) {
    if (address.empty()) return;
    sockaddr_un probe{};
    if (address.front() != '/' && address.front() != '@') {
        error_ = "NOTIFY_SOCKET \"" + std::string(address) +
                 "\" is neither an absolute path nor an abstract socket name ('@…'); not notifying systemd";
        return;
    }
    if (address.size() > sizeof probe.sun_path - (address.front() == '/' ? 1 : 0)) {
        error_ = "NOTIFY_SOCKET is longer than a socket address holds; not notifying systemd";
        return;
    }
    address_ = std::string(address);
    if (address_.front() == '@') address_.front() = '\0';
    socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!socket_) error_ = std::string("cannot make the socket for NOTIFY_SOCKET: ") + std::strerror(errno);
}

bool SdNotifier::send(std::string_view message) {
    if (!socket_) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, address_.data(), address_.size());
    // A path's length counts its terminating NUL (zeroed above); an abstract name's does not.
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size() +
                                               (address_.front() == '/' ? 1 : 0));
    const auto sent = ::sendto(socket_.get(), message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                               reinterpret_cast<const sockaddr*>(&addr), length);
    if (sent == static_cast<ssize_t>(message.size())) return true;
    error_ = std::string("cannot notify systemd: ") + (sent < 0 ? std::strerror(errno) : "short send");
    return false;
}

std::string SdNotifier::status_line(std::string_view text) {
    std::string line = "STATUS=";
    for (char c : text) line += (c == '\n' || c == '\r') ? ' ' : c;
    return line;
}

void unset_notify_socket() { ::unsetenv("NOTIFY_SOCKET"); }

}  // namespace kvmgpu::util
