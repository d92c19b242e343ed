#pragma once
// Who holds a PCI device: the programs, the console, the firmware framebuffer and the kernel
// modules that keep the host's driver from letting go of it. An unbind of a device in use can
// block in the kernel until its users let go, or until a reboot, so kvmgpu looks before it binds.
//
// Everything is read under a host root ("/" in production, a temporary tree in tests):
//   ROOT/sys/bus/pci/devices/ADDR/{drm/card*,drm/renderD*,graphics/fb*,sound/card*/*}  its nodes
//   ROOT/proc/PID/{fd/*,comm,cmdline,cgroup}            the processes and what they have open
//   ROOT/sys/class/vtconsole/vtcon*/{name,bind}          the framebuffer console
//   ROOT/proc/iomem, ROOT/sys/bus/platform/drivers/*     firmware framebuffers inside a BAR
//   ROOT/sys/module/{nvidia_drm,nvidia_modeset,nvidia_uvm}/{refcnt,holders}, proc/driver/nvidia
// Node paths are host paths ("/dev/dri/card0"), as the kernel shows them in proc/PID/fd links.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "util/pci_address.hpp"

namespace kvmgpu::host {

struct PciDeviceInfo;  // host_model.hpp, which holds a HolderScan

enum class HolderKind {
    process,               // a process with one of the device's nodes open
    console,               // the framebuffer console, bound to the device's framebuffer
    firmware_framebuffer,  // efifb, simpledrm, vesafb or BOOTFB memory inside one of its BARs
    module,                // a kernel module in use that must let go first (nvidia_drm, ...)
    service_process,       // a daemon of the driver that holds it while it runs (nvidia-persistenced)
};
// "process", "console", "firmware-framebuffer", "module", "service-process"
std::string_view holder_kind_name(HolderKind kind);

struct Holder {
    HolderKind kind = HolderKind::process;
    util::PciAddress address;  // the device held
    pid_t pid = 0;             // process, service-process; 0 for the others
    // process, service-process: its comm ("Xorg"); console: the vtcon's name ("(M) frame buffer
    // device"); firmware-framebuffer: the /proc/iomem name ("efifb", "BOOTFB"); module: its name.
    std::string command;
    // What is held, as a host path. process: the node ("/dev/dri/card0"); service-process: the
    // first node it has open, or empty; console: "/sys/class/vtconsole/vtcon1"; module:
    // "/sys/module/nvidia_drm"; firmware-framebuffer: the platform device under its driver
    // ("/sys/bus/platform/drivers/efi-framebuffer/efi-framebuffer.0") when one is bound, else
    // "/proc/iomem".
    std::string node;
    // process, service-process: the last component of its cgroup path that ends in ".service" or
    // ".scope" ("sddm.service", "session-2.scope"); empty when there is none.
    std::string unit;
    // The unit belongs to a user's service manager (the cgroup path goes through
    // "user@UID.service"), so `systemctl stop UNIT` as root does not reach it.
    bool user_unit = false;
    // process, service-process: the command line, arguments joined by spaces (at most 200
    // characters); console: the framebuffers it holds ("/dev/fb0"); firmware-framebuffer: the
    // memory range and the BAR it lies in; module: who uses it.
    std::string detail;
};

// The holders of some devices, with what the scan could see.
struct HolderScan {
    bool scanned = false;  // find_holders() ran (the plan had devices)
    std::vector<Holder> holders;  // by address, then kind, pid, node
    std::size_t processes = 0;    // process directories under proc/
    std::size_t readable = 0;     // of which the open files could be listed
    // proc/iomem shows zero for every address (not root), so firmware framebuffers were not
    // compared with the BARs.
    bool iomem_hidden = false;

    // No process could be read although there were some: "no holders" would mean nothing.
    bool processes_unknown() const { return processes > 0 && readable == 0; }
};

// Every holder of every device, in one pass over ROOT/proc. Devices without nodes, console or
// firmware framebuffer cost nothing beyond that pass.
HolderScan find_holders(const std::filesystem::path& root, std::span<const PciDeviceInfo> devices);

// The low-level pass, usable for any node paths: the processes under ROOT/proc that have one
// of `nodes` open, and those whose comm is one of `commands` whatever they have open (the
// kernel cuts comm to 15 characters, so a longer command matches by its first 15).
// Unreadable processes (another user's, when not root) and vanished ones are skipped.
struct OpenNode {
    pid_t pid = 0;
    std::string node;  // one of `nodes`
};
struct ProcessScan {
    std::vector<OpenNode> open;          // sorted by pid, then node; one entry per (pid, node)
    std::vector<pid_t> command_matches;  // sorted
    std::size_t processes = 0;
    std::size_t readable = 0;
};
ProcessScan scan_processes(const std::filesystem::path& root, const std::set<std::string>& nodes,
                           const std::set<std::string>& commands = {});

// What ROOT/proc/PID says about a process; empty strings for what cannot be read.
struct ProcessInfo {
    std::string command;  // comm, or the basename of argv[0] when comm cannot be read
    std::string cmdline;  // arguments joined by spaces, at most 200 characters
    std::string unit;     // see Holder::unit
    bool user_unit = false;
};
ProcessInfo read_process(const std::filesystem::path& root, pid_t pid);

// The unit of a proc/PID/cgroup text: "0::/system.slice/sddm.service" gives "sddm.service";
// cgroup v1 lines ("1:name=systemd:/...") are read too, the v2 line ("0::") wins.
struct CgroupUnit {
    std::string unit;
    bool user_unit = false;
};
CgroupUnit parse_cgroup_unit(std::string_view cgroup);

// One line of /proc/iomem: "  e0000000-e07fffff : efifb", nesting shown by leading spaces.
struct IomemRange {
    std::uint64_t start = 0;
    std::uint64_t end = 0;  // inclusive
    std::string name;
    unsigned depth = 0;  // leading spaces / 2
};
std::vector<IomemRange> parse_iomem(std::string_view text);

// A short phrase for messages: `process 123 "Xorg" with "/dev/dri/card0" open`, `the
// framebuffer console "/sys/class/vtconsole/vtcon1"`, `the kernel module "nvidia_drm" (2 users)`.
std::string describe_holder(const Holder& holder);

void to_json(nlohmann::json& j, const Holder& holder);
void to_json(nlohmann::json& j, const HolderScan& scan);

}  // namespace kvmgpu::host
