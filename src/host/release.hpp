#pragma once
// The host side of freeing a card the host is using (docs/profile.md [release]): what there is
// to release — framebuffer consoles, firmware framebuffers, kernel modules, systemd services —
// and the forward half of each change. The undo half is host_change.hpp's; the caller journals
// each change (record_change) before it makes it, and checks the current state first, so that a
// change that is not needed is neither made nor journaled.
//
// Everything is read under a host root ("/" in production, a temporary tree in tests), and the
// programs (`systemctl`, `modprobe`) run through a CommandRunner, so tests substitute both.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "host/host_change.hpp"
#include "host/sysfs.hpp"
#include "util/error.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::host {

// A change that freeing the card needed could not be made; what() is a sentence with the fix.
struct ReleaseError : util::RuntimeFailure {
    explicit ReleaseError(const std::string& message) : util::RuntimeFailure(message, "release-failed") {}
};

// One of sys/class/vtconsole/vtconN: the dummy console or fbcon, bound to the terminals or not.
struct VtConsole {
    std::filesystem::path bind;  // its `bind` attribute, as on the host: "/sys/class/vtconsole/vtcon1/bind"
    std::string name;            // "(M) frame buffer device"
    bool bound = false;
    // fbcon: the console that draws on framebuffers, and so holds a card's framebuffer.
    bool framebuffer() const { return name.find("frame buffer") != std::string::npos; }
};
std::vector<VtConsole> read_vtconsoles(const std::filesystem::path& root);

// The platform drivers of firmware framebuffers: the memory the firmware set up for the boot
// display, which stays claimed inside the boot GPU's BAR until their device is unbound.
inline constexpr const char* kFirmwareFramebufferDrivers[] = {"efi-framebuffer", "simple-framebuffer",
                                                              "vesa-framebuffer"};
// Their devices bound now ("efi-framebuffer.0"), each as the change that unbinding it would be.
std::vector<DriverUnbound> bound_firmware_framebuffers(const std::filesystem::path& root);

// A kernel module as sys/module/NAME shows it.
struct ModuleState {
    std::string name;
    bool loaded = false;
    unsigned refcnt = 0;                     // `refcnt`: users (modules and open devices)
    std::vector<std::string> holders;        // `holders/`: modules that use it, sorted
    std::vector<util::PciAddress> devices;   // PCI devices bound to its drivers (`drivers/pci:*`)
};
ModuleState read_module(const std::filesystem::path& root, const std::string& name);

// `modules` ordered so that each comes after every listed module that holds it (nvidia_drm
// before nvidia_modeset before nvidia), otherwise in the order given: the order `modprobe -r`
// needs. Reloading goes the other way.
std::vector<std::string> unload_order(const std::vector<ModuleState>& modules);

// Everything above, read by scan_release() for a profile that asks kvmgpu to free a card (the
// host check weighs it; a HostModel carries it).
struct ReleaseFacts {
    bool systemd = false;
    std::vector<VtConsole> consoles;
    std::vector<DriverUnbound> firmware_framebuffers;  // bound now
    std::vector<ModuleState> modules;                  // the ones asked about, in that order
    // The unit display-manager.service is an alias of ("gdm.service"): processes show it in
    // their cgroup, never the alias. Empty when the alias is not there.
    std::string display_manager_unit;
};
ReleaseFacts scan_release(const std::filesystem::path& root, const std::vector<std::string>& modules);

// Whether systemd runs the host: ROOT/run/systemd/system exists (sd_booted(3)'s test).
bool systemd_runs(const std::filesystem::path& root);

// ---- the forward half of each change; each throws ReleaseError naming the command ----------

// `systemctl is-active --quiet UNIT`: only an active unit is stopped (and later started).
bool service_active(const std::string& unit, CommandRunner& runner);
// `systemctl stop UNIT`
void stop_service(const std::string& unit, CommandRunner& runner);
// `modprobe -r NAME`
void unload_module(const std::string& name, CommandRunner& runner);
// VALUE written to the attribute (`path` as on the host, e.g. a vtconsole's bind).
void write_value(const std::filesystem::path& root, const std::filesystem::path& path, const std::string& value,
                 SysfsWriter& writer);
// DEVICE written to DRIVER/unbind.
void unbind_driver(const std::filesystem::path& root, const DriverUnbound& change, SysfsWriter& writer);

}  // namespace kvmgpu::host
