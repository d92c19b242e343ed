#include "host/bridge_tap.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "temp_dir.hpp"
#include "util/interrupt.hpp"

using kvmgpu::host::BridgeTapError;
using kvmgpu::host::BridgeTapRequest;
using kvmgpu::host::open_bridge_tap;
using kvmgpu::testing::TempDir;
using namespace std::chrono_literals;

// The unit seam of the bridge: a stand-in helper (tests/helpers/fake_bridge_helper.cpp) with
// qemu-bridge-helper's command line sends a memfd where the real one sends a tap. The real
// helper and a real bridge are exercised in the test guest (tests/e2e).
namespace {

BridgeTapRequest request_for(const std::string& bridge, const TempDir& dir) {
    BridgeTapRequest r;
    r.helper = KVMGPU_FAKE_BRIDGE_HELPER;
    r.bridge = bridge;
    r.log_file = dir.path() / "helper.log";
    r.timeout = 5s;
    return r;
}

std::string contents(int fd) {
    char buffer[64] = {};
    const auto got = ::pread(fd, buffer, sizeof buffer - 1, 0);
    return got > 0 ? std::string(buffer, static_cast<std::size_t>(got)) : std::string();
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

}  // namespace

TEST_CASE("open_bridge_tap receives the descriptor the helper sends over --fd", "[bridge_tap]") {
    TempDir dir;
    const auto tap = open_bridge_tap(request_for("br0", dir), nullptr);
    REQUIRE(tap);
    CHECK(contents(tap.get()) == "tap of br0");
    // Ours only: QEMU gets it through SpawnOptions::inherit_fds, nothing else started inherits it.
    CHECK((::fcntl(tap.get(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("open_bridge_tap reports a helper's refusal with its status and log", "[bridge_tap]") {
    TempDir dir;
    const auto request = request_for("denied", dir);
    try {
        open_bridge_tap(request, nullptr);
        FAIL("no error");
    } catch (const BridgeTapError& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Catch::Contains("\"denied\"") && Catch::Contains("exited with status 1") &&
                             Catch::Contains(request.log_file->string()));
        CHECK_FALSE(e.interrupted());
    }
    CHECK(read_file(*request.log_file) == "access denied by acl file\n");
}

TEST_CASE("open_bridge_tap reports a helper that exits without sending", "[bridge_tap]") {
    TempDir dir;
    CHECK_THROWS_WITH(open_bridge_tap(request_for("silent", dir), nullptr),
                      Catch::Contains("exited without sending a tap"));
}

TEST_CASE("open_bridge_tap gives up on a helper that never answers", "[bridge_tap]") {
    TempDir dir;
    auto request = request_for("hang", dir);
    request.timeout = 200ms;
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(open_bridge_tap(request, nullptr), Catch::Contains("sent no tap within 200 ms"));
    CHECK(std::chrono::steady_clock::now() - start < 5s);
}

TEST_CASE("open_bridge_tap ends its wait on a pending stop signal", "[bridge_tap]") {
    TempDir dir;
    kvmgpu::util::Interrupt interrupt;
    REQUIRE(::raise(SIGTERM) == 0);
    bool interrupted = false;
    try {
        open_bridge_tap(request_for("hang", dir), &interrupt);
    } catch (const BridgeTapError& e) {
        interrupted = e.interrupted();
    }
    // Taken before the Interrupt restores the mask; the wait left it pending for the launcher.
    CHECK(interrupt.pending() == SIGTERM);
    CHECK(interrupted);
}

TEST_CASE("open_bridge_tap names a helper that is not installed", "[bridge_tap]") {
    TempDir dir;
    auto request = request_for("br0", dir);
    request.helper = dir.path() / "no-such-helper";
    CHECK_THROWS_WITH(open_bridge_tap(request, nullptr), Catch::Contains("no-such-helper"));
}
