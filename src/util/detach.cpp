#include "util/detach.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

namespace kvmgpu::util {
namespace {

// The byte that ends the child's messages when it is ready: never part of the text it sends
// (rendered events, which hold no NUL).
constexpr char kReady = '\0';

void write_all(int fd, std::string_view text) {
    while (!text.empty()) {
        const auto n = ::write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

}  // namespace

void ForegroundLink::send(std::string_view text) {
    if (fd_) write_all(fd_.get(), text);
}

void ForegroundLink::ready() {
    if (!fd_) return;
    write_all(fd_.get(), std::string_view(&kReady, 1));
    fd_.reset();
}

Detached detach(int log_fd) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "cannot make a pipe");
    Fd read_end(fds[0]), write_end(fds[1]);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::system_error(errno, std::generic_category(), "cannot fork");
    Detached d;
    if (pid > 0) {
        d.child = pid;
        d.from_child = std::move(read_end);
        return d;
    }
    read_end.reset();
    ::setsid();
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) {
        ::dup2(null, STDIN_FILENO);
        ::close(null);
    }
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    d.in_child = true;
    d.link = ForegroundLink(std::move(write_end));
    return d;
}

int wait_until_ready(pid_t child, Fd from_child, const std::function<void(std::string_view)>& forward) {
    char buf[4096];
    while (true) {
        const auto n = ::read(from_child.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        std::string_view chunk(buf, static_cast<std::size_t>(n));
        if (const auto end = chunk.find(kReady); end != std::string_view::npos) {
            if (forward && end > 0) forward(chunk.substr(0, end));
            return 0;
        }
        if (forward) forward(chunk);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0)
        if (errno != EINTR) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace kvmgpu::util
