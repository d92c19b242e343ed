#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

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
