#include "util/detach.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "temp_dir.hpp"

using kvmgpu::testing::TempDir;
using namespace kvmgpu::util;

namespace {

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

// Polls `file` until it contains `text`; false at the deadline.
bool eventually_contains(const std::filesystem::path& file, const std::string& text) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        if (read_file(file).find(text) != std::string::npos) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

}  // namespace

TEST_CASE("a detached child tells the waiting parent its progress and that it is ready", "[detach]") {
    TempDir dir;
    const auto log = dir.path() / "log";
    Fd log_fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    auto d = detach(log_fd.get());
    if (d.in_child) {
        d.link.send("step one\n");
        d.link.ready();
        const bool own_session = ::getsid(0) == ::getpid();
        const auto line = std::string(own_session ? "own session" : "same session") + ", after ready\n";
        [[maybe_unused]] auto n = ::write(STDOUT_FILENO, line.data(), line.size());
        ::_exit(0);
    }
    log_fd.reset();
    std::string shown;
    CHECK(wait_until_ready(d.child, std::move(d.from_child), [&](std::string_view t) { shown += t; }) == 0);
    CHECK(shown == "step one\n");
    // The child goes on after ready, in its own session, writing to the log.
    CHECK(eventually_contains(log, "own session, after ready"));
    int raw;
    ::waitpid(d.child, &raw, 0);
}

TEST_CASE("a detached child that ends before it is ready gives the parent its exit code", "[detach]") {
    TempDir dir;
    Fd log_fd(::open((dir.path() / "log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    auto d = detach(log_fd.get());
    if (d.in_child) {
        d.link.send("kvmgpu: error: it failed\n");
        ::_exit(3);
    }
    std::string shown;
    CHECK(wait_until_ready(d.child, std::move(d.from_child), [&](std::string_view t) { shown += t; }) == 3);
    CHECK(shown == "kvmgpu: error: it failed\n");
}
