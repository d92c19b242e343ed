#pragma once
// The changes kvmgpu makes to a host, one typed entry per kind, each with its JSON (as the
// restore journal stores it, see journal.hpp) and its undo.
//
// Every change is journaled before it is made and undone from the journal alone, so an entry
// holds everything its undo needs: the original state, never the new one. Kinds and their undo:
//   device-to-vfio       a PCI device moved to vfio-pci: back on its driver (the binder's undo,
//                        restore_changes in binder.hpp);
//   file-owner-changed   a file's owner, group and mode: chown/chmod back, never through a
//                        symbolic link;
//   sysfs-value-changed  a sysfs/procfs attribute (a vtconsole's bind, an interrupt's
//                        smp_affinity_list): its old value written back through the SysfsWriter;
//   service-stopped      `systemctl start UNIT`, through a CommandRunner;
//   module-unloaded      `modprobe NAME`, through a CommandRunner;
//   driver-unbound       a device that is not a passed one (a firmware framebuffer) unbound from
//                        its driver: bound to it again through DRIVER/bind;
//   file-created         a file kvmgpu created for the VM (Looking Glass's shared memory):
//                        removed, if it is still a regular file;
//   hugepages-added      pages kvmgpu added to a hugepage pool: the pool's nr_hugepages lowered
//                        by that many (not set back to its old value, which would take away
//                        the pages another VM added since).
//   unit-cpus-set        a systemd unit's AllowedCPUs set for the run ([cpu] isolate):
//                        `systemctl set-property --runtime UNIT AllowedCPUs=OLD`;
//   cgroup-created       a cgroup kvmgpu made for QEMU ([cpu] isolate without systemd):
//                        removed once empty;
//   cgroup-cpus-set      a cgroup's cpuset.cpus set for the run ([cpu] isolate without
//                        systemd): the old list written back.
// A journal written by a newer kvmgpu may hold kinds this one does not know: they read as
// UnknownChange, are written back verbatim, and their undo always fails, so restore keeps them.
//
// Undos check the current state first where the host shows it (devices, files, attributes), so
// undoing a change that is already undone writes nothing. Starting a unit and loading a module
// are idempotent, so they simply run again.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/sysfs.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::host {

// What a PCI device was bound to before kvmgpu moved it to vfio-pci.
struct DeviceToVfio {
    static constexpr std::string_view kind = "device-to-vfio";
    util::PciAddress address;
    std::optional<std::string> driver;           // the original driver; nullopt: none
    std::optional<std::string> driver_override;  // the original override; nullopt: "(null)"
    // The class nodes the host used it through before ("drm/card0", "graphics/fb0",
    // "sound/card0": device_health.hpp), to check they are back afterwards. Journals written
    // before kvmgpu recorded them have none.
    std::vector<std::string> nodes;
    bool operator==(const DeviceToVfio&) const = default;
};

// A file's original owner and permission bits (mode & 07777), e.g. a /dev/vfio/N node handed
// to an unprivileged QEMU. `path` is as on the host ("/dev/vfio/1"); it is taken under the root.
struct FileOwnerChanged {
    static constexpr std::string_view kind = "file-owner-changed";
    std::filesystem::path path;
    uid_t uid = 0;
    gid_t gid = 0;
    mode_t mode = 0;
    bool operator==(const FileOwnerChanged&) const = default;
};

// A sysfs or procfs attribute's value before kvmgpu wrote it ("/proc/irq/24/smp_affinity_list",
// "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"), as read_attr() shows it.
struct SysfsValueChanged {
    static constexpr std::string_view kind = "sysfs-value-changed";
    std::filesystem::path path;
    std::string old_value;
    bool operator==(const SysfsValueChanged&) const = default;
};

// A systemd unit kvmgpu stopped ("display-manager.service").
struct ServiceStopped {
    static constexpr std::string_view kind = "service-stopped";
    std::string unit;
    bool operator==(const ServiceStopped&) const = default;
};

// A kernel module kvmgpu unloaded ("nouveau").
struct ModuleUnloaded {
    static constexpr std::string_view kind = "module-unloaded";
    std::string name;
    bool operator==(const ModuleUnloaded&) const = default;
};

// A device kvmgpu unbound from its driver to free a card, though it is not one of the passed
// devices: a firmware framebuffer ("efi-framebuffer.0" of
// "/sys/bus/platform/drivers/efi-framebuffer") whose memory lies in the card's BAR.
struct DriverUnbound {
    static constexpr std::string_view kind = "driver-unbound";
    std::filesystem::path driver;  // the driver's sysfs directory, as on the host
    std::string device;            // the device's name in that directory
    bool operator==(const DriverUnbound&) const = default;
};

// A regular file kvmgpu created that did not exist before ("/dev/shm/looking-glass"). `path` is
// as on the host; it is taken under the root.
struct FileCreated {
    static constexpr std::string_view kind = "file-created";
    std::filesystem::path path;
    bool operator==(const FileCreated&) const = default;
};

// Pages kvmgpu added to a hugepage pool for a VM. `path` is the pool's nr_hugepages as on the
// host ("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", or a NUMA node's).
struct HugepagesAdded {
    static constexpr std::string_view kind = "hugepages-added";
    std::filesystem::path path;
    std::uint64_t pages = 0;
    bool operator==(const HugepagesAdded&) const = default;
};

// A systemd unit whose AllowedCPUs kvmgpu set at runtime ("system.slice"). `old_cpus` is the
// CPU list it had ("" for unset: every CPU), as its cgroup's cpuset.cpus showed it.
struct UnitCpusSet {
    static constexpr std::string_view kind = "unit-cpus-set";
    std::string unit;
    std::string old_cpus;
    bool operator==(const UnitCpusSet&) const = default;
};

// A cgroup whose cpuset.cpus kvmgpu set ("/sys/fs/cgroup/system.slice", as on the host), and
// the list it had ("" for none: its parent's CPUs).
struct CgroupCpusSet {
    static constexpr std::string_view kind = "cgroup-cpus-set";
    std::filesystem::path path;
    std::string old_cpus;
    bool operator==(const CgroupCpusSet&) const = default;
};

// A cgroup directory kvmgpu created ("/sys/fs/cgroup/kvmgpu-win11"), as on the host.
struct CgroupCreated {
    static constexpr std::string_view kind = "cgroup-created";
    std::filesystem::path path;
    bool operator==(const CgroupCreated&) const = default;
};

// An entry whose "kind" this kvmgpu does not know, kept exactly as it was read.
struct UnknownChange {
    std::string kind;  // like the static `kind` of the kinds above, so `change.kind` reads alike
    nlohmann::json entry;  // the whole entry, "kind" included
    bool operator==(const UnknownChange&) const = default;
};

using HostChange = std::variant<DeviceToVfio, FileOwnerChanged, SysfsValueChanged, ServiceStopped,
                                ModuleUnloaded, DriverUnbound, FileCreated, HugepagesAdded, UnitCpusSet,
                                CgroupCpusSet, CgroupCreated, UnknownChange>;

// The "kind" of a change in the journal (each kind's static `kind`): "device-to-vfio", "file-owner-changed",
// "sysfs-value-changed", "service-stopped", "module-unloaded", or an unknown entry's own kind
// (a view into `change`, valid while it lives).
std::string_view kind_name(const HostChange& change);

// The thing a change is about, as text: the PCI address, the path, the unit, the module; an
// unknown entry's kind.
std::string subject(const HostChange& change);

// The thing a change is about, for a sentence: `PCI device "0000:01:00.0"`, `the owner and
// mode of "/dev/vfio/1"`, `the value of "/proc/irq/24/smp_affinity_list"`, `the service
// "display-manager.service"`, `the module "nouveau"`, `a change of kind "K"`.
std::string describe(const HostChange& change);

// Runs a program from an argv vector, never through a shell, and returns its exit status: 0 for
// success, anything else is a failure. It may throw std::exception when the program cannot be
// started at all. The caller provides the production runner (util::spawn and a wait); tests
// substitute a recording fake.
class CommandRunner {
public:
    virtual ~CommandRunner() = default;
    virtual int run(const std::vector<std::string>& argv) = 0;
};

// The production runner: the program is looked up in PATH by kvmgpu and exec'd with the argv as
// it is (no shell); its output is appended to `log` (or inherited when empty); run() waits up to
// `timeout` and then kills it, counting that as a failure.
class ExecRunner final : public CommandRunner {
public:
    explicit ExecRunner(std::filesystem::path log = {}, std::chrono::seconds timeout = std::chrono::seconds(60))
        : log_(std::move(log)), timeout_(timeout) {}
    int run(const std::vector<std::string>& argv) override;

private:
    std::filesystem::path log_;
    std::chrono::seconds timeout_;
};

// An undo that failed; what() is a sentence saying what failed and why.
class UndoError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// What the undos of the kinds below need: the host root, the one writer for sysfs, and the
// runner for programs (null: undos that run a program fail, saying there is no runner).
struct UndoContext {
    std::filesystem::path root;
    SysfsWriter& writer;
    CommandRunner* runner = nullptr;
};

// Undo one change; each returns a sentence saying what was done and throws UndoError when the
// host could not be put back. (DeviceToVfio's undo is the binder's; UnknownChange has none.)
//
// file-owner-changed: the file is opened with O_PATH|O_NOFOLLOW and changed through that fd,
// so a symbolic link swapped in since is refused, never followed. A file that is gone is
// nothing to restore.
std::string undo(const FileOwnerChanged& change, const UndoContext& context);
// An attribute that is gone (the cpuset or the IRQ went away) is nothing to restore.
std::string undo(const SysfsValueChanged& change, const UndoContext& context);
// `systemctl start UNIT`
std::string undo(const ServiceStopped& change, const UndoContext& context);
// `modprobe NAME`
std::string undo(const ModuleUnloaded& change, const UndoContext& context);
// DEVICE written to DRIVER/bind, unless DRIVER/DEVICE shows it bound already.
std::string undo(const DriverUnbound& change, const UndoContext& context);
// unlink, when the path is still a regular file (a symbolic link or anything else put there
// since is left alone and the undo fails); a file that is gone is nothing to undo.
std::string undo(const FileCreated& change, const UndoContext& context);
// nr_hugepages lowered by `pages` (not below 0). Pages still in use become surplus and go back
// to the kernel once freed. A pool that is gone is nothing to undo. Unlike the other undos it
// is not idempotent: the journal drops the entry as soon as it succeeds.
std::string undo(const HugepagesAdded& change, const UndoContext& context);
// `systemctl set-property --runtime UNIT AllowedCPUs=OLD_CPUS`, through the CommandRunner. An
// empty old list (none set) is given back as every online CPU: systemd would write an empty
// cpuset.cpus, which Linux (6.1) refuses for a cgroup with tasks (ENOSPC), leaving it confined.
std::string undo(const UnitCpusSet& change, const UndoContext& context);
// OLD_CPUS written back to PATH/cpuset.cpus. An empty old list is tried first and, when the
// kernel refuses it (ENOSPC, a cgroup with tasks), every online CPU is written instead; either
// way the cgroup's effective CPUs must then be its parent's.
std::string undo(const CgroupCpusSet& change, const UndoContext& context);
// rmdir, when the directory is still there; a cgroup with processes left in it fails the undo.
std::string undo(const CgroupCreated& change, const UndoContext& context);

// The JSON of one entry: its fields and "kind". A DeviceToVfio reads with or without "kind"
// (journals from before host changes have none). from_json(HostChange) dispatches on "kind";
// an unknown kind gives an UnknownChange; a missing "kind" or a bad field throws.
void to_json(nlohmann::json& j, const DeviceToVfio& change);
void from_json(const nlohmann::json& j, DeviceToVfio& change);
void to_json(nlohmann::json& j, const FileOwnerChanged& change);
void from_json(const nlohmann::json& j, FileOwnerChanged& change);
void to_json(nlohmann::json& j, const SysfsValueChanged& change);
void from_json(const nlohmann::json& j, SysfsValueChanged& change);
void to_json(nlohmann::json& j, const ServiceStopped& change);
void from_json(const nlohmann::json& j, ServiceStopped& change);
void to_json(nlohmann::json& j, const ModuleUnloaded& change);
void from_json(const nlohmann::json& j, ModuleUnloaded& change);
void to_json(nlohmann::json& j, const DriverUnbound& change);
void from_json(const nlohmann::json& j, DriverUnbound& change);
void to_json(nlohmann::json& j, const FileCreated& change);
void from_json(const nlohmann::json& j, FileCreated& change);
void to_json(nlohmann::json& j, const HugepagesAdded& change);
void from_json(const nlohmann::json& j, HugepagesAdded& change);
void to_json(nlohmann::json& j, const UnitCpusSet& change);
void from_json(const nlohmann::json& j, UnitCpusSet& change);
void to_json(nlohmann::json& j, const CgroupCpusSet& change);
void from_json(const nlohmann::json& j, CgroupCpusSet& change);
void to_json(nlohmann::json& j, const CgroupCreated& change);
void from_json(const nlohmann::json& j, CgroupCreated& change);
void to_json(nlohmann::json& j, const UnknownChange& change);
void to_json(nlohmann::json& j, const HostChange& change);
void from_json(const nlohmann::json& j, HostChange& change);

}  // namespace kvmgpu::host
