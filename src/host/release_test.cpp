// Reading what freeing a card touches, and checking a device given back, on fixture hosts.
#include "host/release.hpp"

#include <catch2/catch.hpp>

#include "host/binder.hpp"
#include "host/console.hpp"
#include "host/device_health.hpp"
#include "host/journal.hpp"
#include "host_doubles.hpp"
#include "host_fixture.hpp"

namespace fs = std::filesystem;
using namespace kvmgpu;
using namespace kvmgpu::host;
using kvmgpu::test::FakeRunner;
using kvmgpu::test::HostFixture;
using kvmgpu::test::HostWriter;

namespace {

util::PciAddress addr(const char* text) { return *util::PciAddress::parse(text); }

ModuleState module(const std::string& name, std::vector<std::string> holders) {
    ModuleState m;
    m.name = name;
    m.loaded = true;
    m.holders = std::move(holders);
    return m;
}

BindOptions fast() {
    BindOptions o;
    o.timeout = std::chrono::milliseconds(50);
    o.poll_interval = std::chrono::milliseconds(1);
    o.verify_wait = std::chrono::milliseconds(50);
    return o;
}

}  // namespace

TEST_CASE("consoles firmware framebuffers and modules are read as sysfs shows them", "[host][release]") {
    HostFixture fx;
    fx.add_vtconsole(0, "(S) dummy device", false);
    fx.add_vtconsole(1, "(M) frame buffer device", true);
    fx.add_platform_device("efi-framebuffer", "efi-framebuffer.0");
    fx.add_platform_device("simple-framebuffer", "simple-framebuffer.0");
    test::add_gpu_with_audio(fx);
    fx.add_driver("nouveau");
    fx.add_module("nouveau", 2, {}, {"nouveau"});
    fx.add_module("drm_kms_helper", 1, {"nouveau"});

    const auto consoles = read_vtconsoles(fx.root());
    REQUIRE(consoles.size() == 2);
    CHECK(consoles[1].bind == "/sys/class/vtconsole/vtcon1/bind");
    CHECK(consoles[1].bound);
    CHECK(consoles[1].framebuffer());
    CHECK_FALSE(consoles[0].bound);
    CHECK_FALSE(consoles[0].framebuffer());

    const auto fbs = bound_firmware_framebuffers(fx.root());
    REQUIRE(fbs.size() == 2);
    CHECK(fbs[0] == DriverUnbound{"/sys/bus/platform/drivers/efi-framebuffer", "efi-framebuffer.0"});
    CHECK(fbs[1].device == "simple-framebuffer.0");

    const auto nouveau = read_module(fx.root(), "nouveau");
    CHECK(nouveau.loaded);
    CHECK(nouveau.refcnt == 2);
    CHECK(nouveau.devices == std::vector<util::PciAddress>{addr("0000:01:00.0")});
    CHECK(read_module(fx.root(), "drm_kms_helper").holders == std::vector<std::string>{"nouveau"});
    CHECK_FALSE(read_module(fx.root(), "nvidia").loaded);
    // A built-in module has a directory but no refcnt: it cannot be unloaded.
    fx.write("sys/module/vt/parameters/default_utf8", "1\n");
    CHECK_FALSE(read_module(fx.root(), "vt").loaded);
}

TEST_CASE("modules are unloaded users first whatever order the profile lists them in", "[host][release]") {
    // lsmod on an NVIDIA desktop: nvidia is used by nvidia_modeset and nvidia_uvm, nvidia_modeset by nvidia_drm.
    const std::vector<ModuleState> listed{module("nvidia", {"nvidia_modeset", "nvidia_uvm"}),
                                          module("nvidia_uvm", {}), module("nvidia_modeset", {"nvidia_drm"}),
                                          module("nvidia_drm", {})};
    CHECK(unload_order(listed) == std::vector<std::string>{"nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia"});
    // Holders that are not listed do not hold the order up (the check refuses them separately).
    CHECK(unload_order({module("a", {"z"}), module("b", {})}) == std::vector<std::string>{"a", "b"});
    CHECK(unload_order({}).empty());
}

TEST_CASE("systemd is taken to run when run/systemd/system exists", "[host][release]") {
    HostFixture fx;
    CHECK_FALSE(systemd_runs(fx.root()));
    fs::create_directories(fx.path("run/systemd/system"));
    CHECK(systemd_runs(fx.root()));
}

TEST_CASE("services and modules are stopped and unloaded through the runner and a failure names the command",
          "[host][release]") {
    std::vector<std::string> events;
    FakeRunner runner(events);
    runner.status["gdm.service"] = 3;  // is-active: inactive
    CHECK_FALSE(service_active("gdm.service", runner));
    CHECK(service_active("nvidia-persistenced.service", runner));
    stop_service("nvidia-persistenced.service", runner);
    unload_module("nvidia_drm", runner);
    CHECK(events == std::vector<std::string>{"run systemctl is-active --quiet gdm.service",
                                             "run systemctl is-active --quiet nvidia-persistenced.service",
                                             "run systemctl stop nvidia-persistenced.service",
                                             "run modprobe -r nvidia_drm"});
    runner.status["nvidia"] = 1;
    try {
        unload_module("nvidia", runner);
        FAIL("no error");
    } catch (const ReleaseError& e) {
        CHECK(std::string(e.what()).find("unloading the module \"nvidia\" failed: `modprobe -r nvidia` failed (exit status 1)") !=
              std::string::npos);
        CHECK(e.exit_code() == 1);
    }
}

TEST_CASE("a console and a firmware framebuffer are released through sysfs and come back from the journal",
          "[host][release]") {
    HostFixture fx;
    std::vector<std::string> events;
    HostWriter writer(fx, events);
    FakeRunner runner(events);
    fx.add_vtconsole(1, "(M) frame buffer device", true);
    fx.add_platform_device("efi-framebuffer", "efi-framebuffer.0");
    const auto before = fx.snapshot();

    record_change(fx.runtime(), "vm", 1, SysfsValueChanged{"/sys/class/vtconsole/vtcon1/bind", "1"});
    write_value(fx.root(), "/sys/class/vtconsole/vtcon1/bind", "0", writer);
    const DriverUnbound efifb{"/sys/bus/platform/drivers/efi-framebuffer", "efi-framebuffer.0"};
    record_change(fx.runtime(), "vm", 1, efifb);
    unbind_driver(fx.root(), efifb, writer);
    CHECK(read_attr(fx.path("sys/class/vtconsole/vtcon1/bind")) == "0");
    CHECK(bound_firmware_framebuffers(fx.root()).empty());
    // Unbinding what is not bound is the kernel's ENODEV, named.
    CHECK_THROWS_WITH(unbind_driver(fx.root(), efifb, writer),
                      Catch::Contains("unbinding \"efi-framebuffer.0\"") && Catch::Contains("No such device"));

    const auto report = restore_changes(fx.root(), fx.runtime(), "vm", writer, &runner, fast());
    CHECK(report.ok());
    CHECK(test::snapshot_diff(before, fx.snapshot()).empty());
}

TEST_CASE("a device whose driver module was unloaded is freed for it and is back once the module is loaded",
          "[host][release]") {
    HostFixture fx;
    std::vector<std::string> events;
    HostWriter writer(fx, events);
    FakeRunner runner(events);
    test::add_gpu_with_audio(fx);
    fx.add_driver("nouveau");
    fx.add_driver("snd_hda_intel");
    fx.add_device_node("0000:01:00.0", "drm/card0", "/dev/dri/card0");
    fx.add_device_node("0000:01:00.0", "graphics/fb0", "/dev/fb0");
    // `modprobe nouveau` registers the driver; the kernel then probes the devices it matches.
    runner.on_run = [&](const std::vector<std::string>& argv) {
        if (argv == std::vector<std::string>{"modprobe", "nouveau"}) {
            fx.add_driver("nouveau");
            writer.kernel.write(fx.path("sys/bus/pci/drivers_probe"), "0000:01:00.0");
        }
    };
    const auto before = fx.snapshot();

    // The launch records the device as it is, frees it ([release] modules), then binds it.
    auto options = fast();
    options.before[addr("0000:01:00.0")] = {std::string("nouveau"), device_nodes(fx.root(), addr("0000:01:00.0"))};
    record_change(fx.runtime(), "vm", 1, ModuleUnloaded{"nouveau"});
    fx.unlink_driver("0000:01:00.0");
    fx.remove_driver("nouveau");
    bind_devices(fx.root(), fx.runtime(), "vm", {addr("0000:01:00.0"), addr("0000:01:00.1")}, writer, options);
    const auto journal = read_changes(fx.runtime(), "vm");
    REQUIRE(journal);
    REQUIRE(journal->changes.size() == 3);
    CHECK(std::get<DeviceToVfio>(journal->changes[1]).nodes == std::vector<std::string>{"drm/card0", "graphics/fb0"});

    const auto report = restore_changes(fx.root(), fx.runtime(), "vm", writer, &runner, fast());
    INFO(nlohmann::json(report).dump(1));
    CHECK(report.ok());
    CHECK(report.working());
    REQUIRE(report.devices.size() == 2);
    CHECK(report.devices[1].message.find("is free for \"nouveau\", which is not loaded now") != std::string::npos);
    CHECK(report.devices[1].working == true);
    CHECK(report.devices[1].health == "PCI device \"0000:01:00.0\" is back and working on \"nouveau\" (drm/card0, graphics/fb0).");
    CHECK(fx.driver_of("0000:01:00.0") == "nouveau");
    CHECK(test::snapshot_diff(before, fx.snapshot()).empty());
}

TEST_CASE("a device given back says what is missing and the fix", "[host][release]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    fx.add_driver("nouveau");
    fx.add_device_node("0000:01:00.0", "drm/card0", "/dev/dri/card0");
    const DeviceToVfio entry{addr("0000:01:00.0"), std::string("nouveau"), std::nullopt,
                             {"drm/card0", "drm/renderD128", "graphics/fb0"}};
    fx.write("dev/dri/card0", "");
    auto problems = [&] { return check_device_back(fx.root(), entry, std::chrono::milliseconds(0)); };

    auto health = problems();
    CHECK_FALSE(health.working);
    CHECK(health.missing.size() == 2);
    CHECK(health.message.find("its drm/renderD* node is missing (it had \"drm/renderD128\")") != std::string::npos);
    CHECK(health.message.find("its graphics/fb* node is missing") != std::string::npos);

    fx.add_device_node("0000:01:00.0", "drm/renderD128", "/dev/dri/renderD128");
    fx.add_device_node("0000:01:00.0", "graphics/fb1", "");  // another number is as good
    fx.remove("dev/fb1");
    health = problems();
    REQUIRE(health.missing.size() == 1);
    CHECK(health.missing[0] == "\"/dev/fb1\" is missing although the kernel has \"graphics/fb1\": udev has not created it; "
                               "`udevadm trigger` creates it");

    fx.write("dev/fb1", "");
    CHECK(problems().working);

    fx.unlink_driver("0000:01:00.0");
    CHECK(problems().missing.at(0).find("it is on no driver, not on \"nouveau\" as before: `modprobe nouveau`") == 0);
    fx.link_driver("0000:01:00.0", "nouveau");

    // A card that fell off the bus or hangs reads all ones.
    fx.write(fx.device_dir("0000:01:00.0").lexically_relative(fx.root()) / "config", std::string("\xff\xff\xff\xff", 4));
    CHECK(problems().missing.at(0).find("the card did not come back from the VM: its config space reads 0xffff") == 0);
}

TEST_CASE("class nodes map to the dev nodes they are used through", "[host][release]") {
    CHECK(dev_node("drm/card1") == "/dev/dri/card1");
    CHECK(dev_node("drm/renderD129") == "/dev/dri/renderD129");
    CHECK(dev_node("graphics/fb0") == "/dev/fb0");
    CHECK(dev_node("sound/card2") == "/dev/snd/controlC2");
    CHECK(dev_node("hwmon/hwmon3").empty());
    CHECK(dev_node("card0").empty());
}

namespace {

// A kernel that takes every write and changes nothing, as fbcon's bind does once fbcon let its
// framebuffer go.
class IgnoringWriter final : public SysfsWriter {
public:
    int write(const fs::path&, std::string_view) override { return 0; }
};

}  // namespace

TEST_CASE("an attribute the kernel keeps at another value is a failed undo that stays in the journal",
          "[host][release]") {
    HostFixture fx;
    fx.add_vtconsole(1, "(M) frame buffer device", false);
    IgnoringWriter writer;
    std::vector<std::string> events;
    FakeRunner runner(events);
    record_change(fx.runtime(), "vm", 1, SysfsValueChanged{"/sys/class/vtconsole/vtcon1/bind", "1"});
    // No framebuffer node to take the console over with: the undo fails and says so.
    const auto report = restore_changes(fx.root(), fx.runtime(), "vm", writer, &runner, fast());
    CHECK_FALSE(report.ok());
    REQUIRE(report.changes.size() == 1);
    CHECK(report.changes[0].message.find("was given \"1\" back, but the kernel keeps it \"0\"") != std::string::npos);
    CHECK(read_changes(fx.runtime(), "vm"));
}

TEST_CASE("only a vtconsole's bind attribute is a console bind", "[host][release]") {
    CHECK(is_console_bind("/sys/class/vtconsole/vtcon1/bind"));
    CHECK_FALSE(is_console_bind("/sys/class/vtconsole/vtcon1/name"));
    CHECK_FALSE(is_console_bind("/sys/bus/pci/drivers/nouveau/bind"));
    CHECK_FALSE(is_console_bind("/proc/irq/24/smp_affinity_list"));
}
