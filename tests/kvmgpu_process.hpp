#pragma once
// Test helper: runs the real kvmgpu binary as a child with its stdout on a pipe, so a test can
// wait for the JSON events of `kvmgpu run --json` with deadlines, signal it, and read its exit.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "temp_dir.hpp"

namespace kvmgpu::testing {

using Clock = std::chrono::steady_clock;

// Environment variables ("NAME=VALUE") a test adds to kvmgpu's own.
using Env = std::vector<std::string>;

// In a forked child: becomes kvmgpu with `args` (no shell) and `env` added to the environment, or
// exits 127.
[[noreturn]] inline void exec_kvmgpu(const std::vector<std::string>& args, const Env& env = {}) {
    for (const auto& e : env) {
        const auto eq = e.find('=');
        ::setenv(e.substr(0, eq).c_str(), e.substr(eq + 1).c_str(), 1);
    }
    std::vector<char*> argv{const_cast<char*>(KVMGPU_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(KVMGPU_BINARY, argv.data());
    ::_exit(127);
}

struct Output {
    int status = -1;  // exit code, or 128 + signal
    std::string out, err;
};

// Runs kvmgpu to completion (stdout and stderr captured through files).
// The exit status (128 + N for a signal) and what the child wrote to the files OUT and ERR.
inline Output collected_output(int raw, const std::filesystem::path& out, const std::filesystem::path& err) {
    auto slurp = [](const std::filesystem::path& path) {
        std::string s;
        if (FILE* f = std::fopen(path.c_str(), "r")) {
            char buf[4096];
            std::size_t n;
            while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
            std::fclose(f);
        }
        return s;
    };
    Output o;
    o.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    o.out = slurp(out);
    o.err = slurp(err);
    return o;
}

inline Output kvmgpu_run(const std::vector<std::string>& args, const std::filesystem::path& scratch, const Env& env = {}) {
    const auto out = scratch / "cmd.out", err = scratch / "cmd.err";
    const pid_t pid = ::fork();
    if (pid == 0) {
        int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(o, 1);
        ::dup2(e, 2);
        exec_kvmgpu(args, env);
    }
    int raw = 0;
    ::waitpid(pid, &raw, 0);
    return collected_output(raw, out, err);
}

// Runs kvmgpu like kvmgpu_run, for input that might make it hang or grow without bound: it is
// killed (SIGKILL, status 128 + 9) at `timeout`, and its data segment is limited to
// `data_limit` bytes when the tests are not built with AddressSanitizer (whose shadow memory
// does not fit such a limit).
inline Output kvmgpu_run_bounded(const std::vector<std::string>& args, const std::filesystem::path& scratch,
                                 std::chrono::seconds timeout, rlim_t data_limit, const Env& env = {}) {
    const auto out = scratch / "cmd.out", err = scratch / "cmd.err";
    const pid_t pid = ::fork();
    if (pid == 0) {
#if !defined(__SANITIZE_ADDRESS__)
        const rlimit limit{data_limit, data_limit};
        ::setrlimit(RLIMIT_DATA, &limit);
#else
        (void)data_limit;
#endif
        int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(o, 1);
        ::dup2(e, 2);
        exec_kvmgpu(args, env);
    }
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    pollfd p{pidfd, POLLIN, 0};
    const auto deadline = Clock::now() + timeout;
    while (pidfd >= 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) > 0) break;
    }
    int raw = 0;
    if (::waitpid(pid, &raw, WNOHANG) == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &raw, 0);
    }
    if (pidfd >= 0) ::close(pidfd);
    return collected_output(raw, out, err);
}

// A long-running `kvmgpu ...` (the supervisor): stdout is a pipe read line by line; stderr goes
// to a file. The destructor kills it (SIGKILL) if it still runs, and reaps it.
class Supervisor {
public:
    Supervisor(const std::vector<std::string>& args, const std::filesystem::path& err_file, const Env& env = {}) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(fds[1], 1);
            int e = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            ::dup2(e, 2);
            exec_kvmgpu(args, env);
        }
        ::close(fds[1]);
        out_ = fds[0];
    }
    ~Supervisor() {
        if (pid_ > 0 && !status_) {
            ::kill(pid_, SIGKILL);
            int raw;
            ::waitpid(pid_, &raw, 0);
        }
        if (out_ >= 0) ::close(out_);
    }
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    pid_t pid() const { return pid_; }

    // The next JSON line from stdout; nullopt at EOF. Throws at the deadline.
    std::optional<nlohmann::json> next(Clock::time_point deadline) {
        while (true) {
            if (auto nl = buf_.find('\n'); nl != std::string::npos) {
                auto line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return nlohmann::json::parse(line);
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) throw std::runtime_error("no output from kvmgpu before the deadline");
            pollfd p{out_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            char chunk[4096];
            const auto n = ::read(out_, chunk, sizeof chunk);
            if (n <= 0) return std::nullopt;
            buf_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    // Reads events until one named `name`; returns it. Throws at EOF or the deadline.
    nlohmann::json wait_event(const std::string& name, std::chrono::seconds timeout = std::chrono::seconds(60)) {
        const auto deadline = Clock::now() + timeout;
        while (auto e = next(deadline)) {
            seen.push_back(*e);
            if (e->value("event", "") == name) return *e;
        }
        throw std::runtime_error("kvmgpu ended before the event \"" + name + "\"");
    }

    // Waits for the exit; the exit code or 128 + signal. Throws at the deadline.
    int wait(std::chrono::seconds timeout = std::chrono::seconds(60)) {
        const auto deadline = Clock::now() + timeout;
        // Drain stdout to EOF (the process closes it when it exits) so it never blocks on a
        // full pipe, keeping the events for the test.
        while (out_ >= 0) {
            auto e = next(deadline);
            if (!e) break;
            seen.push_back(*e);
        }
        int raw = 0;
        ::waitpid(pid_, &raw, 0);
        status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
        return *status_;
    }

    void signal(int sig) { ::kill(pid_, sig); }

    // Closes our end of its stdout, as `kvmgpu run | head -n 1` does once head has its line.
    void close_stdout() {
        if (out_ >= 0) ::close(out_);
        out_ = -1;
    }

    std::vector<nlohmann::json> seen;  // every event read so far

private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string buf_;
    std::optional<int> status_;
};

}  // namespace kvmgpu::testing
