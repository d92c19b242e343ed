#include "host/lock.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "host_fixture.hpp"

namespace fs = std::filesystem;
using namespace kvmgpu;
using namespace kvmgpu::host;

namespace {

util::PciAddress addr(const char* text) { return *util::PciAddress::parse(text); }

// The pid of a child that has exited and been reaped: a pid no process has right now.
pid_t dead_pid() {
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    int status = 0;
    ::waitpid(child, &status, 0);
    return child;
}

}  // namespace

TEST_CASE("acquiring reservations writes one JSON lock per device", "[host]") {
    test::HostFixture fx;
    const auto result = acquire_locks(fx.runtime(), "win11", 4242,
                                      {addr("0000:01:00.0"), addr("0000:01:00.1")},
                                      [](pid_t) { return true; });
    CHECK(result.taken_over.empty());
    const auto j = nlohmann::json::parse(std::ifstream(fx.runtime() / "locks/0000:01:00.0.lock"));
    CHECK(j == nlohmann::json{{"vm", "win11"}, {"pid", 4242}});
    const auto locks = read_locks(fx.runtime(), [](pid_t) { return true; });
    REQUIRE(locks.size() == 2);
    CHECK(locks[1].address == addr("0000:01:00.1"));
    CHECK(locks[1].owner.vm == "win11");
    CHECK(locks[1].alive);
    // The same owner acquiring again is fine.
    CHECK_NOTHROW(acquire_locks(fx.runtime(), "win11", 4242, {addr("0000:01:00.0")},
                                [](pid_t) { return true; }));
}

TEST_CASE("a device reserved by another live VM cannot be acquired, and nothing is kept", "[host]") {
    test::HostFixture fx;
    // Our own pid is certainly running: the other VM is "alive" by the real kill(pid, 0).
    acquire_locks(fx.runtime(), "gaming", ::getpid(), {addr("0000:01:00.1")});
    try {
        acquire_locks(fx.runtime(), "work", ::getpid(), {addr("0000:01:00.0"), addr("0000:01:00.1")});
        FAIL("no exception");
    } catch (const LockError& e) {
        CHECK(e.address == addr("0000:01:00.1"));
        CHECK(e.owner.vm == "gaming");
        CHECK(e.owner.pid == ::getpid());
        CHECK(std::string(e.what()) ==
              "PCI device \"0000:01:00.1\" is reserved by the running VM \"gaming\" (pid " +
                  std::to_string(::getpid()) +
                  "); stop that VM first, or remove the device from this profile");
    }
    CHECK_FALSE(fs::exists(fx.runtime() / "locks/0000:01:00.0.lock"));
    const auto locks = read_locks(fx.runtime());
    REQUIRE(locks.size() == 1);
    CHECK(locks[0].owner.vm == "gaming");
}

TEST_CASE("a lock whose owner is not running is stale and is taken over", "[host]") {
    test::HostFixture fx;
    const pid_t gone = dead_pid();
    acquire_locks(fx.runtime(), "gaming", gone, {addr("0000:01:00.0")});
    const auto before = read_locks(fx.runtime());
    REQUIRE(before.size() == 1);
    CHECK_FALSE(before[0].alive);

    const auto result = acquire_locks(fx.runtime(), "work", ::getpid(), {addr("0000:01:00.0")});
    REQUIRE(result.taken_over.size() == 1);
    CHECK(result.taken_over[0].owner.vm == "gaming");
    CHECK(result.taken_over[0].owner.pid == gone);
    const auto after = read_locks(fx.runtime());
    CHECK(after[0].owner.vm == "work");
    CHECK(after[0].alive);
}

TEST_CASE("the liveness check is injectable", "[host]") {
    test::HostFixture fx;
    acquire_locks(fx.runtime(), "gaming", 1234, {addr("0000:01:00.0")}, [](pid_t) { return true; });
    CHECK_THROWS_AS(acquire_locks(fx.runtime(), "work", 99, {addr("0000:01:00.0")},
                                  [](pid_t pid) { return pid == 1234; }),
                    LockError);
    CHECK_NOTHROW(acquire_locks(fx.runtime(), "work", 99, {addr("0000:01:00.0")},
                                [](pid_t) { return false; }));
}

TEST_CASE("releasing removes only the named VM's locks, whatever its pid", "[host]") {
    test::HostFixture fx;
    acquire_locks(fx.runtime(), "gaming", 1, {addr("0000:01:00.0")}, [](pid_t) { return true; });
    acquire_locks(fx.runtime(), "work", 2, {addr("0000:02:00.0")}, [](pid_t) { return true; });
    CHECK(release_locks(fx.runtime(), "gaming", {addr("0000:01:00.0"), addr("0000:02:00.0")}) == 1);
    const auto locks = read_locks(fx.runtime(), [](pid_t) { return true; });
    REQUIRE(locks.size() == 1);
    CHECK(locks[0].owner.vm == "work");
    CHECK(release_locks(fx.runtime(), "gaming", {addr("0000:01:00.0")}) == 0);
}

TEST_CASE("pid liveness uses kill(pid, 0)", "[host]") {
    CHECK(pid_alive(::getpid()));
    CHECK_FALSE(pid_alive(dead_pid()));
    CHECK_FALSE(pid_alive(0));
}
