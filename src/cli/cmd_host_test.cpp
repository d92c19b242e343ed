// `kvmgpu list` and `kvmgpu check` through the real binary, on temporary host roots.
#include <catch2/catch.hpp>

#include <fstream>

#include "host_fixture.hpp"
#include "kvmgpu_process.hpp"

using namespace kvmgpu;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

testing::Output kvmgpu_on(const test::HostFixture& fx, std::vector<std::string> args) {
    for (const char* g : {"--host-root", fx.root().c_str()}) args.push_back(g);
    args.push_back("--runtime-dir");
    args.push_back(fx.runtime().string());
    return testing::kvmgpu_run(args, fx.root());
}

fs::path write_profile(const test::HostFixture& fx, const std::string& body) {
    const auto file = fx.root() / "vm.toml";
    // "nobody" stands in for the package's user "kvmgpu", which a development machine need not have.
    std::ofstream(file) << "name = \"vm\"\n[machine]\nmemory = \"1G\"\n[security]\nuser = \"nobody\"\n" << body;
    // ...and may open /dev/kvm, as the group kvm may on a real host.
    fs::permissions(fx.root() / "dev/kvm", fs::perms::others_read | fs::perms::others_write, fs::perm_options::add);
    return file;
}

}  // namespace

TEST_CASE("list shows each IOMMU group with its devices, drivers and marks", "[cli][host]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto text = kvmgpu_on(fx, {"list"});
    INFO(text.err);
    REQUIRE(text.status == 0);
    CHECK(text.out.find("IOMMU group 1\n") != std::string::npos);
    CHECK(text.out.find("0000:01:00.0  [0300] 10de:") != std::string::npos);
    CHECK(text.out.find("driver: nouveau  [GPU]") != std::string::npos);
    CHECK(text.out.find("0000:00:01.0") != std::string::npos);
    CHECK(text.out.find("[bridge]") != std::string::npos);

    const auto j = kvmgpu_on(fx, {"list", "--json"});
    REQUIRE(j.status == 0);
    const auto parsed = json::parse(j.out);
    CHECK(parsed["iommu"] == true);
    REQUIRE(parsed["groups"].size() == 1);
    CHECK(parsed["groups"][0]["devices"].size() == 3);
}

TEST_CASE("list says how to turn the IOMMU on when it is off, exit 1", "[cli][host]") {
    test::HostFixture fx;
    fx.set_iommu(false);
    const auto r = kvmgpu_on(fx, {"list"});
    CHECK(r.status == 1);
    CHECK(r.err.find("intel_iommu=on") != std::string::npos);
    CHECK(r.err.find("amd_iommu=on") != std::string::npos);
}

TEST_CASE("check: ready, not ready, and bad profile give exit 0, 1 and 2", "[cli][host]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    SECTION("both functions of the card: ready") {
        const auto r = kvmgpu_on(fx, {"check", write_profile(fx, "[[pci]]\naddress = \"01:00.0\"\n[[pci]]\naddress = \"01:00.1\"\n").string()});
        INFO(r.out << r.err);
        CHECK(r.status == 0);
        CHECK(r.out.find("ready: 0 errors") != std::string::npos);
    }
    SECTION("only the GPU: its audio function is added and said so") {
        const auto r = kvmgpu_on(fx, {"check", write_profile(fx, "[[pci]]\naddress = \"01:00.0\"\n").string()});
        INFO(r.out << r.err);
        CHECK(r.status == 0);
        CHECK(r.out.find("kvmgpu will also pass: 0000:01:00.1") != std::string::npos);
    }
    SECTION("an extra device in the group: not ready, naming it") {
        test::DeviceSpec usb;
        usb.address = "0000:01:00.2";
        usb.class_code = 0x0c0330;
        usb.driver = "xhci_hcd";
        usb.group = 1;
        usb.vendor = 0x1b21;
        usb.device = 0x1242;
        fx.add_device(usb);
        const auto r = kvmgpu_on(fx, {"check", "--json", write_profile(fx, "[[pci]]\naddress = \"02:00.0\"\n").string()});
        INFO(r.out << r.err);
        CHECK(r.status == 1);
        CHECK(json::parse(r.out)["ready"] == false);
    }
    SECTION("a profile with mistakes: exit 2 and nothing read from the host") {
        const auto r = kvmgpu_on(fx, {"check", write_profile(fx, "[cpu]\nhide_kmv = true\n").string()});
        CHECK(r.status == 2);
        CHECK(r.err.find("did you mean \"hide_kvm\"") != std::string::npos);
    }
}

TEST_CASE("a dry run renders what the host check decides: added functions and the MMIO window", "[cli][host]") {
    test::HostFixture fx;
    test::DeviceSpec gpu;
    gpu.address = "0000:03:00.0";
    gpu.vendor = 0x10de;
    gpu.device = 0x2684;
    gpu.class_code = 0x030000;
    gpu.driver = "nvidia";
    gpu.group = 5;
    gpu.bars = {test::mem64_bar(1, 0x4000000000, 32ull << 30)};  // a 32 GiB resizable BAR
    fx.add_device(gpu);
    test::DeviceSpec audio;
    audio.address = "0000:03:00.1";
    audio.class_code = 0x040300;
    audio.driver = "snd_hda_intel";
    audio.group = 5;
    fx.add_device(audio);
    const auto r = kvmgpu_on(fx, {"run", "--dry-run", "--json", write_profile(fx, "[[pci]]\naddress = \"03:00.0\"\n").string()});
    INFO(r.err);
    REQUIRE(r.status == 0);
    const auto argv = json::parse(r.out)["argv"];
    CHECK(std::find(argv.begin(), argv.end(), "name=opt/ovmf/X-PciMmio64Mb,string=65536") != argv.end());
    CHECK(std::find(argv.begin(), argv.end(), "vfio-pci,host=0000:03:00.1,id=kvmgpu-hostpci1,bus=kvmgpu-rp0,addr=0x0.1") != argv.end());
}

namespace {

// Xorg (pid 1234, in sddm.service) has the GPU's DRM node open.
void hold_gpu(test::HostFixture& fx) {
    fs::create_directories(fx.device_dir("0000:01:00.0") / "drm/card0");
    fx.write("proc/1234/comm", "Xorg\n");
    fx.write("proc/1234/cgroup", "0::/system.slice/sddm.service\n");
    fs::create_directories(fx.path("proc/1234/fd"));
    fs::create_symlink("/dev/dri/card0", fx.path("proc/1234/fd/12"));
}

}  // namespace

TEST_CASE("check names the process that holds a card and how to end it, exit 1", "[cli][host][holders]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    hold_gpu(fx);
    const auto profile = write_profile(fx, "[[pci]]\naddress = \"0000:01:00.0\"\n");
    const auto r = kvmgpu_on(fx, {"check", profile.string()});
    INFO(r.out);
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(r.out.find("error: PCI device \"0000:01:00.0\" (") != std::string::npos);
    CHECK(r.out.find("is in use: process 1234 \"Xorg\" (unit \"sddm.service\") has \"/dev/dri/card0\" open.\n") !=
          std::string::npos);
    CHECK(r.out.find("    fix: Stop its service: `systemctl stop sddm.service`, or let kvmgpu release it: see "
                     "docs/profile.md [release].\n") != std::string::npos);
    CHECK(r.out.find("not ready: 1 error") != std::string::npos);
}

TEST_CASE("bind refuses a device a program holds before any write, exit 1", "[cli][host][holders]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    hold_gpu(fx);
    const auto before = fx.snapshot();
    const auto r = kvmgpu_on(fx, {"--json", "bind", "0000:01:00.0", "0000:01:00.1"});
    INFO(r.out);
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(r.err.find("PCI device \"0000:01:00.0\" is in use: process 1234 \"Xorg\" with \"/dev/dri/card0\" open;") !=
          std::string::npos);
    CHECK(json::parse(r.out.substr(r.out.rfind('{')))["code"] == "device-held");
    auto after = fx.snapshot();
    for (const char* scratch : {"cmd.out", "cmd.err"}) after.erase(scratch);  // kvmgpu_run's own files
    INFO(test::snapshot_diff(before, after));
    CHECK(test::snapshot_diff(before, after).empty());
}

TEST_CASE("list --json gives each device its holders", "[cli][host][holders]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    hold_gpu(fx);
    const auto r = kvmgpu_on(fx, {"list", "--json"});
    REQUIRE(r.status == 0);
    const auto j = json::parse(r.out);
    CHECK(j["processes"] == 1);
    CHECK(j["processes_readable"] == 1);
    for (const auto& d : j["groups"][0]["devices"]) {
        INFO(d.dump());
        if (d["address"] == "0000:01:00.0") {
            REQUIRE(d["holders"].size() == 1);
            CHECK(d["holders"][0]["kind"] == "process");
            CHECK(d["holders"][0]["pid"] == 1234);
            CHECK(d["holders"][0]["command"] == "Xorg");
            CHECK(d["holders"][0]["node"] == "/dev/dri/card0");
            CHECK(d["holders"][0]["unit"] == "sddm.service");
        } else {
            CHECK(d["holders"].empty());
        }
    }
}

TEST_CASE("console refuses a port that is not one and names what was given", "[cli][console]") {
    test::HostFixture fx;
    for (const char* port : {"-1", "0", "65536", "http", "99999999999"}) {
        INFO(port);
        const auto r = kvmgpu_on(fx, {"console", "vm", "--port", port});
        CHECK(r.status == 2);
        CHECK(r.err.find(std::string("--port \"") + port + "\" is not a port; give 1 to 65535") != std::string::npos);
    }
}
