// The runtime against the real qemu-system-x86_64 (TCG): `kvmgpu run` as its own process,
// driven by `kvmgpu pause|resume|status|stop|qmp` processes and signals, as a user would.
#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <set>
#include <fstream>
#include <thread>

#include "app/control_client.hpp"
#include "app/control_protocol.hpp"
#include "kvmgpu_process.hpp"
#include "util/proc.hpp"
#include "util/user.hpp"

using namespace kvmgpu;
using namespace kvmgpu::testing;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path source_dir = KVMGPU_SOURCE_DIR;

// QEMU runs unprivileged, as by default when kvmgpu is root; "nobody" stands in for the
// package's system user, which a development machine need not have.
const std::string kUnprivileged = "[security]\nuser = \"nobody\"\n";

// A scratch world per test: runtime, state and profiles inside an empty host root (no PCI
// devices, no /dev/kvm: the host check only warns, since these profiles use TCG). The files
// given to QEMU's user are journaled as paths on that host, so they all live inside it.
struct World {
    TempDir dir;
    fs::path runtime = dir.path() / "run";
    fs::path state = dir.path() / "state";
    fs::path host = dir.path();
    // mkdtemp made it 0700; QEMU's user must reach the files the test puts inside.
    World() { fs::permissions(host, fs::perms::others_exec | fs::perms::group_exec, fs::perm_options::add); }

    std::vector<std::string> globals() const {
        return {"--runtime-dir", runtime.string(), "--state-dir", state.string(), "--host-root", host.string()};
    }
    std::vector<std::string> args(std::vector<std::string> a) const {
        for (auto& g : globals()) a.push_back(g);
        return a;
    }
    Output cli(std::vector<std::string> a) const { return kvmgpu_run(args(std::move(a)), dir.path()); }

    // A demo-like profile with extra TOML appended.
    fs::path profile(const std::string& name, const std::string& extra = "") const {
        const auto file = dir.path() / (name + ".toml");
        std::ofstream(file) << "name = \"" << name << "\"\n[machine]\naccel = \"tcg\"\nmemory = \"128M\"\n"
                            << "[cpu]\ncores = 1\n[firmware]\ntype = \"seabios\"\n[network]\nmode = \"none\"\n"
                            << kUnprivileged << extra;
        return file;
    }
    std::unique_ptr<Supervisor> run(const fs::path& profile, std::vector<std::string> extra = {}) const {
        std::vector<std::string> a{"run", "--json", profile.string(), "--stop-timeout", "2"};
        a.insert(a.end(), extra.begin(), extra.end());
        return std::make_unique<Supervisor>(args(a), dir.path() / "supervisor.err");
    }
    // The "running" event of `sup`, given 120 s (QEMU under TCG on a busy machine); without it the
    // test fails showing the launcher's stderr and the events it saw.
    json wait_running(Supervisor& sup) const {
        try {
            return sup.wait_event("running", std::chrono::seconds(120));
        } catch (const std::exception& e) {
            FAIL(e.what() << "\n" << supervisor_err() << "\nevents: " << json(sup.seen).dump());
        }
        return {};
    }
    std::string supervisor_err() const {
        std::ifstream in(dir.path() / "supervisor.err");
        return {std::istreambuf_iterator<char>(in), {}};
    }
};

json status_of(const World& w, const std::string& name) {
    const auto r = w.cli({"status", name, "--json"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    return json::parse(r.out);
}

}  // namespace

TEST_CASE("run, pause, resume and stop a real QEMU from other processes", "[runtime][qemu]") {
    World w;
    auto sup = w.run(w.profile("vm1"));
    const auto running = sup->wait_event("running");
    CHECK(running["name"] == "vm1");
    const pid_t qemu = running["qemu_pid"].get<pid_t>();
    CHECK(util::process_alive(qemu));
    CHECK(fs::exists(w.runtime / "vm1" / "control.sock"));
    // Searchable by the group of QEMU's user, which runs unprivileged when kvmgpu is root.
    const auto vm_dir_mode = ::geteuid() == 0 ? fs::perms::owner_all | fs::perms::group_exec : fs::perms::owner_all;
    CHECK((fs::status(w.runtime / "vm1").permissions() & fs::perms::all) == vm_dir_mode);
    CHECK((fs::status(w.runtime / "vm1" / "control.sock").permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write));

    auto s = status_of(w, "vm1");
    CHECK(s["status"] == "running");
    CHECK(s["supervised"] == true);
    CHECK(s["qemu_pid"] == qemu);

    REQUIRE(w.cli({"pause", "vm1"}).status == 0);
    CHECK(sup->wait_event("paused")["name"] == "vm1");
    CHECK(status_of(w, "vm1")["status"] == "paused");
    REQUIRE(w.cli({"resume", "vm1"}).status == 0);
    sup->wait_event("resumed");
    CHECK(status_of(w, "vm1")["status"] == "running");

    // A hard reset keeps the VM (and QEMU) running.
    REQUIRE(w.cli({"reset", "vm1"}).status == 0);
    CHECK(status_of(w, "vm1")["status"] == "running");
    CHECK(util::process_alive(qemu));

    const auto ps = w.cli({"ps", "--json"});
    REQUIRE(ps.status == 0);
    const auto rows = json::parse(ps.out);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0]["name"] == "vm1");
    CHECK(rows[0]["liveness"] == "supervised");

    const auto q = w.cli({"qmp", "vm1", R"({"execute":"query-name","id":"mine"})"});
    REQUIRE(q.status == 0);
    CHECK(json::parse(q.out)["return"]["name"] == "vm1");
    CHECK(json::parse(q.out)["id"] == "mine");

    const auto stop = w.cli({"stop", "vm1", "--timeout", "1", "--json"});
    INFO(stop.err);
    REQUIRE(stop.status == 0);
    CHECK(json::parse(stop.out)["reason"] == "stop-requested");
    CHECK(sup->wait() == 0);
    CHECK(sup->seen.back()["event"] == "stopped");
    CHECK_FALSE(util::process_alive(qemu));
    CHECK_FALSE(fs::exists(w.runtime / "vm1"));  // nothing left behind
}

TEST_CASE("SIGTERM to the supervisor ends the VM gracefully", "[runtime][qemu]") {
    World w;
    auto sup = w.run(w.profile("vm2"));
    const pid_t qemu = sup->wait_event("running")["qemu_pid"].get<pid_t>();
    sup->signal(SIGTERM);
    CHECK(sup->wait_event("stopping")["signal"] == "SIGTERM");
    CHECK(sup->wait() == 0);
    CHECK(sup->seen.back()["reason"] == "signal");
    CHECK_FALSE(util::process_alive(qemu));
    CHECK_FALSE(fs::exists(w.runtime / "vm2"));
}

TEST_CASE("QEMU killed with -9 ends the run with exit 1 and its log", "[runtime][qemu]") {
    World w;
    auto sup = w.run(w.profile("vm3", "[qemu]\nextra = [\"-trace\", \"handle_qmp_command\"]\n"));
    const pid_t qemu = sup->wait_event("running")["qemu_pid"].get<pid_t>();
    ::kill(qemu, SIGKILL);
    const auto log = sup->wait_event("log");
    CHECK(log["tail"].get<std::string>().find("handle_qmp_command") != std::string::npos);
    CHECK(sup->wait() == 1);
    const auto& stopped = sup->seen.back();
    CHECK(stopped["reason"] == "crashed");
    CHECK(stopped["detail"].get<std::string>().find("SIGKILL") != std::string::npos);
    CHECK_FALSE(fs::exists(w.runtime / "vm3"));
}

TEST_CASE("with the supervisor killed -9, QEMU keeps running and stop still ends it", "[runtime][qemu]") {
    World w;
    auto sup = w.run(w.profile("vm4"));
    const pid_t qemu = sup->wait_event("running")["qemu_pid"].get<pid_t>();
    sup->signal(SIGKILL);
    CHECK(sup->wait() == 128 + SIGKILL);
    CHECK(util::process_alive(qemu));  // the guest's data matters more than our process

    const auto s = status_of(w, "vm4");
    CHECK(s["supervised"] == false);
    CHECK(s["status"] == "running");
    CHECK(json::parse(w.cli({"ps", "--json"}).out)[0]["liveness"] == "unsupervised");
    // A second run of the same name is refused while QEMU lives.
    auto again = w.cli({"run", w.profile("vm4").string()});
    CHECK(again.status == 1);
    CHECK(again.err.find("already running") != std::string::npos);

    const auto stop = w.cli({"stop", "vm4", "--timeout", "1", "--json"});
    INFO(stop.err);
    REQUIRE(stop.status == 0);
    CHECK(json::parse(stop.out)["supervised"] == false);
    CHECK_FALSE(util::process_alive(qemu));
    // QEMU's user was given the VM's state directory: `restore` gives it back, then removes
    // the runtime directory.
    CHECK(json::parse(stop.out)["hint"].get<std::string>().find("kvmgpu restore vm4") != std::string::npos);
    const auto restore = w.cli({"restore", "vm4"});
    INFO(restore.err);
    CHECK(restore.status == 0);
    CHECK_FALSE(fs::exists(w.runtime / "vm4"));
}

namespace {

struct ProcStatus {
    std::string uid, gid, seccomp, no_new_privs;
};

ProcStatus proc_status(pid_t pid) {
    ProcStatus s;
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        const auto value = line.substr(line.find(':') + 1);
        const auto trimmed = value.substr(value.find_first_not_of(" \t"));
        if (line.starts_with("Uid:")) s.uid = trimmed;
        if (line.starts_with("Gid:")) s.gid = trimmed;
        if (line.starts_with("Seccomp:")) s.seccomp = trimmed;
        if (line.starts_with("NoNewPrivs:")) s.no_new_privs = trimmed;
    }
    return s;
}

// The child of `parent` whose comm is `comm`, or 0.
pid_t child_named(pid_t parent, const std::string& comm) {
    for (const auto& entry : fs::directory_iterator("/proc")) {
        const auto name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream c(entry.path() / "comm");
        std::string got;
        std::getline(c, got);
        if (got != comm) continue;
        std::ifstream st(entry.path() / "status");
        for (std::string line; std::getline(st, line);)
            if (line.starts_with("PPid:") && std::stoi(line.substr(5)) == parent) return std::stoi(name);
    }
    return 0;
}

struct Owner {
    uid_t uid;
    gid_t gid;
    mode_t mode;
    bool operator==(const Owner&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Owner& o) {
    return os << o.uid << ":" << o.gid << " " << std::oct << o.mode << std::dec;
}
Owner owner_of(const fs::path& file) {
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    return {st.st_uid, st.st_gid, static_cast<mode_t>(st.st_mode & 07777)};
}

}  // namespace

TEST_CASE("QEMU and swtpm run as the profile's user under seccomp, and what they were given comes back",
          "[runtime][qemu][security]") {
    if (::geteuid() != 0) {
        WARN("not root: QEMU runs as the caller, there is nothing to drop");
        return;
    }
    World w;
    fs::create_directories(w.host / "usr/share");
    fs::create_directory_symlink("/usr/share/OVMF", w.host / "usr/share/OVMF");
    const auto disk = w.dir.path() / "disk.raw";
    std::ofstream(disk).close();
    fs::resize_file(disk, 1 << 20);
    fs::permissions(disk, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);  // 0640 root:root
    const auto profile = w.profile("safe", "[firmware]\ntype = \"ovmf\"\n[[disk]]\npath = \"disk.raw\"\nformat = \"raw\"\nbus = \"sata\"\n"
                                           "[tpm]\nenabled = true\n");
    // w.profile() wrote seabios first; the test's [firmware] would be a duplicate table.
    {
        std::ifstream in(profile);
        std::string text{std::istreambuf_iterator<char>(in), {}};
        text.erase(text.find("[firmware]\ntype = \"seabios\"\n"), std::string("[firmware]\ntype = \"seabios\"\n").size());
        std::ofstream(profile) << text;
    }
    const Owner root_only{0, 0, 0640};
    const auto vars = w.state / "safe" / "OVMF_VARS.fd";
    const auto tpm = w.state / "safe" / "tpm";

    for (const bool killed : {false, true}) {
        DYNAMIC_SECTION((killed ? "supervisor killed -9, then stop and restore" : "stopped")) {
            auto sup = w.run(profile);
            const json running = w.wait_running(*sup);
            const pid_t qemu = running["qemu_pid"].get<pid_t>();
            const auto q = proc_status(qemu);
            CHECK(q.uid == "65534\t65534\t65534\t65534");
            CHECK(q.gid == "65534\t65534\t65534\t65534");
            CHECK(q.seccomp == "2");  // the filter of -sandbox on
            CHECK(q.no_new_privs == "1");
            const pid_t swtpm = child_named(sup->pid(), "swtpm");
            REQUIRE(swtpm > 0);
            CHECK(proc_status(swtpm).uid == "65534\t65534\t65534\t65534");
            // What it uses is its while it runs: the disk, the OVMF variables, the TPM state.
            CHECK(owner_of(disk).uid == 65534);
            CHECK(owner_of(vars).uid == 65534);
            CHECK(owner_of(tpm).uid == 65534);
            // The VM works with them: QEMU writes the disk, has the variables read-write, and
            // the TPM answers through swtpm.
            const auto write = w.cli({"qmp", "safe",
                                      R"({"execute":"human-monitor-command","arguments":{"command-line":"qemu-io -d kvmgpu-disk0-dev \"write -P 0x5a 0 4k\""}})",
                                      "--json"});
            INFO(write.out << write.err);
            // (qemu-io prints its result into QEMU's log, not the reply; the bytes are checked below.)
            CHECK(json::parse(write.out)["return"].get<std::string>().find("rror") == std::string::npos);
            const auto nodes = json::parse(w.cli({"qmp", "safe", R"({"execute":"query-named-block-nodes"})", "--json"}).out);
            bool vars_rw = false;
            for (const auto& n : nodes["return"])
                if (n.value("node-name", "") == "kvmgpu-ovmf-vars-file") vars_rw = !n.value("ro", true);
            CHECK(vars_rw);
            CHECK(json::parse(w.cli({"qmp", "safe", R"({"execute":"query-tpm"})", "--json"}).out)["return"][0]["model"] ==
                  "tpm-crb");
            if (killed) {
                sup->signal(SIGKILL);
                CHECK(sup->wait() == 128 + SIGKILL);
                REQUIRE(w.cli({"stop", "safe", "--force"}).status == 0);
                CHECK(owner_of(disk).uid == 65534);  // nothing gave it back yet
                const auto restore = w.cli({"restore", "safe"});
                INFO(restore.err);
                CHECK(restore.status == 0);
            } else {
                REQUIRE(w.cli({"stop", "safe", "--force"}).status == 0);
                CHECK(sup->wait() == 0);
            }
            std::ifstream in(disk, std::ios::binary);
            CHECK(in.get() == 0x5a);
            // Everything is root's again, as it was.
            CHECK(owner_of(disk) == root_only);
            CHECK(owner_of(vars).uid == 0);
            CHECK(owner_of(tpm).uid == 0);
            CHECK(owner_of(w.state / "safe") == (Owner{0, 0, 0700}));
            CHECK_FALSE(fs::exists(w.runtime / ".host/journal/safe.json"));
            CHECK_FALSE(fs::exists(w.runtime / "safe"));
        }
    }
}

TEST_CASE("Looking Glass's shm file is made for the desktop user while the VM runs and removed after",
          "[runtime][qemu][looking-glass]") {
    if (::geteuid() != 0) {
        WARN("not root: the file can only be made for the caller");
        return;
    }
    World w;
    const auto shm = w.host / "looking-glass";
    // "daemon" stands in for the desktop user; QEMU runs as "nobody" and maps it through the group.
    const auto profile = w.profile("lg", "[looking_glass]\nenabled = true\nsize = \"32M\"\nowner = \"daemon\"\npath = \"" +
                                             shm.string() + "\"\n");
    const auto daemon = util::find_user("daemon");
    const auto nobody = util::find_user("nobody");
    REQUIRE(daemon);
    REQUIRE(nobody);
    auto sup = w.run(profile);
    w.wait_running(*sup);
    CHECK(owner_of(shm) == (Owner{daemon->uid, nobody->gid, 0660}));
    // QEMU mapped it: the guest's ivshmem device is backed by it, 32 MiB.
    const auto memdevs = json::parse(w.cli({"qmp", "lg", R"({"execute":"query-memdev"})", "--json"}).out);
    bool mapped = false;
    for (const auto& m : memdevs["return"]) mapped = mapped || (m.value("id", "") == "kvmgpu-lg" && m.value("size", 0) == (32 << 20));
    CHECK(mapped);
    CHECK(fs::file_size(shm) == std::uintmax_t{32} << 20);
    REQUIRE(w.cli({"stop", "lg", "--force"}).status == 0);
    CHECK(sup->wait() == 0);
    CHECK_FALSE(fs::exists(shm));
    CHECK_FALSE(fs::exists(w.runtime / ".host/journal/lg.json"));
}

TEST_CASE("50 concurrent clients x 20 requests each all get their own right reply", "[runtime][qemu]") {
    World w;
    auto sup = w.run(w.profile("vm5"));
    sup->wait_event("running");
    const auto socket = w.runtime / "vm5" / "control.sock";
    std::atomic<int> right{0}, wrong{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 50; ++c) {
        clients.emplace_back([&, c] {
            try {
                auto client = app::ControlClient::connect(socket);
                if (!client) {
                    wrong += 20;
                    return;
                }
                for (int r = 0; r < 20; ++r) {
                    const std::string id = std::to_string(c) + "-" + std::to_string(r);
                    const json req = r % 2 ? json{{"execute", "query-status"}, {"id", id}}
                                           : json{{"kvmgpu", "status"}, {"id", id}};
                    const auto reply = client->request(req, Clock::now() + std::chrono::seconds(30));
                    const bool ok = reply.value("id", "") == id && reply["return"]["status"] == "running";
                    (ok ? right : wrong)++;
                }
            } catch (const std::exception&) {
                wrong++;
            }
        });
    }
    for (auto& t : clients) t.join();
    CHECK(right == 1000);
    CHECK(wrong == 0);
    REQUIRE(w.cli({"stop", "vm5", "--force"}).status == 0);
    CHECK(sup->wait() == 0);
}

TEST_CASE("events streams QMP events to a client until the VM ends", "[runtime][qemu]") {
    World w;
    auto sup = w.run(w.profile("vm6"));
    sup->wait_event("running");
    auto client = app::ControlClient::connect(w.runtime / "vm6" / "control.sock");
    REQUIRE(client);
    CHECK(client->request({{"kvmgpu", "events"}}, Clock::now() + std::chrono::seconds(10)).contains("return"));
    REQUIRE(w.cli({"pause", "vm6"}).status == 0);
    const auto e = client->next(Clock::now() + std::chrono::seconds(10));
    REQUIRE(e);
    CHECK((*e)["event"] == "STOP");
    REQUIRE(w.cli({"stop", "vm6", "--force"}).status == 0);
    std::vector<std::string> names;
    while (auto more = client->next(Clock::now() + std::chrono::seconds(30))) names.push_back((*more)["event"]);
    CHECK(std::find(names.begin(), names.end(), "SHUTDOWN") != names.end());  // then EOF
    CHECK(sup->wait() == 0);
}

TEST_CASE("failures before the VM runs are clear and leave nothing behind", "[runtime][qemu]") {
    World w;
    SECTION("a missing QEMU binary") {
        const auto r = w.cli({"run", w.profile("bad1", "[qemu]\nbinary = \"/nonexistent/qemu-system-x86_64\"\n").string()});
        CHECK(r.status == 1);
        CHECK(r.err.find("\"/nonexistent/qemu-system-x86_64\"") != std::string::npos);
        CHECK_FALSE(fs::exists(w.runtime / "bad1"));
    }
    SECTION("QEMU rejecting an argument") {
        const auto r = w.cli({"run", w.profile("bad2", "[qemu]\nextra = [\"-device\", \"no-such-device\"]\n").string()});
        CHECK(r.status == 1);
        CHECK(r.err.find("no-such-device") != std::string::npos);  // from QEMU's log
        CHECK(r.err.find("start-failed") != std::string::npos);
        CHECK_FALSE(fs::exists(w.runtime / "bad2"));
    }
    SECTION("a QMP socket that never appears") {
        // A stand-in "QEMU" that runs but never opens its socket.
        const auto fake = w.dir.path() / "fake-qemu";
        std::ofstream(fake) << "#!/bin/sh\nexec sleep 30\n";
        // QEMU's user (not the owner) runs it.
        fs::permissions(fake, fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
        const auto r = w.cli({"run", "--qmp-timeout", "1", w.profile("bad3", "[qemu]\nbinary = \"" + fake.string() + "\"\n").string()});
        CHECK(r.status == 1);
        CHECK(r.err.find("QMP") != std::string::npos);
        CHECK_FALSE(fs::exists(w.runtime / "bad3"));
    }
    SECTION("malformed JSON for kvmgpu qmp is bad input") {
        const auto r = w.cli({"qmp", "anything", "{\"execute\": "});
        CHECK(r.status == 2);
        CHECK(r.err.find("is not JSON") != std::string::npos);
    }
    SECTION("an unknown VM name") {
        for (const char* cmd : {"status", "pause", "resume", "stop", "reset", "events"}) {
            const auto r = w.cli({cmd, "nosuchvm"});
            INFO(cmd);
            CHECK(r.status == 1);
            CHECK(r.err.find("no VM named \"nosuchvm\" is running") != std::string::npos);
        }
    }
    SECTION("a stale runtime directory is detected and cleaned") {
        fs::create_directories(w.runtime / "ghost");
        std::ofstream(w.runtime / "ghost" / "state.json")
            << R"({"name":"ghost","supervisor_pid":999999,"qemu_pid":999998,"devices":[]})";
        const auto r = w.cli({"status", "ghost"});
        CHECK(r.status == 1);
        CHECK(r.err.find("was removed") != std::string::npos);
        CHECK_FALSE(fs::exists(w.runtime / "ghost"));
    }
}

TEST_CASE("real QEMU accepts the argv of every feature that needs no host hardware", "[runtime][qemu]") {
    World w;
    // Disks of every bus and medium, OVMF with Secure Boot, Hyper-V, VNC with a websocket on
    // loopback, a USB host device that is not plugged in, Looking Glass shared memory, a TPM.
    const auto img = w.dir.path() / "images";
    fs::create_directories(img);
    for (const char* f : {"a.raw", "b,with,commas.raw", "c.iso", "d.raw", "e.iso"}) {
        std::ofstream(img / f).close();
        fs::resize_file(img / f, 1 << 20);
    }
    // The host check looks for the firmware under the host root.
    fs::create_directories(w.host / "usr/share");
    fs::create_directory_symlink("/usr/share/OVMF", w.host / "usr/share/OVMF");
    const unsigned port = 5900 + 50 + static_cast<unsigned>(::getpid() % 40);  // loopback only
    const auto profile = w.dir.path() / "full.toml";
    std::ofstream(profile) << "name = \"full\"\n"
        "[machine]\naccel = \"tcg\"\nmemory = \"256M\"\nrtc = \"localtime\"\n"
        "[cpu]\ncores = 2\nhide_kvm = true\nhv_vendor_id = \"KVMGPUVENDOR\"\nhyperv = true\n"
        "[firmware]\ntype = \"ovmf\"\nsecure_boot = true\n"
        "[[disk]]\npath = \"images/a.raw\"\n"
        "[[disk]]\npath = \"images/b,with,commas.raw\"\nbus = \"nvme\"\n"
        "[[disk]]\npath = \"images/c.iso\"\nmedia = \"cdrom\"\n"
        "[[disk]]\npath = \"images/d.raw\"\nbus = \"scsi\"\n"
        "[[disk]]\npath = \"images/e.iso\"\nbus = \"scsi\"\nmedia = \"cdrom\"\n"
        "[network]\nmode = \"user\"\nmodel = \"e1000e\"\n"
        "[[usb]]\nvendor = 0x046d\nproduct = 0xc52b\n"
        "[display]\ntype = \"vnc\"\nlisten = \"127.0.0.1\"\nport = " << port << "\nwebsocket = " << port + 100 << "\n"
        "[looking_glass]\npath = \"" << (w.dir.path() / "lg-shm").string() << "\"\nresolution = \"1280x720\"\n"
        "[tpm]\nenabled = true\n" << kUnprivileged;
    // The Looking Glass client's file exists before the VM: kvmgpu gives it to QEMU's user.
    std::ofstream(w.dir.path() / "lg-shm").close();
    auto sup = w.run(profile);
    const json running = w.wait_running(*sup);
    const auto r = w.cli({"qmp", "full", R"({"execute":"query-pci"})", "--json"});
    REQUIRE(r.status == 0);
    std::set<std::string> ids;
    std::function<void(const json&)> collect = [&](const json& devices) {
        for (const auto& d : devices) {
            ids.insert(d.value("qdev_id", ""));
            if (d.contains("pci_bridge") && d["pci_bridge"].contains("devices")) collect(d["pci_bridge"]["devices"]);
        }
    };
    const auto pci = json::parse(r.out);
    for (const auto& bus : pci["return"]) collect(bus["devices"]);
    for (const char* id : {"kvmgpu-disk0-dev", "kvmgpu-disk1-dev", "kvmgpu-scsi", "kvmgpu-nic0", "kvmgpu-xhci",
                           "kvmgpu-video", "kvmgpu-lg-dev"})
        CHECK(ids.count(id));
    // The VNC websocket listens on loopback, where the profile said.
    const auto vnc = w.cli({"qmp", "full", R"({"execute":"query-vnc"})", "--json"});
    CHECK(json::parse(vnc.out)["return"]["service"] == std::to_string(port));
    CHECK(json::parse(vnc.out)["return"]["host"] == "127.0.0.1");
    // The TPM is there, backed by the emulator.
    const auto tpm = w.cli({"qmp", "full", R"({"execute":"query-tpm"})", "--json"});
    CHECK(json::parse(tpm.out)["return"][0]["model"] == "tpm-crb");
    // The per-VM OVMF variables were made from the Secure Boot template.
    CHECK(fs::file_size(w.state / "full" / "OVMF_VARS.fd") == fs::file_size("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"));
    REQUIRE(w.cli({"stop", "full", "--force"}).status == 0);
    CHECK(sup->wait() == 0);
}

TEST_CASE("vCPU and emulator threads are pinned from query-cpus-fast before the VM runs", "[runtime][qemu]") {
    World w;
    // Two host CPUs are enough: the vCPU on 1, everything else of QEMU on 0.
    // The host check wants the pinned CPUs online; this host root says CPUs 0 and 1 are.
    fs::create_directories(w.host / "sys/devices/system/cpu");
    std::ofstream(w.host / "sys/devices/system/cpu/online") << "0-1\n";
    const auto file = w.dir.path() / "pinned.toml";
    std::ofstream(file) << "name = \"pinned\"\n[machine]\naccel = \"tcg\"\nmemory = \"128M\"\n"
                           "[cpu]\ncores = 1\npin = [1]\nemulator_pin = [0]\n"
                           "[firmware]\ntype = \"seabios\"\n[network]\nmode = \"none\"\n" << kUnprivileged;
    auto sup = w.run(file);
    const pid_t qemu = sup->wait_event("running")["qemu_pid"].get<pid_t>();
    const auto pin_step = std::find_if(sup->seen.begin(), sup->seen.end(), [](const json& e) { return e.value("step", "") == "pin"; });
    REQUIRE(pin_step != sup->seen.end());
    const auto cpus = json::parse(w.cli({"qmp", "pinned", R"({"execute":"query-cpus-fast"})", "--json"}).out)["return"];
    REQUIRE(cpus.size() == 1);
    const auto vcpu = cpus[0]["thread-id"].get<pid_t>();
    auto allowed = [&](pid_t tid) {
        std::ifstream in("/proc/" + std::to_string(qemu) + "/task/" + std::to_string(tid) + "/status");
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("Cpus_allowed_list:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 18));
        return std::string("?");
    };
    CHECK(allowed(vcpu) == "1");
    int others = 0;
    for (const auto& t : fs::directory_iterator("/proc/" + std::to_string(qemu) + "/task")) {
        const pid_t tid = std::stoi(t.path().filename().string());
        if (tid == vcpu) continue;
        ++others;
        INFO("thread " << tid);
        // Threads QEMU starts later (worker pools) inherit the main thread's affinity.
        CHECK(allowed(tid) == "0");
    }
    CHECK(others >= 1);
    REQUIRE(w.cli({"stop", "pinned", "--force"}).status == 0);
    CHECK(sup->wait() == 0);
}

TEST_CASE("a supervisor whose stdout reader went away keeps supervising", "[runtime][qemu]") {
    World w;
    auto sup = w.run(w.profile("piped"));
    const pid_t qemu = sup->wait_event("running")["qemu_pid"].get<pid_t>();
    sup->close_stdout();  // like `kvmgpu run --json ... | head -n 4`
    REQUIRE(w.cli({"pause", "piped"}).status == 0);  // the "paused" line goes nowhere: EPIPE, not death
    CHECK(status_of(w, "piped")["status"] == "paused");
    CHECK(status_of(w, "piped")["supervised"] == true);
    REQUIRE(w.cli({"stop", "piped", "--force"}).status == 0);
    CHECK(sup->wait() == 0);
    CHECK_FALSE(util::process_alive(qemu));
}

TEST_CASE("QEMU told to quit over QMP ends the run as a requested stop, and poststop runs", "[runtime][qemu]") {
    World w;
    const auto marker = w.dir.path() / "poststop-ran";
    auto sup = w.run(w.profile("quitter", "[hooks]\npoststop = [\"/bin/touch\", \"" + marker.string() + "\"]\n"));
    sup->wait_event("running");
    CHECK(w.cli({"qmp", "quitter", R"({"execute":"quit"})"}).status == 0);
    CHECK(sup->wait() == 0);
    const auto& stopped = sup->seen.back();
    CHECK(stopped["reason"] == "stop-requested");
    CHECK(stopped["detail"].get<std::string>().find("host-qmp-quit") != std::string::npos);
    CHECK(fs::exists(marker));  // with SeaBIOS and no TPM too (the state directory exists)
}

TEST_CASE("a second run of a name that is still starting is refused, the first left alone", "[runtime]") {
    World w;
    // The state a launch writes the moment it creates its directory: our own pid is the launcher.
    fs::create_directories(w.runtime / "busy");
    fs::permissions(w.runtime / "busy", fs::perms::owner_all);
    std::ofstream(w.runtime / "busy" / "state.json")
        << json{{"name", "busy"}, {"supervisor_pid", ::getpid()},
                {"supervisor_start", util::process_start_time(::getpid()).value()}, {"qemu_pid", 0}}.dump();
    const auto r = w.cli({"run", w.profile("busy").string()});
    CHECK(r.status == 1);
    CHECK(r.err.find("already starting") != std::string::npos);
    CHECK(fs::exists(w.runtime / "busy" / "state.json"));
}

TEST_CASE("a malformed control request gets an error reply and the connection stays usable", "[runtime][qemu]") {
    World w;
    auto sup = w.run(w.profile("strict"));
    sup->wait_event("running");
    auto client = app::ControlClient::connect(w.runtime / "strict" / "control.sock");
    REQUIRE(client);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    const auto bad = client->request({{"kvmgpu", "stop"}, {"timeout", "soon"}}, deadline);
    CHECK(bad["error"]["desc"].get<std::string>().find("\"timeout\" is a whole number of seconds") == 0);
    CHECK(client->request({{"kvmgpu", 7}}, deadline).contains("error"));
    client->send(json("not an object"));
    CHECK(client->next(deadline)->contains("error"));
    // Bytes that are not UTF-8 come back quoted in the error, replaced, and break nothing.
    const auto fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, (w.runtime / "strict" / "control.sock").c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const std::string not_utf8 = "{\"id\": \"\xff\"}\n{\"kvmgpu\": \"status\"}\n";
    REQUIRE(::write(fd, not_utf8.data(), not_utf8.size()) == static_cast<ssize_t>(not_utf8.size()));
    std::string replies;
    while (std::count(replies.begin(), replies.end(), '\n') < 2) {
        pollfd p{fd, POLLIN, 0};
        REQUIRE(::poll(&p, 1, 10'000) == 1);
        char chunk[4096];
        const auto n = ::read(fd, chunk, sizeof chunk);
        REQUIRE(n > 0);
        replies.append(chunk, static_cast<std::size_t>(n));
    }
    ::close(fd);
    CHECK(json::parse(replies.substr(0, replies.find('\n'))).contains("error"));
    CHECK(json::parse(replies.substr(replies.find('\n') + 1))["return"]["status"] == "running");
    CHECK(client->request({{"kvmgpu", "status"}}, deadline)["return"]["status"] == "running");
    REQUIRE(w.cli({"stop", "strict", "--force"}).status == 0);
    CHECK(sup->wait() == 0);
}

TEST_CASE("stop --force ends a launch whose prestart hook hangs and leaves nothing behind", "[runtime]") {
    World w;
    const auto marker = w.dir.path() / "hook-ran";
    // The hook records that it runs, then hangs as a hook waiting on something forever would.
    auto sup = w.run(w.profile("hang", "[hooks]\nprestart = [\"/bin/sh\", \"-c\", \"touch " + marker.string() +
                                           "; exec sleep 600\"]\n"));
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (!fs::exists(marker) && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(fs::exists(marker));
    const auto stop = w.cli({"stop", "hang", "--force", "--json"});
    INFO(stop.err << w.supervisor_err());
    CHECK(stop.status == 0);
    CHECK(json::parse(stop.out)["detail"].get<std::string>().find("it was sent SIGTERM and has exited") != std::string::npos);
    CHECK(sup->wait(std::chrono::seconds(30)) == 1);
    const auto failed = std::find_if(sup->seen.begin(), sup->seen.end(), [](const json& e) { return e.value("ok", true) == false; });
    REQUIRE(failed != sup->seen.end());
    CHECK((*failed)["step"] == "prestart");
    CHECK((*failed)["error"].get<std::string>().find("SIGTERM arrived") != std::string::npos);
    CHECK(sup->seen.back()["exit"] == 1);  // --json ends with the error object
    CHECK_FALSE(fs::exists(w.runtime / "hang"));
}

TEST_CASE("stop does not wait for the power button of a paused guest, supervised or not", "[runtime][qemu]") {
    for (const bool supervised : {true, false}) {
        DYNAMIC_SECTION((supervised ? "supervised" : "supervisor killed -9")) {
            World w;
            auto sup = w.run(w.profile("held"));
            sup->wait_event("running");
            if (!supervised) {
                sup->signal(SIGKILL);
                CHECK(sup->wait() == 128 + SIGKILL);
            }
            REQUIRE(w.cli({"pause", "held"}).status == 0);
            REQUIRE(status_of(w, "held")["status"] == "paused");
            // A paused guest cannot see the button: waiting the 60 s for it would be wasted.
            const auto started = Clock::now();
            const auto stop = w.cli({"stop", "held", "--timeout", "60", "--json"});
            INFO(stop.err);
            CHECK(stop.status == 0);
            CHECK(Clock::now() - started < std::chrono::seconds(20));
            if (supervised) CHECK(sup->wait() == 0);
            // Without a supervisor, what QEMU's user was given waits for `restore`.
            if (!supervised) CHECK(w.cli({"restore", "held"}).status == 0);
            CHECK_FALSE(fs::exists(w.runtime / "held"));
        }
    }
}

TEST_CASE("status follows pause and resume from the events, without asking QEMU each time", "[runtime][qemu]") {
    World w;
    auto sup = w.run(w.profile("follow"));
    sup->wait_event("running");
    for (int i = 0; i < 3; ++i) {
        REQUIRE(w.cli({"pause", "follow"}).status == 0);
        CHECK(status_of(w, "follow")["status"] == "paused");
        CHECK(status_of(w, "follow")["running"] == false);
        REQUIRE(w.cli({"resume", "follow"}).status == 0);
        CHECK(status_of(w, "follow")["status"] == "running");
        CHECK(status_of(w, "follow")["running"] == true);
    }
    REQUIRE(w.cli({"stop", "follow", "--force"}).status == 0);
    CHECK(sup->wait() == 0);
}

TEST_CASE("with the supervisor stopped, status and stop fall back to the rescue socket and a late stop is not carried out",
          "[runtime][qemu]") {
    World w;
    auto sup = w.run(w.profile("frozen"));
    const auto running = sup->wait_event("running");
    const pid_t qemu = running["qemu_pid"].get<pid_t>();
    // A stop sent just before the supervisor stops, with a deadline that passes while it is stopped.
    auto client = app::ControlClient::connect(w.runtime / "frozen" / "control.sock");
    REQUIRE(client);
    sup->signal(SIGSTOP);
    const auto soon = app::ControlClock::now() + std::chrono::milliseconds(300);
    client->send(app::request_json(app::StopRequest{std::chrono::seconds(0), true}, 1, soon));

    const auto started = Clock::now();
    const auto status = w.cli({"status", "frozen", "--json"});
    INFO(status.err);
    CHECK(status.status == 0);
    CHECK(Clock::now() - started < std::chrono::seconds(15));
    CHECK(status.err.find("did not answer within 5 s (stopped or hung?)") != std::string::npos);
    CHECK(status.err.find("rescue QMP socket") != std::string::npos);
    const auto seen = json::parse(status.out);
    CHECK(seen["status"] == "running");
    CHECK(seen["liveness"] == "not-answering");

    // Woken after its deadline, the supervisor refuses the stop: the VM runs on.
    sup->signal(SIGCONT);
    const auto refused = client->next(Clock::now() + std::chrono::seconds(10));
    REQUIRE(refused);
    CHECK((*refused)["error"]["desc"].get<std::string>().find("after its deadline") != std::string::npos);
    CHECK(status_of(w, "frozen")["status"] == "running");
    CHECK(util::process_alive(qemu));

    // Stopped again, a stop ends QEMU over the rescue socket; the supervisor, once it runs,
    // sees QEMU gone and cleans up.
    sup->signal(SIGSTOP);
    const auto stop = w.cli({"stop", "frozen", "--force", "--json"});
    INFO(stop.err);
    CHECK(stop.status == 0);
    CHECK(stop.err.find("stopping QEMU over its rescue QMP socket instead") != std::string::npos);
    CHECK(json::parse(stop.out)["supervised"] == false);
    CHECK_FALSE(util::process_alive(qemu));
    sup->signal(SIGCONT);
    sup->wait(std::chrono::seconds(30));
    CHECK_FALSE(fs::exists(w.runtime / "frozen"));
}

TEST_CASE("status of a VM whose QEMU is stopped fails with the reason instead of printing unknown", "[runtime][qemu]") {
    World w;
    auto sup = w.run(w.profile("stuck"));
    const pid_t qemu = sup->wait_event("running")["qemu_pid"].get<pid_t>();
    // Paused, the run state is not known from events alone: status has to ask QEMU.
    REQUIRE(w.cli({"pause", "stuck"}).status == 0);
    ::kill(qemu, SIGSTOP);
    const auto started = Clock::now();
    const auto status = w.cli({"status", "stuck"});
    CHECK(status.status == 1);
    CHECK(Clock::now() - started < std::chrono::seconds(9));
    CHECK(status.err.find("the status of \"stuck\" is unknown: QEMU (pid " + std::to_string(qemu) +
                          ") did not tell its run state") != std::string::npos);
    CHECK(status.err.find("stopped (SIGSTOP) or hung") != std::string::npos);
    ::kill(qemu, SIGCONT);
    REQUIRE(w.cli({"stop", "stuck", "--force"}).status == 0);
    CHECK(sup->wait() == 0);
}

TEST_CASE("a start on a full runtime filesystem fails clearly and leaves no directory to block the name", "[runtime]") {
    World w;
    // A real full filesystem: a small tmpfs, filled up (needs root; not a host setting).
    fs::create_directories(w.runtime);
    if (::mount("kvmgpu-test", w.runtime.c_str(), "tmpfs", 0, "size=256k,mode=0700") != 0) {
        WARN("not run: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount {
        fs::path at;
        ~Unmount() { ::umount2(at.c_str(), MNT_DETACH); }
    } unmount{w.runtime};
    {
        std::ofstream fill(w.runtime / ".fill");
        fill << std::string(1024 * 1024, 'x');  // more than fits
    }
    const auto r = w.cli({"run", w.profile("full").string()});
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(r.err.find("No space left on device") != std::string::npos);
    CHECK_FALSE(fs::exists(w.runtime / "full"));
    // With room again, the name is free.
    fs::remove(w.runtime / ".fill");
    auto sup = w.run(w.profile("full"));
    sup->wait_event("running");
    REQUIRE(w.cli({"stop", "full", "--force"}).status == 0);
    CHECK(sup->wait() == 0);
}

TEST_CASE("a symlink planted in a VM's state directory refuses the launch and its target is left alone", "[runtime]") {
    World w;
    const auto target = w.dir.path() / "precious";
    std::ofstream(target) << "keep";
    fs::create_directories(w.state / "planted");
    fs::permissions(w.state / "planted", fs::perms::owner_all);
    fs::create_symlink(target, w.state / "planted" / "OVMF_VARS.fd");
    auto sup = w.run(w.profile("planted"));
    CHECK(sup->wait(std::chrono::seconds(30)) == 1);
    const auto failed = std::find_if(sup->seen.begin(), sup->seen.end(), [](const json& e) { return e.value("ok", true) == false; });
    REQUIRE(failed != sup->seen.end());
    CHECK((*failed)["step"] == "runtime-dir");
    CHECK((*failed)["error"].get<std::string>().find("OVMF_VARS.fd\" is not a regular file") != std::string::npos);
    std::ifstream in(target);
    std::string content;
    in >> content;
    CHECK(content == "keep");
    CHECK_FALSE(fs::exists(w.runtime / "planted"));
}
