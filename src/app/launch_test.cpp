// The launch sequence on a simulated kernel (a temporary host root that reacts to sysfs writes
// as Linux does) with the real QEMU: what was bound is given back whatever ends the launch.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "app/launch.hpp"
#include "app/host_ops.hpp"
#include "app/launch_steps.hpp"
#include "host/journal.hpp"
#include "host/lock.hpp"
#include "host_fixture.hpp"
#include "temp_dir.hpp"
#include "app/vm_dir.hpp"
#include "util/proc.hpp"
#include "profile/loader.hpp"
#include "profile/validate.hpp"

using namespace kvmgpu;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

profile::Profile passthrough_profile(const fs::path& dir, const std::string& extra = "") {
    const auto file = dir / "gpu.toml";
    std::ofstream(file) << "name = \"gpu\"\n[machine]\naccel = \"tcg\"\nmemory = \"128M\"\n[cpu]\ncores = 1\n"
                           "[firmware]\ntype = \"seabios\"\n[network]\nmode = \"none\"\n"
                           "[[pci]]\naddress = \"0000:01:00.0\"\n[[pci]]\naddress = \"0000:01:00.1\"\n"
                        << extra;
    auto r = profile::load_and_validate(file);
    REQUIRE_FALSE(profile::has_errors(r.diagnostics));
    return r.profile;
}

struct Launch {
    test::HostFixture fx;
    test::SimulatedKernel kernel{fx};
    std::vector<json> events;
    app::Context ctx;
    std::function<void(std::string_view)> before_step;
    Launch() {
        test::add_gpu_with_audio(fx);
        fx.add_driver("nouveau");
        fx.add_driver("snd_hda_intel");
        ctx.runtime_dir = fx.runtime();
        ctx.state_dir = fx.root() / "run" / "state";
        ctx.host_root = fx.root();
    }
    int run(const profile::Profile& p) {
        app::LaunchOptions options;
        options.writer = &kernel;
        options.connect_timeout = std::chrono::seconds(20);
        options.before_step = before_step;
        try {
            return app::launch(p, ctx, options, [this](const app::Event& e) { events.push_back(json(e)); });
        } catch (const app::StepFailed& e) {
            return e.exit_code();
        }
    }
    bool saw(const std::string& step, bool ok) const {
        return std::any_of(events.begin(), events.end(), [&](const json& e) {
            return e.value("step", "") == step && e.value("ok", !ok) == ok;
        });
    }
};

}  // namespace

TEST_CASE("a QEMU that dies after the devices were bound gives every device back", "[app][qemu]") {
    Launch l;
    const auto profile = passthrough_profile(l.fx.root());
    const auto before = l.fx.snapshot();
    // The real QEMU starts, but the host it runs on has no such device: vfio-pci fails.
    const int code = l.run(profile);
    INFO(json(l.events).dump(1));
    CHECK(code == 1);
    CHECK(l.saw("bind", true));
    CHECK(l.saw("restore", true));
    CHECK(l.events.back()["event"] == "stopped");
    CHECK(l.events.back()["reason"] == "start-failed");
    // The tree is back byte for byte: drivers, overrides; the journal and locks are gone.
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
    CHECK(l.fx.driver_of("0000:01:00.0") == "nouveau");
    CHECK(l.fx.driver_of("0000:01:00.1") == "snd_hda_intel");
    CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
    CHECK(host::read_locks(app::host_state_dir(l.ctx)).empty());
    CHECK_FALSE(fs::exists(l.ctx.runtime_dir / "gpu"));
}

TEST_CASE("a failing prestart hook undoes the binding before QEMU starts", "[app]") {
    Launch l;
    const auto profile = passthrough_profile(l.fx.root(), "[hooks]\nprestart = [\"/bin/false\"]\n");
    const auto before = l.fx.snapshot();
    const int code = l.run(profile);
    INFO(json(l.events).dump(1));
    CHECK(code == 1);
    CHECK(l.saw("bind", true));
    CHECK(l.saw("prestart", false));
    CHECK_FALSE(l.saw("spawn", true));
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
    CHECK_FALSE(fs::exists(l.ctx.runtime_dir / "gpu"));
}

TEST_CASE("a host that is not ready is refused before anything changes", "[app]") {
    Launch l;
    l.fx.set_iommu(false);
    const auto profile = passthrough_profile(l.fx.root());
    const auto before = l.fx.snapshot();
    const int code = l.run(profile);
    CHECK(code == 1);
    CHECK(l.saw("check", false));
    CHECK_FALSE(l.saw("bind", true));
    CHECK(l.kernel.writes() == 0);
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
}

TEST_CASE("an address that holds another device than the profile's id is refused before anything changes", "[app]") {
    Launch l;
    // The second [[pci]] entry (0000:01:00.1, the card's audio 10de:228b) expects an RTX 4090's.
    const auto profile = passthrough_profile(l.fx.root(), "id = \"10de:22ba\"\n");
    const auto before = l.fx.snapshot();
    const int code = l.run(profile);
    INFO(json(l.events).dump(1));
    CHECK(code == 1);
    CHECK(l.saw("check", false));
    const auto finding = std::find_if(l.events.begin(), l.events.end(), [](const json& e) {
        return e.value("code", "") == "identity-mismatch";
    });
    REQUIRE(finding != l.events.end());
    CHECK((*finding)["message"].get<std::string>().find("\"0000:01:00.1\"") != std::string::npos);
    CHECK_FALSE(l.saw("runtime-dir", true));
    CHECK_FALSE(l.saw("bind", true));
    CHECK(l.kernel.writes() == 0);
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
    CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
}

TEST_CASE("a bind failing on the second device leaves the first where it was", "[app]") {
    Launch l;
    const auto profile = passthrough_profile(l.fx.root());
    const auto before = l.fx.snapshot();
    // A device takes three writes (driver_override, unbind, drivers_probe): the 5th is the
    // second device's unbind, after the first device is already on vfio-pci.
    l.kernel.fail_write(5, EIO);
    const int code = l.run(profile);
    INFO(json(l.events).dump(1));
    INFO(json(l.kernel.log).dump(1));
    CHECK(code == 1);
    CHECK(l.saw("bind", false));
    const auto failed = std::find_if(l.events.begin(), l.events.end(), [](const json& e) { return e.value("ok", true) == false; });
    REQUIRE(failed != l.events.end());
    CHECK((*failed)["error"].get<std::string>().find("\"0000:01:00.1\"") != std::string::npos);
    CHECK((*failed)["error"].get<std::string>().find("unbind") != std::string::npos);
    // The first device went to vfio-pci and came back: its probe is in the log before the failure.
    CHECK(std::count_if(l.kernel.log.begin(), l.kernel.log.end(),
                        [](const std::string& w) { return w.find("drivers_probe <- 0000:01:00.0") != std::string::npos; }) >= 1);
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
    CHECK(host::read_locks(app::host_state_dir(l.ctx)).empty());
}

TEST_CASE("a lock whose launcher was killed still holds while its QEMU runs", "[app]") {
    testing::TempDir dir;
    app::Context ctx;
    ctx.runtime_dir = dir.path();
    // A child that exits at once stands for the killed launcher; this test process for QEMU.
    const pid_t launcher = ::fork();
    if (launcher == 0) ::_exit(0);
    int status = 0;
    ::waitpid(launcher, &status, 0);
    app::VmDir vm(ctx, "win11");
    app::VmState state;
    state.name = "win11";
    state.supervisor_pid = launcher;
    state.qemu_pid = ::getpid();
    state.qemu_start = util::process_start_time(::getpid()).value();
    vm.create(state);
    state.supervisor_start = 777;  // the dead launcher's start time, as its lock records it
    vm.write_state(state);
    const host::LockOwner lock{"win11", launcher, 777};
    const auto alive = app::lock_liveness(ctx);
    CHECK(alive(lock));            // its QEMU still holds the devices
    CHECK(alive(host::LockOwner{"x", ::getpid(), util::process_start_time(::getpid()).value()}));  // a live process is alive anyway
    CHECK_FALSE(alive(host::LockOwner{"win11", launcher, 778}));  // another process that had the launcher's pid
    state.qemu_start += 1;         // a different process under QEMU's pid: the VM is gone
    vm.write_state(state);
    CHECK_FALSE(app::lock_liveness(ctx)(lock));
}

TEST_CASE("a device that cannot be given back is reported and keeps its journal and lock", "[app][qemu]") {
    Launch l;
    // The prestart hook runs after the bind: it unloads the audio driver, so that the audio
    // function has no driver to go back to at the end.
    const auto driver_dir = l.fx.root() / "sys/bus/pci/drivers/snd_hda_intel";
    const auto profile = passthrough_profile(
        l.fx.root(), "[hooks]\nprestart = [\"/bin/rm\", \"-rf\", \"" + driver_dir.string() + "\"]\n");
    const int code = l.run(profile);
    INFO(json(l.events).dump(1));
    CHECK(code == 1);
    const auto& stopped = l.events.back();
    REQUIRE(stopped["event"] == "stopped");
    CHECK(stopped["devices_restored"] == json::array({"0000:01:00.0"}));
    CHECK(stopped["devices_not_restored"] == json::array({"0000:01:00.1"}));
    CHECK(stopped["hint"].get<std::string>().find("kvmgpu restore gpu") != std::string::npos);
    CHECK(l.fx.driver_of("0000:01:00.0") == "nouveau");
    const auto journal = host::read_journal(app::host_state_dir(l.ctx), "gpu");
    REQUIRE(journal);
    REQUIRE(journal->devices.size() == 1);
    CHECK(journal->devices[0].address.str() == "0000:01:00.1");
    const auto locks = host::read_locks(app::host_state_dir(l.ctx));
    REQUIRE(locks.size() == 1);
    CHECK(locks[0].address.str() == "0000:01:00.1");
}

TEST_CASE("a stop signal at any step of the launch undoes everything and leaves the host as it was", "[app][qemu]") {
    std::vector<std::string> steps;
    for (const auto& s : app::launch_steps()) steps.emplace_back(s.name);
    steps.emplace_back("qmp");  // after QEMU was spawned, before the supervisor takes over
    for (const auto& at : steps) {
        DYNAMIC_SECTION("SIGTERM before " << at) {
            Launch l;
            // A prestart hook makes that step do something worth undoing.
            const auto profile = passthrough_profile(l.fx.root(), "[hooks]\nprestart = [\"/bin/true\"]\n");
            const auto before = l.fx.snapshot();
            l.before_step = [&](std::string_view step) {
                if (step == at) ::raise(SIGTERM);  // blocked during the launch: it stays pending
            };
            const int code = l.run(profile);
            INFO(json(l.events).dump(1));
            CHECK(code == 1);
            // The failed step names the signal; the undos report after it.
            const auto failed = std::find_if(l.events.begin(), l.events.end(), [](const json& e) { return e.value("ok", true) == false; });
            REQUIRE(failed != l.events.end());
            CHECK((*failed)["step"] == at);
            CHECK((*failed)["error"].get<std::string>().find("SIGTERM arrived") != std::string::npos);
            if (at != "qmp") CHECK_FALSE(l.saw("spawn", true));
            INFO(test::snapshot_diff(before, l.fx.snapshot()));
            CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
            CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
            CHECK(host::read_locks(app::host_state_dir(l.ctx)).empty());
            CHECK_FALSE(fs::exists(l.ctx.runtime_dir / "gpu"));
        }
    }
}

TEST_CASE("a stop signal ends a prestart hook that hangs and the launch is undone", "[app]") {
    Launch l;
    const auto profile = passthrough_profile(l.fx.root(), "[hooks]\nprestart = [\"/bin/sleep\", \"600\"]\n");
    const auto before = l.fx.snapshot();
    // The signal comes from another process while the hook runs, as a Ctrl-C or `kill` would.
    const pid_t self = ::getpid();
    l.before_step = [&](std::string_view step) {
        if (step != "prestart") return;
        const pid_t killer = ::fork();
        if (killer == 0) {
            ::usleep(300 * 1000);
            ::kill(self, SIGINT);
            ::_exit(0);
        }
    };
    const auto started = std::chrono::steady_clock::now();
    const int code = l.run(profile);
    const auto took = std::chrono::steady_clock::now() - started;
    ::waitpid(-1, nullptr, WNOHANG);
    INFO(json(l.events).dump(1));
    CHECK(code == 1);
    CHECK(l.saw("prestart", false));
    CHECK(took < std::chrono::seconds(30));
    const auto failed = std::find_if(l.events.begin(), l.events.end(), [](const json& e) { return e.value("ok", true) == false; });
    REQUIRE(failed != l.events.end());
    CHECK((*failed)["error"].get<std::string>().find("SIGINT arrived") != std::string::npos);
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
    CHECK_FALSE(fs::exists(l.ctx.runtime_dir / "gpu"));
}

TEST_CASE("a launcher killed with -9 after any step that changed the host leaves what restore gives back", "[app][qemu]") {
    // The steps after bind, where devices are on vfio-pci; "qmp" is after QEMU was spawned.
    for (const std::string at : {"prestart", "firmware", "tpm", "spawn", "qmp"}) {
        DYNAMIC_SECTION("kill -9 before " << at) {
            Launch l;
            const auto profile = passthrough_profile(l.fx.root());
            const auto before = l.fx.snapshot();
            const pid_t launcher = ::fork();
            if (launcher == 0) {
                l.before_step = [&](std::string_view step) {
                    if (step == at) ::raise(SIGKILL);
                };
                l.run(profile);
                ::_exit(3);  // not reached: the launcher dies at `at`
            }
            int status = 0;
            REQUIRE(::waitpid(launcher, &status, 0) == launcher);
            REQUIRE(WIFSIGNALED(status));
            REQUIRE(WTERMSIG(status) == SIGKILL);
            // What the dead launcher left: devices on vfio-pci, a journal naming them, its locks.
            CHECK(l.fx.driver_of("0000:01:00.0") == "vfio-pci");
            const auto journal = host::read_journal(app::host_state_dir(l.ctx), "gpu");
            REQUIRE(journal);
            CHECK(journal->devices.size() == 2);
            // A QEMU it had started fails on this host (no such device) and ends by itself.
            const auto state = app::VmDir(l.ctx, "gpu").read_state();
            if (state && state->qemu_pid > 0) {
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
                while (util::process_alive(state->qemu_pid, state->qemu_start) &&
                       std::chrono::steady_clock::now() < deadline)
                    ::usleep(10 * 1000);
                REQUIRE_FALSE(util::process_alive(state->qemu_pid, state->qemu_start));
            }
            // `kvmgpu restore gpu` from a new process, on the journal alone.
            const auto restored = app::restore_vm(l.ctx, "gpu", &l.kernel);
            INFO(json(restored.report).dump(1));
            CHECK(restored.ok());
            INFO(test::snapshot_diff(before, l.fx.snapshot()));
            CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
            CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
            CHECK(host::read_locks(app::host_state_dir(l.ctx)).empty());
            CHECK_FALSE(fs::exists(l.ctx.runtime_dir / "gpu"));
        }
    }
}
