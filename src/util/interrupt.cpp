#include "util/interrupt.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <system_error>

namespace kvmgpu::util {

namespace {

sigset_t stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    return set;
}

}  // namespace

Interrupt::Interrupt() {
    const sigset_t set = stop_signals();
    if (int e = ::pthread_sigmask(SIG_BLOCK, &set, &old_mask_); e != 0)
        throw std::system_error(e, std::generic_category(), "pthread_sigmask");
    fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd_) {
        const int e = errno;
        ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
        throw std::system_error(e, std::generic_category(), "signalfd");
    }
}

Interrupt::~Interrupt() {
    fd_.reset();
    ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

std::optional<int> Interrupt::pending() {
    signalfd_siginfo info;
    while (true) {
        const ssize_t n = ::read(fd_.get(), &info, sizeof info);
        if (n == static_cast<ssize_t>(sizeof info)) break;
        if (n < 0 && errno == EINTR) continue;
        return std::nullopt;  // EAGAIN: nothing pending
    }
    const int signal = static_cast<int>(info.ssi_signo);
    if (!received_) received_ = signal;
    return signal;
}

WaitResult wait_readable(int fd, std::chrono::steady_clock::time_point deadline,
                         const Interrupt* interrupt) {
    using namespace std::chrono;
    pollfd fds[2] = {{fd, POLLIN, 0}, {interrupt ? interrupt->fd() : -1, POLLIN, 0}};
    while (true) {
        const auto now = steady_clock::now();
        // Rounded up: poll's millisecond timeout must not end the wait before the deadline.
        const auto left = now >= deadline ? milliseconds(0) : ceil<milliseconds>(deadline - now);
        const int timeout = static_cast<int>(std::min<milliseconds::rep>(left.count(), INT_MAX));
        fds[0].revents = fds[1].revents = 0;
        const int n = ::poll(fds, 2, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "poll");
        }
        if (fds[0].revents != 0) return WaitResult::ready;
        if (fds[1].revents != 0) return WaitResult::interrupted;
        if (steady_clock::now() >= deadline) return WaitResult::timed_out;
    }
}

}  // namespace kvmgpu::util
