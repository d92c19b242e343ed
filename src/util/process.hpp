#pragma once
// A child process owned by RAII, started from an argv vector (never through a shell).
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "util/fd.hpp"

namespace kvmgpu::util {

// Who a child runs as: the user, its primary group and its supplementary groups (getgrouplist).
struct Credentials {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
};

struct SpawnOptions {
    // Where the child's stdout and stderr go: appended to this file (created 0640 if missing),
    // or inherited from the parent when empty.
    std::optional<std::filesystem::path> log_file;
    // setsid() in the child: it leaves the parent's session and process group, so a Ctrl-C on
    // the launching terminal reaches only the parent, which then decides how to stop the child.
    bool new_session = false;
    // Close every fd above 2 in the child, so it holds no sockets, journal files or pipes of
    // the parent (a leaked listening socket would keep a control socket alive after we exit).
    bool close_other_fds = true;
    // Descriptors the child inherits under the same numbers (each above 2): close_other_fds
    // spares them, and their FD_CLOEXEC is cleared in the child only, so the parent may keep
    // them close-on-exec for every other program it starts. The parent keeps owning them.
    std::vector<int> inherit_fds;
    // Connect the child's stdin to /dev/null; otherwise it is inherited.
    bool stdin_null = true;
    // Exactly these "NAME=VALUE" strings are the child's environment; nullopt: the parent's.
    std::optional<std::vector<std::string>> environment;
    // RLIMIT_MEMLOCK (soft and hard, bytes) set in the child before it drops its privileges, so a
    // root parent may raise it for an unprivileged child (VFIO pins all guest RAM).
    std::optional<std::uint64_t> memlock_limit;
    // The child's umask; nullopt: the parent's.
    std::optional<mode_t> umask;
    // Run the child as this user: setgroups, setresgid, setresuid in the child, after the
    // rlimit and before exec (the parent must be root to switch). nullopt: the parent's.
    std::optional<Credentials> credentials;
};

// Thrown by spawn() when the child could not be started; what() names the program and the cause.
class SpawnError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// "exited with status 1", "killed by signal 9 (SIGKILL)", "killed by signal 6 (SIGABRT), core
// dumped". `status` is a raw wait status as returned by waitpid().
std::string describe_wait_status(int status);

// True when `status` says the process exited normally with status 0.
bool exited_successfully(int status);

// Owns one started child process.
//
// Kill policy: a ChildProcess that is destroyed (or assigned over) while its child has not been
// reaped sends it SIGKILL and reaps it, so no child outlives its owner by accident and none is
// left a zombie. A caller that wants the child to survive its owner (QEMU must keep running if
// the supervisor dies) calls release() first; a caller that wants a gentle stop sends SIGTERM
// with kill() and waits with wait_for() before the destructor runs.
//
// The pid stays valid for kill() until the child is reaped by this object (an unreaped child is
// a zombie whose pid the kernel cannot reuse), so kill() never signals a stranger. Not
// thread-safe; the owner must be the only one to waitpid() this pid.
class ChildProcess {
public:
    ChildProcess() = default;
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ChildProcess(ChildProcess&& other) noexcept;
    ChildProcess& operator=(ChildProcess&& other) noexcept;
    ~ChildProcess();

    // The child's pid, or -1 for an empty or released object.
    pid_t pid() const { return pid_; }
    explicit operator bool() const { return pid_ > 0; }

    // A pidfd for the child (readable once it has exited), or -1 if the kernel lacks
    // pidfd_open. Owned by this object; an event loop may poll it but must not close it.
    int pidfd() const { return pidfd_.get(); }

    // The raw wait status if the child has exited (reaping it), nullopt while it runs.
    // Once reaped, every later call returns the same status.
    std::optional<int> try_wait();

    // Waits until the child exits or `deadline` passes; the raw wait status or nullopt.
    std::optional<int> wait_for(std::chrono::steady_clock::time_point deadline);
    std::optional<int> wait_for(std::chrono::milliseconds timeout) {
        return wait_for(std::chrono::steady_clock::now() + timeout);
    }

    // Blocks until the child exits; its raw wait status.
    int wait();

    // Sends `sig` to the child. Does nothing once the child has been reaped. Throws
    // std::system_error if kill(2) fails for another reason.
    void kill(int sig);

    // Detaches: the child keeps running and is no longer killed or reaped by this object.
    // Returns its pid (or -1 if there was none or it had already been reaped).
    pid_t release();

private:
    friend ChildProcess spawn(const std::vector<std::string>& argv, const SpawnOptions& options);
    ChildProcess(pid_t pid, Fd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
    void kill_and_reap() noexcept;

    pid_t pid_ = -1;
    Fd pidfd_;
    std::optional<int> status_;  // set once reaped
};

// Whether spawn() can give a child RLIMIT_MEMLOCK `bytes`: the hard limit allows it already, or
// this process has CAP_SYS_RESOURCE to raise it (root usually has; some containers drop it).
bool can_set_memlock(std::uint64_t bytes);

// Starts argv[0] with the arguments argv[1..], each passed to the child byte for byte. A
// program name without '/' is looked up in PATH by the parent (the parent's PATH, or the PATH
// of options.environment when given). Throws SpawnError if argv is
// empty, the program is not found, the log file cannot be opened, or exec fails in the child
// (reported synchronously through a close-on-exec pipe, with the errno text).
ChildProcess spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});

}  // namespace kvmgpu::util
