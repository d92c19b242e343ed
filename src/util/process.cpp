#include "util/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <system_error>
#include <thread>

#include "util/text.hpp"

namespace kvmgpu::util {
namespace {

// What the child writes into the close-on-exec pipe when a step before exec (or exec itself)
// fails. An empty read in the parent means exec succeeded.
struct ChildFailure {
    int stage;
    int error;
};

enum Stage : int {
    kStageSetsid = 1,
    kStageStdin,
    kStageLog,
    kStageInherit,
    kStageRlimit,
    kStageGroups,
    kStageGid,
    kStageUid,
    kStageExec,
};

const char* stage_text(int stage) {
    switch (stage) {
        case kStageSetsid: return "setsid() failed in the child";
        case kStageStdin: return "redirecting stdin to /dev/null failed in the child";
        case kStageLog: return "redirecting stdout and stderr to the log file failed in the child";
        case kStageInherit: return "clearing FD_CLOEXEC of an inherited fd failed in the child";
        case kStageRlimit: return "setting RLIMIT_MEMLOCK failed in the child";
        case kStageGroups: return "setgroups() failed in the child";
        case kStageGid: return "setresgid() failed in the child";
        case kStageUid: return "setresuid() failed in the child";
        case kStageExec: return "exec failed";
        default: return "the child failed before exec";
    }
}

std::string errno_text(int error) { return std::error_code(error, std::generic_category()).message(); }

bool is_executable_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// The path exec should use for `name`: itself when it contains '/', else the first executable
// regular file named `name` in a PATH directory. Resolving in the parent keeps the child free
// of allocation after fork() and gives a precise error.
std::string resolve_program(const std::string& name, const std::optional<std::vector<std::string>>& environment) {
    if (name.find('/') != std::string::npos) return name;
    const char* env_path = std::getenv("PATH");
    if (environment) {
        env_path = nullptr;
        for (const auto& entry : *environment)
            if (entry.starts_with("PATH=")) env_path = entry.c_str() + 5;
    }
    const std::string_view path_list = env_path != nullptr ? env_path : "/usr/local/bin:/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= path_list.size()) {
        std::size_t end = path_list.find(':', start);
        if (end == std::string_view::npos) end = path_list.size();
        std::string dir(path_list.substr(start, end - start));
        if (dir.empty()) dir = ".";  // POSIX: an empty PATH entry means the current directory
        std::string candidate = dir + "/" + name;
        if (is_executable_file(candidate)) return candidate;
        start = end + 1;
    }
    throw SpawnError("cannot start " + util::quoted(name) + ": no executable named " + util::quoted(name) +
                     " in PATH " + util::quoted(path_list));
}

Fd open_cloexec(const char* path, int flags, mode_t mode = 0) {
    int fd;
    do {
        fd = ::open(path, flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    return Fd(fd);
}

// Makes `from` available as `to` across exec. dup2(fd, fd) would leave FD_CLOEXEC set, so the
// equal case clears the flag instead. Async-signal-safe.
bool install_fd(int from, int to) {
    if (from == to) return ::fcntl(to, F_SETFD, 0) == 0;
    return ::dup2(from, to) == to;
}

[[noreturn]] void child_fail(int pipe_fd, int stage) {
    const ChildFailure failure{stage, errno};
    // Nothing useful can be done if this write fails: the parent then sees exit status 127.
    [[maybe_unused]] const auto written = ::write(pipe_fd, &failure, sizeof failure);
    ::_exit(127);
}

// Closes every fd from 3 up except those in `keep` (sorted, unique, each above 2).
// Async-signal-safe.
void close_fds_except(const std::vector<int>& keep, long open_max) {
    unsigned first = 3;
    bool ok = true;
    for (const int fd : keep) {
        const auto k = static_cast<unsigned>(fd);
        if (ok && k > first) ok = ::close_range(first, k - 1, 0) == 0;
        first = k + 1;
    }
    if (ok) ok = ::close_range(first, ~0U, 0) == 0;
    if (ok) return;
    // Kernels before 5.9 lack close_range: close one by one.
    for (long fd = 3; fd < open_max; ++fd) {
        if (!std::binary_search(keep.begin(), keep.end(), static_cast<int>(fd))) ::close(static_cast<int>(fd));
    }
}

std::optional<int> waitpid_nohang(pid_t pid) {
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r == 0) return std::nullopt;
        if (errno != EINTR) {
            throw std::system_error(errno, std::generic_category(),
                                    "waitpid() for child process " + std::to_string(pid) + " failed");
        }
    }
}

int waitpid_blocking(pid_t pid) {
    for (;;) {
        int status = 0;
        if (::waitpid(pid, &status, 0) == pid) return status;
        if (errno != EINTR) {
            throw std::system_error(errno, std::generic_category(),
                                    "waitpid() for child process " + std::to_string(pid) + " failed");
        }
    }
}

}  // namespace

std::string describe_wait_status(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    auto signal_text = [](int sig) {
        std::string text = "signal " + std::to_string(sig);
        if (const char* abbrev = ::sigabbrev_np(sig)) text += std::string(" (SIG") + abbrev + ")";
        return text;
    };
    if (WIFSIGNALED(status)) {
        std::string text = "killed by " + signal_text(WTERMSIG(status));
        if (WCOREDUMP(status)) text += ", core dumped";
        return text;
    }
    if (WIFSTOPPED(status)) return "stopped by " + signal_text(WSTOPSIG(status));
    if (WIFCONTINUED(status)) return "continued";
    return "ended with unknown wait status " + std::to_string(status);
}

bool exited_successfully(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      status_(std::exchange(other.status_, std::nullopt)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
    if (this != &other) {
        kill_and_reap();
        pid_ = std::exchange(other.pid_, -1);
        pidfd_ = std::move(other.pidfd_);
        status_ = std::exchange(other.status_, std::nullopt);
    }
    return *this;
}

ChildProcess::~ChildProcess() { kill_and_reap(); }

void ChildProcess::kill_and_reap() noexcept {
    if (pid_ > 0 && !status_) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    pid_ = -1;
    pidfd_.reset();
    status_.reset();
}

std::optional<int> ChildProcess::try_wait() {
    if (status_ || pid_ <= 0) return status_;
    status_ = waitpid_nohang(pid_);
    if (status_) pidfd_.reset();
    return status_;
}

std::optional<int> ChildProcess::wait_for(std::chrono::steady_clock::time_point deadline) {
    using namespace std::chrono;
    for (;;) {
        if (auto status = try_wait()) return status;
        if (pid_ <= 0) return std::nullopt;
        const auto now = steady_clock::now();
        if (now >= deadline) return std::nullopt;
        const auto left = ceil<milliseconds>(deadline - now);
        if (pidfd_) {
            pollfd pfd{pidfd_.get(), POLLIN, 0};
            ::poll(&pfd, 1, static_cast<int>(std::min<milliseconds::rep>(left.count(), INT_MAX)));
        } else {
            // No pidfd (kernel < 5.3): poll the wait status at a short interval.
            std::this_thread::sleep_for(std::min<milliseconds>(left, milliseconds(10)));
        }
    }
}

int ChildProcess::wait() {
    if (pid_ <= 0 && !status_) throw std::logic_error("ChildProcess::wait() called without a child process");
    if (!status_) {
        status_ = waitpid_blocking(pid_);
        pidfd_.reset();
    }
    return *status_;
}

void ChildProcess::kill(int sig) {
    if (pid_ <= 0 || status_) return;
    if (::kill(pid_, sig) != 0) {
        throw std::system_error(errno, std::generic_category(),
                                "sending signal " + std::to_string(sig) + " to child process " +
                                    std::to_string(pid_) + " failed");
    }
}

pid_t ChildProcess::release() {
    const pid_t pid = status_ ? -1 : pid_;
    pid_ = -1;
    pidfd_.reset();
    status_.reset();
    return pid;
}

bool can_set_memlock(std::uint64_t bytes) {
    rlimit current{};
    if (::getrlimit(RLIMIT_MEMLOCK, &current) == 0 && (current.rlim_max == RLIM_INFINITY || current.rlim_max >= bytes))
        return true;
    // capget(2), version 3: two 32-bit words per set; CAP_SYS_RESOURCE is 24, in the first.
    struct {
        std::uint32_t version;
        int pid;
    } header{0x20080522, 0};
    struct {
        std::uint32_t effective, permitted, inheritable;
    } data[2]{};
    constexpr unsigned kCapSysResource = 24;
    return ::syscall(SYS_capget, &header, data) == 0 && (data[0].effective & (1U << kCapSysResource)) != 0;
}

ChildProcess spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
    if (argv.empty() || argv.front().empty()) throw SpawnError("cannot start a process: its argv is empty");
    for (std::size_t i = 0; i < argv.size(); ++i) {
        if (argv[i].find('\0') != std::string::npos) {
            throw SpawnError("cannot start " + util::quoted(argv.front()) + ": argument " + std::to_string(i) +
                             " contains a NUL byte");
        }
    }
    const std::string program = resolve_program(argv.front(), options.environment);

    // Everything the child needs is prepared here: after fork() in a threaded process only
    // async-signal-safe calls are allowed, so the child must not allocate.
    std::vector<char*> cargv;
    cargv.reserve(argv.size() + 1);
    for (const auto& arg : argv) cargv.push_back(const_cast<char*>(arg.c_str()));
    cargv.push_back(nullptr);
    std::vector<char*> cenv;
    if (options.environment) {
        cenv.reserve(options.environment->size() + 1);
        for (const auto& entry : *options.environment) {
            if (entry.find('\0') != std::string::npos || entry.find('=') == std::string::npos)
                throw SpawnError("cannot start " + util::quoted(argv.front()) + ": the environment entry " +
                                 util::quoted(entry) + " is not NAME=VALUE");
            cenv.push_back(const_cast<char*>(entry.c_str()));
        }
        cenv.push_back(nullptr);
    }
    char** const child_env = options.environment ? cenv.data() : environ;

    Fd log_fd;
    if (options.log_file) {
        log_fd = open_cloexec(options.log_file->c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
        if (!log_fd) {
            throw SpawnError("cannot start " + util::quoted(argv.front()) + ": cannot open log file " +
                             util::quoted(options.log_file->string()) + ": " + errno_text(errno));
        }
    }
    Fd null_fd;
    if (options.stdin_null) {
        null_fd = open_cloexec("/dev/null", O_RDONLY);
        if (!null_fd) {
            throw SpawnError("cannot start " + util::quoted(argv.front()) + ": cannot open /dev/null: " +
                             errno_text(errno));
        }
    }
    const long open_max = std::clamp(::sysconf(_SC_OPEN_MAX), 256L, 1L << 20);
    for (const int fd : options.inherit_fds) {
        if (fd <= STDERR_FILENO || ::fcntl(fd, F_GETFD) < 0)
            throw SpawnError("cannot start " + util::quoted(argv.front()) + ": the fd " + std::to_string(fd) +
                             " it should inherit is not an open descriptor above 2");
    }

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        throw SpawnError("cannot start " + util::quoted(argv.front()) + ": pipe2() failed: " + errno_text(errno));
    }
    Fd pipe_read(pipe_fds[0]);
    Fd pipe_write(pipe_fds[1]);
    // The fds the child keeps open: the failure pipe (close-on-exec) and the inherited ones.
    std::vector<int> keep = options.inherit_fds;
    keep.push_back(pipe_write.get());
    std::sort(keep.begin(), keep.end());
    keep.erase(std::unique(keep.begin(), keep.end()), keep.end());

    const pid_t pid = ::fork();
    if (pid < 0) {
        throw SpawnError("cannot start " + util::quoted(argv.front()) + ": fork() failed: " + errno_text(errno));
    }
    if (pid == 0) {
        const int report = pipe_write.get();
        // The parent may block signals or ignore some (SIGPIPE); the child starts clean.
        sigset_t none;
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int sig = 1; sig < NSIG; ++sig) {
            if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
        }
        if (options.new_session && ::setsid() < 0) child_fail(report, kStageSetsid);
        if (null_fd && !install_fd(null_fd.get(), STDIN_FILENO)) child_fail(report, kStageStdin);
        if (log_fd && (!install_fd(log_fd.get(), STDOUT_FILENO) || !install_fd(log_fd.get(), STDERR_FILENO))) {
            child_fail(report, kStageLog);
        }
        if (options.close_other_fds) close_fds_except(keep, open_max);
        for (const int fd : options.inherit_fds)
            if (!install_fd(fd, fd)) child_fail(report, kStageInherit);
        if (options.umask) ::umask(*options.umask);
        if (options.memlock_limit) {
            const rlimit limit{*options.memlock_limit, *options.memlock_limit};
            if (::setrlimit(RLIMIT_MEMLOCK, &limit) != 0) child_fail(report, kStageRlimit);
        }
        if (const auto& c = options.credentials) {
            // Groups first: once the uid is dropped, the child may no longer change them.
            if (::setgroups(c->groups.size(), c->groups.data()) != 0) child_fail(report, kStageGroups);
            if (::setresgid(c->gid, c->gid, c->gid) != 0) child_fail(report, kStageGid);
            if (::setresuid(c->uid, c->uid, c->uid) != 0) child_fail(report, kStageUid);
        }
        ::execve(program.c_str(), cargv.data(), child_env);
        child_fail(report, kStageExec);
    }

    pipe_write.reset();
    ChildFailure failure{};
    ssize_t got;
    do {
        got = ::read(pipe_read.get(), &failure, sizeof failure);
    } while (got < 0 && errno == EINTR);
    if (got == static_cast<ssize_t>(sizeof failure)) {
        waitpid_blocking(pid);
        std::string what = "cannot start " + util::quoted(argv.front());
        if (program != argv.front()) what += " (" + util::quoted(program) + ")";
        throw SpawnError(what + ": " + stage_text(failure.stage) + ": " + errno_text(failure.error));
    }

    // pidfd_open (Linux 5.3) gives a pollable handle; without it wait_for() polls waitpid.
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    return ChildProcess(pid, std::move(pidfd));
}

}  // namespace kvmgpu::util
