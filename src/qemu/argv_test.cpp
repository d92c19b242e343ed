#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "profile/loader.hpp"
#include "profile/validate.hpp"
#include "qemu/argv.hpp"
#include "qemu/options.hpp"

using namespace kvmgpu;

namespace {

const std::filesystem::path source_dir = KVMGPU_SOURCE_DIR;

profile::Profile load_valid(const std::string& text, const std::filesystem::path& file = "/p/vm.toml") {
    auto r = profile::load_text(text, file);
    profile::validate(r.profile, r.diagnostics);
    std::string problems;
    for (const auto& d : r.diagnostics)
        if (d.severity == profile::Severity::error) problems += d.str() + "\n";
    INFO(problems);
    REQUIRE_FALSE(profile::has_errors(r.diagnostics));
    return r.profile;
}

qemu::HostFacts facts_for(const profile::Profile& p) {
    qemu::HostFacts f;
    f.layout.runtime_dir = "/run/kvmgpu/" + p.name;
    f.layout.state_dir = "/var/lib/kvmgpu/" + p.name;
    // The launch has qemu-bridge-helper open the tap and passes it as this descriptor.
    if (p.network.mode == profile::NetworkMode::bridge) f.bridge_tap_fd = 3;
    return f;
}

// The value that follows the first occurrence of `flag` whose value starts with `head`.
std::vector<std::string> values_of(const std::vector<std::string>& argv, const std::string& flag) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i + 1 < argv.size(); ++i)
        if (argv[i] == flag) out.push_back(argv[i + 1]);
    return out;
}

// Splits a QEMU key=value list as QEMU does: a single ',' separates, ",," is a literal comma.
std::vector<std::string> split_qemu(const std::string& value) {
    std::vector<std::string> parts(1);
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value[i] == ',' && i + 1 < value.size() && value[i + 1] == ',') {
            parts.back() += ',';
            ++i;
        } else if (value[i] == ',') {
            parts.emplace_back();
        } else {
            parts.back() += value[i];
        }
    }
    return parts;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

TEST_CASE("QEMU escaping doubles commas and nothing else", "[qemu]") {
    CHECK(qemu::escape("/vm/a,b") == "/vm/a,,b");
    CHECK(qemu::escape("a,,b") == "a,,,,b");
    CHECK(qemu::escape("k=v") == "k=v");
    qemu::Option o{"-blockdev", "", {}};
    o.set("driver", "file").set("filename", "/img/x,format=qcow2,y.img");
    CHECK(o.value() == "driver=file,filename=/img/x,,format=qcow2,,y.img");
}

TEST_CASE("golden argv of every example profile", "[qemu][golden]") {
    for (const char* name : {"demo", "windows-gaming-nvidia", "linux-workstation-novnc"}) {
        DYNAMIC_SECTION(name) {
            const auto file = source_dir / "profiles" / (std::string(name) + ".toml");
            auto r = profile::load_and_validate(file);
            REQUIRE_FALSE(profile::has_errors(r.diagnostics));
            const auto argv = qemu::build_argv(r.profile, facts_for(r.profile));
            std::string rendered;
            for (const auto& a : argv) rendered += a + "\n";
            const auto golden = source_dir / "tests" / "golden" / (std::string(name) + ".argv");
            if (const char* update = std::getenv("KVMGPU_UPDATE_GOLDEN"); update && *update == '1') {
                std::ofstream(golden) << rendered;
            }
            std::ifstream in(golden);
            REQUIRE(in);
            std::stringstream expected;
            expected << in.rdbuf();
            // On a mismatch: review the diff, then KVMGPU_UPDATE_GOLDEN=1 rewrites the file.
            CHECK(rendered == expected.str());
        }
    }
}

TEST_CASE("the argv always starts QEMU paused, bare, and with two QMP sockets", "[qemu]") {
    const auto p = load_valid("name = \"vm\"\n[machine]\nmemory = \"1G\"\n");
    const auto argv = qemu::build_argv(p, facts_for(p));
    CHECK(argv.front() == "qemu-system-x86_64");
    for (const char* flag : {"-nodefaults", "-no-user-config", "-S"}) CHECK(contains(argv, flag));
    const auto chardevs = values_of(argv, "-chardev");
    REQUIRE(chardevs.size() == 2);
    CHECK(chardevs[0] == "socket,id=kvmgpu-qmp,path=/run/kvmgpu/vm/qemu/qmp.sock,server=on,wait=off");
    CHECK(chardevs[1] == "socket,id=kvmgpu-qmp-rescue,path=/run/kvmgpu/vm/qemu/qmp-rescue.sock,server=on,wait=off");
    CHECK(values_of(argv, "-mon").size() == 2);
    CHECK(values_of(argv, "-name") == std::vector<std::string>{"guest=vm,debug-threads=on"});
    CHECK(values_of(argv, "-machine").at(0).rfind("q35,", 0) == 0);
}

TEST_CASE("commas and '=' in paths never produce an extra option", "[qemu]") {
    const auto p = load_valid(
        "name = \"vm\"\n[machine]\nmemory = \"1G\"\n"
        "[firmware]\ncode = \"/fw/code,readonly=off.fd\"\nvars = \"/fw/v.fd\"\n"
        "[[disk]]\npath = \"/img/a,file.locking=off,b.raw\"\n"
        "[[pci]]\naddress = \"01:00.0\"\nrom = \"/roms/x,rombar=0.rom\"\n"
        "[[input]]\nevdev = \"/dev/input/by-id/kbd,grab_all=on\"\n"
        "[looking_glass]\npath = \"/dev/shm/lg,share=off\"\n"
        "[audio]\nbackend = \"pulseaudio\"\nserver = \"unix:/run/a,b\"\n");
    auto facts = facts_for(p);
    facts.layout.runtime_dir = "/run/kv,mgpu/vm";
    facts.layout.state_dir = "/var/lib/k=v,x/vm";
    const auto argv = qemu::build_argv(p, facts);
    const std::string joined = [&] {
        std::string s;
        for (const auto& a : argv) s += a + "\n";
        return s;
    }();
    INFO(joined);
    CHECK(contains(values_of(argv, "-blockdev"),
                   "driver=file,filename=/fw/code,,readonly=off.fd,node-name=kvmgpu-ovmf-code-file,read-only=on"));
    CHECK(contains(values_of(argv, "-blockdev"),
                   "driver=file,filename=/var/lib/k=v,,x/vm/OVMF_VARS.fd,node-name=kvmgpu-ovmf-vars-file"));
    CHECK(contains(values_of(argv, "-blockdev"),
                   "driver=file,filename=/img/a,,file.locking=off,,b.raw,node-name=kvmgpu-disk0-file"));
    CHECK(contains(values_of(argv, "-device"),
                   "vfio-pci,host=0000:01:00.0,id=kvmgpu-hostpci0,bus=kvmgpu-rp0,addr=0x0.0,romfile=/roms/x,,rombar=0.rom"));
    CHECK(contains(values_of(argv, "-object"),
                   "input-linux,id=kvmgpu-input0,evdev=/dev/input/by-id/kbd,,grab_all=on,grab-toggle=ctrl-ctrl"));
    CHECK(contains(values_of(argv, "-object"),
                   "memory-backend-file,id=kvmgpu-lg,mem-path=/dev/shm/lg,,share=off,size=32M,share=on"));
    CHECK(contains(values_of(argv, "-audiodev"), "pa,id=kvmgpu-snd,server=unix:/run/a,,b"));
    CHECK(contains(values_of(argv, "-chardev"),
                   "socket,id=kvmgpu-qmp,path=/run/kv,,mgpu/vm/qemu/qmp.sock,server=on,wait=off"));
    // -pidfile takes a plain path, not a key=value list: the comma stays single.
    CHECK(values_of(argv, "-pidfile") == std::vector<std::string>{"/run/kv,mgpu/vm/qemu/qemu.pid"});
    // Read back the way QEMU's option parser reads it, each list has only the keys we set.
    for (const auto& v : values_of(argv, "-blockdev")) {
        const auto parts = split_qemu(v);
        INFO(v);
        CHECK(parts.size() <= 4);
        for (const auto& part : parts) {
            const auto key = part.substr(0, part.find('='));
            CHECK((key == "driver" || key == "filename" || key == "file" || key == "node-name" ||
                   key == "read-only"));
        }
    }
    CHECK(split_qemu(values_of(argv, "-blockdev").at(4)) ==
          std::vector<std::string>{"driver=file", "filename=/img/a,file.locking=off,b.raw",
                                   "node-name=kvmgpu-disk0-file"});
}

TEST_CASE("the functions of one card share a root port as one multifunction device", "[qemu]") {
    const auto p = load_valid("name = \"vm\"\n[machine]\nmemory = \"1G\"\n"
                              "[[pci]]\naddress = \"0000:01:00.1\"\n[[pci]]\naddress = \"0000:01:00.0\"\n"
                              "[[pci]]\naddress = \"0000:02:00.0\"\n");
    auto devices = values_of(qemu::build_argv(p, facts_for(p)), "-device");
    devices.resize(5);  // the NIC follows
    const std::vector<std::string> expected{
        "pcie-root-port,id=kvmgpu-rp0,bus=pcie.0,addr=0x10,chassis=1",
        "vfio-pci,host=0000:01:00.0,id=kvmgpu-hostpci0,bus=kvmgpu-rp0,addr=0x0.0,multifunction=on",
        "vfio-pci,host=0000:01:00.1,id=kvmgpu-hostpci1,bus=kvmgpu-rp0,addr=0x0.1",
        "pcie-root-port,id=kvmgpu-rp1,bus=pcie.0,addr=0x11,chassis=2",
        "vfio-pci,host=0000:02:00.0,id=kvmgpu-hostpci2,bus=kvmgpu-rp1,addr=0x0.0",
    };
    CHECK(devices == expected);
}

TEST_CASE("host facts add a card's other functions and OVMF's large-BAR window", "[qemu]") {
    const auto p = load_valid("name = \"vm\"\n[machine]\nmemory = \"1G\"\n[[pci]]\naddress = \"0000:01:00.0\"\n");
    auto facts = facts_for(p);
    facts.extra_functions = {*util::PciAddress::parse("0000:01:00.1")};
    facts.mmio64_mb = 131072;
    const auto argv = qemu::build_argv(p, facts);
    const auto devices = values_of(argv, "-device");
    CHECK(contains(devices, "vfio-pci,host=0000:01:00.0,id=kvmgpu-hostpci0,bus=kvmgpu-rp0,addr=0x0.0,multifunction=on"));
    CHECK(contains(devices, "vfio-pci,host=0000:01:00.1,id=kvmgpu-hostpci1,bus=kvmgpu-rp0,addr=0x0.1"));
    CHECK(values_of(argv, "-fw_cfg") == std::vector<std::string>{"name=opt/ovmf/X-PciMmio64Mb,string=131072"});
}

TEST_CASE("a card passed without its function 0 is renumbered from 0 in the guest", "[qemu]") {
    const auto p = load_valid("name = \"vm\"\n[machine]\nmemory = \"1G\"\n[[pci]]\naddress = \"0000:03:00.2\"\n");
    const auto devices = values_of(qemu::build_argv(p, facts_for(p)), "-device");
    CHECK(contains(devices, "vfio-pci,host=0000:03:00.2,id=kvmgpu-hostpci0,bus=kvmgpu-rp0,addr=0x0.0"));
}

TEST_CASE("the CPU line hides KVM and uses only the enlightenments the accelerator supports", "[qemu]") {
    const std::string head = "name = \"vm\"\n[machine]\nmemory = \"1G\"\naccel = ";
    const std::string cpu = "\n[cpu]\nhide_kvm = true\nhv_vendor_id = \"NV43FIX\"\nhyperv = true\n";
    const auto kvm = load_valid(head + "\"kvm\"" + cpu);
    CHECK(values_of(qemu::build_argv(kvm, facts_for(kvm)), "-cpu").at(0) ==
          "host,kvm=off,hv-vendor-id=NV43FIX,hv-relaxed=on,hv-vapic=on,hv-spinlocks=0x1fff,"
          "hv-time=on,hv-reset=on,hv-frequencies=on,hv-runtime=on,hv-vpindex=on,hv-synic=on,"
          "hv-stimer=on,hv-tlbflush=on,hv-ipi=on");
    const auto tcg = load_valid(head + "\"tcg\"" + cpu);
    CHECK(values_of(qemu::build_argv(tcg, facts_for(tcg)), "-cpu").at(0) ==
          "max,kvm=off,hv-vendor-id=NV43FIX,hv-relaxed=on,hv-vapic=on,hv-spinlocks=0x1fff,"
          "hv-time=on,hv-reset=on,hv-frequencies=on,hv-runtime=on");
}

TEST_CASE("the NIC's MAC is derived from the name when not given, and stable", "[qemu]") {
    auto a = load_valid("name = \"win11\"\n[machine]\nmemory = \"1G\"\n");
    auto b = load_valid("name = \"win10\"\n[machine]\nmemory = \"1G\"\n");
    CHECK(qemu::mac_address(a) == qemu::mac_address(a));
    CHECK(qemu::mac_address(a) != qemu::mac_address(b));
    CHECK(qemu::mac_address(a).rfind("52:54:00:", 0) == 0);
    auto c = load_valid("name = \"x\"\n[machine]\nmemory = \"1G\"\n[network]\nmac = \"02:00:00:00:00:01\"\n");
    CHECK(qemu::mac_address(c) == "02:00:00:00:00:01");
}

TEST_CASE("a bridge is joined through the tap kvmgpu opened, which QEMU inherits", "[qemu][network]") {
    const std::string head = "name = \"vm\"\n[machine]\nmemory = \"1G\"\n[network]\nmac = \"02:00:00:00:00:01\"\n";
    const auto bridge = load_valid(head + "mode = \"bridge\"\nbridge = \"br0\"\n");
    auto facts = facts_for(bridge);
    facts.bridge_tap_fd = 7;
    const auto argv = qemu::build_argv(bridge, facts);
    // No "bridge" netdev: that one makes QEMU run the helper, which -sandbox spawn=deny forbids.
    CHECK(values_of(argv, "-netdev") == std::vector<std::string>{"tap,id=kvmgpu-net0,fd=7"});
    // The NIC is the same as for a tap the user made.
    const auto tap = load_valid(head + "mode = \"tap\"\ntap = \"tap0\"\n");
    const auto nic = [](const std::vector<std::string>& a) {
        for (const auto& v : values_of(a, "-device"))
            if (v.find("netdev=kvmgpu-net0") != std::string::npos) return v;
        return std::string();
    };
    CHECK(nic(argv) == "virtio-net-pci,netdev=kvmgpu-net0,mac=02:00:00:00:00:01,id=kvmgpu-nic0");
    CHECK(nic(argv) == nic(qemu::build_argv(tap, facts_for(tap))));
    // Without the descriptor there is nothing QEMU could use: a bug in the caller, said loudly.
    CHECK_THROWS_AS(qemu::build_argv(bridge, qemu::HostFacts{}), std::logic_error);
}

TEST_CASE("[qemu] extra comes last, word for word", "[qemu]") {
    const auto p = load_valid("name = \"vm\"\n[machine]\nmemory = \"1G\"\n[qemu]\nbinary = \"/opt/q/bin/qemu\"\n"
                              "extra = [\"-device\", \"virtio-rng-pci,id=rng0\", \"-global\", \"a=b,c\"]\n");
    const auto argv = qemu::build_argv(p, facts_for(p));
    CHECK(argv.front() == "/opt/q/bin/qemu");
    const std::vector<std::string> tail(argv.end() - 4, argv.end());
    CHECK(tail == std::vector<std::string>{"-device", "virtio-rng-pci,id=rng0", "-global", "a=b,c"});
}

TEST_CASE("QEMU's seccomp filter is on by default and off only when the profile opts out", "[qemu][security]") {
    const auto p = load_valid("name = \"vm\"\n[machine]\nmemory = \"1G\"\n");
    CHECK(values_of(qemu::build_argv(p, facts_for(p)), "-sandbox") ==
          std::vector<std::string>{"on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"});
    const auto off = load_valid("name = \"vm\"\n[machine]\nmemory = \"1G\"\n[security]\nsandbox = false\n");
    CHECK(values_of(qemu::build_argv(off, facts_for(off)), "-sandbox").empty());
}

TEST_CASE("VNC asks for a password beyond loopback and never carries it on the command line", "[qemu][console]") {
    const std::string base = "name = \"v\"\n[machine]\naccel = \"tcg\"\nmemory = \"1G\"\n[display]\ntype = \"vnc\"\nwebsocket = 5701\n";
    struct Case {
        std::string keys;
        bool password;
    };
    for (const auto& c : std::vector<Case>{{"", false},
                                           {"listen = \"0.0.0.0\"\n", true},
                                           {"listen = \"0.0.0.0\"\npassword = \"off\"\n", false},
                                           {"password = \"on\"\n", true},
                                           {"listen = \"::1\"\n", false}}) {
        INFO(c.keys);
        const auto p = load_valid(base + c.keys);
        const auto vnc = values_of(qemu::build_argv(p, facts_for(p)), "-vnc");
        REQUIRE(vnc.size() == 1);
        const auto parts = split_qemu(vnc[0]);
        CHECK(contains(parts, "password=on") == c.password);
        for (const auto& part : parts) CHECK((part.rfind("password=", 0) != 0 || part == "password=on"));
    }
}

TEST_CASE("a guest's WebSocket port is forwarded from the host's loopback only", "[qemu][console]") {
    const auto p = load_valid("name = \"v\"\n[machine]\naccel = \"tcg\"\nmemory = \"1G\"\n[display]\nguest_websocket = 6080\n");
    const auto netdev = values_of(qemu::build_argv(p, facts_for(p)), "-netdev");
    REQUIRE(netdev.size() == 1);
    CHECK(contains(split_qemu(netdev[0]), "hostfwd=tcp:127.0.0.1:6080-:6080"));
    const auto plain = load_valid("name = \"v\"\n[machine]\naccel = \"tcg\"\nmemory = \"1G\"\n");
    CHECK(values_of(qemu::build_argv(plain, facts_for(plain)), "-netdev")[0].find("hostfwd") == std::string::npos);
}
