// The [release] plan over fixture hosts: what a launch will change to free the card, in order,
// and what the check refuses.
#include "preflight/release_plan.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "host/release.hpp"
#include "host_fixture.hpp"
#include "preflight/check.hpp"

using namespace kvmgpu;
using namespace kvmgpu::preflight;
using kvmgpu::test::HostFixture;

namespace {

struct Planned {
    CheckResult result;
    std::vector<std::string> steps;  // kind and subject of each change, in order
    std::vector<std::string> errors;
};

Planned plan(const HostFixture& fx, const profile::Profile& p) {
    auto model = host::scan_host(fx.root(), {.names = false, .pci = true, .only = std::nullopt, .hugepages = true});
    model.release = host::scan_release(fx.root(), p.release.modules);
    Planned out{check(p, model), {}, {}};
    for (const auto& s : out.result.release)
        out.steps.push_back(std::string(host::kind_name(s.change)) + " " + host::subject(s.change) +
                            (s.value.empty() ? "" : " <- " + s.value));
    for (const auto& f : out.result.findings)
        if (f.severity == Severity::error) out.errors.push_back(f.code + ": " + f.text());
    return out;
}

// A single-GPU NVIDIA desktop: the GPU is the boot VGA, fbcon and efifb on it, systemd, the
// NVIDIA modules loaded and driving only this card.
struct Desktop {
    HostFixture fx;
    profile::Profile p = test::make_profile({"0000:01:00.0", "0000:01:00.1"});
    Desktop() {
        test::add_gpu_with_audio(fx);
        fx.add_driver("nvidia");
        fx.link_driver("0000:01:00.0", "nvidia");
        fx.write(fx.device_dir("0000:01:00.0").lexically_relative(fx.root()) / "boot_vga", "1\n");
        fx.add_vtconsole(0, "(S) dummy device", false);
        fx.add_vtconsole(1, "(M) frame buffer device", true);
        fx.add_platform_device("efi-framebuffer", "efi-framebuffer.0");
        fx.add_module("nvidia", 3, {"nvidia_modeset", "nvidia_uvm"}, {"nvidia"});
        fx.add_module("nvidia_modeset", 1, {"nvidia_drm"});
        fx.add_module("nvidia_uvm", 0);
        fx.add_module("nvidia_drm", 0);
        std::filesystem::create_directories(fx.path("run/systemd/system"));
        p.machine.accel = profile::Accel::tcg;
        p.release.display_manager = true;
        p.release.console = true;
        p.release.services = {"nvidia-persistenced.service"};
        p.release.modules = {"nvidia", "nvidia_drm", "nvidia_modeset", "nvidia_uvm"};
    }
};

}  // namespace

TEST_CASE("a single-GPU desktop is freed in order: display manager services consoles framebuffer modules",
          "[preflight][release]") {
    Desktop d;
    const auto planned = plan(d.fx, d.p);
    INFO(nlohmann::json(planned.result).dump(1));
    CHECK(planned.errors.empty());
    CHECK(planned.steps == std::vector<std::string>{
                               "service-stopped display-manager.service",
                               "service-stopped nvidia-persistenced.service",
                               "sysfs-value-changed /sys/class/vtconsole/vtcon1/bind <- 0",
                               "driver-unbound efi-framebuffer.0",
                               "module-unloaded nvidia_drm",
                               "module-unloaded nvidia_modeset",
                               "module-unloaded nvidia_uvm",
                               "module-unloaded nvidia",
                           });
    CHECK(planned.result.find("release-module")->what ==
          "kvmgpu will unload nvidia_drm, nvidia_modeset, nvidia_uvm, nvidia before binding, in that order, and load them "
          "again after.");
    // The check's JSON carries the plan as journal entries.
    const nlohmann::json j = planned.result;
    CHECK(j["release"][3] == nlohmann::json::parse(R"({"kind": "driver-unbound", "device": "efi-framebuffer.0",
        "driver": "/sys/bus/platform/drivers/efi-framebuffer", "what": "releasing the firmware framebuffer \"efi-framebuffer.0\""})"));
}

TEST_CASE("nothing is released that the profile does not ask for", "[preflight][release]") {
    Desktop d;
    d.p.release = {};
    CHECK(plan(d.fx, d.p).steps.empty());
    // A card that neither draws the console nor is the boot VGA leaves the console alone.
    Desktop second;
    second.fx.write(second.fx.device_dir("0000:01:00.0").lexically_relative(second.fx.root()) / "boot_vga", "0\n");
    second.p.release = {};
    second.p.release.console = true;
    const auto planned = plan(second.fx, second.p);
    CHECK(planned.steps.empty());
    CHECK(planned.result.find("release-console")->what.find("nothing to release") != std::string::npos);
}

TEST_CASE("the check refuses a release it cannot carry out, naming why and the fix", "[preflight][release]") {
    struct Row {
        const char* name;
        std::function<void(Desktop&)> setup;
        std::string error;
    };
    const Row rows[] = {
        {"no systemd", [](Desktop& d) { std::filesystem::remove_all(d.fx.path("run/systemd")); },
         "release-no-systemd: [release] asks kvmgpu to stop the display manager (\"display-manager.service\"), but systemd "
         "does not run this host"},
        {"a module that drives another card too",
         [](Desktop& d) {
             test::DeviceSpec other;
             other.address = "0000:02:00.0";
             other.vendor = 0x10de;
             other.device = 0x1c82;
             other.class_code = 0x030000;
             other.driver = "nvidia";
             other.group = 7;
             d.fx.add_device(other);
         },
         "module-in-use: The module \"nvidia\" also drives PCI device \"0000:02:00.0\", which this VM does not take."},
        {"a user of a module that the profile does not list",
         [](Desktop& d) { d.p.release.modules = {"nvidia", "nvidia_uvm"}; },
         "module-held: The module \"nvidia\" is used by the module \"nvidia_modeset\", which [release] modules does not list."},
    };
    for (const auto& row : rows) {
        DYNAMIC_SECTION(row.name) {
            Desktop d;
            row.setup(d);
            const auto planned = plan(d.fx, d.p);
            INFO(nlohmann::json(planned.errors).dump(1));
            REQUIRE(planned.errors.size() >= 1);
            CHECK(planned.errors[0].rfind(row.error, 0) == 0);
            CHECK_FALSE(planned.result.ok());
        }
    }
}

TEST_CASE("a module that is not loaded is nothing to unload", "[preflight][release]") {
    Desktop d;
    d.p.release = {};
    d.p.release.modules = {"nouveau"};
    const auto planned = plan(d.fx, d.p);
    CHECK(planned.steps.empty());
    CHECK(planned.errors.empty());
    CHECK(planned.result.find("release-module")->what == "The module \"nouveau\" is not loaded; nothing to unload.");
}
