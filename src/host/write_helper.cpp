#include "host/write_helper.hpp"

#include <fcntl.h>
#include <linux/limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

namespace kvmgpu::host {
namespace {

// One request is one SOCK_SEQPACKET message: this header, the path with its NUL, the data.
struct RequestHeader {
    std::uint32_t path_bytes;  // the NUL included
    std::uint32_t data_bytes;
};
constexpr std::size_t kMaxRequestBytes = sizeof(RequestHeader) + PATH_MAX + kMaxHelperWriteBytes;

// The child's fd for its end of the socket pair, after it closed everything else.
constexpr int kChildSocket = 3;

// Everything below runs in the forked child: async-signal-safe calls only.

void close_all_but(int keep) {
    // close_range (Linux 5.9); before it, one close per possible fd.
    if (keep > 0 && ::close_range(0, static_cast<unsigned>(keep - 1), 0) == 0 &&
        ::close_range(static_cast<unsigned>(keep + 1), ~0U, 0) == 0)
        return;
    unsigned limit = 65536;
    rlimit rl;
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < limit) limit = static_cast<unsigned>(rl.rlim_cur);
    for (unsigned fd = 0; fd < limit; ++fd)
        if (static_cast<int>(fd) != keep) ::close(static_cast<int>(fd));
}

// open(O_WRONLY|O_TRUNC) without O_CREAT, one write(2) of everything, close(2): 0 or the errno.
int write_file(const char* file, const char* data, std::size_t size) {
    const int fd = ::open(file, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) return errno;
    const ssize_t n = ::write(fd, data, size);
    const int write_error = n < 0 ? errno : static_cast<std::size_t>(n) != size ? EIO : 0;
    // sysfs reports some store errors only at close.
    const int close_error = ::close(fd) != 0 ? errno : 0;
    return write_error ? write_error : close_error;
}

// The result of one request message of `size` bytes in `buffer`.
int serve(char* buffer, std::size_t size) {
    RequestHeader header;
    if (size < sizeof header) return EPROTO;
    std::memcpy(&header, buffer, sizeof header);
    char* path = buffer + sizeof header;
    if (header.path_bytes == 0 || header.path_bytes > PATH_MAX || header.data_bytes > kMaxHelperWriteBytes ||
        sizeof header + header.path_bytes + header.data_bytes != size || path[header.path_bytes - 1] != '\0')
        return EPROTO;
    return write_file(path, path + header.path_bytes, header.data_bytes);
}

[[noreturn]] void serve_requests(int socket) {
    if (::dup2(socket, kChildSocket) < 0) ::_exit(1);
    close_all_but(kChildSocket);
    ::prctl(PR_SET_NAME, "kvmgpu-sysfs");
    char buffer[kMaxRequestBytes];
    for (;;) {
        const ssize_t n = ::recv(kChildSocket, buffer, sizeof buffer, MSG_TRUNC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) ::_exit(0);  // the launcher closed its end: done
        const std::int32_t result = static_cast<std::size_t>(n) > sizeof buffer ? EPROTO : serve(buffer, static_cast<std::size_t>(n));
        if (::send(kChildSocket, &result, sizeof result, MSG_NOSIGNAL) != sizeof result) ::_exit(0);
    }
}

void reap(pid_t pid) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
}

}  // namespace

int WriteHelper::start() {
    end();
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return errno;
    util::Fd ours(pair[0]), theirs(pair[1]);
    // The child starts with every signal blocked: no handler of the launcher runs in it (they
    // are inherited, and not safe after a fork in a threaded process), and a Ctrl-C sent to the
    // process group does not cut a write short. SIGKILL still ends it.
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    const pid_t pid = ::fork();
    if (pid == 0) serve_requests(theirs.get());
    const int fork_error = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) return fork_error;
    pid_ = pid;
    socket_ = std::move(ours);
    return 0;
}

int WriteHelper::request(const char* file, std::string_view data) {
    const std::size_t path_bytes = std::strlen(file) + 1;
    if (path_bytes > PATH_MAX) return ENAMETOOLONG;
    if (data.size() > kMaxHelperWriteBytes) return E2BIG;
    RequestHeader header{static_cast<std::uint32_t>(path_bytes), static_cast<std::uint32_t>(data.size())};
    iovec parts[3] = {{&header, sizeof header},
                      {const_cast<char*>(file), path_bytes},
                      {const_cast<char*>(data.data()), data.size()}};
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = 3;
    ssize_t n;
    do n = ::sendmsg(socket_.get(), &message, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) return errno == ECONNRESET ? EPIPE : errno;
    return 0;
}

int WriteHelper::answer() {
    std::int32_t result = 0;
    ssize_t n;
    do n = ::recv(socket_.get(), &result, sizeof result, 0);
    while (n < 0 && errno == EINTR);
    if (n == sizeof result) return result;
    // Ended without an answer: killed by someone else's signal, mid-write or not.
    socket_.reset();
    reap(std::exchange(pid_, -1));
    return EIO;
}

void WriteHelper::end() {
    if (!running()) return;
    socket_.reset();
    ::kill(pid_, SIGKILL);
    reap(std::exchange(pid_, -1));
}

pid_t WriteHelper::abandon() {
    socket_.reset();
    if (running()) ::kill(pid_, SIGKILL);
    return std::exchange(pid_, -1);
}

}  // namespace kvmgpu::host
