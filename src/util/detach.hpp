#pragma once
// Going to the background, as `kvmgpu run --detach` does: the process forks; the child leaves the
// terminal's session (setsid), reads /dev/null and writes its stdout and stderr to a log, and goes
// on with the work; the parent stays in the foreground, shows what the child sends it over a pipe
// (its progress) and returns once the child says it is ready, or with the child's exit code when
// the child ends first. The child is a direct child, so the parent can wait for that code; once
// the parent has exited, the child lives on, adopted by init (or the nearest subreaper).
//
// Fork before any thread is started: only the calling thread exists in the child.
#include <sys/types.h>

#include <functional>
#include <string_view>

#include "util/fd.hpp"

namespace kvmgpu::util {

// The child's end of the pipe to the waiting parent.
class ForegroundLink {
public:
    ForegroundLink() = default;
    explicit ForegroundLink(Fd fd) : fd_(std::move(fd)) {}

    // Whether the parent still listens (not yet ready()).
    explicit operator bool() const { return static_cast<bool>(fd_); }
    // Text for the parent to print. Errors (a parent gone: EPIPE) are ignored.
    void send(std::string_view text);
    // The work is under way: the parent prints what it must and exits 0. Closes the link.
    void ready();

private:
    Fd fd_;
};

struct Detached {
    bool in_child = false;
    ForegroundLink link;  // the child's
    pid_t child = 0;      // the parent's: the child's pid
    Fd from_child;        // the parent's: the pipe's read end
};

// Forks. The child gets a new session, stdin from /dev/null, stdout and stderr on `log_fd` (the
// caller still owns `log_fd` in both processes), and returns with in_child set. Throws std::system_error when the pipe
// or the fork fails (nothing has changed then).
Detached detach(int log_fd);

// The parent's side. Calls `forward` with each chunk the child sends, until the child calls
// ready() (returns 0) or ends (returns its exit code, or 128 + the signal that ended it). A
// child that closes the pipe without ready() and without ending is waited for too.
int wait_until_ready(pid_t child, Fd from_child, const std::function<void(std::string_view)>& forward);

}  // namespace kvmgpu::util
