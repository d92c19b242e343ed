#include <catch2/catch.hpp>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <fstream>

#include "util/proc.hpp"

using namespace kvmgpu::util;

TEST_CASE("our own process is alive with its start time, and not with another", "[util]") {
    const auto start = process_start_time(::getpid());
    REQUIRE(start);
    CHECK(process_alive(::getpid()));
    CHECK(process_alive(::getpid(), *start));
    CHECK_FALSE(process_alive(::getpid(), *start + 1));  // a reused pid is another process
}

TEST_CASE("an exited child is not alive, as a zombie and once reaped", "[util]") {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    // Wait for the exit but leave the zombie (WNOWAIT): it must already count as gone.
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT) == 0);
    CHECK_FALSE(process_alive(child));
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK_FALSE(process_alive(child));
    CHECK_FALSE(process_start_time(child));
    CHECK_FALSE(process_alive(0));
    CHECK_FALSE(process_alive(-5));
}

TEST_CASE("a process whose name has spaces and parentheses still has its start time", "[util]") {
    // /proc/PID/stat shows the name in parentheses; the fields after the last ')' count.
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::prctl(PR_SET_NAME, "a) b (c) 7 8");
        (void)!::write(ready[1], "x", 1);
        ::pause();
        ::_exit(0);
    }
    char byte = 0;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    const auto start = process_start_time(child);
    const auto own = process_start_time(::getpid());
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::close(ready[0]);
    ::close(ready[1]);
    REQUIRE(start);
    REQUIRE(own);
    // The child started after this process and before now (the uptime, in the same clock ticks).
    double uptime = 0;
    std::ifstream("/proc/uptime") >> uptime;
    CHECK(*start >= *own);
    CHECK(*start <= static_cast<std::uint64_t>(uptime * static_cast<double>(::sysconf(_SC_CLK_TCK))) + 1);
}
