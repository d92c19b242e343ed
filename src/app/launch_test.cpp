// The launch sequence on a simulated kernel (a temporary host root that reacts to sysfs writes
// as Linux does) with the real QEMU: what was bound is given back whatever ends the launch.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>

#include "app/launch.hpp"
#include "app/host_ops.hpp"
#include "app/launch_steps.hpp"
#include "host/journal.hpp"
#include "host/lock.hpp"
#include "host_doubles.hpp"
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

profile::Profile passthrough_profile(const fs::path& dir, const std::string& extra = "", const std::string& machine = "",
                                     const std::string& cpu = "") {
    const auto file = dir / "gpu.toml";
    // QEMU runs unprivileged, as the launch does by default when kvmgpu is root; "nobody" stands
    // in for the package's system user, which a development machine need not have.
    std::ofstream(file) << "name = \"gpu\"\n[machine]\naccel = \"tcg\"\nmemory = \"128M\"\n" << machine << "[cpu]\ncores = 1\n" << cpu
                        << "[firmware]\ntype = \"seabios\"\n[network]\nmode = \"none\"\n[security]\nuser = \"nobody\"\n"
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
    host::CommandRunner* runner = nullptr;
    Launch() {
        test::add_gpu_with_audio(fx);
        fx.add_driver("nouveau");
        fx.add_driver("snd_hda_intel");
        ctx.runtime_dir = fx.runtime();
        ctx.state_dir = fx.root() / "run" / "state";
        ctx.host_root = fx.root();
        // mkdtemp made it 0700; the user QEMU runs as must reach the nodes and state inside.
        fs::permissions(fx.root(), fs::perms::others_exec | fs::perms::group_exec, fs::perm_options::add);
    }
    int run(const profile::Profile& p) {
        app::LaunchOptions options;
        options.writer = &kernel;
        options.connect_timeout = std::chrono::seconds(20);
        options.before_step = before_step;
        options.runner = runner;
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
    // The run's logs outlive it: QEMU's own words, and every event up to "stopped".
    const auto logs = l.ctx.state_dir / "gpu" / "logs";
    std::ifstream qemu_log(logs / "qemu.log");
    const std::string said(std::istreambuf_iterator<char>(qemu_log), {});
    CHECK_THAT(said, Catch::Contains("vfio"));
    std::ifstream events(logs / "events.log");
    std::vector<json> kept;
    for (std::string line; std::getline(events, line);) kept.push_back(json::parse(line));
    CHECK(kept == l.events);
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

TEST_CASE("hooks get the minimal environment, never the caller's", "[app][security]") {
    Launch l;
    const auto seen = l.fx.root() / "hook-env";
    ::setenv("KVMGPU_TEST_SECRET", "hunter2", 1);
    ::setenv("TZ", "Europe/Paris", 1);
    const auto profile = passthrough_profile(
        l.fx.root(), "[hooks]\nprestart = [\"/bin/sh\", \"-c\", \"env > " + seen.string() + "; exit 1\"]\n");
    l.run(profile);
    ::unsetenv("KVMGPU_TEST_SECRET");
    ::unsetenv("TZ");
    std::ifstream in(seen);
    std::set<std::string> names;
    for (std::string line; std::getline(in, line);) names.insert(line.substr(0, line.find('=')));
    // sh adds PWD (and SHLVL, _ in some shells) itself.
    names.erase("PWD");
    names.erase("SHLVL");
    names.erase("_");
    CHECK(names == std::set<std::string>{"PATH", "HOME", "TZ", "KVMGPU_VM_NAME", "KVMGPU_HOOK", "KVMGPU_DEVICES",
                                         "KVMGPU_PROFILE", "KVMGPU_VM_STATE_DIR", "KVMGPU_VM_LOG_DIR"});
}

namespace {

std::map<std::string, std::string> read_env_file(const fs::path& file) {
    std::ifstream in(file);
    std::map<std::string, std::string> vars;
    for (std::string line; std::getline(in, line);)
        if (const auto eq = line.find('='); eq != std::string::npos) vars[line.substr(0, eq)] = line.substr(eq + 1);
    return vars;
}

std::string read_file(const fs::path& file) {
    std::ifstream in(file);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("each hook is told the VM its phase and its devices and runs where the issue says", "[app][hooks]") {
    Launch l;
    const auto dir = l.fx.root();
    const auto dump_env = [&](const char* phase) {
        return "[\"/bin/sh\", \"-c\", \"env > " + (dir / phase).string() + "; readlink " + l.fx.path("sys/bus/pci/devices/0000:01:00.0/driver").string() + " > " + (dir / phase).string() + ".driver\"]";
    };
    // prestart fails, so that no QEMU starts; poststop does not run for a launch that never started.
    const auto profile = passthrough_profile(
        dir, std::string("[hooks]\nprepare = ") + dump_env("prepare") + "\nprestart = [\"/bin/sh\", \"-c\", \"env > " +
                 (dir / "prestart").string() + "; echo prestart-said-this; exit 3\"]\n");
    std::vector<std::string> steps;
    l.before_step = [&](std::string_view s) { steps.emplace_back(s); };
    CHECK(l.run(profile) == 1);
    INFO(json(l.events).dump(1));
    // prepare runs after the reservation and before the release and the bind: nothing is on vfio-pci yet.
    const auto at = [&](const char* s) { return std::find(steps.begin(), steps.end(), s) - steps.begin(); };
    CHECK(at("reserve") < at("prepare"));
    CHECK(at("prepare") < at("release"));
    CHECK(at("release") < at("bind"));
    CHECK(l.saw("prepare", true));
    CHECK_THAT(read_file(dir / "prepare.driver"), Catch::EndsWith("/nouveau\n"));
    const auto state_dir = l.ctx.state_dir / "gpu";
    for (const char* phase : {"prepare", "prestart"}) {
        auto env = read_env_file(dir / phase);
        INFO(phase);
        CHECK(env["KVMGPU_VM_NAME"] == "gpu");
        CHECK(env["KVMGPU_HOOK"] == phase);
        CHECK(env["KVMGPU_DEVICES"] == "0000:01:00.0 0000:01:00.1");
        CHECK(env["KVMGPU_PROFILE"] == (dir / "gpu.toml").string());
        CHECK(env["KVMGPU_VM_STATE_DIR"] == state_dir.string());
        CHECK(env["KVMGPU_VM_LOG_DIR"] == (state_dir / "logs").string());
    }
    // The failed hook's output outlives the runtime directory, between kvmgpu's own lines.
    CHECK_FALSE(fs::exists(l.ctx.runtime_dir / "gpu"));
    const auto hooks_log = read_file(state_dir / "logs" / "hooks.log");
    CHECK_THAT(hooks_log, Catch::Contains("prepare hook: /bin/sh -c"));
    CHECK_THAT(hooks_log, Catch::Contains("prestart-said-this"));
    CHECK_THAT(hooks_log, Catch::Contains("prestart hook exited with status 3"));
    // And so does every event of the run, the check's first, the failed step's last.
    std::ifstream events(state_dir / "logs" / "events.log");
    std::vector<json> kept;
    for (std::string line; std::getline(events, line);) kept.push_back(json::parse(line));
    CHECK(kept == l.events);
}

TEST_CASE("a hook still running at [hooks] timeout is ended and the launch undone", "[app][hooks]") {
    Launch l;
    const auto profile = passthrough_profile(l.fx.root(), "[hooks]\ntimeout = 1\nprestart = [\"/bin/sleep\", \"600\"]\n");
    const auto before = l.fx.snapshot();
    const auto started = std::chrono::steady_clock::now();
    CHECK(l.run(profile) == 1);
    const auto took = std::chrono::steady_clock::now() - started;
    INFO(json(l.events).dump(1));
    CHECK(took < std::chrono::seconds(60));  // not the hook's 600 s
    CHECK(l.saw("prestart", false));
    const auto failed = std::find_if(l.events.begin(), l.events.end(), [](const json& e) { return e.value("step", "") == "prestart"; });
    REQUIRE(failed != l.events.end());
    CHECK_THAT(failed->value("error", ""), Catch::Contains("still running after 1 s ([hooks] timeout)"));
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
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

TEST_CASE("a card a program holds is refused at the check and nothing on the host changes", "[app][holders]") {
    Launch l;
    // Xorg has the GPU's DRM node open; the audio function is free.
    fs::create_directories(l.fx.device_dir("0000:01:00.0") / "drm/card0");
    l.fx.write("proc/1234/comm", "Xorg\n");
    l.fx.write("proc/1234/cgroup", "0::/system.slice/sddm.service\n");
    fs::create_directories(l.fx.path("proc/1234/fd"));
    fs::create_symlink("/dev/dri/card0", l.fx.path("proc/1234/fd/12"));
    const auto profile = passthrough_profile(l.fx.root());
    const auto before = l.fx.snapshot();
    const int code = l.run(profile);
    INFO(json(l.events).dump(1));
    CHECK(code == 1);
    CHECK(l.saw("check", false));
    const auto held = std::find_if(l.events.begin(), l.events.end(),
                                   [](const json& e) { return e.value("code", "") == "device-held"; });
    REQUIRE(held != l.events.end());
    CHECK((*held)["severity"] == "error");
    const std::string message = (*held)["message"];
    CHECK(message.find("\"0000:01:00.0\"") != std::string::npos);
    CHECK(message.find("process 1234 \"Xorg\"") != std::string::npos);
    CHECK(message.find("\"/dev/dri/card0\"") != std::string::npos);
    CHECK(message.find("`systemctl stop sddm.service`") != std::string::npos);
    // No sysfs write at all, no unbind in particular; no journal, lock or runtime directory.
    CHECK(l.kernel.writes() == 0);
    CHECK_FALSE(l.saw("bind", true));
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
    CHECK(l.fx.driver_of("0000:01:00.0") == "nouveau");
    CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
    CHECK(host::read_locks(app::host_state_dir(l.ctx)).empty());
    CHECK_FALSE(fs::exists(l.ctx.runtime_dir / "gpu"));
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

TEST_CASE("a refused launch names where the expected card is now as check does", "[app]") {
    // A launch reads only the profile's devices and their groups; the device with the expected id
    // sits elsewhere, so the refusal reads the whole host to say where.
    Launch l;
    test::DeviceSpec moved;
    moved.address = "0000:05:00.0";
    moved.vendor = 0x10de;
    moved.device = 0x22ba;
    moved.class_code = 0x040300;
    moved.driver = "snd_hda_intel";
    moved.group = 9;
    l.fx.add_device(moved);
    const auto profile = passthrough_profile(l.fx.root(), "id = \"10de:22ba\"\n");
    CHECK(l.run(profile) == 1);
    const auto finding = std::find_if(l.events.begin(), l.events.end(), [](const json& e) {
        return e.value("code", "") == "identity-mismatch";
    });
    REQUIRE(finding != l.events.end());
    INFO((*finding)["message"].get<std::string>());
    CHECK((*finding)["message"].get<std::string>().find("is at \"0000:05:00.0\" now") != std::string::npos);
    CHECK(l.kernel.writes() == 0);
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
    bool spawned = false;  // `at` comes after the spawn step
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
            if (!spawned) CHECK_FALSE(l.saw("spawn", true));
            INFO(test::snapshot_diff(before, l.fx.snapshot()));
            CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
            CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
            CHECK(host::read_locks(app::host_state_dir(l.ctx)).empty());
            CHECK_FALSE(fs::exists(l.ctx.runtime_dir / "gpu"));
            // The VM's state directory (made by the runtime-dir step) is root's alone again.
            struct stat state_dir {};
            if (::stat((l.ctx.state_dir / "gpu").c_str(), &state_dir) == 0) {
                CHECK(state_dir.st_gid == 0);
                CHECK((state_dir.st_mode & 07777) == 0700);
            }
        }
        if (at == "spawn") spawned = true;
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

namespace {

// Launches `profile` in a child process that dies of SIGKILL just before step `at`, as a
// launcher killed with -9 there would.
void launch_and_kill_before(Launch& l, const profile::Profile& profile, const std::string& at) {
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
}

// Waits (up to 30 s) for the QEMU a killed launcher left, if it started one: on this host it
// fails (no such device) and ends by itself.
void wait_for_qemu_to_end(const Launch& l) {
    const auto state = app::VmDir(l.ctx, "gpu").read_state();
    if (!state || state->qemu_pid <= 0) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (util::process_alive(state->qemu_pid, state->qemu_start) && std::chrono::steady_clock::now() < deadline)
        ::usleep(10 * 1000);
    REQUIRE_FALSE(util::process_alive(state->qemu_pid, state->qemu_start));
}

}  // namespace

TEST_CASE("a launcher killed with -9 after any step that changed the host leaves what restore gives back", "[app][qemu]") {
    // The steps after bind, where devices are on vfio-pci; "qmp" is after QEMU was spawned.
    for (const std::string at : {"prestart", "firmware", "access", "tpm", "spawn", "qmp"}) {
        DYNAMIC_SECTION("kill -9 before " << at) {
            Launch l;
            const auto profile = passthrough_profile(l.fx.root());
            const auto before = l.fx.snapshot();
            launch_and_kill_before(l, profile, at);
            // What the dead launcher left: devices on vfio-pci, a journal naming them, its locks.
            CHECK(l.fx.driver_of("0000:01:00.0") == "vfio-pci");
            const auto journal = host::read_journal(app::host_state_dir(l.ctx), "gpu");
            REQUIRE(journal);
            CHECK(journal->devices.size() == 2);
            // After the access step the group's node is QEMU's user's, and the journal says whose it was.
            struct stat node {};
            REQUIRE(::stat((l.fx.root() / "dev/vfio/1").c_str(), &node) == 0);
            const bool given = at == "tpm" || at == "spawn" || at == "qmp";
            if (::geteuid() == 0) CHECK(node.st_uid == (given ? 65534u : 0u));
            // A QEMU it had started fails on this host (no such device) and ends by itself.
            wait_for_qemu_to_end(l);
            // `kvmgpu restore gpu` from a new process, on the journal alone.
            const auto restored = app::restore_vm(l.ctx, "gpu", &l.kernel);
            INFO(json(restored.report).dump(1));
            CHECK(restored.ok());
            INFO(test::snapshot_diff(before, l.fx.snapshot()));
            CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
            CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
            CHECK(host::read_locks(app::host_state_dir(l.ctx)).empty());
            CHECK_FALSE(fs::exists(l.ctx.runtime_dir / "gpu"));
            // The VM's state directory (made by the runtime-dir step) is root's alone again.
            struct stat state_dir {};
            if (::stat((l.ctx.state_dir / "gpu").c_str(), &state_dir) == 0) {
                CHECK(state_dir.st_gid == 0);
                CHECK((state_dir.st_mode & 07777) == 0700);
            }
        }
    }
}

namespace {

// A single-GPU host: the GPU at 01:00.0 is the boot VGA on nouveau with fbcon and efifb on it,
// systemd runs the display manager, and the profile lets kvmgpu free the card. `modprobe` and
// `systemctl` are a fake that does to the fixture what the real ones do to a host.
struct SingleGpu : Launch {
    std::vector<std::string> log;  // the writes and runs of the fake programs
    test::FakeRunner fake{log};
    std::set<std::string> active{"display-manager.service"};
    SingleGpu() {
        fx.write(fx.device_dir("0000:01:00.0").lexically_relative(fx.root()) / "boot_vga", "1\n");
        fx.add_device_node("0000:01:00.0", "drm/card0", "/dev/dri/card0");
        fx.add_device_node("0000:01:00.0", "graphics/fb0", "/dev/fb0");
        // The firmware's framebuffer inside the GPU's BAR 1, as /proc/iomem nests it.
        fx.write("proc/iomem", "e0000000-efffffff : 0000:01:00.0\n  e0000000-e07fffff : efifb\n");
        fx.add_vtconsole(0, "(S) dummy device", false);
        fx.add_vtconsole(1, "(M) frame buffer device", true);
        fx.add_platform_device("efi-framebuffer", "efi-framebuffer.0");
        fx.add_module("nouveau", 1, {}, {"nouveau"});
        fs::create_directories(fx.path("run/systemd/system"));
        fake.on_run = [this](const std::vector<std::string>& argv) { act(argv); };
        runner = &fake;
    }
    void act(const std::vector<std::string>& argv) {
        const auto& unit = argv.back();
        if (argv[0] == "systemctl" && argv[1] == "is-active") fake.status[unit] = active.count(unit) ? 0 : 3;
        if (argv[0] == "systemctl" && argv[1] == "stop") active.erase(unit);
        if (argv[0] == "systemctl" && argv[1] == "start") active.insert(unit);
        if (argv == std::vector<std::string>{"modprobe", "-r", "nouveau"}) {
            fx.unlink_driver("0000:01:00.0");
            fx.remove_driver("nouveau");
            fs::remove_all(fx.path("sys/module/nouveau"));
        }
        if (argv == std::vector<std::string>{"modprobe", "nouveau"}) {
            fx.add_driver("nouveau");
            fx.add_module("nouveau", 1, {}, {"nouveau"});
            kernel.write(fx.path("sys/bus/pci/drivers_probe"), "0000:01:00.0");
        }
    }
    profile::Profile profile() {
        return passthrough_profile(fx.root(), "[release]\ndisplay_manager = true\nconsole = true\nmodules = [\"nouveau\"]\n");
    }
    std::vector<std::string> messages(const std::string& step) const {
        std::vector<std::string> out;
        for (const auto& e : events)
            if (e.value("step", "") == step) out.push_back(e.value("message", "") + (e.value("ok", true) ? "" : " FAILED"));
        return out;
    }
};

}  // namespace

TEST_CASE("a card the host uses is freed before the bind and everything comes back in reverse and verified",
          "[app][qemu][release]") {
    SingleGpu l;
    const auto profile = l.profile();
    const auto before = l.fx.snapshot();
    // The real QEMU starts but fails on this host (no such device); the launch then gives back.
    const int code = l.run(profile);
    INFO(json(l.events).dump(1));
    CHECK(code == 1);
    CHECK(l.messages("release") == std::vector<std::string>{
                                       "stopping the display manager (\"display-manager.service\")",
                                       "unbinding the framebuffer console (vtcon1)",
                                       "releasing the firmware framebuffer \"efi-framebuffer.0\"",
                                       "unloading the module \"nouveau\"",
                                       "checking that nothing holds the devices any more",
                                   });
    // What QEMU's user was given (the access step, after the bind) comes back first.
    CHECK(l.messages("restore") == std::vector<std::string>{
                                       "restoring /run/state/gpu", "restoring /dev/vfio/1", "restoring /dev/vfio/vfio",
                                       "restoring 0000:01:00.1", "restoring 0000:01:00.0", "restoring nouveau",
                                       "restoring efi-framebuffer.0", "restoring /sys/class/vtconsole/vtcon1/bind",
                                       "restoring display-manager.service",
                                   });
    CHECK(l.messages("verify") == std::vector<std::string>{"checking 0000:01:00.1", "checking 0000:01:00.0"});
    CHECK(l.fake.calls == std::vector<std::vector<std::string>>{
                              {"systemctl", "is-active", "--quiet", "display-manager.service"},
                              {"systemctl", "stop", "display-manager.service"},
                              {"modprobe", "-r", "nouveau"},
                              {"modprobe", "nouveau"},
                              {"systemctl", "start", "display-manager.service"},
                          });
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
    CHECK(l.fx.driver_of("0000:01:00.0") == "nouveau");
    CHECK(l.active.count("display-manager.service"));
    CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
}

TEST_CASE("what is not running or loaded is neither stopped nor unloaded nor started after", "[app][qemu][release]") {
    SingleGpu l;
    l.active.clear();
    fs::remove_all(l.fx.path("sys/module/nouveau"));  // built into the kernel: nothing to unload
    const auto profile = l.profile();
    l.run(profile);
    INFO(json(l.events).dump(1));
    CHECK(l.fake.calls == std::vector<std::vector<std::string>>{
                              {"systemctl", "is-active", "--quiet", "display-manager.service"},
                          });
    // The display manager, the console, the framebuffer, each "already so"; nothing was stopped
    // or unloaded, so no program can have outlived it and the holders are not scanned again.
    CHECK(l.messages("release") == std::vector<std::string>{
                                       "stopping the display manager (\"display-manager.service\")",
                                       "unbinding the framebuffer console (vtcon1)",
                                       "releasing the firmware framebuffer \"efi-framebuffer.0\"",
                                   });
}

TEST_CASE("a release that ends no program (console, firmware framebuffer) does not scan the holders again",
          "[app][qemu][release]") {
    SingleGpu l;
    l.active.clear();
    const auto profile = passthrough_profile(l.fx.root(), "[release]\nconsole = true\n");
    l.run(profile);
    INFO(json(l.events).dump(1));
    CHECK(l.messages("release") == std::vector<std::string>{
                                       "unbinding the framebuffer console (vtcon1)",
                                       "releasing the firmware framebuffer \"efi-framebuffer.0\"",
                                   });
    CHECK(l.messages("bind").size() == 2);
}

TEST_CASE("a release that fails undoes what was released before it and binds nothing", "[app][release]") {
    SingleGpu l;
    l.fake.status["nouveau"] = 1;  // modprobe -r nouveau fails: something uses it
    l.fake.on_run = [&](const std::vector<std::string>& argv) {
        if (argv[1] != "-r") l.act(argv);
    };
    const auto profile = l.profile();
    const auto before = l.fx.snapshot();
    const int code = l.run(profile);
    INFO(json(l.events).dump(1));
    CHECK(code == 1);
    CHECK(l.messages("release").back() == "unloading the module \"nouveau\" FAILED");
    CHECK_FALSE(l.saw("bind", true));
    CHECK(l.fake.calls.back() == std::vector<std::string>{"systemctl", "start", "display-manager.service"});
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
}

TEST_CASE("a launcher killed with -9 in the middle of freeing the card leaves what restore gives back",
          "[app][release]") {
    // After the console was unbound, before the bind; and after the module went, before the bind.
    for (const std::string at : {"unbinding the framebuffer console (vtcon1)", "bind"}) {
        DYNAMIC_SECTION("kill -9 after " << at) {
            SingleGpu l;
            const auto profile = l.profile();
            const auto before = l.fx.snapshot();
            const pid_t launcher = ::fork();
            if (launcher == 0) {
                l.before_step = [&](std::string_view step) {
                    if (step == at) ::raise(SIGKILL);
                };
                // The release step reports each change once made: a kill right after one.
                const auto report_then_die = [&](const app::Event& e) {
                    if (const auto* s = std::get_if<app::StepEvent>(&e); s && s->message == at) ::raise(SIGKILL);
                };
                app::LaunchOptions options;
                options.writer = &l.kernel;
                options.runner = &l.fake;
                options.before_step = l.before_step;
                try {
                    app::launch(profile, l.ctx, options, report_then_die);
                } catch (...) {
                }
                ::_exit(3);  // not reached
            }
            int status = 0;
            REQUIRE(::waitpid(launcher, &status, 0) == launcher);
            REQUIRE(WIFSIGNALED(status));
            // The fake programs ran in the child: the parent's view of the units is the journal's.
            l.active.clear();
            CHECK(host::read_attr(l.fx.path("sys/class/vtconsole/vtcon1/bind")) == "0");
            const auto restored = app::restore_vm(l.ctx, "gpu", &l.kernel, &l.fake);
            INFO(json(restored.report).dump(1));
            CHECK(restored.ok());
            INFO(test::snapshot_diff(before, l.fx.snapshot()));
            CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
            CHECK(l.active.count("display-manager.service"));
            CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
            CHECK(host::read_locks(app::host_state_dir(l.ctx)).empty());
        }
    }
}

TEST_CASE("a desktop program that outlives the display manager stops the launch before the bind", "[app][release]") {
    SingleGpu l;
    // gnome-shell of a logged-in user, in the session's scope, with the card's DRM node open. The
    // check lets it pass (the session ends with the display manager); this one does not end.
    l.fx.write("proc/4242/comm", "gnome-shell\n");
    l.fx.write("proc/4242/cmdline", std::string("/usr/bin/gnome-shell\0", 21));
    l.fx.write("proc/4242/cgroup", "0::/user.slice/user-1000.slice/session-2.scope\n");
    fs::create_directories(l.fx.path("proc/4242/fd"));
    fs::create_symlink("/dev/dri/card0", l.fx.path("proc/4242/fd/11"));
    const auto profile = l.profile();
    const auto before = l.fx.snapshot();
    const int code = l.run(profile);
    INFO(json(l.events).dump(1));
    CHECK(code == 1);
    const auto failed = std::find_if(l.events.begin(), l.events.end(), [](const json& e) { return e.value("ok", true) == false; });
    REQUIRE(failed != l.events.end());
    CHECK((*failed)["step"] == "release");
    CHECK((*failed)["error"].get<std::string>().find("still held after the release: process 4242 \"gnome-shell\"") == 0);
    CHECK_FALSE(l.saw("bind", true));
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
    CHECK(l.active.count("display-manager.service"));
}

TEST_CASE("a TPM VM whose runtime directory has a comma is refused as bad input before anything changes",
          "[app][swtpm]") {
    Launch l;
    l.ctx.runtime_dir = l.fx.root() / "run" / "a,mode=0777";
    const auto profile = passthrough_profile(l.fx.root(), "[tpm]\nenabled = true\n");
    const auto before = l.fx.snapshot();
    try {
        l.run(profile);
        FAIL("the launch was not refused");
    } catch (const util::BadInput& e) {
        CHECK(std::string(e.what()).find("contains a ','") != std::string::npos);
    }
    CHECK(l.events.empty());
    CHECK(l.kernel.writes() == 0);
    CHECK_FALSE(fs::exists(l.ctx.runtime_dir));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
}

TEST_CASE("the hugepage pool is raised by what the VM lacks for the run and given back after", "[app][hugepages]") {
    Launch l;
    l.fx.set_hugepages(2048, 100, 10);
    const auto nr = l.fx.path("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
    std::string during;
    l.before_step = [&](std::string_view s) {
        if (s == "bind") during = read_file(nr);
    };
    SECTION("given back") {
        const auto profile = passthrough_profile(l.fx.root(), "", "hugepages = \"2M\"\n");
        l.run(profile);
        INFO(json(l.events).dump(1));
        CHECK(during == "154\n");  // 128M is 64 pages; 10 were free: 54 added
        CHECK(l.saw("hugepages", true));
        CHECK(read_file(nr) == "100\n");
        CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
    }
    SECTION("kept with keep_hugepages") {
        const auto profile = passthrough_profile(l.fx.root(), "", "hugepages = \"2M\"\nkeep_hugepages = true\n");
        l.run(profile);
        CHECK(during == "154\n");
        CHECK(read_file(nr) == "154\n");
    }
    SECTION("a kernel that finds too few pages fails the launch before the card is touched") {
        l.kernel.hugepage_limit = 120;
        const auto profile = passthrough_profile(l.fx.root(), "", "hugepages = \"2M\"\n");
        const auto before = l.fx.snapshot();
        CHECK(l.run(profile) == 1);
        INFO(json(l.events).dump(1));
        const auto failed = std::find_if(l.events.begin(), l.events.end(),
                                         [](const json& e) { return e.value("step", "") == "hugepages"; });
        REQUIRE(failed != l.events.end());
        CHECK_FALSE((*failed)["ok"].get<bool>());
        CHECK_THAT(failed->value("error", ""), Catch::Contains("the kernel could add 20 of the 54 more asked for"));
        CHECK_FALSE(l.saw("bind", true));
        INFO(test::snapshot_diff(before, l.fx.snapshot()));
        CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
        CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
    }
}

TEST_CASE("a launcher killed with -9 after the hugepages or looking-glass step leaves what restore gives back",
          "[app][hugepages][looking-glass]") {
    // "release" comes right after the hugepages step, "access" right after the looking-glass step.
    for (const std::string at : {"release", "access"}) {
        DYNAMIC_SECTION("kill -9 before " << at) {
            Launch l;
            l.fx.set_hugepages(2048, 100, 10);
            fs::create_directories(l.fx.path("dev/shm"));
            const auto shm = l.fx.path("dev/shm/looking-glass");
            const auto nr = l.fx.path("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
            const auto profile = passthrough_profile(
                l.fx.root(), "[looking_glass]\nsize = \"32M\"\npath = \"" + shm.string() + "\"\n", "hugepages = \"2M\"\n");
            const auto before = l.fx.snapshot();
            launch_and_kill_before(l, profile, at);
            // What the dead launcher left: the pool raised by the 54 pages 128M lacked, and after
            // the looking-glass step the shm file.
            CHECK(read_file(nr) == "154\n");
            CHECK(fs::exists(shm) == (at == "access"));
            const auto restored = app::restore_vm(l.ctx, "gpu", &l.kernel);
            INFO(json(restored.report).dump(1));
            CHECK(restored.ok());
            CHECK(read_file(nr) == "100\n");
            CHECK_FALSE(fs::exists(shm));
            INFO(test::snapshot_diff(before, l.fx.snapshot()));
            CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
            CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
        }
    }
}

TEST_CASE("isolate moves QEMU to a cgroup of its own and keeps the host's cgroups off the pinned CPUs for the run",
          "[app][isolate][qemu]") {
    Launch l;
    l.fx.add_cgroups({"system.slice", "sshd"});
    const auto cg = l.fx.path("sys/fs/cgroup");
    std::map<std::string, std::string> during;
    l.before_step = [&](std::string_view s) {
        if (s != "qmp") return;
        for (const char* f : {"system.slice/cpuset.cpus", "sshd/cpuset.cpus", "system.slice/cpuset.cpus.effective",
                              "kvmgpu-gpu/cgroup.procs"})
            during[f] = read_file(cg / f);
    };
    const auto profile = passthrough_profile(l.fx.root(), "", "", "pin = [2]\nisolate = true\n");
    const auto before = l.fx.snapshot();
    l.run(profile);
    INFO(json(l.events).dump(1));
    CHECK(l.saw("isolate", true));
    CHECK(during["system.slice/cpuset.cpus"] == "0-1,3-7\n");
    CHECK(during["sshd/cpuset.cpus"] == "0-1,3-7\n");
    CHECK(during["system.slice/cpuset.cpus.effective"] == "0-1,3-7\n");
    const auto spawned = std::find_if(l.events.begin(), l.events.end(), [](const json& e) { return e.value("step", "") == "spawn"; });
    REQUIRE(spawned != l.events.end());
    auto moved = during["kvmgpu-gpu/cgroup.procs"];
    if (!moved.empty() && moved.back() == '\n') moved.pop_back();
    CHECK_FALSE(moved.empty());
    CHECK_THAT(spawned->value("detail", ""), Catch::StartsWith("pid " + moved + ","));
    // QEMU is gone, so its cgroup is removed and the host's get every CPU back.
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
    CHECK_FALSE(fs::exists(cg / "kvmgpu-gpu"));
    CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
}

TEST_CASE("with systemd, isolate asks for a scope around QEMU and sets AllowedCPUs of its slices for the run",
          "[app][isolate][qemu]") {
    Launch l;
    std::vector<std::string> log;
    test::FakeRunner fake{log};
    l.runner = &fake;
    l.fx.add_cgroups({"init.scope", "system.slice", "user.slice", "machine.slice"});
    l.fx.write("sys/fs/cgroup/user.slice/cpuset.cpus", "0-5\n");  // the user's own limit
    l.fx.write("sys/fs/cgroup/user.slice/cpuset.cpus.effective", "0-5\n");
    l.fx.write("run/systemd/system/.keep", "");
    const auto profile = passthrough_profile(l.fx.root(), "", "", "pin = [4]\nisolate = true\n");
    l.run(profile);
    INFO(json(l.events).dump(1));
    REQUIRE(fake.calls.size() == 7);
    CHECK(fake.calls[0][5] == "StartTransientUnit");
    CHECK(fake.calls[0][7] == "kvmgpu-gpu.scope");
    const std::vector<std::vector<std::string>> cpus(fake.calls.begin() + 1, fake.calls.end());
    CHECK(cpus == std::vector<std::vector<std::string>>{
                      {"systemctl", "set-property", "--runtime", "init.scope", "AllowedCPUs=0-3,5-7"},
                      {"systemctl", "set-property", "--runtime", "system.slice", "AllowedCPUs=0-3,5-7"},
                      {"systemctl", "set-property", "--runtime", "user.slice", "AllowedCPUs=0-3,5"},
                      // Given back last first, each to what it had.
                      {"systemctl", "set-property", "--runtime", "user.slice", "AllowedCPUs=0-5"},
                      // None set before: every CPU, as systemd's empty cpuset.cpus fails on a
                      // cgroup with tasks.
                      {"systemctl", "set-property", "--runtime", "system.slice", "AllowedCPUs=0-7"},
                      {"systemctl", "set-property", "--runtime", "init.scope", "AllowedCPUs=0-7"},
                  });
    CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
}

TEST_CASE("isolate on a host without the cpuset controller is refused before anything changes", "[app][isolate]") {
    Launch l;
    l.fx.add_cgroups({"system.slice"});
    l.fx.write("sys/fs/cgroup/cgroup.subtree_control", "cpu memory\n");
    const auto profile = passthrough_profile(l.fx.root(), "", "", "pin = [2]\nisolate = true\n");
    const auto before = l.fx.snapshot();
    CHECK(l.run(profile) == 1);
    INFO(json(l.events).dump(1));
    CHECK(l.saw("check", false));
    const auto refused = std::find_if(l.events.begin(), l.events.end(),
                                      [](const json& e) { return e.value("code", "") == "isolate-no-cpuset"; });
    REQUIRE(refused != l.events.end());
    CHECK_THAT(refused->value("message", ""), Catch::Contains("echo +cpuset > /sys/fs/cgroup/cgroup.subtree_control"));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
    CHECK(l.kernel.writes() == 0);
}

TEST_CASE("a launcher killed with -9 after the isolate step leaves what restore gives back", "[app][isolate][qemu]") {
    Launch l;
    l.fx.add_cgroups({"system.slice"});
    const auto profile = passthrough_profile(l.fx.root(), "", "", "pin = [2]\nisolate = true\n");
    const auto before = l.fx.snapshot();
    launch_and_kill_before(l, profile, "qmp");
    // What the dead launcher left: the host's cgroup confined, QEMU's own cgroup.
    const auto cg = l.fx.path("sys/fs/cgroup");
    CHECK(read_file(cg / "system.slice/cpuset.cpus") == "0-1,3-7\n");
    CHECK(fs::exists(cg / "kvmgpu-gpu"));
    // Its QEMU fails on this host (no such device) and ends by itself; until then the cgroup
    // holds it and the restore would keep that entry.
    REQUIRE(app::VmDir(l.ctx, "gpu").read_state());
    wait_for_qemu_to_end(l);
    const auto restored = app::restore_vm(l.ctx, "gpu", &l.kernel);
    INFO(json(restored.report).dump(1));
    CHECK(restored.ok());
    INFO(test::snapshot_diff(before, l.fx.snapshot()));
    CHECK(test::snapshot_diff(before, l.fx.snapshot()).empty());
    CHECK_FALSE(fs::exists(cg / "kvmgpu-gpu"));
    CHECK_FALSE(host::read_journal(app::host_state_dir(l.ctx), "gpu"));
}
