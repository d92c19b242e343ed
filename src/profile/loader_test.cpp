// The loader alone (no validation): each table's keys, defaults, value types, unknown keys,
// table shapes and the positions diagnostics point at. validate_test.cpp covers the meaning
// of values and the bad-profile catalogue through loader + validator.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>

#include "profile/loader.hpp"
#include "temp_dir.hpp"

using namespace kvmgpu::profile;

namespace {

const std::filesystem::path file = "/etc/kvmgpu/vm.toml";

LoadResult load(const std::string& text) { return load_text(text, file); }

std::string dump(const Diagnostics& ds) {
    std::string out;
    for (const auto& d : ds) out += d.key + " @ " + d.str() + "\n";
    return out;
}

// Loads a profile that must have no diagnostics.
Profile loaded(const std::string& text) {
    auto r = load(text);
    INFO("profile:\n" << text << "\ndiagnostics:\n" << dump(r.diagnostics));
    REQUIRE(r.diagnostics.empty());
    return r.profile;
}

std::string list(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : ",") + w;
    return "[" + out + "]";
}

std::string list(const std::vector<unsigned>& numbers) {
    std::vector<std::string> words;
    for (auto n : numbers) words.push_back(std::to_string(n));
    return list(words);
}

// Every field of a profile, one line a table, so that two profiles compare field by field.
std::string fields(const Profile& p) {
    std::ostringstream o;
    const auto& m = p.machine;
    o << "machine " << m.type << ' ' << int(m.accel) << ' ' << m.memory << ' ' << int(m.hugepages)
      << ' ' << int(m.rtc) << '\n';
    const auto& c = p.cpu;
    o << "cpu " << c.model << ' ' << c.sockets << ' ' << c.cores << ' ' << c.threads << ' '
      << c.hide_kvm << ' ' << c.hv_vendor_id.value_or("-") << ' ' << c.hyperv << ' '
      << list(c.pin) << ' ' << list(c.emulator_pin) << '\n';
    const auto& f = p.firmware;
    o << "firmware " << int(f.type) << ' ' << f.code << ' ' << f.vars << ' ' << f.secure_boot
      << '\n';
    for (const auto& d : p.pci)
        o << "pci " << d.address.str() << ' ' << d.rom << ' '
          << (d.rombar ? std::to_string(*d.rombar) : "-") << ' ' << d.vga << '\n';
    for (const auto& d : p.disks)
        o << "disk " << d.path << ' ' << int(d.format) << ' ' << int(d.bus) << ' ' << int(d.media)
          << ' ' << d.readonly << '\n';
    const auto& n = p.network;
    o << "network " << int(n.mode) << ' ' << n.bridge << ' ' << n.tap << ' ' << n.mac << ' '
      << n.model << '\n';
    for (const auto& u : p.usb) o << "usb " << u.vendor << ':' << u.product << '\n';
    for (const auto& i : p.inputs)
        o << "input " << i.evdev << ' ' << i.grab_all << ' ' << i.grab_toggle << '\n';
    const auto& d = p.display;
    o << "display " << int(d.type) << ' ' << d.listen << ' ' << d.port << ' '
      << (d.websocket ? std::to_string(*d.websocket) : "-") << ' ' << d.device << '\n';
    const auto& lg = p.looking_glass;
    o << "looking_glass " << lg.enabled << ' ' << lg.size << ' ' << lg.size_auto << ' ' << lg.width
      << 'x' << lg.height << ' ' << lg.hdr << ' ' << int(lg.backend) << ' ' << lg.path << '\n';
    o << "audio " << int(p.audio.backend) << ' ' << p.audio.server << '\n';
    o << "tpm " << p.tpm.enabled << '\n';
    o << "hooks " << list(p.hooks.prestart) << ' ' << list(p.hooks.poststop) << '\n';
    o << "qemu " << p.qemu.binary << ' ' << list(p.qemu.extra) << '\n';
    return o.str();
}

// A profile that must load with exactly one diagnostic, given in full.
struct OneError {
    const char* what;
    std::string text;
    const char* key;
    unsigned line;
    unsigned column;
    std::string message;
};

void check_one_error(const std::vector<OneError>& cases) {
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.what) {
            const auto r = load(c.text);
            INFO("profile:\n" << c.text << "\ndiagnostics:\n" << dump(r.diagnostics));
            REQUIRE(r.diagnostics.size() == 1);
            const auto& d = r.diagnostics[0];
            CHECK(d.severity == Severity::error);
            CHECK(d.file == file.string());
            CHECK(d.key == c.key);
            CHECK(d.pos.line == c.line);
            CHECK(d.pos.column == c.column);
            CHECK(d.message == c.message);
        }
    }
}

}  // namespace

TEST_CASE("an empty profile loads without diagnostics and with every documented default",
          "[profile][loader]") {
    const auto r = load("");
    CHECK(r.diagnostics.empty());
    const auto& p = r.profile;
    CHECK(p.file == file);
    CHECK(p.name == "vm");
    CHECK(p.positions.empty());
    CHECK(fields(p) == fields(Profile{}));
}

TEST_CASE("an empty table leaves every key of it at its default", "[profile][loader]") {
    // clang-format off
    const std::vector<const char*> tables = {
        "[machine]", "[cpu]", "[firmware]", "[network]", "[display]", "[audio]", "[tpm]",
        "[hooks]", "[qemu]",
    };
    // clang-format on
    for (const auto* table : tables) {
        DYNAMIC_SECTION(table) {
            const auto r = load(std::string(table) + "\n");
            INFO(dump(r.diagnostics));
            CHECK(r.diagnostics.empty());
            CHECK(fields(r.profile) == fields(Profile{}));
        }
    }
}

TEST_CASE("writing the looking_glass table turns Looking Glass on with its defaults, "
          "enabled = false turns it off",
          "[profile][loader]") {
    auto r = load("[looking_glass]\n");
    CHECK(r.diagnostics.empty());
    Profile expected;
    expected.looking_glass.enabled = true;
    CHECK(fields(r.profile) == fields(expected));

    r = load("[looking_glass]\nenabled = false\nhdr = true\n");
    CHECK(r.diagnostics.empty());
    CHECK_FALSE(r.profile.looking_glass.enabled);
    CHECK(r.profile.looking_glass.hdr);
}

TEST_CASE("an entry of an array of tables starts from the documented defaults",
          "[profile][loader]") {
    const auto r = load("[[pci]]\naddress = \"01:00.0\"\n[[disk]]\npath = \"/img/a.raw\"\n"
                        "[[usb]]\n[[input]]\n");
    INFO(dump(r.diagnostics));
    CHECK(r.diagnostics.empty());
    const auto& p = r.profile;
    REQUIRE(p.pci.size() == 1);
    CHECK(p.pci[0].rom.empty());
    CHECK_FALSE(p.pci[0].rombar.has_value());
    CHECK_FALSE(p.pci[0].vga);
    REQUIRE(p.disks.size() == 1);
    CHECK(p.disks[0].format == DiskFormat::raw);
    CHECK(p.disks[0].bus == DiskBus::virtio);
    CHECK(p.disks[0].media == DiskMedia::disk);
    CHECK_FALSE(p.disks[0].readonly);
    REQUIRE(p.usb.size() == 1);
    CHECK(p.usb[0].vendor == 0);
    CHECK(p.usb[0].product == 0);
    REQUIRE(p.inputs.size() == 1);
    CHECK(p.inputs[0].evdev.empty());
    CHECK_FALSE(p.inputs[0].grab_all);
    CHECK(p.inputs[0].grab_toggle == "ctrl-ctrl");
}

TEST_CASE("every key of every table is read into its field", "[profile][loader]") {
    SECTION("top-level keys") { CHECK(loaded("name = \"rig\"\n").name == "rig"); }
    SECTION("machine") {
        const auto m = loaded("[machine]\ntype = \"pc-q35-8.0\"\naccel = \"tcg\"\n"
                              "memory = \"16G\"\nhugepages = \"1G\"\nrtc = \"localtime\"\n")
                           .machine;
        CHECK(m.type == "pc-q35-8.0");
        CHECK(m.accel == Accel::tcg);
        CHECK(m.memory == 16ull << 30);
        CHECK(m.hugepages == Hugepages::size_1g);
        CHECK(m.rtc == Rtc::localtime);
    }
    SECTION("cpu") {
        const auto c = loaded("[cpu]\nmodel = \"EPYC\"\nsockets = 2\ncores = 4\nthreads = 2\n"
                              "hide_kvm = true\nhv_vendor_id = \"AuthenticAMD\"\nhyperv = true\n"
                              "pin = [2, 3, 4, 5]\nemulator_pin = [0, 1]\n")
                           .cpu;
        CHECK(c.model == "EPYC");
        CHECK(c.sockets == 2);
        CHECK(c.cores == 4);
        CHECK(c.threads == 2);
        CHECK(c.hide_kvm);
        CHECK(c.hv_vendor_id == "AuthenticAMD");
        CHECK(c.hyperv);
        CHECK(c.pin == std::vector<unsigned>{2, 3, 4, 5});
        CHECK(c.emulator_pin == std::vector<unsigned>{0, 1});
    }
    SECTION("firmware") {
        const auto f = loaded("[firmware]\ntype = \"seabios\"\ncode = \"fw/code.fd\"\n"
                              "vars = \"/usr/share/OVMF/vars.fd\"\nsecure_boot = true\n")
                           .firmware;
        CHECK(f.type == FirmwareType::seabios);
        CHECK(f.code == "/etc/kvmgpu/fw/code.fd");
        CHECK(f.vars == "/usr/share/OVMF/vars.fd");
        CHECK(f.secure_boot);
    }
    SECTION("pci") {
        const auto pci = loaded("[[pci]]\naddress = \"0000:0a:00.0\"\nrom = \"gpu.rom\"\n"
                                "rombar = false\nvga = true\n[[pci]]\naddress = \"0a:00.1\"\n"
                                "rombar = true\n")
                             .pci;
        REQUIRE(pci.size() == 2);
        CHECK(pci[0].address.str() == "0000:0a:00.0");
        CHECK(pci[0].rom == "/etc/kvmgpu/gpu.rom");
        CHECK(pci[0].rombar == false);
        CHECK(pci[0].vga);
        CHECK(pci[1].address.str() == "0000:0a:00.1");
        CHECK(pci[1].rombar == true);
        CHECK_FALSE(pci[1].vga);
    }
    SECTION("disk") {
        const auto disks = loaded("[[disk]]\npath = \"/images/win.raw\"\nformat = \"qcow2\"\n"
                                  "bus = \"nvme\"\nmedia = \"cdrom\"\nreadonly = false\n")
                               .disks;
        REQUIRE(disks.size() == 1);
        CHECK(disks[0].path == "/images/win.raw");
        CHECK(disks[0].format == DiskFormat::qcow2);
        CHECK(disks[0].bus == DiskBus::nvme);
        CHECK(disks[0].media == DiskMedia::cdrom);
        CHECK_FALSE(disks[0].readonly);
    }
    SECTION("network") {
        const auto n = loaded("[network]\nmode = \"bridge\"\nbridge = \"br0\"\ntap = \"tap7\"\n"
                              "mac = \"52:54:00:12:34:56\"\nmodel = \"e1000e\"\n")
                           .network;
        CHECK(n.mode == NetworkMode::bridge);
        CHECK(n.bridge == "br0");
        CHECK(n.tap == "tap7");
        CHECK(n.mac == "52:54:00:12:34:56");
        CHECK(n.model == "e1000e");
    }
    SECTION("usb") {
        const auto usb = loaded("[[usb]]\nvendor = 0x046d\nproduct = 0xc52b\n").usb;
        REQUIRE(usb.size() == 1);
        CHECK(usb[0].vendor == 0x046d);
        CHECK(usb[0].product == 0xc52b);
    }
    SECTION("input") {
        const auto inputs = loaded("[[input]]\nevdev = \"/dev/input/by-id/kbd\"\ngrab_all = true\n"
                                   "grab_toggle = \"scrolllock\"\n")
                                .inputs;
        REQUIRE(inputs.size() == 1);
        CHECK(inputs[0].evdev == "/dev/input/by-id/kbd");
        CHECK(inputs[0].grab_all);
        CHECK(inputs[0].grab_toggle == "scrolllock");
    }
    SECTION("display") {
        const auto d = loaded("[display]\ntype = \"vnc\"\nlisten = \"0.0.0.0\"\nport = 5901\n"
                              "websocket = 5701\ndevice = \"virtio-vga\"\n")
                           .display;
        CHECK(d.type == DisplayType::vnc);
        CHECK(d.listen == "0.0.0.0");
        CHECK(d.port == 5901);
        CHECK(d.websocket == 5701u);
        CHECK(d.device == "virtio-vga");
    }
    SECTION("looking_glass") {
        const auto lg = loaded("[looking_glass]\nenabled = true\nsize = \"64M\"\n"
                               "resolution = \"2560x1440\"\nhdr = true\nbackend = \"kvmfr\"\n"
                               "path = \"/dev/kvmfr0\"\n")
                            .looking_glass;
        CHECK(lg.enabled);
        CHECK_FALSE(lg.size_auto);
        CHECK(lg.size == 64ull << 20);
        CHECK(lg.width == 2560);
        CHECK(lg.height == 1440);
        CHECK(lg.hdr);
        CHECK(lg.backend == LookingGlassBackend::kvmfr);
        CHECK(lg.path == "/dev/kvmfr0");
    }
    SECTION("audio and tpm") {
        const auto p = loaded("[audio]\nbackend = \"pulseaudio\"\n"
                              "server = \"unix:/run/user/1000/pulse/native\"\n"
                              "[tpm]\nenabled = true\n");
        CHECK(p.audio.backend == AudioBackend::pulseaudio);
        CHECK(p.audio.server == "unix:/run/user/1000/pulse/native");
        CHECK(p.tpm.enabled);
    }
    SECTION("hooks and qemu") {
        const auto p = loaded("[hooks]\nprestart = [\"/usr/local/bin/pre\", \"--vm\", \"rig\"]\n"
                              "poststop = [\"logger\", \"stopped\"]\n[qemu]\n"
                              "binary = \"/opt/qemu/bin/qemu-system-x86_64\"\n"
                              "extra = [\"-device\", \"ivshmem-plain\"]\n");
        CHECK(p.hooks.prestart == std::vector<std::string>{"/usr/local/bin/pre", "--vm", "rig"});
        CHECK(p.hooks.poststop == std::vector<std::string>{"logger", "stopped"});
        CHECK(p.qemu.binary == "/opt/qemu/bin/qemu-system-x86_64");
        CHECK(p.qemu.extra == std::vector<std::string>{"-device", "ivshmem-plain"});
    }
}

TEST_CASE("every word of every enum key is accepted", "[profile][loader]") {
    struct Case {
        std::string text;
        std::function<bool(const Profile&)> holds;
    };
    // clang-format off
    const std::vector<Case> cases = {
        {"[machine]\naccel = \"kvm\"", [](auto& p) { return p.machine.accel == Accel::kvm; }},
        {"[machine]\naccel = \"tcg\"", [](auto& p) { return p.machine.accel == Accel::tcg; }},
        {"[machine]\nhugepages = \"none\"", [](auto& p) { return p.machine.hugepages == Hugepages::none; }},
        {"[machine]\nhugepages = \"2M\"", [](auto& p) { return p.machine.hugepages == Hugepages::size_2m; }},
        {"[machine]\nhugepages = \"1G\"", [](auto& p) { return p.machine.hugepages == Hugepages::size_1g; }},
        {"[machine]\nrtc = \"utc\"", [](auto& p) { return p.machine.rtc == Rtc::utc; }},
        {"[machine]\nrtc = \"localtime\"", [](auto& p) { return p.machine.rtc == Rtc::localtime; }},
        {"[firmware]\ntype = \"ovmf\"", [](auto& p) { return p.firmware.type == FirmwareType::ovmf; }},
        {"[firmware]\ntype = \"seabios\"", [](auto& p) { return p.firmware.type == FirmwareType::seabios; }},
        {"[[disk]]\nformat = \"raw\"", [](auto& p) { return p.disks.at(0).format == DiskFormat::raw; }},
        {"[[disk]]\nformat = \"qcow2\"", [](auto& p) { return p.disks.at(0).format == DiskFormat::qcow2; }},
        {"[[disk]]\nbus = \"virtio\"", [](auto& p) { return p.disks.at(0).bus == DiskBus::virtio; }},
        {"[[disk]]\nbus = \"nvme\"", [](auto& p) { return p.disks.at(0).bus == DiskBus::nvme; }},
        {"[[disk]]\nbus = \"sata\"", [](auto& p) { return p.disks.at(0).bus == DiskBus::sata; }},
        {"[[disk]]\nbus = \"scsi\"", [](auto& p) { return p.disks.at(0).bus == DiskBus::scsi; }},
        {"[[disk]]\nmedia = \"disk\"", [](auto& p) { return p.disks.at(0).media == DiskMedia::disk; }},
        {"[[disk]]\nmedia = \"cdrom\"", [](auto& p) { return p.disks.at(0).media == DiskMedia::cdrom; }},
        {"[network]\nmode = \"user\"", [](auto& p) { return p.network.mode == NetworkMode::user; }},
        {"[network]\nmode = \"bridge\"", [](auto& p) { return p.network.mode == NetworkMode::bridge; }},
        {"[network]\nmode = \"tap\"", [](auto& p) { return p.network.mode == NetworkMode::tap; }},
        {"[network]\nmode = \"none\"", [](auto& p) { return p.network.mode == NetworkMode::none; }},
        {"[display]\ntype = \"none\"", [](auto& p) { return p.display.type == DisplayType::none; }},
        {"[display]\ntype = \"vnc\"", [](auto& p) { return p.display.type == DisplayType::vnc; }},
        {"[display]\ntype = \"spice\"", [](auto& p) { return p.display.type == DisplayType::spice; }},
        {"[looking_glass]\nbackend = \"shm\"", [](auto& p) { return p.looking_glass.backend == LookingGlassBackend::shm; }},
        {"[looking_glass]\nbackend = \"kvmfr\"", [](auto& p) { return p.looking_glass.backend == LookingGlassBackend::kvmfr; }},
        {"[audio]\nbackend = \"none\"", [](auto& p) { return p.audio.backend == AudioBackend::none; }},
        {"[audio]\nbackend = \"pipewire\"", [](auto& p) { return p.audio.backend == AudioBackend::pipewire; }},
        {"[audio]\nbackend = \"pulseaudio\"", [](auto& p) { return p.audio.backend == AudioBackend::pulseaudio; }},
    };
    // clang-format on
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.text) {
            const auto r = load(c.text);
            INFO(dump(r.diagnostics));
            CHECK(r.diagnostics.empty());
            CHECK(c.holds(r.profile));
        }
    }
}

TEST_CASE("relative file paths resolve against the profile's directory, absolute ones are "
          "normalised",
          "[profile][loader]") {
    struct Case {
        std::string text;
        std::function<std::filesystem::path(const Profile&)> path;
        std::filesystem::path expected;
    };
    // clang-format off
    const std::vector<Case> cases = {
        {"[firmware]\ncode = \"code.fd\"", [](auto& p) { return p.firmware.code; }, "/etc/kvmgpu/code.fd"},
        {"[firmware]\nvars = \"../ovmf/vars.fd\"", [](auto& p) { return p.firmware.vars; }, "/etc/ovmf/vars.fd"},
        {"[[pci]]\naddress = \"01:00.0\"\nrom = \"./roms//gpu.rom\"", [](auto& p) { return p.pci.at(0).rom; }, "/etc/kvmgpu/roms/gpu.rom"},
        {"[[disk]]\npath = \"/images/../vm/a.raw\"", [](auto& p) { return p.disks.at(0).path; }, "/vm/a.raw"},
        {"[[input]]\nevdev = \"/dev/input/./event3\"", [](auto& p) { return p.inputs.at(0).evdev; }, "/dev/input/event3"},
        {"[looking_glass]\npath = \"shm/lg\"", [](auto& p) { return p.looking_glass.path; }, "/etc/kvmgpu/shm/lg"},
    };
    // clang-format on
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.text) {
            const auto r = load(c.text);
            INFO(dump(r.diagnostics));
            CHECK(r.diagnostics.empty());
            CHECK(c.path(r.profile) == c.expected);
        }
    }
}

TEST_CASE("a program with a slash resolves against the profile's directory, a bare word and "
          "the arguments stay as written",
          "[profile][loader]") {
    const auto r = load("[hooks]\nprestart = [\"bin/pre\", \"./arg\"]\n"
                        "poststop = [\"/usr/bin/logger\"]\n"
                        "[qemu]\nbinary = \"../qemu/qemu-system-x86_64\"\nextra = [\"./x\"]\n");
    CHECK(r.diagnostics.empty());
    CHECK(r.profile.hooks.prestart == std::vector<std::string>{"/etc/kvmgpu/bin/pre", "./arg"});
    CHECK(r.profile.hooks.poststop == std::vector<std::string>{"/usr/bin/logger"});
    CHECK(r.profile.qemu.binary == "/etc/qemu/qemu-system-x86_64");
    CHECK(r.profile.qemu.extra == std::vector<std::string>{"./x"});
    CHECK(load("[qemu]\nbinary = \"qemu-kvm\"\n").profile.qemu.binary == "qemu-kvm");
}

TEST_CASE("a disk's format, bus and read-only flag default from its path and media unless "
          "written",
          "[profile][loader]") {
    struct Case {
        std::string keys;
        DiskFormat format;
        DiskBus bus;
        bool readonly;
    };
    // clang-format off
    const std::vector<Case> cases = {
        {"path = \"/i/a.qcow2\"", DiskFormat::qcow2, DiskBus::virtio, false},
        {"path = \"/i/a.qcow2\"\nformat = \"raw\"", DiskFormat::raw, DiskBus::virtio, false},
        {"path = \"/i/a.img\"", DiskFormat::raw, DiskBus::virtio, false},
        {"path = \"/i/a.iso\"\nmedia = \"cdrom\"", DiskFormat::raw, DiskBus::sata, true},
        {"path = \"/i/a.iso\"\nmedia = \"cdrom\"\nbus = \"scsi\"", DiskFormat::raw, DiskBus::scsi, true},
        {"path = \"/i/a.iso\"\nmedia = \"cdrom\"\nreadonly = false", DiskFormat::raw, DiskBus::sata, false},
        {"path = \"/i/a.qcow2\"\nmedia = \"cdrom\"", DiskFormat::qcow2, DiskBus::sata, true},
    };
    // clang-format on
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.keys) {
            const auto r = load("[[disk]]\n" + c.keys + "\n");
            INFO(dump(r.diagnostics));
            CHECK(r.diagnostics.empty());
            REQUIRE(r.profile.disks.size() == 1);
            CHECK(r.profile.disks[0].format == c.format);
            CHECK(r.profile.disks[0].bus == c.bus);
            CHECK(r.profile.disks[0].readonly == c.readonly);
        }
    }
}

TEST_CASE("looking glass size is auto unless a size is written, and resolution is WIDTHxHEIGHT",
          "[profile][loader]") {
    auto lg = load("[looking_glass]\nsize = \"auto\"\n").profile.looking_glass;
    CHECK(lg.size_auto);
    CHECK(lg.size == 0);
    lg = load("[looking_glass]\nsize = \"128M\"\n").profile.looking_glass;
    CHECK_FALSE(lg.size_auto);
    CHECK(lg.size == 128ull << 20);
    lg = load("[looking_glass]\nresolution = \"16384x1\"\n").profile.looking_glass;
    CHECK(lg.width == 16384);
    CHECK(lg.height == 1);
}

TEST_CASE("range limits of integer keys are inclusive", "[profile][loader]") {
    const auto r = load("[cpu]\nsockets = 16\ncores = 255\nthreads = 8\npin = [0, 4095]\n"
                        "[[usb]]\nvendor = 1\nproduct = 0xffff\n[display]\nport = 65535\n"
                        "websocket = 1\n");
    INFO(dump(r.diagnostics));
    CHECK(r.diagnostics.empty());
    CHECK(r.profile.cpu.sockets == 16);
    CHECK(r.profile.cpu.cores == 255);
    CHECK(r.profile.cpu.threads == 8);
    CHECK(r.profile.cpu.pin == std::vector<unsigned>{0, 4095});
    CHECK(r.profile.usb.at(0).product == 0xffff);
    CHECK(r.profile.display.port == 65535);
    CHECK(r.profile.display.websocket == 1u);
}

TEST_CASE("a value of the wrong type is an error naming the expected and the given type at "
          "the value",
          "[profile][loader]") {
    // clang-format off
    check_one_error({
        {"float for an integer", "[cpu]\nsockets = 2.0\n", "cpu.sockets", 2, 11,
         "[cpu] sockets must be an integer, not a float"},
        {"integer for a boolean", "[firmware]\nsecure_boot = 1\n", "firmware.secure_boot", 2, 15,
         "[firmware] secure_boot must be true or false, not an integer"},
        {"string for a boolean", "[tpm]\nenabled = \"true\"\n", "tpm.enabled", 2, 11,
         "[tpm] enabled must be true or false, not a string"},
        {"array for a string", "[display]\nlisten = [\"127.0.0.1\"]\n", "display.listen", 2, 10,
         "[display] listen must be a string, not an array"},
        {"inline table for a string", "[machine]\ntype = { name = \"q35\" }\n", "machine.type", 2, 8,
         "[machine] type must be a string, not a table"},
        {"date for a path", "[[disk]]\npath = 1979-05-27\n", "disk[0].path", 2, 8,
         "[[disk]] #1 path must be a string, not a date/time"},
        {"boolean for an enum word", "[audio]\nbackend = true\n", "audio.backend", 2, 11,
         "[audio] backend must be a string, not a boolean"},
        {"integer for a size", "[looking_glass]\nsize = 64\n", "looking_glass.size", 2, 8,
         "[looking_glass] size must be a string, not an integer"},
        {"integer for a resolution", "[looking_glass]\nresolution = 1080\n", "looking_glass.resolution", 2, 14,
         "[looking_glass] resolution must be a string, not an integer"},
        {"string for a CPU list", "[cpu]\nemulator_pin = \"0-3\"\n", "cpu.emulator_pin", 2, 16,
         "[cpu] emulator_pin must be an array of integers, not a string"},
        {"integer in a string array", "[hooks]\npoststop = [\"logger\", 1]\n", "hooks.poststop[1]", 2, 23,
         "[hooks] poststop[1] must be a string, not an integer"},
        {"integer for an optional boolean", "[[pci]]\naddress = \"01:00.0\"\nrombar = 0\n", "pci[0].rombar", 3, 10,
         "[[pci]] #1 rombar must be true or false, not an integer"},
        {"integer for a PCI address (no second error for the missing address)",
         "[[pci]]\naddress = 0x0100\n", "pci[0].address", 2, 11,
         "[[pci]] #1 address must be a string, not an integer"},
        {"a key of the second entry", "[[input]]\nevdev = \"/dev/input/a\"\n[[input]]\nevdev = \"/dev/input/b\"\ngrab_all = \"yes\"\n",
         "input[1].grab_all", 5, 12, "[[input]] #2 grab_all must be true or false, not a string"},
        {"string for the name", "name = false\n", "name", 1, 8, "name must be a string, not a boolean"},
    });
    // clang-format on
}

TEST_CASE("a bad value is an error quoting the value at its position", "[profile][loader]") {
    // clang-format off
    check_one_error({
        {"integer below its range", "[cpu]\nsockets = 0\n", "cpu.sockets", 2, 11,
         "[cpu] sockets is 0; it must be between 1 and 16"},
        {"integer above its range", "[[usb]]\nproduct = 65536\n", "usb[0].product", 2, 11,
         "[[usb]] #1 product is 65536; it must be between 1 and 65535"},
        {"CPU number out of range", "[cpu]\nemulator_pin = [0, 4096]\n", "cpu.emulator_pin[1]", 2, 20,
         "[cpu] emulator_pin[1] is 4096; it must be between 0 and 4095"},
        {"enum word with a suggestion", "[display]\ntype = \"spcie\"\n", "display.type", 2, 8,
         "[display] type \"spcie\" is not one of none, vnc, spice; did you mean \"spice\"?"},
        {"enum word without a suggestion", "[[disk]]\npath = \"/a\"\nmedia = \"floppy\"\n", "disk[0].media", 3, 9,
         "[[disk]] #1 media \"floppy\" is not one of disk, cdrom"},
        {"size without a unit it knows", "[machine]\nmemory = \"16 gigs\"\n", "machine.memory", 2, 10,
         "[machine] memory \"16 gigs\" is not a size; write a number with K, M, G or T, e.g. \"16G\""},
        {"empty file path", "[firmware]\ncode = \"\"\n", "firmware.code", 2, 8,
         "[firmware] code is empty; give a file path"},
        {"control character", "[network]\nbridge = \"br\\u0000\"\n", "network.bridge", 2, 10,
         "[network] bridge \"br\\u0000\" contains a control character (\"\\u0000\"); remove it"},
        {"resolution with a star", "[looking_glass]\nresolution = \"1920*1080\"\n", "looking_glass.resolution", 2, 14,
         "[looking_glass] resolution \"1920*1080\" is not WIDTHxHEIGHT with each side from 1 to 16384; write e.g. \"2560x1440\""},
        {"resolution of zero", "[looking_glass]\nresolution = \"0x1080\"\n", "looking_glass.resolution", 2, 14,
         "[looking_glass] resolution \"0x1080\" is not WIDTHxHEIGHT with each side from 1 to 16384; write e.g. \"2560x1440\""},
        {"resolution above 16384", "[looking_glass]\nresolution = \"16385x1080\"\n", "looking_glass.resolution", 2, 14,
         "[looking_glass] resolution \"16385x1080\" is not WIDTHxHEIGHT with each side from 1 to 16384; write e.g. \"2560x1440\""},
        {"PCI address", "[[pci]]\naddress = \"01:00\"\n", "pci[0].address", 2, 11,
         "[[pci]] #1 address \"01:00\" is not a PCI address; write domain:bus:slot.function in hex as "
         "`lspci -D` shows it, e.g. \"0000:01:00.0\" (slot at most 1f, function at most 7)"},
    });
    // clang-format on
}

TEST_CASE("a bad value leaves the field at its default", "[profile][loader]") {
    const auto r = load("name = 1\n[machine]\nmemory = \"lots\"\naccel = \"xen\"\n"
                        "[cpu]\ncores = 0\n"
                        "hide_kvm = \"yes\"\nhv_vendor_id = 12\n[display]\nwebsocket = 0\n");
    CHECK(r.diagnostics.size() == 7);
    CHECK(fields(r.profile) == fields(Profile{}));
    CHECK(r.profile.name == "vm");
}

TEST_CASE("an array with a bad element is reported element by element and not read at all",
          "[profile][loader]") {
    const auto r = load("[cpu]\npin = [1, \"2\", 3, -4]\n[qemu]\nextra = [\"-a\", 5, \"-b\"]\n");
    INFO(dump(r.diagnostics));
    REQUIRE(r.diagnostics.size() == 3);
    CHECK(r.diagnostics[0].key == "cpu.pin[1]");
    CHECK(r.diagnostics[1].key == "cpu.pin[3]");
    CHECK(r.diagnostics[1].message == "[cpu] pin[3] is -4; it must be between 0 and 4095");
    CHECK(r.diagnostics[2].key == "qemu.extra[1]");
    CHECK(r.profile.cpu.pin.empty());
    CHECK(r.profile.qemu.extra.empty());
}

TEST_CASE("a malformed PCI address becomes ffff:ff:1f.7, which the validator skips",
          "[profile][loader]") {
    const auto r = load("[[pci]]\naddress = \"gpu0\"\n");
    REQUIRE(r.profile.pci.size() == 1);
    CHECK(r.profile.pci[0].address == kvmgpu::util::PciAddress{0xffff, 0xff, 0x1f, 7});
}

TEST_CASE("unknown keys are errors at the key with a did-you-mean or the list of known keys",
          "[profile][loader]") {
    // clang-format off
    check_one_error({
        {"typo at the top", "nmae = \"vm\"\n", "nmae", 1, 1,
         "unknown table or key \"nmae\"; did you mean \"name\"?"},
        {"nothing close at the top", "virtual_machine = 1\n", "virtual_machine", 1, 1,
         "unknown table or key \"virtual_machine\"; known keys: name, machine, cpu, firmware, pci, "
         "disk, network, usb, input, display, looking_glass, audio, tpm, hooks, release, security, qemu"},
        {"typo in a table name", "[qmeu]\n", "qmeu", 1, 2,
         "unknown table or key \"qmeu\"; did you mean \"qemu\"?"},
        {"typo in an indented key", "[cpu]\n  hide_kmv = true\n", "cpu.hide_kmv", 2, 3,
         "[cpu] has no key \"hide_kmv\"; did you mean \"hide_kvm\"?"},
        {"nothing close in a table", "[tpm]\nversion = 2\n", "tpm.version", 2, 1,
         "[tpm] has no key \"version\"; known keys: enabled"},
        {"sub-table of a table", "[machine.numa]\nnodes = 2\n", "machine.numa", 1, 10,
         "[machine] has no key \"numa\"; known keys: type, accel, memory, hugepages, keep_hugepages, rtc"},
        {"typo in an array of tables", "[[usb]]\nvendor = 1\nprodcut = 2\n", "usb[0].prodcut", 3, 1,
         "[[usb]] has no key \"prodcut\"; did you mean \"product\"?"},
        {"typo in the second entry", "[[disk]]\npath = \"/a\"\n[[disk]]\npath = \"/b\"\nreadonyl = true\n",
         "disk[1].readonyl", 5, 1, "[[disk]] has no key \"readonyl\"; did you mean \"readonly\"?"},
        {"nothing close in an array of tables", "[[input]]\nevdev = \"/dev/input/a\"\nrepeat = 1\n",
         "input[0].repeat", 3, 1,
         "[[input]] has no key \"repeat\"; known keys: evdev, grab_all, grab_toggle"},
    });
    // clang-format on
}

TEST_CASE("an unknown key does not stop the keys around it from being read", "[profile][loader]") {
    const auto r = load("[cpu]\ncores = 4\ncoers = 8\nthreads = 2\n");
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.profile.cpu.cores == 4);
    CHECK(r.profile.cpu.threads == 2);
}

TEST_CASE("each table written as an array of tables, or as a value, is an error telling how "
          "to write it",
          "[profile][loader]") {
    const std::vector<std::string> tables = {"machine", "cpu",   "firmware", "network", "display",
                                             "looking_glass", "audio", "tpm", "hooks", "qemu"};
    for (const auto& t : tables) {
        DYNAMIC_SECTION(t) {
            const std::string message = "\"" + t + "\" must be a table: write [" + t +
                                        "] on a line of its own";
            check_one_error({{"as [[table]]", "[[" + t + "]]\n", t.c_str(), 1, 1, message},
                             {"as a value", "\n" + t + " = 1\n", t.c_str(), 2,
                              static_cast<unsigned>(t.size() + 4), message}});
        }
    }
}

TEST_CASE("each array of tables written as a table, or as another value, is an error telling "
          "how to write it",
          "[profile][loader]") {
    const std::vector<std::string> arrays = {"pci", "disk", "usb", "input"};
    for (const auto& a : arrays) {
        DYNAMIC_SECTION(a) {
            const std::string message = "\"" + a + "\" must be an array of tables: write [[" + a +
                                        "]] before each entry";
            check_one_error({{"as [table]", "[" + a + "]\n", a.c_str(), 1, 1, message},
                             {"as a string", a + " = \"x\"\n", a.c_str(), 1,
                              static_cast<unsigned>(a.size() + 4), message},
                             {"as an array of strings", a + " = [\"x\"]\n", a.c_str(), 1,
                              static_cast<unsigned>(a.size() + 4), message}});
        }
    }
}

TEST_CASE("an array of inline tables reads like entries of an array of tables",
          "[profile][loader]") {
    const auto r = load("usb = [{ vendor = 1, product = 2 }, { vendor = 3, product = 4 }]\n");
    CHECK(r.diagnostics.empty());
    REQUIRE(r.profile.usb.size() == 2);
    CHECK(r.profile.usb[1].vendor == 3);
    CHECK(r.profile.usb[1].product == 4);
}

TEST_CASE("a pci entry without an address is an error at its header", "[profile][loader]") {
    check_one_error({{"second entry", "[[pci]]\naddress = \"01:00.0\"\n\n  [[pci]]\nvga = true\n",
                      "pci[1].address", 4, 3,
                      "[[pci]] #2 has no address; add address = \"0000:01:00.0\" "
                      "(see `kvmgpu list`)"}});
}

TEST_CASE("positions record where every key, table and entry was written", "[profile][loader]") {
    const auto r = load("name = \"vm\"\n[cpu]\n  cores = 4\npin = [0, 1]\n[[disk]]\npath = \"/a\"\n"
                        "[[disk]]\npath = \"/b\"\n");
    CHECK(r.diagnostics.empty());
    const auto& p = r.profile;
    auto at = [&](const std::string& key) {
        const auto pos = p.where(key);
        return std::to_string(pos.line) + ":" + std::to_string(pos.column);
    };
    CHECK(at("name") == "1:8");
    CHECK(at("cpu") == "2:1");
    CHECK(at("cpu.cores") == "3:11");
    CHECK(at("cpu.pin") == "4:7");
    CHECK(at("disk[1]") == "7:1");
    CHECK(at("disk[1].path") == "8:8");
    CHECK(at("disk[1].bus") == "7:1");  // not written: falls back to its entry
    CHECK(at("machine.memory") == "0:0");  // nothing written: no position
}

TEST_CASE("every problem of the file is reported, not only the first", "[profile][loader]") {
    const auto r =
        load("nmae = 1\n[cpu]\ncores = \"4\"\n[[disk]]\nbus = \"ide\"\n[tpm]\nenabled = 1\n");
    INFO(dump(r.diagnostics));
    std::vector<std::string> keys;
    for (const auto& d : r.diagnostics) keys.push_back(d.key);
    std::sort(keys.begin(), keys.end());
    CHECK(keys == std::vector<std::string>{"cpu.cores", "disk[0].bus", "nmae", "tpm.enabled"});
}

TEST_CASE("a TOML syntax error is one diagnostic at its position and nothing is read",
          "[profile][loader]") {
    const auto r = load("[cpu]\ncores = 4\nmodel = \"host\n");
    REQUIRE(r.diagnostics.size() == 1);
    const auto& d = r.diagnostics[0];
    CHECK(d.key.empty());
    CHECK(d.pos.line == 3);
    CHECK(d.message.rfind("TOML syntax: ", 0) == 0);
    CHECK(r.profile.positions.empty());
    CHECK(r.profile.cpu.cores == 2);
    CHECK(r.profile.name == "vm");
}

TEST_CASE("load_file reads the file and names it in diagnostics", "[profile][loader]") {
    kvmgpu::testing::TempDir dir;
    const auto path = dir.path() / "desk.toml";
    std::ofstream(path) << "[[disk]]\npath = \"a.raw\"\n[cpu]\ncores = 0\n";
    const auto r = load_file(path);
    CHECK(r.profile.name == "desk");
    CHECK(r.profile.file == path);
    REQUIRE(r.profile.disks.size() == 1);
    CHECK(r.profile.disks[0].path == dir.path() / "a.raw");
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.diagnostics[0].str() ==
          path.string() + ":4:9: error: [cpu] cores is 0; it must be between 1 and 255");
}

TEST_CASE("a profile file that cannot be read is one diagnostic without a position",
          "[profile][loader]") {
    kvmgpu::testing::TempDir dir;
    const auto r = load_file(dir.path() / "missing.toml");
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.diagnostics[0].pos.line == 0);
    CHECK(r.diagnostics[0].message ==
          "cannot read the profile: No such file or directory; check the path (kvmgpu run "
          "PROFILE.toml)");
}
