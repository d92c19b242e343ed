#pragma once
// Test helper: systemd's side of NOTIFY_SOCKET. A bound AF_UNIX datagram socket (a path, or a
// name in the abstract namespace) with SO_PASSCRED, as systemd's own, so each message comes with
// the pid the kernel says sent it (what NotifyAccess=main checks).
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include "util/fd.hpp"

namespace kvmgpu::testing {

struct Notification {
    std::string text;
    pid_t pid = 0;  // the sender, from SCM_CREDENTIALS
};

class NotifyListener {
public:
    // `address`: an absolute path, or "@name" for the abstract namespace (NOTIFY_SOCKET's forms).
    explicit NotifyListener(std::string address) : address_(std::move(address)) {
        socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!socket_) throw std::runtime_error("socket failed");
        const int on = 1;
        ::setsockopt(socket_.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::string path = address_;
        const bool abstract = path.front() == '@';
        if (abstract) path.front() = '\0';
        std::memcpy(addr.sun_path, path.data(), path.size());
        const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
        if (::bind(socket_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
            throw std::runtime_error("bind " + address_ + ": " + std::strerror(errno));
    }
    const std::string& address() const { return address_; }

    // The next datagram, or nullopt at the deadline.
    std::optional<Notification> next(std::chrono::steady_clock::time_point deadline) {
        while (true) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd p{socket_.get(), POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            char buf[4096];
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
            iovec iov{buf, sizeof buf};
            msghdr msg{};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            const auto n = ::recvmsg(socket_.get(), &msg, MSG_DONTWAIT);
            if (n < 0) continue;
            Notification note{std::string(buf, static_cast<std::size_t>(n)), 0};
            for (auto* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                    ucred cred;
                    std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
                    note.pid = cred.pid;
                }
            return note;
        }
    }

private:
    std::string address_;
    util::Fd socket_;
};

}  // namespace kvmgpu::testing
