#pragma once
// A stop request (Ctrl-C, SIGTERM, SIGHUP) as a readable fd, so that a wait on something the
// kernel may never finish can also end when the user asks the launcher to stop.
#include <signal.h>

#include <chrono>
#include <optional>

#include "util/fd.hpp"

namespace kvmgpu::util {

// Blocks SIGINT, SIGTERM and SIGHUP in the constructing thread for the object's lifetime and
// receives them through a signalfd instead: they no longer kill the launcher, they make fd()
// readable. The destructor restores the mask found at construction; a signal still pending
// then is delivered as usual (nobody took it, so its default action or handler applies).
//
// A signalfd sees the signals pending for the thread that reads or polls it and those pending
// for the process. Construct it in the main thread before starting other threads (they inherit
// the mask), so that a signal sent to the process (kill, Ctrl-C) stays pending for the process
// instead of being delivered to a thread that does not block it.
//
// Waiting on fd() does not consume the signal: it stays pending, and every later wait is
// interrupted at once, until the owner takes it with pending().
class Interrupt {
public:
    Interrupt();
    Interrupt(const Interrupt&) = delete;
    Interrupt& operator=(const Interrupt&) = delete;
    ~Interrupt();

    // Readable (POLLIN) while one of the signals is pending.
    int fd() const { return fd_.get(); }

    // Without blocking: takes the first pending signal and returns its number, or nullopt when
    // none is pending. The first signal ever taken is remembered by received().
    std::optional<int> pending();

    // The first signal taken by pending(), for as long as this object lives.
    std::optional<int> received() const { return received_; }

private:
    sigset_t old_mask_;
    Fd fd_;
    std::optional<int> received_;
};

enum class WaitResult { ready, timed_out, interrupted };

// Waits until `fd` is readable (POLLIN, or POLLHUP/POLLERR: a read would not block), the
// deadline passes, or `interrupt` (may be null) has a pending signal. A negative `fd` is not
// waited for (poll ignores it), which leaves a deadline-or-interrupt wait. When `fd` is ready
// and a signal is pending too, the result is ready and the signal stays pending. Never returns
// timed_out before the deadline; EINTR restarts the wait with the remaining time. A failing
// poll (EINVAL, ENOMEM) throws std::system_error.
WaitResult wait_readable(int fd, std::chrono::steady_clock::time_point deadline,
                         const Interrupt* interrupt);

}  // namespace kvmgpu::util
