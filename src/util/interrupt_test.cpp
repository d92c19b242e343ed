#include "util/interrupt.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>

using namespace kvmgpu::util;
using namespace std::chrono_literals;
using std::chrono::steady_clock;

namespace {

struct Pipe {
    Fd read, write;
    Pipe() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        read.reset(fds[0]);
        write.reset(fds[1]);
    }
};

bool blocked(int signal) {
    sigset_t mask;
    ::pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    return sigismember(&mask, signal) == 1;
}

// Takes every signal still pending before the Interrupt restores the mask, so that a failing
// check cannot let a raised signal through to Catch's handler. Declare it after the Interrupt.
struct Drain {
    Interrupt& interrupt;
    ~Drain() {
        while (interrupt.pending()) {
        }
    }
};

}  // namespace

TEST_CASE("a signal raised while an Interrupt exists is pending instead of fatal", "[util][interrupt]") {
    Interrupt interrupt;
    Drain drain{interrupt};
    CHECK(interrupt.pending() == std::nullopt);
    CHECK(interrupt.received() == std::nullopt);

    REQUIRE(::raise(SIGTERM) == 0);
    CHECK(interrupt.pending() == SIGTERM);
    CHECK(interrupt.pending() == std::nullopt);  // taken
    CHECK(interrupt.received() == SIGTERM);      // and remembered

    REQUIRE(::raise(SIGINT) == 0);
    CHECK(interrupt.pending() == SIGINT);
    CHECK(interrupt.received() == SIGTERM);  // the first one stays the reason
}

TEST_CASE("an Interrupt blocks the stop signals only for its lifetime", "[util][interrupt]") {
    const bool hup_before = blocked(SIGHUP);
    const bool usr1_before = blocked(SIGUSR1);
    REQUIRE_FALSE(blocked(SIGINT));
    REQUIRE_FALSE(blocked(SIGTERM));
    {
        Interrupt interrupt;
        CHECK(blocked(SIGINT));
        CHECK(blocked(SIGTERM));
        CHECK(blocked(SIGHUP));
        CHECK(blocked(SIGUSR1) == usr1_before);
    }
    CHECK_FALSE(blocked(SIGINT));
    CHECK_FALSE(blocked(SIGTERM));
    CHECK(blocked(SIGHUP) == hup_before);
    CHECK(blocked(SIGUSR1) == usr1_before);
}

TEST_CASE("waiting on a pipe that never becomes readable times out at the deadline", "[util][interrupt]") {
    Pipe pipe;
    Interrupt interrupt;
    const auto deadline = steady_clock::now() + 100ms;
    CHECK(wait_readable(pipe.read.get(), deadline, &interrupt) == WaitResult::timed_out);
    const auto returned = steady_clock::now();
    CHECK(returned >= deadline);
    CHECK(returned < deadline + 2s);
    CHECK(wait_readable(pipe.read.get(), deadline, nullptr) == WaitResult::timed_out);
}

TEST_CASE("waiting on a pipe with data is ready, also when a signal is pending", "[util][interrupt]") {
    Pipe pipe;
    REQUIRE(::write(pipe.write.get(), "x", 1) == 1);
    CHECK(wait_readable(pipe.read.get(), steady_clock::now() + 10s, nullptr) == WaitResult::ready);

    Interrupt interrupt;
    Drain drain{interrupt};
    REQUIRE(::raise(SIGHUP) == 0);
    CHECK(wait_readable(pipe.read.get(), steady_clock::now() + 10s, &interrupt) == WaitResult::ready);
    CHECK(interrupt.pending() == SIGHUP);  // left pending by the wait
}

TEST_CASE("waiting is interrupted by a pending signal, and again until it is taken", "[util][interrupt]") {
    Pipe pipe;
    Interrupt interrupt;
    Drain drain{interrupt};
    REQUIRE(::raise(SIGINT) == 0);
    const auto deadline = steady_clock::now() + 10s;
    CHECK(wait_readable(pipe.read.get(), deadline, &interrupt) == WaitResult::interrupted);
    CHECK(wait_readable(-1, deadline, &interrupt) == WaitResult::interrupted);
    CHECK(interrupt.pending() == SIGINT);
    CHECK(wait_readable(pipe.read.get(), steady_clock::now() + 50ms, &interrupt) == WaitResult::timed_out);
}
