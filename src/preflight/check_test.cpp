#include "preflight/check.hpp"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>

#include "host_fixture.hpp"
#include "preflight/reset_quirks.hpp"

using namespace kvmgpu;
using namespace kvmgpu::host;
using namespace kvmgpu::preflight;
using kvmgpu::test::DeviceSpec;
using kvmgpu::test::HostFixture;
using util::PciAddress;
namespace fs = std::filesystem;

namespace {

PciAddress addr(const char* text) { return *PciAddress::parse(text); }

std::vector<std::string> codes(const CheckResult& r, Severity s) {
    std::vector<std::string> out;
    for (const Finding& f : r.findings)
        if (f.severity == s) out.push_back(f.code);
    return out;
}

DeviceSpec usb_controller(const std::string& address, const std::string& driver, unsigned group) {
    DeviceSpec usb;
    usb.address = address;
    usb.vendor = 0x1b21;
    usb.device = 0x1242;
    usb.class_code = 0x0c0330;
    usb.driver = driver;
    usb.group = group;
    return usb;
}

struct Setup {
    HostFixture& fx;
    profile::Profile& profile;
    CheckOptions& options;
};

struct Row {
    const char* name;
    std::vector<std::string> devices;  // the profile's [[pci]] addresses
    std::function<void(Setup&)> setup;
    std::function<void(const CheckResult&)> expect;
    // Give each [[pci]] entry the id of the device at its address, as `kvmgpu init` writes
    // them, unless the row set one itself.
    bool pin_identities = true;
};

// Each [[pci]] entry without an id gets the id of the device now at its address.
void give_found_ids(profile::Profile& profile, const HostModel& host) {
    for (auto& entry : profile.pci)
        if (const PciDeviceInfo* d = host.find(entry.address); d && !entry.id)
            entry.id = util::PciId{d->vendor, d->device}.str();
}

}  // namespace

TEST_CASE("preflight checks over host topologies", "[host]") {
    const Row rows[] = {
        {"a GPU and its HDMI audio, both listed, in one group with their root port pass",
         {"0000:01:00.0", "0000:01:00.1"}, nullptr,
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(codes(r, Severity::warning).empty());
             CHECK(r.plan.auto_added.empty());
             CHECK(r.plan.devices == std::vector<PciAddress>{addr("0000:01:00.0"), addr("0000:01:00.1")});
             REQUIRE(r.find("group"));
             CHECK(r.find("group")->what ==
                   "IOMMU group 1 (\"0000:00:01.0\", \"0000:01:00.0\", \"0000:01:00.1\") can be passed whole.");
             CHECK(r.find("iommu"));
             CHECK(r.find("kvm"));
             CHECK(r.find("vfio-pci"));
         }},
        {"a GPU listed without its audio function gets the audio function added",
         {"0000:01:00.0"}, nullptr,
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(r.plan.auto_added == std::vector<PciAddress>{addr("0000:01:00.1")});
             CHECK(r.plan.devices == std::vector<PciAddress>{addr("0000:01:00.0"), addr("0000:01:00.1")});
             const Finding* f = r.find("auto-added");
             REQUIRE(f);
             CHECK(f->severity == Severity::ok);
             CHECK(f->address == addr("0000:01:00.1"));
             CHECK(f->what.find("\"0000:01:00.1\"") != std::string::npos);
         }},
        {"an unlisted USB controller in the GPU's group makes it not viable and is named",
         {"0000:01:00.0"},
         [](Setup& s) {
             s.fx.add_driver("xhci_hcd");
             s.fx.add_device(usb_controller("0000:02:00.0", "xhci_hcd", 1));
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) == std::vector<std::string>{"group-not-viable"});
             const Finding* f = r.find("group-not-viable");
             REQUIRE(f);
             CHECK(f->address == addr("0000:02:00.0"));
             CHECK(f->what.find("IOMMU group 1 of PCI device \"0000:01:00.0\" also contains PCI "
                                "device \"0000:02:00.0\"") == 0);
             CHECK(f->what.find("driver \"xhci_hcd\"") != std::string::npos);
             CHECK(f->why.find("ACS") != std::string::npos);
             CHECK(f->fix.find("Add \"0000:02:00.0\" to the profile") == 0);
             // A different slot is never auto-added.
             CHECK(r.plan.auto_added == std::vector<PciAddress>{addr("0000:01:00.1")});
         }},
        {"a device in the chipset's group is refused, naming the chipset functions, even driverless",
         {"0000:00:1f.2"},
         [](Setup& s) {
             // The q35 chipset group: LPC bridge (no driver here), SATA, SMBus, one slot.
             test::DeviceSpec lpc;
             lpc.address = "0000:00:1f.0";
             lpc.class_code = 0x060100;
             lpc.group = 9;
             s.fx.add_device(lpc);
             test::DeviceSpec sata;
             sata.address = "0000:00:1f.2";
             sata.class_code = 0x010601;
             sata.driver = "ahci";
             sata.group = 9;
             s.fx.add_driver("ahci");
             s.fx.add_device(sata);
             test::DeviceSpec smbus;
             smbus.address = "0000:00:1f.3";
             smbus.class_code = 0x0c0500;
             smbus.driver = "i801_smbus";
             smbus.group = 9;
             s.fx.add_driver("i801_smbus");
             s.fx.add_device(smbus);
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) == std::vector<std::string>{"chipset-group", "chipset-group"});
             CHECK(r.plan.auto_added.empty());  // same slot, but never taken along
             CHECK(r.plan.devices == std::vector<PciAddress>{addr("0000:00:1f.2")});
             std::vector<std::string> named;
             for (const auto& f : r.findings)
                 if (f.code == "chipset-group") named.push_back(f.address->str());
             CHECK(named == std::vector<std::string>{"0000:00:1f.0", "0000:00:1f.3"});
         }},
        {"an unlisted group member with no driver or on pci-stub keeps the group viable",
         {"0000:01:00.0"},
         [](Setup& s) {
             s.fx.add_device(usb_controller("0000:02:00.0", "", 1));
             s.fx.add_device(usb_controller("0000:03:00.0", "pci-stub", 1));
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(r.find("group"));
         }},
        {"the root port sharing the group is neither an error nor auto-added",
         {"0000:01:00.0", "0000:01:00.1"}, nullptr,
         [](const CheckResult& r) {
             for (const Finding& f : r.findings)
                 if (f.address) CHECK(*f.address != addr("0000:00:01.0"));
             CHECK(std::find(r.plan.devices.begin(), r.plan.devices.end(), addr("0000:00:01.0")) ==
                   r.plan.devices.end());
         }},
        {"with the IOMMU off and no kernel option the fix names intel_iommu=on and amd_iommu=on",
         {"0000:01:00.0"},
         [](Setup& s) {
             s.fx.set_iommu(false);
             s.fx.set_cmdline("root=/dev/sda1 quiet");
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) == std::vector<std::string>{"iommu-off"});
             const Finding* f = r.find("iommu-off");
             REQUIRE(f);
             CHECK(f->fix.find("intel_iommu=on") != std::string::npos);
             CHECK(f->fix.find("amd_iommu=on") != std::string::npos);
             CHECK(f->fix.find("VT-d") != std::string::npos);
         }},
        {"with the IOMMU off despite intel_iommu=on the fix points at the firmware setup",
         {"0000:01:00.0"},
         [](Setup& s) { s.fx.set_iommu(false); },
         [](const CheckResult& r) {
             const Finding* f = r.find("iommu-off");
             REQUIRE(f);
             CHECK(f->why.find("the firmware has it disabled") != std::string::npos);
             CHECK(f->fix.find("Enable VT-d (Intel) or AMD-Vi") == 0);
         }},
        {"the boot VGA GPU warns and points at the release table",
         {"0000:01:00.0", "0000:01:00.1"},
         [](Setup& s) {
             s.fx.write(s.fx.device_dir("0000:01:00.0").lexically_relative(s.fx.root()) / "boot_vga", "1\n");
             s.fx.add_framebuffer(0, "EFI VGA", std::nullopt);
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"boot-vga"});
             const Finding* f = r.find("boot-vga");
             REQUIRE(f);
             CHECK(f->address == addr("0000:01:00.0"));
             CHECK(f->why.find("fb0 \"EFI VGA\"") != std::string::npos);
             CHECK(f->fix.find("[release] console = true") != std::string::npos);
         }},
        {"a GPU holding the host framebuffer warns and names the framebuffer",
         {"0000:01:00.0", "0000:01:00.1"},
         [](Setup& s) { s.fx.add_framebuffer(0, "nouveaudrmfb", "0000:01:00.0"); },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"framebuffer"});
             CHECK(r.find("framebuffer")->what.find("fb0 (\"nouveaudrmfb\")") != std::string::npos);
         }},
        {"a device already on vfio-pci passes",
         {"0000:05:00.0"},
         [](Setup& s) {
             DeviceSpec nic;
             nic.address = "0000:05:00.0";
             nic.driver = "vfio-pci";
             nic.native_driver = "e1000e";
             nic.group = 7;
             s.fx.add_device(nic);
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(r.plan.devices == std::vector<PciAddress>{addr("0000:05:00.0")});
         }},
        {"a device missing from the host is an error naming its address and profile entry",
         {"0000:01:00.0", "0000:09:00.0"}, nullptr,
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) == std::vector<std::string>{"pci-missing"});
             const Finding* f = r.find("pci-missing");
             CHECK(f->address == addr("0000:09:00.0"));
             CHECK(f->what.find("PCI device \"0000:09:00.0\" (pci[1]) does not exist on this host") == 0);
             CHECK(f->fix.find("kvmgpu list") != std::string::npos);
         }},
        {"a device reserved by another running VM is an error naming that VM and its pid",
         {"0000:01:00.0"},
         [](Setup& s) {
             s.options.locks.push_back(DeviceLock{addr("0000:01:00.1"), {"gaming", ::getpid()}, true});
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) == std::vector<std::string>{"reserved"});
             const Finding* f = r.find("reserved");
             CHECK(f->address == addr("0000:01:00.1"));
             CHECK(f->what == "PCI device \"0000:01:00.1\" is reserved by the running VM \"gaming\" (pid " +
                                  std::to_string(::getpid()) + ").");
             CHECK(f->fix.find("kvmgpu stop gaming") != std::string::npos);
         }},
        {"a reservation by a VM that is no longer running is a stale-lock warning",
         {"0000:01:00.0"},
         [](Setup& s) {
             s.options.locks.push_back(DeviceLock{addr("0000:01:00.0"), {"gaming", 999999}, false});
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"stale-lock"});
             CHECK(r.find("stale-lock")->fix == "Run `kvmgpu restore gaming` to put its devices back on their drivers.");
         }},
        {"our own reservation is not a conflict",
         {"0000:01:00.0"},
         [](Setup& s) {
             s.options.locks.push_back(DeviceLock{addr("0000:01:00.0"), {"test", ::getpid()}, true});
         },
         [](const CheckResult& r) { CHECK(codes(r, Severity::error).empty()); }},
        {"a reservation under our name and pid by an earlier, dead process is a stale-lock warning",
         {"0000:01:00.0"},
         [](Setup& s) {
             s.options.locks.push_back(
                 DeviceLock{addr("0000:01:00.0"), {"test", ::getpid(), 1}, false});
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"stale-lock"});
         }},
        {"too few free 2 MiB hugepages are raised by the launch and the check says by how much",
         {},
         [](Setup& s) {
             s.profile.machine.hugepages = profile::Hugepages::size_2m;
             s.fx.set_hugepages(2048, 1500, 1000);
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             const Finding* f = r.find("hugepages-raised");
             REQUIRE(f);
             CHECK(f->severity == Severity::ok);
             CHECK(f->what.find("The VM needs 4096 free 2M hugepages for 8G of memory") == 0);
             // 1500 reserved, 1000 free, 4096 needed: 3096 more, 4596 in all.
             CHECK(f->what.find("says 1000 of 1500: the launch raises the pool to 4596 and gives the pages back after.") !=
                   std::string::npos);
         }},
        {"too few free 1 GiB hugepages are a warning with the boot-time reservation",
         {},
         [](Setup& s) {
             s.profile.machine.hugepages = profile::Hugepages::size_1g;
             s.fx.set_hugepages(1048576, 2, 2);
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"hugepages-raised"});
             CHECK(r.find("hugepages-raised")->fix.find("hugepagesz=1G hugepages=8") != std::string::npos);
         }},
        {"enough free 1 GiB hugepages pass",
         {},
         [](Setup& s) {
             s.profile.machine.hugepages = profile::Hugepages::size_1g;
             s.fx.set_hugepages(1048576, 8, 8);
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(r.find("hugepages")->what == "8 free 1G hugepages cover the 8 the VM needs.");
         }},
        {"two 32 GiB BARs need a 128 GiB OVMF window",
         {"0000:04:00.0"},
         [](Setup& s) {
             DeviceSpec accel;
             accel.address = "0000:04:00.0";
             accel.vendor = 0x10de;
             accel.class_code = 0x030200;
             accel.driver = "nvidia";
             accel.group = 4;
             accel.bars = {test::mem32_bar(0, 0xf0000000, 16 << 20),
                           test::mem64_bar(1, std::uint64_t{0x40} << 32, std::uint64_t{32} << 30),
                           test::mem64_bar(3, std::uint64_t{0x48} << 32, std::uint64_t{32} << 30)};
             s.fx.add_driver("nvidia");
             s.fx.add_device(accel);
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(r.mmio64_bytes == std::uint64_t{64} << 30);
             CHECK(r.mmio64_mb == 131072u);
             const Finding* f = r.find("mmio-window");
             REQUIRE(f);
             CHECK(f->fix.find("-fw_cfg name=opt/ovmf/X-PciMmio64Mb,string=131072") != std::string::npos);
         }},
        {"small 64-bit BARs fit OVMF's default window",
         {"0000:01:00.0"}, nullptr,
         [](const CheckResult& r) {
             CHECK(r.mmio64_bytes == (288u << 20));
             CHECK(r.mmio64_mb == std::nullopt);
             CHECK_FALSE(r.find("mmio-window"));
         }},
        {"a missing /dev/kvm is an error under accel kvm",
         {},
         [](Setup& s) { s.fx.remove("dev/kvm"); },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) == std::vector<std::string>{"kvm-missing"});
         }},
        {"a missing /dev/kvm is only a warning under accel tcg",
         {},
         [](Setup& s) {
             s.fx.remove("dev/kvm");
             s.profile.machine.accel = profile::Accel::tcg;
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"kvm-missing"});
         }},
        {"without the vfio-pci driver the fix is modprobe vfio-pci",
         {"0000:01:00.0"},
         [](Setup& s) { s.fx.remove_driver("vfio-pci"); },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) == std::vector<std::string>{"vfio-pci-missing"});
             CHECK(r.find("vfio-pci-missing")->fix == "Run `modprobe vfio-pci`.");
         }},
        {"an empty or missing reset_method warns",
         {"0000:01:00.0"},
         [](Setup& s) {
             s.fx.write(s.fx.device_dir("0000:01:00.0").lexically_relative(s.fx.root()) / "reset_method", "\n");
             s.fx.remove(s.fx.device_dir("0000:01:00.1").lexically_relative(s.fx.root()) / "reset_method");
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"no-reset", "no-reset"});
             CHECK(r.find("no-reset")->what.find("reset_method\" is empty") != std::string::npos);
         }},
        {"pinning to an offline CPU is an error naming it and the online list",
         {},
         [](Setup& s) {
             s.profile.cpu.pin = {2, 3};
             s.profile.cpu.emulator_pin = {9};
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) == std::vector<std::string>{"cpu-offline"});
             CHECK(r.find("cpu-offline")->what.find("cpu.emulator_pin names host CPU 9, which is not online") == 0);
             CHECK(r.find("cpu-offline")->what.find("lists \"0-7\"") != std::string::npos);
         }},
        {"two threads per core pinned to non-siblings warn with the host's sibling pairs",
         {},
         [](Setup& s) {
             s.profile.cpu.cores = 2;
             s.profile.cpu.threads = 2;
             s.profile.cpu.pin = {0, 4, 1, 2};
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"smt-pairs"});
             const Finding* f = r.find("smt-pairs");
             CHECK(f->what.find("vCPUs 2 and 3") != std::string::npos);
             CHECK(f->what.find("host CPUs 1 and 2") != std::string::npos);
             CHECK(f->fix.find("\"0,4\", \"1,5\", \"2,6\", \"3,7\"") != std::string::npos);
         }},
        {"two threads per core on a host without SMT warns",
         {},
         [](Setup& s) {
             s.profile.cpu.threads = 2;
             s.fx.set_cpus("0-3", {{0, "0"}, {1, "1"}, {2, "2"}, {3, "3"}});
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"smt-none"});
         }},
        {"missing firmware, ROM and evdev files are errors naming each path",
         {"0000:01:00.0"},
         [](Setup& s) {
             s.profile.firmware.code = "/opt/ovmf/CODE.fd";
             s.fx.remove("usr/share/OVMF/OVMF_VARS_4M.fd");
             s.profile.pci[0].rom = "/var/lib/kvmgpu/gpu.rom";
             profile::Input keyboard;
             keyboard.evdev = "/dev/input/by-id/usb-kbd-event-kbd";
             s.profile.inputs.push_back(keyboard);
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) ==
                   std::vector<std::string>{"firmware-missing", "firmware-missing", "rom-missing", "evdev-missing"});
             CHECK(r.findings.size() > 4);
             const Finding* fw = r.find("firmware-missing");
             CHECK(fw->what.find("firmware.code names \"/opt/ovmf/CODE.fd\", which does not exist") == 0);
             CHECK(r.find("rom-missing")->what.find("pci[0].rom names \"/var/lib/kvmgpu/gpu.rom\"") == 0);
             CHECK(r.find("evdev-missing")->what.find("input[0].evdev names") == 0);
         }},
    };

    for (const Row& row : rows) {
        SECTION(row.name) {
            HostFixture fx;
            test::add_gpu_with_audio(fx);
            profile::Profile profile = test::make_profile(row.devices);
            CheckOptions options;
            Setup setup{fx, profile, options};
            if (row.setup) row.setup(setup);
            const HostModel host = scan_host(fx.root());
            if (row.pin_identities) give_found_ids(profile, host);
            const CheckResult result = check(profile, host, options);
            row.expect(result);
        }
    }
}

TEST_CASE("every finding of a failing check is a sentence with a fix", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    fx.add_driver("xhci_hcd");
    fx.add_device(usb_controller("0000:02:00.0", "xhci_hcd", 1));
    fx.remove_driver("vfio-pci");
    profile::Profile profile = test::make_profile({"0000:01:00.0", "0000:0a:00.0"});
    profile.machine.hugepages = profile::Hugepages::size_2m;
    const CheckResult r = check(profile, scan_host(fx.root()));
    CHECK_FALSE(r.ok());
    // vfio-pci-missing, pci-missing, group (too few hugepages is not one: the launch raises the pool)
    CHECK(r.count(Severity::error) == 3);
    CHECK(r.find("hugepages-raised"));
    for (const Finding& f : r.findings) {
        INFO(f.text());
        CHECK(f.what.back() == '.');
        if (f.severity == Severity::error) CHECK_FALSE(f.fix.empty());
    }
}

TEST_CASE("resolving profile paths puts absolute paths under the root", "[host]") {
    profile::Profile p;
    p.file = "/etc/kvmgpu/vm.toml";
    CHECK(resolve_host_path(p, "/tmp/root", "/usr/share/OVMF/x.fd") == "/tmp/root/usr/share/OVMF/x.fd");
    CHECK(resolve_host_path(p, "/tmp/root", "roms/gpu.rom") == "/tmp/root/etc/kvmgpu/roms/gpu.rom");
    p.file = "vm.toml";
    CHECK(resolve_host_path(p, "/tmp/root", "roms/gpu.rom") == "roms/gpu.rom");
}

TEST_CASE("a check result renders to JSON with the bind plan and the MMIO window", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    const CheckResult r = check(test::make_profile({"0000:01:00.0"}), scan_host(fx.root()));
    const nlohmann::json j = r;
    CHECK(j["ok"] == true);
    CHECK(j["errors"] == 0);
    CHECK(j["bind"]["devices"] == nlohmann::json{"0000:01:00.0", "0000:01:00.1"});
    CHECK(j["bind"]["auto_added"] == nlohmann::json{"0000:01:00.1"});
    CHECK(j["mmio64_mb"].is_null());
    CHECK(j["findings"][0]["severity"] == "ok");
    CHECK(j["findings"][0]["code"] == "kvm");
}

namespace {

Holder holder(HolderKind kind, const char* address, pid_t pid, std::string command, std::string node,
              std::string unit = {}, std::string detail = {}) {
    Holder h;
    h.kind = kind;
    h.address = addr(address);
    h.pid = pid;
    h.command = std::move(command);
    h.node = std::move(node);
    h.unit = std::move(unit);
    h.detail = std::move(detail);
    return h;
}

// The text with the temporary root taken out of its paths, as on a real host.
std::string unrooted(std::string text, const fs::path& root) {
    const std::string prefix = root.string();
    for (auto at = text.find(prefix); at != std::string::npos; at = text.find(prefix, at)) text.erase(at, prefix.size());
    return text;
}

}  // namespace

TEST_CASE("each holder of a device to bind is an error naming it and the fix", "[host][holders]") {
    struct Case {
        Holder holder;
        std::string what;
        std::string fix;
    };
    const std::string device = "PCI device \"0000:01:00.0\" (10de:2484, driver \"nouveau\") is in use: ";
    const std::string release = "or let kvmgpu release it: see docs/profile.md [release].";
    const Case cases[] = {
        {holder(HolderKind::process, "0000:01:00.0", 1234, "Xorg", "/dev/dri/card0", "sddm.service"),
         device + "process 1234 \"Xorg\" (unit \"sddm.service\") has \"/dev/dri/card0\" open.",
         "Stop its service: `systemctl stop sddm.service`, " + release},
        {holder(HolderKind::process, "0000:01:00.0", 77, "ollama", "/dev/dri/renderD128", "session-2.scope"),
         device + "process 77 \"ollama\" (unit \"session-2.scope\") has \"/dev/dri/renderD128\" open.",
         "End it: `kill 77`, " + release},
        {holder(HolderKind::console, "0000:01:00.0", 0, "(M) frame buffer device", "/sys/class/vtconsole/vtcon1", {},
                "/dev/fb0"),
         device + "the framebuffer console \"/sys/class/vtconsole/vtcon1\" (\"(M) frame buffer device\") is bound "
                  "to its framebuffer \"/dev/fb0\".",
         "Unbind the console: `echo 0 > /sys/class/vtconsole/vtcon1/bind`, " + release},
        {holder(HolderKind::firmware_framebuffer, "0000:01:00.0", 0, "efifb",
                "/sys/bus/platform/drivers/efi-framebuffer/efi-framebuffer.0", {},
                "memory 0xe0000000-0xe07fffff in BAR 1 (0xe0000000-0xefffffff)"),
         device + "the firmware framebuffer \"efifb\" has its memory 0xe0000000-0xe07fffff in BAR 1 "
                  "(0xe0000000-0xefffffff) (\"/proc/iomem\").",
         "Release it: `echo efi-framebuffer.0 > /sys/bus/platform/drivers/efi-framebuffer/unbind`, " + release},
        {holder(HolderKind::firmware_framebuffer, "0000:01:00.0", 0, "BOOTFB", "/proc/iomem", {},
                "memory 0xf0000000-0xf02fffff in BAR 3 (0xf0000000-0xf1ffffff)"),
         device + "the firmware framebuffer \"BOOTFB\" has its memory 0xf0000000-0xf02fffff in BAR 3 "
                  "(0xf0000000-0xf1ffffff) (\"/proc/iomem\").",
         "Boot with initcall_blacklist=sysfb_init on the kernel command line (the kernel then sets up no "
         "firmware framebuffer) and reboot."},
        {holder(HolderKind::module, "0000:01:00.0", 0, "nvidia_drm", "/sys/module/nvidia_drm", {}, "2 users"),
         device + "the kernel module \"nvidia_drm\" (\"/sys/module/nvidia_drm\") has 2 users.",
         "End the programs that use it (the processes named above; as root, `fuser -v /dev/nvidia* /dev/dri/*` "
         "lists them all), then unload it with `modprobe -r nvidia_drm`, " + release},
        {holder(HolderKind::service_process, "0000:01:00.0", 400, "nvidia-persistenced", "/dev/nvidia0",
                "nvidia-persistenced.service"),
         device + "\"nvidia-persistenced\" (pid 400, unit \"nvidia-persistenced.service\") keeps the \"nvidia\" "
                  "driver holding it, with \"/dev/nvidia0\" open.",
         "Stop its service: `systemctl stop nvidia-persistenced.service`, " + release},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        HostFixture fx;
        test::add_gpu_with_audio(fx);
        HostModel model = scan_host(fx.root());
        model.holders.scanned = true;
        model.holders.processes = model.holders.readable = 10;
        model.holders.holders = {c.holder};
        const CheckResult r = check(test::make_profile({"0000:01:00.0"}), model);
        CHECK_FALSE(r.ok());
        CHECK(codes(r, Severity::error) == std::vector<std::string>{"device-held"});
        const Finding* f = r.find("device-held");
        REQUIRE(f);
        CHECK(f->address == addr("0000:01:00.0"));
        CHECK(unrooted(f->what, fx.root()) == c.what);
        CHECK(unrooted(f->fix, fx.root()) == c.fix);
        CHECK_FALSE(f->why.empty());
        CHECK_FALSE(r.find("not-held"));
    }
}

TEST_CASE("a process holding several nodes of a device is one finding", "[host][holders]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    HostModel model = scan_host(fx.root());
    model.holders.scanned = true;
    model.holders.processes = model.holders.readable = 3;
    model.holders.holders = {
        holder(HolderKind::process, "0000:01:00.0", 900, "gnome-shell", "/dev/dri/card0"),
        holder(HolderKind::process, "0000:01:00.0", 900, "gnome-shell", "/dev/dri/renderD128"),
        holder(HolderKind::process, "0000:01:00.0", 900, "gnome-shell", "/dev/fb0"),
        holder(HolderKind::process, "0000:01:00.1", 900, "gnome-shell", "/dev/snd/controlC1"),
        holder(HolderKind::process, "0000:01:00.1", 901, "pipewire", "/dev/snd/pcmC1D3p"),
    };
    const CheckResult r = check(test::make_profile({"0000:01:00.0"}), model);
    std::vector<std::string> held;
    for (const Finding& f : r.findings)
        if (f.code == "device-held") held.push_back(f.what.substr(f.what.find("in use: ") + 8));
    CHECK(held == std::vector<std::string>{
                      "process 900 \"gnome-shell\" has \"/dev/dri/card0\", \"/dev/dri/renderD128\" and \"/dev/fb0\" open.",
                      "process 900 \"gnome-shell\" has \"/dev/snd/controlC1\" open.",
                      "process 901 \"pipewire\" has \"/dev/snd/pcmC1D3p\" open.",
                  });
}

TEST_CASE("holders of devices outside the plan and scans that saw nothing", "[host][holders]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    HostModel model = scan_host(fx.root());
    const auto profile = test::make_profile({"0000:01:00.0"});

    SECTION("no scan: no finding either way") {
        const CheckResult r = check(profile, model);
        CHECK_FALSE(r.find("not-held"));
        CHECK_FALSE(r.find("holders-unknown"));
    }
    SECTION("a holder of another device is not this profile's business") {
        model.holders.scanned = true;
        model.holders.processes = model.holders.readable = 2;
        model.holders.holders = {holder(HolderKind::process, "0000:05:00.0", 5, "Xorg", "/dev/dri/card1")};
        const CheckResult r = check(profile, model);
        CHECK(r.ok());
        REQUIRE(r.find("not-held"));
        CHECK(r.find("not-held")->what ==
              "No process, console, firmware framebuffer or driver module holds the devices (read 2 of 2 processes).");
    }
    SECTION("some processes unreadable and iomem hidden: said in the ok finding") {
        model.holders.scanned = true;
        model.holders.processes = 300;
        model.holders.readable = 40;
        model.holders.iomem_hidden = true;
        const CheckResult r = check(profile, model);
        CHECK(r.ok());
        REQUIRE(r.find("not-held"));
        CHECK(unrooted(r.find("not-held")->what, fx.root()) ==
              "No process, console, firmware framebuffer or driver module holds the devices (read 40 of 300 "
              "processes; the others belong to other users, run as root to see them). \"/proc/iomem\" hides its "
              "addresses from this user, so firmware framebuffers were not looked for.");
    }
    SECTION("no process readable: a warning, not a claim of no holders") {
        model.holders.scanned = true;
        model.holders.processes = 120;
        model.holders.readable = 0;
        const CheckResult r = check(profile, model);
        CHECK(r.ok());
        CHECK_FALSE(r.find("not-held"));
        const Finding* f = r.find("holders-unknown");
        REQUIRE(f);
        CHECK(f->severity == Severity::warning);
        CHECK(unrooted(f->what, fx.root()) ==
              "No process under \"/proc\" could be read (120 processes), so kvmgpu cannot tell which programs "
              "hold the devices.");
        CHECK(f->fix == "Run kvmgpu as root.");
    }
}

namespace {

// The few pci.ids lines the identity findings name.
const char* kPciIds =
    "# a piece of pci.ids\n"
    "1002  Advanced Micro Devices, Inc. [AMD/ATI]\n"
    "\t731f  Navi 10 [Radeon RX 5600 OEM/5600 XT / 5700/5700 XT]\n"
    "1043  ASUSTeK Computer Inc.\n"
    "10de  NVIDIA Corporation\n"
    "\t228b  GA104 High Definition Audio Controller\n"
    "\t2484  GA104 [GeForce RTX 3070]\n"
    "\t2684  AD102 [GeForce RTX 4090]\n";

// An AMD Radeon RX 5700 XT (Navi 10) alone in IOMMU group 3.
void add_navi10(HostFixture& fx, const std::string& reset_method) {
    DeviceSpec gpu;
    gpu.address = "0000:03:00.0";
    gpu.vendor = 0x1002;
    gpu.device = 0x731f;
    gpu.class_code = 0x030000;
    gpu.driver = "amdgpu";
    gpu.group = 3;
    gpu.reset_method = reset_method;
    fx.add_driver("amdgpu");
    fx.add_device(gpu);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("preflight identity and reset findings", "[host]") {
    // clang-format off
    const Row rows[] = {
        {"an address holding the expected id is an ok identity finding",
         {"0000:01:00.0"},
         [](Setup& s) { s.profile.pci[0].id = "10de:2484"; },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             const Finding* f = r.find("identity");
             REQUIRE(f);
             CHECK(f->severity == Severity::ok);
             CHECK(f->address == addr("0000:01:00.0"));
             CHECK(f->what == "PCI device \"0000:01:00.0\" is 10de:2484 (NVIDIA Corporation GA104 [GeForce RTX 3070]), as [[pci]] #1 expects.");
             CHECK_FALSE(r.find("no-identity"));
         }},
        {"an id in upper case matches too",
         {"0000:01:00.0"},
         [](Setup& s) { s.profile.pci[0].id = "10DE:2484"; },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(r.find("identity"));
         }},
        {"an address holding another device is an identity-mismatch error naming both",
         {"0000:01:00.0", "0000:01:00.1"},
         [](Setup& s) { s.profile.pci[0].id = "10de:2684"; },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) == std::vector<std::string>{"identity-mismatch"});
             const Finding* f = r.find("identity-mismatch");
             CHECK(f->address == addr("0000:01:00.0"));
             CHECK(f->what == "PCI device \"0000:01:00.0\" is not the device [[pci]] #1 means: the profile expects id "
                              "10de:2684 (NVIDIA Corporation AD102 [GeForce RTX 4090]), the host has 10de:2484 "
                              "(NVIDIA Corporation GA104 [GeForce RTX 3070]) there.");
             CHECK(contains(f->fix, "`kvmgpu list`"));
             CHECK(contains(f->fix, "set id = \"10de:2484\""));
             CHECK_FALSE(contains(f->fix, "is at"));
             CHECK(r.find("identity")->address == addr("0000:01:00.1"));  // the audio function matched
         }},
        {"a card that moved is found by its id and its new address named",
         {"0000:01:00.0"},
         [](Setup& s) {
             DeviceSpec moved;
             moved.address = "0000:02:00.0";
             moved.vendor = 0x10de;
             moved.device = 0x2684;
             moved.class_code = 0x030000;
             moved.group = 2;
             s.fx.add_device(moved);
             s.profile.pci[0].id = "10de:2684";
         },
         [](const CheckResult& r) {
             REQUIRE(r.find("identity-mismatch"));
             CHECK(contains(r.find("identity-mismatch")->fix, "A device with id \"10de:2684\" is at \"0000:02:00.0\" now."));
         }},
        {"a missing device whose id is elsewhere says where it is",
         {"0000:05:00.0"},
         [](Setup& s) { s.profile.pci[0].id = "10de:2484"; },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) == std::vector<std::string>{"pci-missing"});
             CHECK(contains(r.find("pci-missing")->fix, "is at \"0000:01:00.0\" now."));
         }},
        {"a subsystem that differs is a mismatch naming both subsystems",
         {"0000:01:00.0"},
         [](Setup& s) {
             s.profile.pci[0].id = "10de:2484";
             s.profile.pci[0].subsystem = "1043:8870";
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error) == std::vector<std::string>{"identity-mismatch"});
             const Finding* f = r.find("identity-mismatch");
             CHECK(contains(f->what, "expects subsystem 1043:8870 (made by ASUSTeK Computer Inc.)"));
             CHECK(contains(f->what, "with subsystem 10de:1234 (made by NVIDIA Corporation)"));
             CHECK(contains(f->fix, "subsystem = \"10de:1234\""));
         }},
        {"a matching subsystem passes",
         {"0000:01:00.0"},
         [](Setup& s) {
             s.profile.pci[0].id = "10de:2484";
             s.profile.pci[0].subsystem = "10de:1234";
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(contains(r.find("identity")->what, ", subsystem 10de:1234, as [[pci]] #1 expects."));
         }},
        {"an entry without an id warns and suggests the id found there",
         {"0000:01:00.0"},
         nullptr,
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"no-identity"});  // not for the added audio
             const Finding* f = r.find("no-identity");
             CHECK(f->address == addr("0000:01:00.0"));
             CHECK(f->fix == "Add id = \"10de:2484\" to [[pci]] #1 (the device there now: NVIDIA Corporation GA104 [GeForce RTX 3070]).");
         },
         false},
        {"each planned device shows its reset methods",
         {"0000:01:00.0"},
         nullptr,
         [](const CheckResult& r) {
             std::vector<std::string> shown;
             for (const Finding& f : r.findings)
                 if (f.code == "reset-method") shown.push_back(f.address->str());
             CHECK(shown == std::vector<std::string>{"0000:01:00.0", "0000:01:00.1"});
             CHECK(contains(r.find("reset-method")->what, "resets by \"flr bus\""));
             CHECK_FALSE(r.find("vendor-reset-missing"));
         }},
        {"a Navi 10 card without the vendor_reset module warns with the fix",
         {"0000:03:00.0"},
         [](Setup& s) { add_navi10(s.fx, "bus"); },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::error).empty());
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"vendor-reset-missing"});
             const Finding* f = r.find("vendor-reset-missing");
             CHECK(f->address == addr("0000:03:00.0"));
             CHECK(contains(f->what, "is an AMD Navi 10 GPU and the vendor_reset module is not loaded"));
             CHECK(contains(f->fix, "DKMS"));
             CHECK(contains(f->fix, "`modprobe vendor-reset`"));
             CHECK(contains(f->fix, "`echo device_specific > "));
             CHECK(contains(f->fix, "/sys/bus/pci/devices/0000:03:00.0/reset_method`"));
         }},
        {"a Navi 10 card with vendor_reset loaded and in use is fine",
         {"0000:03:00.0"},
         [](Setup& s) {
             add_navi10(s.fx, "device_specific bus");
             s.fx.write("sys/module/vendor_reset/refcnt", "0\n");
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::warning).empty());
             CHECK(contains(r.find("reset-method")->what, "resets by \"device_specific bus\""));
         }},
        {"a Navi 10 card with vendor_reset loaded but not chosen warns to choose it",
         {"0000:03:00.0"},
         [](Setup& s) {
             add_navi10(s.fx, "bus");
             s.fx.write("sys/module/vendor_reset/refcnt", "0\n");
         },
         [](const CheckResult& r) {
             CHECK(codes(r, Severity::warning) == std::vector<std::string>{"vendor-reset-unused"});
             CHECK(contains(r.find("vendor-reset-unused")->fix, "`echo device_specific > "));
         }},
    };
    // clang-format on
    for (const Row& row : rows) {
        SECTION(row.name) {
            HostFixture fx;
            test::add_gpu_with_audio(fx);
            fx.write("usr/share/misc/pci.ids", kPciIds);
            profile::Profile profile = test::make_profile(row.devices);
            CheckOptions options;
            Setup setup{fx, profile, options};
            if (row.setup) row.setup(setup);
            const HostModel host = scan_host(fx.root());
            if (row.pin_identities) give_found_ids(profile, host);
            const CheckResult result = check(profile, host, options);
            row.expect(result);
        }
    }
}

TEST_CASE("a launch's check (a model scanned without names) never reads pci.ids", "[host]") {
    // pci.ids is 1.3 MB: reading it cost a launch more than the rest of its check in the test
    // guest. A model scanned without names gets bare ids in every finding, even where a
    // finding names an expected identity that is not in the model.
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    fx.write("usr/share/misc/pci.ids", kPciIds);
    profile::Profile profile = test::make_profile({"0000:01:00.0", "0000:01:00.1"});
    profile.pci[0].id = "10de:2684";
    const CheckResult named = check(profile, scan_host(fx.root()), {});
    const CheckResult bare = check(profile, scan_host(fx.root(), {.names = false, .pci = true, .only = std::nullopt, .hugepages = true}), {});
    REQUIRE(named.find("identity-mismatch"));
    REQUIRE(bare.find("identity-mismatch"));
    CHECK(contains(named.find("identity-mismatch")->what, "AD102 [GeForce RTX 4090]"));
    CHECK(bare.find("identity-mismatch")->what ==
          "PCI device \"0000:01:00.0\" is not the device [[pci]] #1 means: the profile expects id 10de:2684, "
          "the host has 10de:2484 there.");
}

TEST_CASE("the vendor-reset table knows the AMD families and nothing else", "[host]") {
    struct Case {
        std::uint16_t vendor, device;
        std::optional<std::string_view> family;
    };
    const Case cases[] = {
        {0x1002, 0x67df, "Polaris 10"},  // Radeon RX 470/480/570/580/590
        {0x1002, 0x67ef, "Polaris 11"},  // Radeon RX 460/560
        {0x1002, 0x699f, "Polaris 12"},  // Radeon RX 550
        {0x1002, 0x687f, "Vega 10"},     // Radeon RX Vega 56/64
        {0x1002, 0x66af, "Vega 20"},     // Radeon VII
        {0x1002, 0x731f, "Navi 10"},     // Radeon RX 5700 XT
        {0x1002, 0x7360, "Navi 12"},
        {0x1002, 0x7340, "Navi 14"},     // Radeon RX 5500
        {0x1002, 0x73bf, std::nullopt},  // Navi 21 (RX 6800/6900) resets by itself
        {0x1002, 0x744c, std::nullopt},  // Navi 31 (RX 7900)
        {0x1002, 0xaaf0, std::nullopt},  // Ellesmere HDMI audio: reset with its GPU
        {0x10de, 0x731f, std::nullopt},  // another vendor's device with the same number
    };
    for (const Case& c : cases) {
        INFO(std::hex << c.vendor << ":" << c.device);
        CHECK(vendor_reset_family(c.vendor, c.device) == c.family);
    }
}

TEST_CASE("bridge networking: the helper must be installed and the bridge must exist, sandboxed or not",
          "[host][network]") {
    HostFixture fx;
    auto profile = test::make_profile({});
    profile.machine.accel = profile::Accel::tcg;
    profile.network.mode = profile::NetworkMode::bridge;
    profile.network.bridge = "br0";
    CheckOptions options;
    options.as_root = true;
    options.qemu_user = util::SystemUser{"kvmgpu", 999, 999, "/nonexistent", {999}};
    auto errors = [&] { return codes(check(profile, scan_host(fx.root()), options), Severity::error); };
    using Codes = std::vector<std::string>;

    CHECK(errors() == Codes{"bridge-helper-missing", "bridge-missing"});
    // An interface that is not a bridge is named as such.
    fx.write("sys/class/net/br0/address", "52:54:00:00:00:01\n");
    const auto r = check(profile, scan_host(fx.root()), options);
    const auto hit = std::find_if(r.findings.begin(), r.findings.end(), [](const Finding& f) { return f.code == "bridge-missing"; });
    REQUIRE(hit != r.findings.end());
    CHECK_THAT(hit->text(), Catch::Contains("another kind of interface") && Catch::Contains("ip link add br0 type bridge"));

    fx.write("sys/class/net/br0/bridge/stp_state", "0\n");
    CHECK(errors() == Codes{"bridge-helper-missing"});
    fx.write("usr/lib/qemu/qemu-bridge-helper", "");
    CHECK(errors() == Codes{"bridge-helper-missing"});  // not executable
    std::filesystem::permissions(fx.path("usr/lib/qemu/qemu-bridge-helper"), std::filesystem::perms::owner_all);
    // The defaults (an unprivileged, sandboxed QEMU) no longer stand in the way: kvmgpu runs the helper.
    CHECK(errors().empty());
    profile.network.mode = profile::NetworkMode::user;
    fx.remove("usr/lib/qemu/qemu-bridge-helper");
    CHECK(errors().empty());
}

TEST_CASE("who QEMU runs as: a missing user is an error with the useradd command, opt-outs are warnings",
          "[host][security]") {
    HostFixture fx;
    const auto host = scan_host(fx.root());
    util::SystemUser kvmgpu{"kvmgpu", 999, 999, "/nonexistent", {999}};
    struct Case {
        const char* name;
        std::function<void(profile::Profile&, CheckOptions&)> setup;
        std::vector<std::string> errors, warnings;
        std::string fragment;  // in the first error's or warning's text
    };
    const std::vector<Case> cases = {
        {"the default user exists", [&](auto&, auto& o) { o.qemu_user = kvmgpu; }, {}, {}, ""},
        {"the default user is missing, the host has a kvm group",
         [&](auto&, auto& o) { o.kvm_group = 994; },
         {"qemu-user-missing"}, {},
         "`useradd --system --user-group --groups kvm --home-dir /nonexistent --no-create-home --shell "
         "/usr/sbin/nologin kvmgpu`"},
        {"the profile's user is missing, no kvm group", [&](auto& p, auto&) { p.security.user = "vmuser"; },
         {"qemu-user-missing"}, {}, "--user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin vmuser`"},
        {"opted out: root", [&](auto& p, auto&) { p.security.user = "root"; }, {}, {"qemu-runs-as-root"}, "run as root"},
        {"a user whose uid is 0", [&](auto&, auto& o) { o.qemu_user = util::SystemUser{"toor", 0, 0, "/", {0}}; },
         {}, {"qemu-runs-as-root"}, "whose uid is 0"},
        {"no sandbox", [&](auto& p, auto& o) { p.security.sandbox = false; o.qemu_user = kvmgpu; }, {}, {"sandbox-off"},
         "seccomp"},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.name) {
            auto profile = test::make_profile({});
            profile.machine.accel = profile::Accel::tcg;
            CheckOptions options;
            options.as_root = true;
            c.setup(profile, options);
            const auto r = check(profile, host, options);
            auto errors = codes(r, Severity::error);
            auto warnings = codes(r, Severity::warning);
            warnings.erase(std::remove(warnings.begin(), warnings.end(), "kvm-missing"), warnings.end());
            CHECK(errors == c.errors);
            CHECK(warnings == c.warnings);
            if (!c.fragment.empty()) {
                const auto hit = std::find_if(r.findings.begin(), r.findings.end(), [&](const Finding& f) {
                    return f.severity != Severity::ok && f.text().find(c.fragment) != std::string::npos;
                });
                INFO(nlohmann::json(r.findings).dump(1));
                CHECK(hit != r.findings.end());
            }
        }
    }
    // Not root: QEMU runs as the caller, and nothing about the user is checked.
    auto profile = test::make_profile({});
    CheckOptions options;
    CHECK(codes(check(profile, host, options), Severity::error) == codes(check(profile, host, CheckOptions{}), Severity::error));
    for (const auto& f : check(profile, host, options).findings) CHECK(f.code.rfind("qemu-user", 0) != 0);
}
