#include <catch2/catch.hpp>

#include "profile/loader.hpp"
#include "profile/validate.hpp"

#include <optional>

using namespace kvmgpu::profile;
namespace util = kvmgpu::util;

namespace {

Diagnostics check(const std::string& text) {
    auto r = load_text(text, "/profiles/vm.toml");
    if (!has_errors(r.diagnostics) || !r.profile.positions.empty())
        validate(r.profile, r.diagnostics);
    return r.diagnostics;
}

std::string dump(const Diagnostics& ds) {
    std::string out;
    for (const auto& d : ds) out += d.str() + "\n";
    return out;
}

// A minimal valid profile; each bad case appends to it, so lines 1-3 are this header.
const std::string base = "name = \"vm\"\n[machine]\nmemory = \"1G\"\n";

struct Bad {
    const char* what;
    std::string text;     // whole profile
    unsigned line;        // where the error must point
    const char* key;      // the key path the error must name
    const char* fragment; // a phrase of the message
};

}  // namespace

TEST_CASE("a minimal profile is valid and gets the documented defaults", "[profile]") {
    auto r = load_text(base, "/profiles/vm.toml");
    validate(r.profile, r.diagnostics);
    CHECK(r.diagnostics.empty());
    const auto& p = r.profile;
    CHECK(p.name == "vm");
    CHECK(p.machine.memory == 1024ull * 1024 * 1024);
    CHECK(p.machine.accel == Accel::kvm);
    CHECK(p.cpu.vcpus() == 2);
    CHECK(p.firmware.type == FirmwareType::ovmf);
    CHECK(p.network.mode == NetworkMode::user);
    CHECK(p.display.type == DisplayType::none);
    CHECK(p.qemu.binary == "qemu-system-x86_64");
    // Safe by default: an unprivileged QEMU user, the seccomp filter on.
    CHECK(p.security.user == "kvmgpu");
    CHECK_FALSE(p.security.runs_as_root());
    CHECK(p.security.sandbox);
}

TEST_CASE("the name defaults to the file name without .toml", "[profile]") {
    auto r = load_text("[machine]\nmemory = \"1G\"\n", "/x/gaming-rig.toml");
    validate(r.profile, r.diagnostics);
    CHECK(r.diagnostics.empty());
    CHECK(r.profile.name == "gaming-rig");
}

TEST_CASE("relative paths are relative to the profile file", "[profile]") {
    auto r = load_text(base + "[[disk]]\npath = \"../images/a.qcow2\"\n[[pci]]\naddress = \"01:00.0\"\n"
                              "rom = \"roms/gpu.rom\"\n[hooks]\nprestart = [\"./hooks/pre\", \"x\"]\n"
                              "poststop = [\"logger\", \"done\"]\n",
                       "/etc/kvmgpu/vm.toml");
    validate(r.profile, r.diagnostics);
    REQUIRE(r.diagnostics.empty());
    CHECK(r.profile.disks.at(0).path == "/etc/images/a.qcow2");
    CHECK(r.profile.disks.at(0).format == DiskFormat::qcow2);  // from the extension
    CHECK(r.profile.pci.at(0).address.str() == "0000:01:00.0");
    CHECK(r.profile.pci.at(0).rom == "/etc/kvmgpu/roms/gpu.rom");
    CHECK(r.profile.hooks.prestart.front() == "/etc/kvmgpu/hooks/pre");
    CHECK(r.profile.hooks.poststop.front() == "logger");  // a bare word is looked up in PATH
}

TEST_CASE("a CD-ROM defaults to SATA and read-only", "[profile]") {
    auto r = load_text(base + "[[disk]]\npath = \"/iso/win.iso\"\nmedia = \"cdrom\"\n", "/p/vm.toml");
    validate(r.profile, r.diagnostics);
    REQUIRE(r.diagnostics.empty());
    CHECK(r.profile.disks.at(0).bus == DiskBus::sata);
    CHECK(r.profile.disks.at(0).readonly);
    CHECK(r.profile.disks.at(0).format == DiskFormat::raw);
}

TEST_CASE("looking glass auto size follows the documented rule", "[profile]") {
    LookingGlass lg;
    lg.enabled = true;
    lg.width = 1920;
    lg.height = 1080;
    CHECK(lg.shared_memory_bytes() == 32ull << 20);
    lg.width = 2560;
    lg.height = 1440;
    CHECK(lg.shared_memory_bytes() == 64ull << 20);
    lg.hdr = true;
    CHECK(lg.shared_memory_bytes() == 128ull << 20);
    lg.width = 3840;
    lg.height = 2160;
    lg.hdr = false;
    CHECK(lg.shared_memory_bytes() == 128ull << 20);
    lg.size_auto = false;
    lg.size = 256ull << 20;
    CHECK(lg.shared_memory_bytes() == 256ull << 20);
}

TEST_CASE("every problem is reported at once, in file order", "[profile]") {
    const auto ds = check("name = \"a b\"\n[machine]\nmemroy = \"1G\"\n[cpu]\nhv_vendor_id = \"NVIDIA-HIDDEN-X\"\n"
                          "[[pci]]\naddress = \"01:20.0\"\n");
    INFO(dump(ds));
    REQUIRE(ds.size() >= 5);
    std::vector<unsigned> lines;
    for (const auto& d : ds) lines.push_back(d.pos.line);
    CHECK(std::is_sorted(lines.begin(), lines.end()));
    // name, the typo, the missing memory (reported at [machine]), hv_vendor_id, the address.
    CHECK(std::count_if(ds.begin(), ds.end(), [](auto& d) { return d.severity == Severity::error; }) >= 5);
}

TEST_CASE("the message format names file, line and column", "[profile]") {
    const auto ds = check(base + "[cpu]\nhv_vendor_id = \"NVIDIA-HIDDEN-X\"\nhyperv = true\n");
    REQUIRE(ds.size() == 1);
    CHECK(ds[0].str() ==
          "/profiles/vm.toml:5:16: error: [cpu] hv_vendor_id \"NVIDIA-HIDDEN-X\" is 15 "
          "characters; QEMU accepts 1 to 12");
}

TEST_CASE("malformed profiles: each error names its line and key", "[profile]") {
    // clang-format off
    const std::vector<Bad> cases = {
        // --- TOML syntax ---
        {"unterminated string", base + "[cpu]\nmodel = \"host\n", 5, "", "TOML syntax"},
        {"unterminated array", base + "[cpu]\npin = [1, 2\n", 5, "", "TOML syntax"},
        {"duplicate key", base + "[cpu]\ncores = 2\ncores = 4\n", 6, "", "TOML syntax"},
        {"duplicate table", base + "[cpu]\n[cpu]\n", 5, "", "TOML syntax"},
        {"bare word value", base + "[machine2]\nx = yes\n", 5, "", "TOML syntax"},
        // --- unknown tables and keys, with suggestions ---
        {"typo in a key", base + "[cpu]\nhide_kmv = true\n", 5, "cpu.hide_kmv", "did you mean \"hide_kvm\""},
        {"typo in a table", base + "[firmwre]\ntype = \"ovmf\"\n", 4, "firmwre", "did you mean \"firmware\""},
        {"unknown top-level key", "gpu = \"01:00.0\"\n" + base, 1, "gpu", "unknown table or key"},
        {"typo in an array table", base + "[[pci]]\nadress = \"01:00.0\"\n", 5, "pci[0].adress", "did you mean \"address\""},
        {"unknown disk key", base + "[[disk]]\npath = \"a.img\"\ncache = \"none\"\n", 6, "disk[0].cache", "has no key"},
        {"machine key in cpu", base + "[cpu]\nmemory = \"2G\"\n", 5, "cpu.memory", "has no key"},
        // --- wrong types ---
        {"name not a string", "name = 5\n[machine]\nmemory = \"1G\"\n", 1, "name", "must be a string"},
        {"memory as integer", "[machine]\nmemory = 1024\n", 2, "machine.memory", "must be a string"},
        {"cores as string", base + "[cpu]\ncores = \"4\"\n", 5, "cpu.cores", "must be an integer"},
        {"hide_kvm as string", base + "[cpu]\nhide_kvm = \"yes\"\n", 5, "cpu.hide_kvm", "must be true or false"},
        {"pin not an array", base + "[cpu]\ncores = 1\npin = 3\n", 6, "cpu.pin", "must be an array of integers"},
        {"pin with a string", base + "[cpu]\ncores = 2\npin = [1, \"2\"]\n", 6, "cpu.pin[1]", "must be an integer"},
        {"pci as a table", base + "[pci]\naddress = \"01:00.0\"\n", 4, "pci", "array of tables"},
        {"machine as a value", "machine = \"q35\"\n", 1, "machine", "must be a table"},
        {"usb vendor as string", base + "[[usb]]\nvendor = \"046d\"\nproduct = 0xc52b\n", 5, "usb[0].vendor", "must be an integer"},
        {"hooks as a shell string", base + "[hooks]\nprestart = \"echo hi; rm -rf /\"\n", 5, "hooks.prestart", "array of strings"},
        {"extra as a string", base + "[qemu]\nextra = \"-device foo\"\n", 5, "qemu.extra", "array of strings"},
        {"websocket as string", base + "[display]\ntype = \"vnc\"\nwebsocket = \"5700\"\n", 6, "display.websocket", "must be an integer"},
        // --- enums ---
        {"accel unknown", "[machine]\nmemory = \"1G\"\naccel = \"kmv\"\n", 3, "machine.accel", "did you mean \"kvm\""},
        {"hugepages wrong", "[machine]\nmemory = \"1G\"\nhugepages = \"4K\"\n", 3, "machine.hugepages", "is not one of none, 2M, 1G"},
        {"firmware type unknown", base + "[firmware]\ntype = \"uefi\"\n", 5, "firmware.type", "is not one of ovmf, seabios"},
        {"disk bus unknown", base + "[[disk]]\npath = \"a\"\nbus = \"ide\"\n", 6, "disk[0].bus", "is not one of"},
        {"disk format unknown", base + "[[disk]]\npath = \"a\"\nformat = \"vmdk\"\n", 6, "disk[0].format", "is not one of raw, qcow2"},
        {"network mode unknown", base + "[network]\nmode = \"nat\"\n", 5, "network.mode", "is not one of"},
        {"display type unknown", base + "[display]\ntype = \"vcn\"\n", 5, "display.type", "did you mean \"vnc\""},
        {"audio backend unknown", base + "[audio]\nbackend = \"alsa\"\n", 5, "audio.backend", "is not one of"},
        {"looking glass backend", base + "[looking_glass]\nbackend = \"ivshmem\"\n", 5, "looking_glass.backend", "is not one of shm, kvmfr"},
        {"rtc unknown", "[machine]\nmemory = \"1G\"\nrtc = \"local\"\n", 3, "machine.rtc", "is not one of utc, localtime"},
        // --- sizes ---
        {"memory missing", "name = \"vm\"\n[machine]\naccel = \"tcg\"\n", 2, "machine.memory", "memory is required"},
        {"memory bad suffix", "[machine]\nmemory = \"16Q\"\n", 2, "machine.memory", "is not a size"},
        {"memory empty", "[machine]\nmemory = \"\"\n", 2, "machine.memory", "is not a size"},
        {"memory too small", "[machine]\nmemory = \"16M\"\n", 2, "machine.memory", "too small"},
        {"memory not whole MiB", "[machine]\nmemory = \"1073741825\"\n", 2, "machine.memory", "not a whole number of MiB"},
        {"memory overflow", "[machine]\nmemory = \"99999999999999999999T\"\n", 2, "machine.memory", "too large to be a size"},
        {"memory not a hugepage multiple", "[machine]\nmemory = \"1536M\"\nhugepages = \"1G\"\n", 2, "machine.memory", "not a multiple of the 1G hugepage size"},
        {"looking glass size not power of two", base + "[looking_glass]\nsize = \"48M\"\n", 5, "looking_glass.size", "power of two"},
        {"looking glass resolution", base + "[looking_glass]\nresolution = \"2560*1440\"\n", 5, "looking_glass.resolution", "WIDTHxHEIGHT"},
        // --- counts and ranges ---
        {"zero cores", base + "[cpu]\ncores = 0\n", 5, "cpu.cores", "between 1 and 255"},
        {"too many threads", base + "[cpu]\nthreads = 16\n", 5, "cpu.threads", "between 1 and 8"},
        {"negative pin", base + "[cpu]\ncores = 1\npin = [-1]\n", 6, "cpu.pin[0]", "between 0 and 4095"},
        {"pin count differs from vCPUs", base + "[cpu]\nsockets = 1\ncores = 4\nthreads = 2\npin = [0, 1, 2, 3]\n", 8, "cpu.pin", "= 8 vCPUs"},
        {"too many vCPUs", base + "[cpu]\nsockets = 2\ncores = 255\n", 4, "cpu", "at most 255"},
        {"emulator_pin twice", base + "[cpu]\nemulator_pin = [0, 0]\n", 5, "cpu.emulator_pin", "twice"},
        {"emulator_pin empty", base + "[cpu]\nemulator_pin = []\n", 5, "cpu.emulator_pin", "is empty"},
        {"usb id too large", base + "[[usb]]\nvendor = 0x1046d\nproduct = 1\n", 5, "usb[0].vendor", "between 1 and 65535"},
        {"usb product missing", base + "[[usb]]\nvendor = 0x046d\n", 4, "usb[0].product", "has no product"},
        {"port out of range", base + "[display]\ntype = \"vnc\"\nport = 70000\n", 6, "display.port", "between 1 and 65535"},
        {"vnc port below 5900", base + "[display]\ntype = \"vnc\"\nport = 5800\n", 6, "display.port", "below 5900"},
        {"websocket on the vnc port", base + "[display]\ntype = \"vnc\"\nport = 5901\nwebsocket = 5901\n", 7, "display.websocket", "port of its own"},
        {"password word unknown", base + "[display]\ntype = \"vnc\"\npassword = \"yes\"\n", 6, "display.password", "is not one of auto, on, off"},
        {"password for spice", base + "[display]\ntype = \"spice\"\npassword = \"on\"\n", 6, "display.password", "for type = \"vnc\""},
        {"guest websocket without user network", base + "[network]\nmode = \"none\"\n[display]\nguest_websocket = 6080\n", 7, "display.guest_websocket", "mode = \"user\""},
        {"guest websocket on the vnc port", base + "[display]\ntype = \"vnc\"\nguest_websocket = 5900\n", 6, "display.guest_websocket", "port of its own"},
        {"guest websocket out of range", base + "[display]\nguest_websocket = 0\n", 5, "display.guest_websocket", "between 1 and 65535"},
        {"websocket without vnc", base + "[display]\ntype = \"spice\"\nwebsocket = 5700\n", 6, "display.websocket", "for type = \"vnc\""},
        // --- formats ---
        {"hv_vendor_id too long", base + "[cpu]\nhyperv = true\nhv_vendor_id = \"NVIDIA-HIDDEN-X\"\n", 6, "cpu.hv_vendor_id", "15 characters"},
        {"hv_vendor_id empty", base + "[cpu]\nhyperv = true\nhv_vendor_id = \"\"\n", 6, "cpu.hv_vendor_id", "0 characters"},
        {"hv_vendor_id comma", base + "[cpu]\nhyperv = true\nhv_vendor_id = \"a,b\"\n", 6, "cpu.hv_vendor_id", "commas"},
        {"cpu model with comma", base + "[cpu]\nmodel = \"host,kvm=on\"\n", 5, "cpu.model", "not a QEMU CPU model name"},
        {"machine type pc", "[machine]\nmemory = \"1G\"\ntype = \"pc\"\n", 3, "machine.type", "need \"q35\""},
        {"name with a space", "name = \"my vm\"\n[machine]\nmemory = \"1G\"\n", 1, "name", "letters, digits"},
        {"name too long", "name = \"" + std::string(65, 'a') + "\"\n[machine]\nmemory = \"1G\"\n", 1, "name", "1 to 64"},
        {"name with a slash", "name = \"../etc\"\n[machine]\nmemory = \"1G\"\n", 1, "name", "letters, digits"},
        {"name starting with a dot", "name = \".locks\"\n[machine]\nmemory = \"1G\"\n", 1, "name", "starting with a letter or digit"},
        {"pci address garbage", base + "[[pci]]\naddress = \"gpu0\"\n", 5, "pci[0].address", "is not a PCI address"},
        {"pci slot above 1f", base + "[[pci]]\naddress = \"0000:01:20.0\"\n", 5, "pci[0].address", "slot at most 1f"},
        {"pci function above 7", base + "[[pci]]\naddress = \"0000:01:00.8\"\n", 5, "pci[0].address", "is not a PCI address"},
        {"pci short domain", base + "[[pci]]\naddress = \"0:01:00.0\"\n", 5, "pci[0].address", "is not a PCI address"},
        {"pci without address", base + "[[pci]]\nvga = true\n", 4, "pci[0].address", "has no address"},
        {"mac malformed", base + "[network]\nmac = \"52:54:00:12:34\"\n", 5, "network.mac", "is not a MAC address"},
        {"mac multicast", base + "[network]\nmac = \"01:00:5e:00:00:01\"\n", 5, "network.mac", "multicast"},
        {"bridge missing", base + "[network]\nmode = \"bridge\"\n", 5, "network.mode", "needs bridge"},
        {"bridge name too long", base + "[network]\nmode = \"bridge\"\nbridge = \"a-very-long-bridge0\"\n", 6, "network.bridge", "not a network interface name"},
        {"tap with user mode", base + "[network]\nmode = \"user\"\ntap = \"tap0\"\n", 6, "network.tap", "only used with mode = \"tap\""},
        {"nic model unknown", base + "[network]\nmodel = \"virtio-net\"\n", 5, "network.model", "did you mean \"virtio-net-pci\""},
        {"listen not an address", base + "[display]\ntype = \"vnc\"\nlisten = \"my host\"\n", 6, "display.listen", "not an IP address"},
        {"display device unknown", base + "[display]\ntype = \"vnc\"\ndevice = \"cirrus\"\n", 6, "display.device", "is not one of vga"},
        {"grab toggle unknown", base + "[[input]]\nevdev = \"/dev/input/event3\"\ngrab_toggle = \"ctrl-alt\"\n", 6, "input[0].grab_toggle", "is not one of"},
        // --- control characters ---
        {"newline in a disk path", base + "[[disk]]\npath = \"/img/a\\nb.raw\"\n", 5, "disk[0].path", "control character"},
        {"tab in the name", "name = \"a\\tb\"\n[machine]\nmemory = \"1G\"\n", 1, "name", "control character"},
        {"escape in an extra arg", base + "[qemu]\nextra = [\"-device\", \"x\\u001b\"]\n", 5, "qemu.extra[1]", "control character"},
        {"newline in evdev", base + "[[input]]\nevdev = \"/dev/input/a\\n\"\n", 5, "input[0].evdev", "control character"},
        // --- duplicates ---
        {"pci listed twice", base + "[[pci]]\naddress = \"01:00.0\"\n[[pci]]\naddress = \"0000:01:00.0\"\n", 7, "pci[1].address", "listed twice"},
        {"disk listed twice", base + "[[disk]]\npath = \"/a.img\"\n[[disk]]\npath = \"/b/../a.img\"\n", 7, "disk[1].path", "used by another"},
        {"usb listed twice", base + "[[usb]]\nvendor = 1\nproduct = 2\n[[usb]]\nvendor = 1\nproduct = 2\n", 7, "usb[1]", "listed twice"},
        {"evdev listed twice", base + "[[input]]\nevdev = \"/dev/input/e1\"\n[[input]]\nevdev = \"/dev/input/e1\"\n", 7, "input[1].evdev", "listed twice"},
        {"two vga devices", base + "[firmware]\ntype = \"seabios\"\n[[pci]]\naddress = \"01:00.0\"\nvga = true\n[[pci]]\naddress = \"02:00.0\"\nvga = true\n", 6, "pci", "more than one"},
        // --- combinations that cannot work ---
        {"secure boot with seabios", base + "[firmware]\ntype = \"seabios\"\nsecure_boot = true\n", 6, "firmware.secure_boot", "for type = \"ovmf\""},
        {"vars with seabios", base + "[firmware]\ntype = \"seabios\"\nvars = \"v.fd\"\n", 6, "firmware.vars", "SeaBIOS has no such setting"},
        {"cdrom on virtio", base + "[[disk]]\npath = \"a.iso\"\nmedia = \"cdrom\"\nbus = \"virtio\"\n", 7, "disk[0].bus", "has no CD-ROM"},
        {"writable cdrom", base + "[[disk]]\npath = \"a.iso\"\nmedia = \"cdrom\"\nreadonly = false\n", 7, "disk[0].readonly", "cannot be writable"},
        {"disk without path", base + "[[disk]]\nbus = \"virtio\"\n", 4, "disk[0].path", "has no path"},
        {"empty disk path", base + "[[disk]]\npath = \"\"\n", 5, "disk[0].path", "is empty"},
        {"input without evdev", base + "[[input]]\ngrab_all = true\n", 4, "input[0].evdev", "has no evdev"},
        {"empty hook", base + "[hooks]\nprestart = []\n", 5, "hooks.prestart", "must name a program"},
        {"extra with -daemonize", base + "[qemu]\nextra = [\"-daemonize\"]\n", 5, "qemu.extra", "kvmgpu sets itself"},
        {"empty qemu binary", base + "[qemu]\nbinary = \"\"\n", 5, "qemu.binary", "is empty"},
        {"seven sata disks", base + [] {
             std::string s;
             for (int i = 0; i < 7; ++i) s += "[[disk]]\npath = \"/d" + std::to_string(i) + "\"\nbus = \"sata\"\n";
             return s;
         }(), 4, "disk", "6 ports"},
        // --- [release] ---
        {"a module name with a space", base + "[release]\nmodules = [\"nvidia drm\"]\n", 5, "release.modules",
         "is not a kernel module name"},
        {"a module listed twice, once with a dash", base + "[release]\nmodules = [\"nvidia_drm\", \"nvidia-drm\"]\n", 5,
         "release.modules", "lists \"nvidia_drm\" twice"},
        {"a unit that is not a service", base + "[release]\nservices = [\"gdm.socket\"]\n", 5, "release.services",
         "is not a systemd service name"},
        {"an option for a unit", base + "[release]\nservices = [\"--now\"]\n", 5, "release.services",
         "is not a systemd service name"},
        {"console not a boolean", base + "[release]\nconsole = \"yes\"\n", 5, "release.console", "must be true or false"},
        // --- [security] ---
        {"a user name with a capital", base + "[security]\nuser = \"Kvmgpu\"\n", 5, "security.user", "is not a user name"},
        {"an empty user", base + "[security]\nuser = \"\"\n", 5, "security.user", "is not a user name"},
        {"a user name that looks like an option", base + "[security]\nuser = \"-r\"\n", 5, "security.user",
         "is not a user name"},
        {"a uid instead of a name", base + "[security]\nuser = 1000\n", 5, "security.user", "must be a string"},
        {"sandbox not a boolean", base + "[security]\nsandbox = \"off\"\n", 5, "security.sandbox", "must be true or false"},
    };
    // clang-format on
    REQUIRE(cases.size() >= 60);
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.what) {
            const auto ds = check(c.text);
            INFO("profile:\n" << c.text << "\ndiagnostics:\n" << dump(ds));
            const auto hit = std::find_if(ds.begin(), ds.end(), [&](const Diagnostic& d) {
                return d.severity == Severity::error && d.pos.line == c.line && d.key == c.key &&
                       d.message.find(c.fragment) != std::string::npos;
            });
            CHECK(hit != ds.end());
            CHECK(has_errors(ds));
        }
    }
}

TEST_CASE("warnings do not make a profile invalid", "[profile]") {
    const auto ds = check(base + "[cpu]\nhv_vendor_id = \"KVMGPUVENDOR\"\n[display]\ntype = \"vnc\"\nlisten = \"0.0.0.0\"\n");
    INFO(dump(ds));
    CHECK_FALSE(has_errors(ds));
    REQUIRE(ds.size() == 2);
    CHECK(ds[0].key == "cpu.hv_vendor_id");
    CHECK(ds[0].message.find("no effect without Hyper-V") != std::string::npos);
    CHECK(ds[1].key == "display.listen");
    CHECK(ds[1].message.find("asks for a password") != std::string::npos);
    CHECK(ds[1].message.find("8 characters") != std::string::npos);
    const auto off = check(base + "[display]\ntype = \"vnc\"\nlisten = \"0.0.0.0\"\npassword = \"off\"\n");
    INFO(dump(off));
    REQUIRE(off.size() == 1);
    CHECK(off[0].message.find("has no password") != std::string::npos);
}

TEST_CASE("the release table reads module and service names the way the host shows them", "[profile]") {
    auto r = load_text(base + "[[pci]]\naddress = \"0000:01:00.0\"\n[release]\ndisplay_manager = true\nconsole = true\n"
                              "modules = [\"nvidia-drm\", \"nvidia\"]\nservices = [\"nvidia-persistenced\", \"foo@bar.service\"]\n",
                       "/profiles/vm.toml");
    validate(r.profile, r.diagnostics);
    INFO(dump(r.diagnostics));
    CHECK(r.diagnostics.empty());
    const auto& rel = r.profile.release;
    CHECK(rel.display_manager);
    CHECK(rel.console);
    CHECK(rel.modules == std::vector<std::string>{"nvidia_drm", "nvidia"});
    CHECK(rel.services == std::vector<std::string>{"nvidia-persistenced.service", "foo@bar.service"});
    CHECK(rel.any());
    CHECK_FALSE(Release{}.any());
}

TEST_CASE("a release table without a device to free is a warning", "[profile]") {
    const auto ds = check(base + "[release]\nconsole = true\n");
    INFO(dump(ds));
    CHECK_FALSE(has_errors(ds));
    REQUIRE(ds.size() == 1);
    CHECK(ds[0].key == "release");
    CHECK(ds[0].message.find("nothing to free") != std::string::npos);
}

TEST_CASE("PCI identities: good ones are kept and bad ones are named with line and column", "[profile]") {
    const std::string pci = base + "[[pci]]\naddress = \"01:00.0\"\n";  // the entry's keys start on line 6
    struct Row {
        const char* what;
        std::string keys;                  // appended to the [[pci]] entry
        const char* key;                   // the key the error names; empty: valid
        unsigned column;                   // where the error points
        const char* fragment;
        std::optional<util::PciId> id;     // when valid
        std::optional<util::PciId> subsystem;
    };
    using util::PciId;
    // clang-format off
    const Row rows[] = {
        {"an id in lower case", "id = \"10de:2684\"\n", "", 0, "", PciId{0x10de, 0x2684}, std::nullopt},
        {"an id in upper case", "id = \"10DE:22BA\"\n", "", 0, "", PciId{0x10de, 0x22ba}, std::nullopt},
        {"an id and a subsystem", "id = \"10de:2684\"\nsubsystem = \"1043:8870\"\n", "", 0, "", PciId{0x10de, 0x2684}, PciId{0x1043, 0x8870}},
        {"an id without the colon", "id = \"10de2684\"\n", "pci[0].id", 6, "is not a PCI identity", std::nullopt, std::nullopt},
        {"an id with 0x", "id = \"0x10de:0x2684\"\n", "pci[0].id", 6, "4 hex digits each", std::nullopt, std::nullopt},
        {"an id with three digits", "id = \"10de:268\"\n", "pci[0].id", 6, "e.g. \"10de:2684\"", std::nullopt, std::nullopt},
        {"an empty id", "id = \"\"\n", "pci[0].id", 6, "is not a PCI identity", std::nullopt, std::nullopt},
        {"a subsystem that is not hex", "id = \"10de:2684\"\nsubsystem = \"asus:8870\"\n", "pci[0].subsystem", 13, "lspci -vnn", PciId{0x10de, 0x2684}, std::nullopt},
        {"a subsystem without an id", "subsystem = \"1043:8870\"\n", "pci[0].subsystem", 13, "no id", std::nullopt, PciId{0x1043, 0x8870}},
    };
    // clang-format on
    for (const Row& row : rows) {
        DYNAMIC_SECTION(row.what) {
            auto r = load_text(pci + row.keys, "/profiles/vm.toml");
            validate(r.profile, r.diagnostics);
            INFO(dump(r.diagnostics));
            REQUIRE(r.profile.pci.size() == 1);
            CHECK(r.profile.pci[0].expected_id() == row.id);
            if (std::string(row.key).empty()) {
                CHECK(r.diagnostics.empty());
                CHECK(r.profile.pci[0].expected_subsystem() == row.subsystem);
                continue;
            }
            const auto hit = std::find_if(r.diagnostics.begin(), r.diagnostics.end(), [&](const Diagnostic& d) {
                return d.severity == Severity::error && d.key == row.key &&
                       d.message.find(row.fragment) != std::string::npos;
            });
            REQUIRE(hit != r.diagnostics.end());
            CHECK(hit->pos.column == row.column);
            CHECK(hit->str().rfind("/profiles/vm.toml:", 0) == 0);
        }
    }
}

TEST_CASE("every size and count key: zero, overflow and absurd values are errors at their line", "[profile][limits]") {
    const std::string huge = "99999999999999999999";  // more than 64 bits
    const auto m = [](const std::string& lines) { return "name = \"vm\"\n[machine]\n" + lines; };
    const auto cards = [](unsigned n) {
        std::string s;
        for (unsigned i = 0; i < n; ++i) {
            char address[16];
            std::snprintf(address, sizeof address, "%02x:00.0", i + 1);
            s += "[[pci]]\naddress = \"" + std::string(address) + "\"\n";
        }
        return s;
    };
    const auto virtio_disks = [](unsigned n) {
        std::string s;
        for (unsigned i = 0; i < n; ++i) s += "[[disk]]\npath = \"/d" + std::to_string(i) + "\"\n";
        return s;
    };
    // clang-format off
    const std::vector<Bad> cases = {
        // [machine] memory: a size
        {"memory zero", m("memory = \"0\"\n"), 3, "machine.memory", "is zero"},
        {"memory zero with a unit", m("memory = \"0G\"\n"), 3, "machine.memory", "is zero"},
        {"memory overflow", m("memory = \"" + huge + "G\"\n"), 3, "machine.memory", "too large to be a size"},
        {"memory overflow in bytes", m("memory = \"" + huge + "\"\n"), 3, "machine.memory", "too large to be a size"},
        {"memory overflow by its unit", m("memory = \"16777216T\"\n"), 3, "machine.memory", "too large to be a size"},
        {"memory absurd", m("memory = \"17T\"\n"), 3, "machine.memory", "more than 16T"},
        {"memory absurd with hugepages", m("memory = \"18446744073709551615\"\nhugepages = \"1G\"\n"), 3, "machine.memory", "more than 16T"},
        // [looking_glass] size: a size, or "auto" derived from resolution
        {"lg size zero", base + "[looking_glass]\nsize = \"0\"\n", 5, "looking_glass.size", "is zero"},
        {"lg size overflow", base + "[looking_glass]\nsize = \"" + huge + "M\"\n", 5, "looking_glass.size", "too large to be a size"},
        {"lg size absurd", base + "[looking_glass]\nsize = \"4G\"\n", 5, "looking_glass.size", "between 1M and 2G"},
        {"lg size too small", base + "[looking_glass]\nsize = \"512K\"\n", 5, "looking_glass.size", "between 1M and 2G"},
        {"lg auto size above the limit", base + "[looking_glass]\nresolution = \"16384x16384\"\n", 5, "looking_glass.resolution", "16384x16384 is 4G, more than the 2G"},
        {"lg auto size above the limit with HDR", base + "[looking_glass]\nhdr = true\nresolution = \"16384x8192\"\n", 6, "looking_glass.resolution", "HDR is 4G, more than the 2G"},
        {"lg resolution zero", base + "[looking_glass]\nresolution = \"0x1080\"\n", 5, "looking_glass.resolution", "from 1 to 16384"},
        {"lg resolution overflow", base + "[looking_glass]\nresolution = \"" + huge + "x1080\"\n", 5, "looking_glass.resolution", "from 1 to 16384"},
        {"lg resolution wrapping to a small number", base + "[looking_glass]\nresolution = \"4294967297x1080\"\n", 5, "looking_glass.resolution", "from 1 to 16384"},
        {"lg resolution absurd", base + "[looking_glass]\nresolution = \"16385x100\"\n", 5, "looking_glass.resolution", "from 1 to 16384"},
        {"lg resolution negative", base + "[looking_glass]\nresolution = \"-1x100\"\n", 5, "looking_glass.resolution", "from 1 to 16384"},
        {"lg resolution signed", base + "[looking_glass]\nresolution = \"+100x100\"\n", 5, "looking_glass.resolution", "from 1 to 16384"},
        // [cpu] counts
        {"sockets zero", base + "[cpu]\nsockets = 0\n", 5, "cpu.sockets", "between 1 and 16"},
        {"sockets absurd", base + "[cpu]\nsockets = 17\n", 5, "cpu.sockets", "between 1 and 16"},
        {"sockets overflow", base + "[cpu]\nsockets = " + huge + "\n", 5, "", "TOML syntax"},
        {"cores zero", base + "[cpu]\ncores = 0\n", 5, "cpu.cores", "between 1 and 255"},
        {"cores absurd", base + "[cpu]\ncores = 4294967298\n", 5, "cpu.cores", "between 1 and 255"},
        {"cores overflow", base + "[cpu]\ncores = " + huge + "\n", 5, "", "TOML syntax"},
        {"threads zero", base + "[cpu]\nthreads = 0\n", 5, "cpu.threads", "between 1 and 8"},
        {"threads absurd", base + "[cpu]\nthreads = 9\n", 5, "cpu.threads", "between 1 and 8"},
        {"vCPUs absurd", base + "[cpu]\nsockets = 16\ncores = 255\nthreads = 8\n", 4, "cpu", "at most 255"},
        {"pin absurd", base + "[cpu]\ncores = 1\npin = [4096]\n", 6, "cpu.pin[0]", "between 0 and 4095"},
        {"pin overflow", base + "[cpu]\ncores = 1\npin = [" + huge + "]\n", 6, "", "TOML syntax"},
        {"pin count absurd", base + "[cpu]\ncores = 1\npin = [0, 1]\n", 6, "cpu.pin", "give one host CPU per vCPU"},
        {"emulator_pin absurd", base + "[cpu]\nemulator_pin = [9223372036854775807]\n", 5, "cpu.emulator_pin[0]", "between 0 and 4095"},
        // [[usb]]: 0 is QEMU's "any device"
        {"usb vendor zero", base + "[[usb]]\nvendor = 0\nproduct = 1\n", 5, "usb[0].vendor", "between 1 and 65535"},
        {"usb product zero", base + "[[usb]]\nvendor = 1\nproduct = 0\n", 6, "usb[0].product", "between 1 and 65535"},
        {"usb product absurd", base + "[[usb]]\nvendor = 1\nproduct = 0x10000\n", 6, "usb[0].product", "between 1 and 65535"},
        // [display] ports
        {"port zero", base + "[display]\ntype = \"spice\"\nport = 0\n", 6, "display.port", "between 1 and 65535"},
        {"port absurd", base + "[display]\ntype = \"spice\"\nport = 65536\n", 6, "display.port", "between 1 and 65535"},
        {"websocket zero", base + "[display]\ntype = \"vnc\"\nwebsocket = 0\n", 6, "display.websocket", "between 1 and 65535"},
        {"websocket absurd", base + "[display]\ntype = \"vnc\"\nwebsocket = -5700\n", 6, "display.websocket", "between 1 and 65535"},
        // counts of entries
        {"sixteen cards", base + cards(16), 4, "pci", "at most 15 cards"},
        {"more devices than root bus slots", base + "[network]\nmode = \"none\"\n" + virtio_disks(31), 6, "disk", "needs 31 slots"},
    };
    // clang-format on
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.what) {
            const auto ds = check(c.text);
            INFO("profile:\n" << c.text << "\ndiagnostics:\n" << dump(ds));
            const auto hit = std::find_if(ds.begin(), ds.end(), [&](const Diagnostic& d) {
                return d.severity == Severity::error && d.pos.line == c.line && d.key == c.key &&
                       d.message.find(c.fragment) != std::string::npos;
            });
            CHECK(hit != ds.end());
        }
    }
}

TEST_CASE("the largest values of the size and count keys are accepted", "[profile][limits]") {
    const auto cards = [] {
        std::string s;
        for (unsigned i = 0; i < 15; ++i) {
            char address[16];
            std::snprintf(address, sizeof address, "%02x:00.0", i + 1);
            s += "[[pci]]\naddress = \"" + std::string(address) + "\"\n";
        }
        return s;
    }();
    std::string disks;
    for (unsigned i = 0; i < 13; ++i) disks += "[[disk]]\npath = \"/d" + std::to_string(i) + "\"\n";
    // 15 root ports + 13 disks + the NIC + Looking Glass = the 30 slots of the root bus.
    const auto ds = check("name = \"vm\"\n[machine]\nmemory = \"16T\"\nhugepages = \"1G\"\n[cpu]\nsockets = 1\ncores = 255\n"
                          "[looking_glass]\nresolution = \"16384x8192\"\n[display]\ntype = \"none\"\n" +
                          cards + disks);
    INFO(dump(ds));
    CHECK_FALSE(has_errors(ds));
}

TEST_CASE("[qemu] extra refuses the options kvmgpu owns in every spelling QEMU reads", "[profile][qemu]") {
    // QEMU reads "--daemonize" as "-daemonize"; before, only the one-dash spelling was refused and
    // "--daemonize" left an orphan QEMU that kvmgpu believed dead.
    for (const std::string word : {"-daemonize", "--daemonize", "--qmp", "--pidfile", "--S", "-S", "--name", "--mon",
                                   "--monitor", "--nodefaults", "--no-user-config", "-qmp-pretty", "--readconfig",
                                   "--runas", "-chroot"}) {
        DYNAMIC_SECTION(word) {
            const auto ds = check(base + "[qemu]\nextra = [\"" + word + "\", \"x\"]\n");
            INFO(dump(ds));
            const auto hit = std::find_if(ds.begin(), ds.end(), [&](const Diagnostic& d) {
                return d.key == "qemu.extra" && d.pos.line == 5 &&
                       d.message.find("contains \"" + word + "\", which") != std::string::npos;
            });
            CHECK(hit != ds.end());
        }
    }
    SECTION("options kvmgpu leaves to the profile pass, in either spelling") {
        const auto ds = check(base + "[qemu]\nextra = [\"-device\", \"virtio-rng-pci\", \"--smbios\", \"type=1\"]\n");
        INFO(dump(ds));
        CHECK_FALSE(has_errors(ds));
    }
}

TEST_CASE("the run-time tuning keys of [cpu] read, and each that acts on pinned vCPUs needs pin", "[profile][isolate]") {
    auto r = load_text(base + "[cpu]\ncores = 2\npin = [2, 3]\niothread_pin = [1]\nisolate = true\nirq_affinity = \"vm\"\n"
                              "realtime = true\nrealtime_priority = 10\n",
                       "/profiles/vm.toml");
    validate(r.profile, r.diagnostics);
    INFO(dump(r.diagnostics));
    CHECK_FALSE(has_errors(r.diagnostics));
    CHECK(r.diagnostics.empty());
    const auto& c = r.profile.cpu;
    CHECK(c.iothread_pin == std::vector<unsigned>{1});
    CHECK(c.isolate);
    CHECK(c.irq_affinity == IrqAffinity::vm);
    CHECK(c.realtime);
    CHECK(c.realtime_priority == 10);

    const Bad cases[] = {
        {"isolate without pin", base + "[cpu]\nisolate = true\n", 5, "cpu.isolate", "needs the vCPUs pinned"},
        {"irq_affinity without pin", base + "[cpu]\nirq_affinity = \"host\"\n", 5, "cpu.irq_affinity",
         "irq_affinity = \"host\" needs the vCPUs pinned"},
        {"realtime without pin", base + "[cpu]\nrealtime = true\n", 5, "cpu.realtime", "needs the vCPUs pinned"},
        {"an unknown irq_affinity", base + "[cpu]\nirq_affinity = \"guest\"\n", 5, "cpu.irq_affinity", "not one of leave, vm, host"},
        {"a priority out of range", base + "[cpu]\nrealtime_priority = 100\n", 5, "cpu.realtime_priority", "99"},
        {"an iothread CPU twice", base + "[cpu]\niothread_pin = [1, 1]\n", 5, "cpu.iothread_pin", "twice"},
        {"an empty iothread_pin", base + "[cpu]\niothread_pin = []\n", 5, "cpu.iothread_pin", "is empty"},
    };
    for (const auto& bad : cases) {
        DYNAMIC_SECTION(bad.what) {
            const auto ds = check(bad.text);
            INFO(dump(ds));
            const auto it = std::find_if(ds.begin(), ds.end(), [&](const Diagnostic& d) {
                return d.severity == Severity::error && d.key == bad.key;
            });
            REQUIRE(it != ds.end());
            CHECK(it->pos.line == bad.line);
            CHECK_THAT(it->message, Catch::Contains(bad.fragment));
        }
    }
}

TEST_CASE("real-time vCPUs without isolate and a priority without realtime are warnings", "[profile][isolate]") {
    const auto ds = check(base + "[cpu]\ncores = 1\npin = [1]\nrealtime = true\n");
    INFO(dump(ds));
    CHECK_FALSE(has_errors(ds));
    CHECK(std::any_of(ds.begin(), ds.end(), [](const Diagnostic& d) {
        return d.severity == Severity::warning && d.key == "cpu.realtime" && d.message.find("add isolate = true") != std::string::npos;
    }));
    const auto priority = check(base + "[cpu]\nrealtime_priority = 5\n");
    CHECK(std::any_of(priority.begin(), priority.end(),
                      [](const Diagnostic& d) { return d.severity == Severity::warning && d.key == "cpu.realtime_priority"; }));
}
