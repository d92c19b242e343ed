#include "host/holders.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "host/host_model.hpp"
#include "host_fixture.hpp"
#include "temp_dir.hpp"
#include "util/fd.hpp"

using namespace kvmgpu;
using namespace kvmgpu::host;
namespace fs = std::filesystem;

namespace {

const std::string kGpu = "0000:01:00.0";
const std::string kAudio = "0000:01:00.1";

// A GPU with its HDMI audio (see add_gpu_with_audio) and the nodes their drivers made: the GPU
// has DRM card0 and renderD128 (and a connector, which is no node) and framebuffer fb0, the
// audio function is sound card 1.
struct HeldHost {
    test::HostFixture fx;
    HeldHost() {
        test::add_gpu_with_audio(fx);
        const fs::path gpu = fx.device_dir(kGpu);
        for (const char* d : {"drm/card0", "drm/renderD128", "drm/card0-HDMI-A-1", "graphics/fb0"})
            fs::create_directories(gpu / d);
        const fs::path audio = fx.device_dir(kAudio) / "sound/card1";
        for (const char* d : {"controlC1", "pcmC1D3p", "hwC1D0", "input12"}) fs::create_directories(audio / d);
        fx.write(fx.device_dir(kAudio).lexically_relative(fx.root()) / "sound/card1/id", "NVidia\n");
        fx.write("proc/cmdline", "root=/dev/sda1\n");
    }
    // A process: comm, command line (arguments separated by NUL), cgroup.
    void process(pid_t pid, const std::string& comm, const std::string& cmdline = {},
                 const std::string& cgroup = "0::/\n") {
        const fs::path dir = fs::path("proc") / std::to_string(pid);
        fx.write(dir / "comm", comm + "\n");
        fx.write(dir / "cmdline", cmdline);
        fx.write(dir / "cgroup", cgroup);
        fs::create_directories(fx.path(dir / "fd"));
    }
    // proc/PID/fd/FD -> target, as the kernel shows an open file.
    void open(pid_t pid, int fd, const std::string& target) {
        fs::create_symlink(target, fx.path(fs::path("proc") / std::to_string(pid) / "fd" / std::to_string(fd)));
    }
    void vtcon(unsigned n, const std::string& name, bool bound) {
        const fs::path dir = fs::path("sys/class/vtconsole") / ("vtcon" + std::to_string(n));
        fx.write(dir / "name", name + "\n");
        fx.write(dir / "bind", bound ? "1\n" : "0\n");
    }
    void module(const std::string& name, unsigned refcnt, const std::vector<std::string>& dependents = {}) {
        const fs::path dir = fs::path("sys/module") / name;
        fx.write(dir / "refcnt", std::to_string(refcnt) + "\n");
        fs::create_directories(fx.path(dir / "holders"));
        for (const auto& d : dependents) fs::create_directories(fx.path(dir / "holders" / d));
    }
    void use_nvidia() {
        fx.unlink_driver(kGpu);
        fx.add_driver("nvidia");
        fx.link_driver(kGpu, "nvidia");
    }
    HolderScan find(const std::vector<std::string>& addresses = {kGpu, kAudio}) {
        const HostModel model = scan_host(fx.root(), {.names = false, .pci = true, .only = std::nullopt, .hugepages = true});
        std::vector<PciDeviceInfo> devices;
        for (const auto& a : addresses) devices.push_back(*model.find(*util::PciAddress::parse(a)));
        return find_holders(fx.root(), devices);
    }
};

// "KIND ADDRESS pid=PID COMMAND NODE [unit=UNIT] [user] [DETAIL]", one per holder.
std::vector<std::string> lines(const HolderScan& scan) {
    std::vector<std::string> out;
    for (const Holder& h : scan.holders) {
        std::string line = std::string(holder_kind_name(h.kind)) + " " + h.address.str() + " pid=" +
                           std::to_string(h.pid) + " " + h.command + " " + h.node;
        if (!h.unit.empty()) line += " unit=" + h.unit;
        if (h.user_unit) line += " user";
        if (!h.detail.empty()) line += " [" + h.detail + "]";
        out.push_back(line);
    }
    return out;
}

using Lines = std::vector<std::string>;

// A command line as proc/PID/cmdline holds it: each argument ends in a NUL.
std::string argv(std::initializer_list<std::string> args) {
    std::string out;
    for (const auto& a : args) out += a + '\0';
    return out;
}

struct Row {
    const char* name;
    std::function<void(HeldHost&)> setup;
    Lines expect;
};

}  // namespace

TEST_CASE("holders of a GPU and its audio function on fake host roots", "[host][holders]") {
    const std::string efi_iomem =
        "00000000-00000fff : Reserved\n"
        "c0000000-fec7ffff : PCI Bus 0000:00\n"
        "  e0000000-f1ffffff : PCI Bus 0000:01\n"
        "    e0000000-efffffff : 0000:01:00.0\n"
        "      e0000000-e07fffff : efifb\n"
        "    f6000000-f6ffffff : 0000:01:00.0\n";
    const Row rows[] = {
        {"nothing holds an idle card", nullptr, {}},
        {"a display server with the DRM node open holds the GPU",
         [](HeldHost& h) {
             h.process(1234, "Xorg", argv({"/usr/lib/xorg/Xorg", ":0", "-seat", "seat0"}),
                       "0::/system.slice/sddm.service\n");
             h.open(1234, 0, "/dev/null");
             h.open(1234, 12, "/dev/dri/card0");
             h.open(1234, 13, "/dev/dri/card0");  // a second fd on the same node: one holder
         },
         {"process 0000:01:00.0 pid=1234 Xorg /dev/dri/card0 unit=sddm.service [/usr/lib/xorg/Xorg :0 -seat seat0]"}},
        {"render node and framebuffer are nodes of the GPU too",
         [](HeldHost& h) {
             h.process(77, "ollama", "ollama", "0::/user.slice/user-1000.slice/session-2.scope\n");
             h.open(77, 3, "/dev/dri/renderD128");
             h.open(77, 4, "/dev/fb0");
         },
         {"process 0000:01:00.0 pid=77 ollama /dev/dri/renderD128 unit=session-2.scope [ollama]",
          "process 0000:01:00.0 pid=77 ollama /dev/fb0 unit=session-2.scope [ollama]"}},
        {"a sound server with the card's PCM and control open holds the audio function",
         [](HeldHost& h) {
             h.process(900, "pipewire", "/usr/bin/pipewire",
                       "0::/user.slice/user-1000.slice/user@1000.service/session.slice/pipewire.service\n");
             h.open(900, 30, "/dev/snd/controlC1");
             h.open(900, 31, "/dev/snd/pcmC1D3p");
         },
         {"process 0000:01:00.1 pid=900 pipewire /dev/snd/controlC1 unit=pipewire.service user [/usr/bin/pipewire]",
          "process 0000:01:00.1 pid=900 pipewire /dev/snd/pcmC1D3p unit=pipewire.service user [/usr/bin/pipewire]"}},
        {"a process holding another card's nodes holds neither function",
         [](HeldHost& h) {
             h.process(55, "gnome-shell");
             h.open(55, 9, "/dev/dri/card1");
             h.open(55, 10, "/dev/dri/renderD129");
             h.open(55, 11, "/dev/snd/controlC0");
             h.open(55, 12, "/dev/fb1");
             h.open(55, 13, "/dev/dri/card0-HDMI-A-1");
             h.open(55, 14, "/dev/dri/card0 (deleted)");
         },
         {}},
        {"the framebuffer console bound to the GPU's framebuffer holds it",
         [](HeldHost& h) {
             h.vtcon(0, "(S) dummy device", false);
             h.vtcon(1, "(M) frame buffer device", true);
         },
         {"console 0000:01:00.0 pid=0 (M) frame buffer device /sys/class/vtconsole/vtcon1 [/dev/fb0]"}},
        {"an unbound framebuffer console holds nothing",
         [](HeldHost& h) {
             h.vtcon(0, "(S) dummy device", true);
             h.vtcon(1, "(M) frame buffer device", false);
         },
         {}},
        {"the console holds no card without a framebuffer",
         [](HeldHost& h) {
             h.fx.remove(h.fx.device_dir(kGpu).lexically_relative(h.fx.root()) / "graphics");
             h.vtcon(1, "(M) frame buffer device", true);
         },
         {}},
        {"efifb memory inside a BAR holds the GPU and names its platform device",
         [&](HeldHost& h) {
             h.fx.write("proc/iomem", efi_iomem);
             fs::create_directories(h.fx.path("sys/bus/platform/drivers/efi-framebuffer/efi-framebuffer.0"));
             h.fx.write("sys/bus/platform/drivers/efi-framebuffer/unbind", "");
         },
         {"firmware-framebuffer 0000:01:00.0 pid=0 efifb /sys/bus/platform/drivers/efi-framebuffer/efi-framebuffer.0 "
          "[memory 0xe0000000-0xe07fffff in BAR 1 (0xe0000000-0xefffffff)]"}},
        {"BOOTFB with simpledrm inside it are two holders",
         [](HeldHost& h) {
             h.fx.write("proc/iomem",
                        "  e0000000-f1ffffff : PCI Bus 0000:01\n"
                        "    f0000000-f1ffffff : 0000:01:00.0\n"
                        "      f0000000-f02fffff : BOOTFB\n"
                        "        f0000000-f02fffff : simpledrm\n");
             fs::create_directories(h.fx.path("sys/bus/platform/drivers/simple-framebuffer/simple-framebuffer.0"));
         },
         {"firmware-framebuffer 0000:01:00.0 pid=0 BOOTFB /proc/iomem "
          "[memory 0xf0000000-0xf02fffff in BAR 3 (0xf0000000-0xf1ffffff)]",
          "firmware-framebuffer 0000:01:00.0 pid=0 simpledrm /sys/bus/platform/drivers/simple-framebuffer/simple-framebuffer.0 "
          "[memory 0xf0000000-0xf02fffff in BAR 3 (0xf0000000-0xf1ffffff)]"}},
        {"a firmware framebuffer outside the BARs holds nothing",
         [](HeldHost& h) {
             h.fx.write("proc/iomem",
                        "c0000000-c07fffff : efifb\n"
                        "  e0000000-efffffff : 0000:01:00.0\n"
                        "dfff0000-e000ffff : vesafb\n");  // straddles the BAR's start
         },
         {}},
        {"NVIDIA: modules in use and persistenced hold the GPU, not its audio function",
         [](HeldHost& h) {
             h.use_nvidia();
             h.fx.write("proc/driver/nvidia/gpus/0000:01:00.0/information", "Model: GA104\nDevice Minor: \t 0\n");
             h.module("nvidia_drm", 2);
             h.module("nvidia_modeset", 1, {"nvidia_drm"});  // only its dependent: not in use
             h.module("nvidia_uvm", 0);
             h.module("nvidia", 5, {"nvidia_modeset", "nvidia_uvm"});  // not one of the three
             h.process(400, "nvidia-persiste",
                       argv({"/usr/bin/nvidia-persistenced", "--user", "nvidia-persistenced"}),
                       "0::/system.slice/nvidia-persistenced.service\n");
             h.open(400, 3, "/dev/nvidiactl");
             h.open(400, 4, "/dev/nvidia0");
             h.process(500, "python3", argv({"python3", "train.py"}));
             h.open(500, 5, "/dev/nvidia-uvm");
             h.open(500, 6, "/dev/nvidia1");  // another GPU's
         },
         {"process 0000:01:00.0 pid=500 python3 /dev/nvidia-uvm [python3 train.py]",
          "module 0000:01:00.0 pid=0 nvidia_drm /sys/module/nvidia_drm [2 users]",
          "service-process 0000:01:00.0 pid=400 nvidia-persistenced /dev/nvidia0 unit=nvidia-persistenced.service "
          "[/usr/bin/nvidia-persistenced --user nvidia-persistenced]"}},
        {"NVIDIA without a minor number: every /dev/nvidiaN may be the GPU's",
         [](HeldHost& h) {
             h.use_nvidia();
             h.fx.write("dev/nvidia0", "");
             h.fx.write("dev/nvidia1", "");
             h.module("nvidia_drm", 3, {"some_module"});
             h.process(500, "blender");
             h.open(500, 6, "/dev/nvidia1");
         },
         {"process 0000:01:00.0 pid=500 blender /dev/nvidia1",
          "module 0000:01:00.0 pid=0 nvidia_drm /sys/module/nvidia_drm [2 users; needed by module some_module]"}},
        {"a GPU on another driver ignores NVIDIA's modules and persistenced",
         [](HeldHost& h) {
             h.module("nvidia_drm", 2);
             h.process(400, "nvidia-persiste", "", "0::/system.slice/nvidia-persistenced.service\n");
             h.open(400, 3, "/dev/nvidiactl");
         },
         {}},
    };
    for (const Row& row : rows) {
        SECTION(row.name) {
            HeldHost h;
            h.process(1, "systemd", argv({"/sbin/init", "splash"}));
            h.open(1, 0, "/dev/null");
            if (row.setup) row.setup(h);
            const HolderScan scan = h.find();
            CHECK(scan.scanned);
            CHECK_FALSE(scan.processes_unknown());
            CHECK(lines(scan) == row.expect);
        }
    }
}

TEST_CASE("no readable process means the holders are unknown rather than none", "[host][holders]") {
    HeldHost h;
    // Another user's process: its directory is there, its fd/ cannot be listed.
    h.fx.write("proc/1/comm", "systemd\n");
    h.fx.write("proc/2/comm", "kthreadd\n");
    auto scan = h.find();
    CHECK(scan.processes == 2);
    CHECK(scan.readable == 0);
    CHECK(scan.processes_unknown());

    h.process(300, "bash");
    scan = h.find();
    CHECK(scan.processes == 3);
    CHECK(scan.readable == 1);
    CHECK_FALSE(scan.processes_unknown());
}

TEST_CASE("proc/iomem without addresses is reported as hidden", "[host][holders]") {
    HeldHost h;
    h.fx.write("proc/iomem", "00000000-00000000 : PCI Bus 0000:00\n  00000000-00000000 : efifb\n");
    const auto scan = h.find();
    CHECK(scan.holders.empty());
    CHECK(scan.iomem_hidden);
}

TEST_CASE("no devices means no scan at all", "[host][holders]") {
    HeldHost h;
    h.process(1, "Xorg");
    h.open(1, 4, "/dev/dri/card0");
    const auto scan = find_holders(h.fx.root(), {});
    CHECK_FALSE(scan.scanned);
    CHECK(scan.processes == 0);
}

TEST_CASE("the unit of a process comes from its cgroup", "[host][holders]") {
    struct Case {
        const char* cgroup;
        const char* unit;
        bool user;
    };
    const Case cases[] = {
        {"0::/system.slice/display-manager.service\n", "display-manager.service", false},
        {"0::/system.slice/gdm.service\n", "gdm.service", false},
        {"0::/user.slice/user-1000.slice/session-2.scope\n", "session-2.scope", false},
        {"0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-1234.scope\n",
         "app-firefox-1234.scope", true},
        {"0::/user.slice/user-1000.slice/user@1000.service/init.scope\n", "init.scope", true},
        {"0::/\n", "", false},
        {"12:cpu,cpuacct:/\n1:name=systemd:/system.slice/sddm.service\n", "sddm.service", false},
        {"1:name=systemd:/system.slice/a.service\n0::/system.slice/b.service\n", "b.service", false},
        {"garbage", "", false},
    };
    for (const Case& c : cases) {
        INFO(c.cgroup);
        const CgroupUnit u = parse_cgroup_unit(c.cgroup);
        CHECK(u.unit == c.unit);
        CHECK(u.user_unit == c.user);
    }
}

TEST_CASE("proc/iomem lines keep their range, name and nesting", "[host][holders]") {
    const auto ranges = parse_iomem(
        "00000000-00000fff : Reserved\n"
        "  e0000000-e07fffff : efifb\n"
        "    fee00000-fee00fff : Local APIC : extra\n"
        "not a line\n"
        "f0000000-e0000000 : backwards\n");
    REQUIRE(ranges.size() == 3);
    CHECK(ranges[0].start == 0);
    CHECK(ranges[0].end == 0xfff);
    CHECK(ranges[0].depth == 0);
    CHECK(ranges[1].name == "efifb");
    CHECK(ranges[1].start == 0xe0000000);
    CHECK(ranges[1].end == 0xe07fffff);
    CHECK(ranges[1].depth == 1);
    CHECK(ranges[2].name == "Local APIC : extra");
    CHECK(ranges[2].depth == 2);
}

TEST_CASE("holders in JSON name their kind, pid, command and node", "[host][holders]") {
    Holder h;
    h.kind = HolderKind::firmware_framebuffer;
    h.address = *util::PciAddress::parse(kGpu);
    h.command = "efifb";
    h.node = "/proc/iomem";
    const nlohmann::json j = h;
    CHECK(j["kind"] == "firmware-framebuffer");
    CHECK(j["address"] == kGpu);
    CHECK(j["pid"].is_null());
    CHECK(j["unit"].is_null());
    CHECK(j["node"] == "/proc/iomem");
    h.kind = HolderKind::process;
    h.pid = 42;
    h.unit = "sddm.service";
    const nlohmann::json p = h;
    CHECK(p["pid"] == 42);
    CHECK(p["unit"] == "sddm.service");
    CHECK(describe_holder(h) == "process 42 \"efifb\" with \"/proc/iomem\" open");
}

// The real /proc, read only: the scan finds this test process holding a file it opened.
TEST_CASE("the scan of the real proc finds this process holding a file it opened", "[host][holders]") {
    testing::TempDir dir;
    const fs::path file = fs::canonical(dir.path()) / "held-node";
    { std::ofstream(file) << "x"; }
    util::Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(fd);
    const auto scan = scan_processes("/", {file.string(), "/no/such/node"}, {"kvmgpu_tests"});
    CHECK(scan.readable >= 1);
    CHECK(scan.processes >= scan.readable);
    const bool found = std::any_of(scan.open.begin(), scan.open.end(), [&](const OpenNode& o) {
        return o.pid == ::getpid() && o.node == file.string();
    });
    CHECK(found);
    for (const OpenNode& o : scan.open) CHECK(o.node == file.string());
    CHECK(std::find(scan.command_matches.begin(), scan.command_matches.end(), ::getpid()) !=
          scan.command_matches.end());
    const ProcessInfo self = read_process("/", ::getpid());
    CHECK(self.command == "kvmgpu_tests");
    CHECK(self.cmdline.find("kvmgpu_tests") != std::string::npos);
}
