#include "util/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "util/fd.hpp"

#include "temp_dir.hpp"

using kvmgpu::util::ChildProcess;
using kvmgpu::util::describe_wait_status;
using kvmgpu::util::exited_successfully;
using kvmgpu::util::spawn;
using kvmgpu::util::SpawnError;
using kvmgpu::util::SpawnOptions;
using namespace std::chrono_literals;

namespace {

using kvmgpu::testing::TempDir;

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

}  // namespace

TEST_CASE("describe_wait_status names exit codes and signals", "[process]") {
    // Real statuses from real children, so the test does not depend on the encoding.
    auto status_of = [](std::vector<std::string> argv) {
        auto child = spawn(argv);
        return child.wait();
    };
    CHECK(describe_wait_status(status_of({"/bin/true"})) == "exited with status 0");
    CHECK(describe_wait_status(status_of({"/bin/sh", "-c", "exit 3"})) == "exited with status 3");
    CHECK(describe_wait_status(status_of({"/bin/sh", "-c", "kill -KILL $$"})) ==
          "killed by signal 9 (SIGKILL)");
}

TEST_CASE("spawn runs /bin/true and reports a successful exit", "[process]") {
    auto child = spawn({"/bin/true"});
    REQUIRE(child.pid() > 0);
    const auto status = child.wait_for(10s);
    REQUIRE(status.has_value());
    CHECK(exited_successfully(*status));
    CHECK(describe_wait_status(*status) == "exited with status 0");
    // Once reaped, the status is remembered.
    CHECK(child.try_wait() == status);
}

TEST_CASE("spawn finds a program in PATH and reports a failing exit", "[process]") {
    auto child = spawn({"false"});
    const auto status = child.wait_for(10s);
    REQUIRE(status.has_value());
    CHECK_FALSE(exited_successfully(*status));
    CHECK(describe_wait_status(*status) == "exited with status 1");
}

TEST_CASE("spawn of a missing binary throws an error naming it and the cause", "[process]") {
    SECTION("an absolute path that does not exist fails at exec, reported through the pipe") {
        try {
            spawn({"/nonexistent/kvmgpu-no-such-binary", "arg"});
            FAIL("spawn did not throw");
        } catch (const SpawnError& e) {
            CHECK(std::string(e.what()) ==
                  "cannot start \"/nonexistent/kvmgpu-no-such-binary\": exec failed: No such file or directory");
        }
    }
    SECTION("a bare name that is not in PATH") {
        try {
            spawn({"kvmgpu-no-such-binary"});
            FAIL("spawn did not throw");
        } catch (const SpawnError& e) {
            CHECK_THAT(e.what(), Catch::StartsWith("cannot start \"kvmgpu-no-such-binary\": no executable named "
                                                   "\"kvmgpu-no-such-binary\" in PATH"));
        }
    }
    SECTION("a file that is not executable") {
        TempDir dir;
        const auto script = dir.path() / "not-executable";
        std::ofstream(script) << "#!/bin/sh\n";
        try {
            spawn({script.string()});
            FAIL("spawn did not throw");
        } catch (const SpawnError& e) {
            CHECK(std::string(e.what()) == "cannot start \"" + script.string() + "\": exec failed: Permission denied");
        }
    }
    SECTION("an empty argv") {
        CHECK_THROWS_WITH(spawn({}), "cannot start a process: its argv is empty");
    }
}

TEST_CASE("a child killed by a signal reports the signal", "[process]") {
    auto child = spawn({"/bin/sleep", "30"});
    CHECK_FALSE(child.try_wait().has_value());
    child.kill(SIGTERM);
    const auto status = child.wait_for(10s);
    REQUIRE(status.has_value());
    CHECK(WIFSIGNALED(*status));
    CHECK(WTERMSIG(*status) == SIGTERM);
    CHECK(describe_wait_status(*status) == "killed by signal 15 (SIGTERM)");
    // Signalling a reaped child is a no-op rather than a shot at a recycled pid.
    CHECK_NOTHROW(child.kill(SIGKILL));
}

TEST_CASE("wait_for returns nullopt at the deadline while the child runs", "[process]") {
    auto child = spawn({"/bin/sleep", "30"});
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(child.wait_for(50ms).has_value());
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(elapsed >= 50ms);
    CHECK(elapsed < 5s);
}

TEST_CASE("the log file receives stdout and stderr, appended", "[process]") {
    TempDir dir;
    const auto log = dir.path() / "child.log";
    std::ofstream(log) << "previous\n";
    SpawnOptions options;
    options.log_file = log;
    auto child = spawn({"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2"}, options);
    REQUIRE(child.wait_for(10s).value_or(-1) == 0);
    CHECK(read_file(log) == "previous\nto-stdout\nto-stderr\n");
}

TEST_CASE("arguments with spaces, commas and quotes reach the child unchanged", "[process]") {
    TempDir dir;
    const auto log = dir.path() / "echo.log";
    SpawnOptions options;
    options.log_file = log;
    auto child = spawn({"/bin/echo", "a b", "file=x,,y,cache=none", "'$HOME' \"*\"", ""}, options);
    REQUIRE(child.wait_for(10s).value_or(-1) == 0);
    CHECK(read_file(log) == "a b file=x,,y,cache=none '$HOME' \"*\" \n");
}

TEST_CASE("the child inherits no fds beyond stdio when close_other_fds is set", "[process]") {
    TempDir dir;
    const auto log = dir.path() / "fds.log";
    SpawnOptions options;
    options.log_file = log;
    // /proc/self/fd of `ls` lists 0, 1, 2 and the directory fd ls itself opens to read it.
    auto child = spawn({"/bin/ls", "/proc/self/fd"}, options);
    REQUIRE(child.wait_for(10s).value_or(-1) == 0);
    CHECK(read_file(log) == "0\n1\n2\n3\n");
}

TEST_CASE("inherit_fds gives the child a close-on-exec fd under its number, and only that one", "[process]") {
    TempDir dir;
    const auto log = dir.path() / "fds.log";
    int kept_fds[2];
    int other_fds[2];
    REQUIRE(::pipe2(kept_fds, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(other_fds, O_CLOEXEC) == 0);
    const kvmgpu::util::Fd kept_read(kept_fds[0]), kept_write(kept_fds[1]);
    const kvmgpu::util::Fd other_read(other_fds[0]), other_write(other_fds[1]);
    SpawnOptions options;
    options.log_file = log;
    options.inherit_fds = {kept_write.get()};
    // The child writes into the inherited pipe through its number; ls lists what it holds.
    const std::string n = std::to_string(kept_write.get());
    auto child = spawn({"/bin/sh", "-c", "echo hello >&" + n + " && ls /proc/self/fd", "sh"}, options);
    REQUIRE(child.wait_for(10s).value_or(-1) == 0);
    char buffer[16] = {};
    REQUIRE(::read(kept_read.get(), buffer, sizeof buffer) == 6);
    CHECK(std::string(buffer) == "hello\n");
    // ls sees 0-2, the kept fd and its own directory fd (the lowest free number), nothing else.
    std::istringstream listed(read_file(log));
    std::vector<int> fds;
    for (int fd; listed >> fd;) fds.push_back(fd);
    CHECK(std::count(fds.begin(), fds.end(), kept_write.get()) == 1);
    CHECK(std::count(fds.begin(), fds.end(), other_write.get()) == 0);
    CHECK(fds.size() == 5);
    // The parent's copy stays close-on-exec.
    CHECK((::fcntl(kept_write.get(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("inherit_fds refuses a closed fd or a standard stream", "[process]") {
    SpawnOptions options;
    options.inherit_fds = {1000};
    CHECK_THROWS_AS(spawn({"/bin/true"}, options), SpawnError);
    options.inherit_fds = {1};
    CHECK_THROWS_AS(spawn({"/bin/true"}, options), SpawnError);
}

TEST_CASE("new_session puts the child in its own session", "[process]") {
    TempDir dir;
    const auto log = dir.path() / "sid.log";
    SpawnOptions options;
    options.log_file = log;
    options.new_session = true;
    // ps is not always installed; the shell reads its session id from /proc instead.
    auto child = spawn({"/bin/sh", "-c", "cut -d' ' -f6 /proc/$$/stat; echo $$"}, options);
    REQUIRE(child.wait_for(10s).value_or(-1) == 0);
    const auto text = read_file(log);
    const auto newline = text.find('\n');
    REQUIRE(newline != std::string::npos);
    CHECK(text.substr(0, newline) + "\n" == text.substr(newline + 1));  // session id == own pid
    CHECK(std::stoi(text.substr(0, newline)) != ::getsid(0));
}

TEST_CASE("the destructor kills and reaps a running child", "[process]") {
    pid_t pid = -1;
    {
        auto child = spawn({"/bin/sleep", "30"});
        pid = child.pid();
        REQUIRE(::kill(pid, 0) == 0);
    }
    // Reaped, not a zombie: the pid no longer exists.
    errno = 0;
    CHECK(::kill(pid, 0) == -1);
    CHECK(errno == ESRCH);
}

TEST_CASE("release detaches a child so it survives its owner", "[process]") {
    pid_t pid = -1;
    {
        auto child = spawn({"/bin/sleep", "30"});
        pid = child.release();
        CHECK(child.pid() == -1);
    }
    REQUIRE(pid > 0);
    CHECK(::kill(pid, 0) == 0);
    // Clean up the detached child ourselves.
    ::kill(pid, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WTERMSIG(status) == SIGKILL);
}

TEST_CASE("move assignment applies the kill policy to the replaced child", "[process]") {
    auto first = spawn({"/bin/sleep", "30"});
    const pid_t first_pid = first.pid();
    first = spawn({"/bin/true"});
    errno = 0;
    CHECK(::kill(first_pid, 0) == -1);
    CHECK(errno == ESRCH);
    CHECK(first.wait() == 0);
}

TEST_CASE("spawn gives the child exactly the environment it is told, and finds the program in its PATH",
          "[process]") {
    TempDir dir;
    const auto log = dir.path() / "env.log";
    ::setenv("KVMGPU_TEST_SECRET", "hunter2", 1);
    SpawnOptions options;
    options.log_file = log;
    options.environment = std::vector<std::string>{"PATH=/usr/bin:/bin", "HOME=/nonexistent"};
    auto child = spawn({"env"}, options);
    REQUIRE(exited_successfully(child.wait()));
    ::unsetenv("KVMGPU_TEST_SECRET");
    CHECK(read_file(log) == "PATH=/usr/bin:/bin\nHOME=/nonexistent\n");

    options.environment = std::vector<std::string>{"NOT AN ENTRY"};
    CHECK_THROWS_WITH(spawn({"/bin/true"}, options), Catch::Contains("\"NOT AN ENTRY\" is not NAME=VALUE"));
}

TEST_CASE("spawn runs the child as another user with its groups, a memlock limit and a umask", "[process]") {
    TempDir dir;
    const auto log = dir.path() / "status.log";
    SpawnOptions options;
    options.log_file = log;
    options.credentials = kvmgpu::util::Credentials{65534, 65534, {65534}};
    // Lowering the limit always works; raising it needs CAP_SYS_RESOURCE (can_set_memlock).
    const std::uint64_t memlock = kvmgpu::util::can_set_memlock(std::uint64_t{3} << 30) ? std::uint64_t{3} << 30 : 4 << 20;
    options.memlock_limit = memlock;
    options.umask = 0077;
    const std::vector<std::string> argv{"/bin/sh", "-c", "cat /proc/self/status /proc/self/limits; umask"};
    if (::geteuid() != 0) {
        // Only root may switch users: an unprivileged parent gets the child's precise error.
        CHECK_THROWS_WITH(spawn(argv, options), Catch::Contains("failed in the child: Operation not permitted"));
        return;
    }
    auto child = spawn(argv, options);
    REQUIRE(exited_successfully(child.wait()));
    const auto text = read_file(log);
    INFO(text);
    CHECK(text.find("\nUid:\t65534\t65534\t65534\t65534\n") != std::string::npos);
    CHECK(text.find("\nGid:\t65534\t65534\t65534\t65534\n") != std::string::npos);
    CHECK(text.find("\nGroups:\t65534 \n") != std::string::npos);
    const auto limit = std::to_string(memlock);
    CHECK(text.find("Max locked memory         " + limit + std::string(21 - limit.size(), ' ') + limit) != std::string::npos);
    CHECK(text.ends_with("0077\n"));
}
