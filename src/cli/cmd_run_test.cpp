// `kvmgpu run NAME`, `run --detach` and `ps --all` of the real kvmgpu binary against real QEMU (TCG).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <thread>

#include "qemu_world.hpp"
#include "util/proc.hpp"

using namespace kvmgpu;
using namespace kvmgpu::testing;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

// Polls until `pid` (not our child) has ended; false at the deadline.
bool ends_within(pid_t pid, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (util::process_alive(pid)) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

json row_named(const json& rows, const std::string& name) {
    for (const auto& r : rows)
        if (r["name"] == name) return r;
    FAIL("no row " << name << " in " << rows.dump());
    return {};
}

}  // namespace

TEST_CASE("run by name finds NAME.toml and refuses a name it cannot find or a profile of another name",
          "[cli][profile_lookup]") {
    QemuWorld w;
    auto missing = w.cli({"run", "nothere"});
    CHECK(missing.status == 2);
    CHECK(missing.err.find("no nothere.toml in " + w.profiles.string()) != std::string::npos);
    CHECK(missing.err.find("kvmgpu init --output") != std::string::npos);
    auto missing_json = w.cli({"check", "nothere", "--json"});
    CHECK(missing_json.status == 2);
    CHECK(json::parse(missing_json.out)["code"] == "no-profile");

    w.profile("alias", w.profiles, "", false);
    fs::rename(w.profile("gaming", w.profiles), w.profiles / "other.toml");
    auto mismatch = w.cli({"run", "--dry-run", "other"});
    // A dry run shows the argv whatever the name; a real run refuses before anything changes.
    INFO(mismatch.err);
    CHECK(mismatch.status == 0);
    auto refused = w.cli({"run", "other"});
    CHECK(refused.status == 2);
    CHECK(refused.err.find("defines the VM \"gaming\", not \"other\"") != std::string::npos);
    auto dry = w.cli({"run", "--dry-run", "--json", "alias"});
    INFO(dry.err);
    REQUIRE(dry.status == 0);
    CHECK(json::parse(dry.out)["profile"] == (w.profiles / "alias.toml").string());
    CHECK(json::parse(dry.out)["name"] == "alias");
    CHECK(w.cli({"run", "--detach", "--dry-run", "alias"}).status == 2);
}

TEST_CASE("run --detach returns once the VM runs and stop ends it and ps --all lists defined and running VMs",
          "[cli][detach][runtime][qemu]") {
    QemuWorld w;
    w.profile("bg", w.profiles);
    w.profile("idle", w.profiles);
    const auto started = kvmgpu_run_bounded(w.args({"run", "--detach", "bg"}), w.dir.path(), std::chrono::seconds(60),
                                            RLIM_INFINITY, w.env());
    INFO(started.err);
    REQUIRE(started.status == 0);  // the foreground process returned, and it exited 0
    const auto log = w.state / "bg" / "launcher.log";
    CHECK(started.err.find("checking the host … ok") != std::string::npos);  // the launch, shown as it went
    CHECK(started.err.find("kvmgpu stop bg") != std::string::npos);
    CHECK(started.err.find(log.string()) != std::string::npos);

    const auto status = w.cli({"status", "bg", "--json"});
    INFO(status.err);
    REQUIRE(status.status == 0);
    const auto s = json::parse(status.out);
    CHECK(s["status"] == "running");
    CHECK(s["supervised"] == true);
    CHECK(s["uptime_seconds"].get<long>() >= 0);
    CHECK(s["started_at"].get<long>() > 0);
    CHECK(s["restarts"] == 0);
    const pid_t supervisor = s["supervisor_pid"].get<pid_t>();
    const pid_t qemu = s["qemu_pid"].get<pid_t>();
    CHECK(util::process_alive(supervisor));
    CHECK(::getsid(supervisor) == supervisor);  // its own session: a closed terminal does not end it

    // A second start of the same VM fails in the background, and the foreground says why.
    const auto again = kvmgpu_run_bounded(w.args({"run", "--detach", "bg"}), w.dir.path(), std::chrono::seconds(60),
                                          RLIM_INFINITY, w.env());
    CHECK(again.status == 1);
    CHECK(again.err.find("already running") != std::string::npos);

    // A VM started from a file outside the profile directories shows too.
    auto outside = w.run(w.profile("elsewhere", w.dir.path()).string());
    outside->wait_event("running");
    const auto ps = w.cli({"ps", "--all", "--json"});
    INFO(ps.err);
    REQUIRE(ps.status == 0);
    const auto rows = json::parse(ps.out);
    CHECK(rows.size() == 3);
    const auto bg = row_named(rows, "bg");
    CHECK(bg["status"] == "running");
    CHECK(bg["defined"] == (w.profiles / "bg.toml").string());
    CHECK(bg["qemu_pid"] == qemu);
    CHECK(bg.contains("uptime_seconds"));
    CHECK(bg["restarts"] == 0);  // the second start that failed does not count
    const auto idle = row_named(rows, "idle");
    CHECK(idle["status"] == "stopped");
    CHECK(idle["liveness"] == "stopped");
    CHECK(idle["defined"] == (w.profiles / "idle.toml").string());
    const auto elsewhere = row_named(rows, "elsewhere");
    CHECK(elsewhere["status"] == "running");
    CHECK(elsewhere["defined"].is_null());
    // Without --all: the running ones only, as before.
    CHECK(json::parse(w.cli({"ps", "--json"}).out).size() == 2);
    const auto table = w.cli({"ps", "--all"});
    CHECK(table.out.find("idle") != std::string::npos);
    CHECK(table.out.find("(not by name)") != std::string::npos);

    REQUIRE(w.cli({"stop", "elsewhere", "--timeout", "1"}).status == 0);
    CHECK(outside->wait() == 0);

    const auto stop = w.cli({"stop", "bg", "--timeout", "1"});
    INFO(stop.err);
    REQUIRE(stop.status == 0);
    CHECK(ends_within(supervisor, std::chrono::seconds(30)));
    CHECK_FALSE(util::process_alive(qemu));
    CHECK_FALSE(fs::exists(w.runtime / "bg"));  // runtime directory cleaned
    const auto logged = slurp(log);
    CHECK(logged.find("stopped: bg (stop-requested)") != std::string::npos);
    CHECK(logged.find("Ctrl-C here") == std::string::npos);

    // Started again (as systemd's Restart= would): the fleet sees one restart since boot.
    auto third = w.run("bg");
    third->wait_event("running");
    CHECK(json::parse(w.cli({"status", "bg", "--json"}).out)["restarts"] == 1);
    CHECK(row_named(json::parse(w.cli({"ps", "--json"}).out), "bg")["restarts"] == 1);
    REQUIRE(w.cli({"stop", "bg", "--timeout", "1"}).status == 0);
    CHECK(third->wait() == 0);
}
