#include "host/lock.hpp"

#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "host_fixture.hpp"
#include "util/proc.hpp"

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

// The start time of this test process, as acquire_locks records it for ::getpid().
std::uint64_t own_start() { return util::process_start_time(::getpid()).value(); }

// Writes a lock file by hand, the way a given version of kvmgpu left it.
void write_lock(const fs::path& runtime, const char* address, const std::string& text) {
    fs::create_directories(runtime / "locks");
    std::ofstream(runtime / "locks" / (std::string(address) + ".lock")) << text;
}

}  // namespace

TEST_CASE("acquiring reservations writes one JSON lock per device", "[host][lock]") {
    test::HostFixture fx;
    // An owner with an unknown start time (0): the file holds no "start_time" at all.
    const auto result = acquire_locks(fx.runtime(), LockOwner{"win11", 4242, 0},
                                      {addr("0000:01:00.0"), addr("0000:01:00.1")},
                                      [](const LockOwner&) { return true; });
    CHECK(result.taken_over.empty());
    const auto j = nlohmann::json::parse(std::ifstream(fx.runtime() / "locks/0000:01:00.0.lock"));
    CHECK(j == nlohmann::json{{"vm", "win11"}, {"pid", 4242}});
    const auto locks = read_locks(fx.runtime(), [](const LockOwner&) { return true; });
    REQUIRE(locks.size() == 2);
    CHECK(locks[1].address == addr("0000:01:00.1"));
    CHECK(locks[1].owner.vm == "win11");
    CHECK(locks[1].alive);
    // The same owner acquiring again is fine.
    CHECK_NOTHROW(acquire_locks(fx.runtime(), "win11", 4242, {addr("0000:01:00.0")},
                                [](const LockOwner&) { return true; }));
}

TEST_CASE("a device reserved by another live VM cannot be acquired, and nothing is kept", "[host][lock]") {
    test::HostFixture fx;
    // Our own pid and start time are certainly running: the other VM is alive by the real
    // owner_alive.
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

TEST_CASE("a lock whose owner is not running is stale and is taken over", "[host][lock]") {
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

TEST_CASE("the liveness check is injectable", "[host][lock]") {
    test::HostFixture fx;
    acquire_locks(fx.runtime(), "gaming", 1234, {addr("0000:01:00.0")}, [](const LockOwner&) { return true; });
    CHECK_THROWS_AS(acquire_locks(fx.runtime(), "work", 99, {addr("0000:01:00.0")},
                                  [](const LockOwner& o) { return o.pid == 1234; }),
                    LockError);
    CHECK_NOTHROW(acquire_locks(fx.runtime(), "work", 99, {addr("0000:01:00.0")},
                                [](const LockOwner&) { return false; }));
}

TEST_CASE("releasing removes only the named VM's locks, whatever its pid", "[host][lock]") {
    test::HostFixture fx;
    acquire_locks(fx.runtime(), "gaming", 1, {addr("0000:01:00.0")}, [](const LockOwner&) { return true; });
    acquire_locks(fx.runtime(), "work", 2, {addr("0000:02:00.0")}, [](const LockOwner&) { return true; });
    CHECK(release_locks(fx.runtime(), "gaming", {addr("0000:01:00.0"), addr("0000:02:00.0")}) == 1);
    const auto locks = read_locks(fx.runtime(), [](const LockOwner&) { return true; });
    REQUIRE(locks.size() == 1);
    CHECK(locks[0].owner.vm == "work");
    CHECK(release_locks(fx.runtime(), "gaming", {addr("0000:01:00.0")}) == 0);
}

TEST_CASE("pid liveness uses kill(pid, 0)", "[host][lock]") {
    CHECK(pid_alive(::getpid()));
    CHECK_FALSE(pid_alive(dead_pid()));
    CHECK_FALSE(pid_alive(0));
}

TEST_CASE("the owner's start time is written into the lock file", "[host][lock]") {
    test::HostFixture fx;
    acquire_locks(fx.runtime(), "win11", ::getpid(), {addr("0000:01:00.0")});
    const auto j = nlohmann::json::parse(std::ifstream(fx.runtime() / "locks/0000:01:00.0.lock"));
    CHECK(j == nlohmann::json{{"vm", "win11"}, {"pid", ::getpid()}, {"start_time", own_start()}});
    const auto locks = read_locks(fx.runtime());
    REQUIRE(locks.size() == 1);
    CHECK(locks[0].owner.start_time == own_start());
    CHECK(locks[0].alive);
    CHECK(nlohmann::json(locks[0])["start_time"] == own_start());
}

TEST_CASE("a lock whose pid now names another process is stale and is taken over",
          "[host][lock]") {
    test::HostFixture fx;
    // The owner died and its pid was reused: by this test process, which started at another time.
    const LockOwner gone{"gaming", ::getpid(), own_start() + 1};
    acquire_locks(fx.runtime(), gone, {addr("0000:01:00.0")});
    const auto before = read_locks(fx.runtime());
    REQUIRE(before.size() == 1);
    CHECK(before[0].owner.start_time == own_start() + 1);
    CHECK_FALSE(before[0].alive);

    const auto result = acquire_locks(fx.runtime(), "work", ::getpid(), {addr("0000:01:00.0")});
    REQUIRE(result.taken_over.size() == 1);
    CHECK(result.taken_over[0].owner.vm == "gaming");
    CHECK(result.taken_over[0].owner.start_time == own_start() + 1);
    const auto after = read_locks(fx.runtime());
    REQUIRE(after.size() == 1);
    CHECK(after[0].owner.vm == "work");
    CHECK(after[0].owner.start_time == own_start());
    CHECK(after[0].alive);
}

TEST_CASE("a lock of the same VM name and pid from an earlier process is not ours",
          "[host][lock]") {
    test::HostFixture fx;
    acquire_locks(fx.runtime(), LockOwner{"gaming", ::getpid(), own_start() + 1},
                  {addr("0000:01:00.0")});
    const auto result = acquire_locks(fx.runtime(), "gaming", ::getpid(), {addr("0000:01:00.0")});
    REQUIRE(result.taken_over.size() == 1);
    CHECK(result.taken_over[0].owner.start_time == own_start() + 1);
    CHECK(read_locks(fx.runtime()).at(0).owner.start_time == own_start());
}

TEST_CASE("a lock with the owner's pid and start time is live and refuses another VM",
          "[host][lock]") {
    test::HostFixture fx;
    acquire_locks(fx.runtime(), LockOwner{"gaming", ::getpid(), own_start()}, {addr("0000:01:00.0")});
    CHECK(read_locks(fx.runtime()).at(0).alive);
    CHECK_THROWS_AS(acquire_locks(fx.runtime(), "work", ::getpid(), {addr("0000:01:00.0")}),
                    LockError);
    CHECK(read_locks(fx.runtime()).at(0).owner.vm == "gaming");
}

TEST_CASE("a lock file without a start time, as older kvmgpu wrote, is judged by its pid alone",
          "[host][lock]") {
    test::HostFixture fx;
    write_lock(fx.runtime(), "0000:01:00.0",
               "{\"vm\":\"gaming\",\"pid\":" + std::to_string(::getpid()) + "}\n");
    write_lock(fx.runtime(), "0000:02:00.0",
               "{\"vm\":\"gaming\",\"pid\":" + std::to_string(dead_pid()) + "}\n");
    const auto locks = read_locks(fx.runtime());
    REQUIRE(locks.size() == 2);
    CHECK(locks[0].owner.vm == "gaming");
    CHECK(locks[0].owner.pid == ::getpid());
    CHECK(locks[0].owner.start_time == 0);
    CHECK(locks[0].alive);  // the pid runs; whether it is the same process cannot be told
    CHECK_FALSE(locks[1].alive);

    CHECK_THROWS_AS(acquire_locks(fx.runtime(), "work", ::getpid(), {addr("0000:01:00.0")}),
                    LockError);
    const auto result = acquire_locks(fx.runtime(), "work", ::getpid(), {addr("0000:02:00.0")});
    CHECK(result.taken_over.size() == 1);
    // The same VM name with the pid of the old file is taken for its owner: the lock is kept.
    CHECK(acquire_locks(fx.runtime(), "gaming", ::getpid(), {addr("0000:01:00.0")})
              .taken_over.empty());
    CHECK(read_locks(fx.runtime()).at(0).owner.start_time == 0);
}

TEST_CASE("owner liveness needs the pid running with the recorded start time", "[host][lock]") {
    CHECK(owner_alive(LockOwner{"vm", ::getpid(), own_start()}));
    CHECK_FALSE(owner_alive(LockOwner{"vm", ::getpid(), own_start() + 1}));
    CHECK(owner_alive(LockOwner{"vm", ::getpid(), 0}));  // unknown start time: the pid alone
    CHECK_FALSE(owner_alive(LockOwner{"vm", dead_pid(), 0}));
    CHECK_FALSE(owner_alive(LockOwner{"vm", 0, 0}));
}

