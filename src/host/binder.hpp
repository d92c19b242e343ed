#pragma once
// Moves PCI devices to vfio-pci and back, with a crash-safe undo.
//
// Binding one device is exactly this sequence (the one Linux documents for driver_override,
// and the one a real-kernel test guest runs against its real sysfs):
//   1. journal   record the original driver and driver_override as a device-to-vfio change
//                (record_change, journal.hpp), durable before anything on the host changes;
//   2. driver_override  write "vfio-pci" to sys/bus/pci/devices/ADDR/driver_override;
//   3. unbind    write ADDR to sys/bus/pci/devices/ADDR/driver/unbind (skipped if no driver);
//   4. drivers_probe    write ADDR to sys/bus/pci/drivers_probe;
//   5. wait_driver      poll, up to a deadline, until the `driver` link names vfio-pci;
//   6. wait_vfio_group  poll, up to a deadline, until dev/vfio/<group> exists.
// A device already on vfio-pci is left as it is and not journaled, so restore leaves it too.
//
// Restoring one device (also how a failed bind is rolled back):
//   1. driver_override  write the original override back, or "\n" when there was none (the
//                       kernel clears the override on a lone newline);
//   2. unbind    write ADDR to .../driver/unbind if the device is on vfio-pci;
//   3. bind      write ADDR to sys/bus/pci/drivers/<original>/bind, falling back to
//                drivers_probe when that write fails; then poll until the driver is back;
//   4. the journal entry is dropped.
// Restore replays every change in the journal (host_change.hpp), devices and the other kinds,
// last made first; see restore_changes below.
// The override is cleared before the rebind because the kernel matches a device with an
// override only to the driver it names: binding the original driver first fails with ENODEV.
// Every step checks the current state first, so restoring twice, or restoring a device that is
// already back, writes nothing. A device with no original driver is left unbound.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "host/host_change.hpp"
#include "host/sysfs.hpp"
#include "util/error.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::host {

enum class BindStep {
    inspect,          // reading the device's state; nothing changed yet
    journal,
    driver_override,
    unbind,
    drivers_probe,
    bind,             // restore only: drivers/<original>/bind (and its drivers_probe fallback)
    wait_driver,
    wait_vfio_group,
};
std::string_view step_name(BindStep step);

// A device as it was before the launch began to free it: [release] may unload its driver (and
// so its nodes) before the bind, and its journal entry must still name what to give it back to.
struct DeviceBefore {
    std::optional<std::string> driver;
    std::vector<std::string> nodes;  // device_nodes()
};

struct BindOptions {
    // Deadline for each poll (driver link, dev/vfio node). The kernel usually finishes within
    // the write; the deadline covers asynchronous probing and udev creating the node.
    std::chrono::milliseconds timeout{5000};
    std::chrono::milliseconds poll_interval{10};
    pid_t pid = 0;  // recorded in the journal; 0: getpid()
    // Devices found with no driver are journaled with the driver and nodes recorded here, if any.
    std::map<util::PciAddress, DeviceBefore> before;
    // After a restore, how long a device may take to be back on its driver with its nodes
    // (device_health.hpp) before it counts as not working.
    std::chrono::milliseconds verify_wait{3000};
};

// One device failed at one step. `error` is the errno of the failing write (ETIMEDOUT for a
// poll that reached its deadline). what() is a full sentence: the device, the step, the path,
// the cause, what the rollback did, and the fix.
class BindError : public util::RuntimeFailure {
public:
    BindError(util::PciAddress address, BindStep step, int error, bool rolled_back,
              const std::string& message)
        : util::RuntimeFailure(message, "bind-failed"),
          address(address), step(step), error(error), rolled_back(rolled_back) {}
    util::PciAddress address;
    BindStep step;
    int error;
    bool rolled_back;  // false: the rollback failed too; the journal still names the devices
};

struct BindResult {
    std::vector<util::PciAddress> bound;          // moved to vfio-pci by this call, in order
    std::vector<util::PciAddress> already_vfio;   // left as they were
};

// Binds `devices` in order (duplicates once), for VM `vm`. Reservations are the caller's: acquire the devices'
// locks (lock.hpp) before binding and release them after restoring. On any failure every device this call changed is
// restored, last first, its journal entry dropped, and BindError is thrown. Paths: sysfs and
// dev under `root`, the journal under `runtime_dir`.
BindResult bind_devices(const std::filesystem::path& root, const std::filesystem::path& runtime_dir,
                        const std::string& vm, const std::vector<util::PciAddress>& devices,
                        SysfsWriter& writer, const BindOptions& options = {});

// The undo of one journaled change.
struct RestoreOutcome {
    util::PciAddress address;  // the device of a device-to-vfio change; 0000:00:00.0 otherwise
    bool ok = false;
    std::string message;  // a sentence: what was done, or what failed and how to fix it
    std::string kind = std::string(DeviceToVfio::kind);  // kind_name() of the change
    std::string what;     // subject() of the change: the address, the path, the unit, the module
    // Devices restored: whether they are back in working order once every change was undone
    // (device_health.hpp), and the sentence saying so or what is missing. Unset otherwise.
    std::optional<bool> working;
    std::string health;
};

struct RestoreReport {
    std::vector<RestoreOutcome> changes;  // every change, in restore order (last made first)
    std::vector<RestoreOutcome> devices;  // the device-to-vfio ones among them, in the same order
    bool ok() const;                      // every change was undone
    bool working() const;                 // and every device restored is back in working order
};

// Why a device must not be given back now (a VM that runs holds it), or nullopt to go ahead.
using DeviceGuard = std::function<std::optional<std::string>(const util::PciAddress&)>;

// Undoes every change in the VM's journal from the journal alone (the launcher may be long
// dead), last made first, each by its kind's undo: devices as described above, the other kinds
// as host_change.hpp says, programs through `runner` (null: their undo fails, saying so). An
// entry whose undo succeeded is dropped from the journal at once (an atomic rewrite); a failed
// one stays, so the restore can be retried, and is reported; the replay goes on with the changes
// made before it. An entry of a kind this kvmgpu does not know always fails and stays. No
// journal: an empty, successful report. A journal that cannot be read or parsed throws
// std::runtime_error naming the file. A device `guard` refuses is not touched: its entry stays
// and its outcome fails with the guard's reason. Once the replay is done, every device given
// back is checked (check_device_back) and its outcome says whether it works.
RestoreReport restore_changes(const std::filesystem::path& root,
                              const std::filesystem::path& runtime_dir, const std::string& vm,
                              SysfsWriter& writer, CommandRunner* runner,
                              const BindOptions& options = {}, const DeviceGuard& guard = {});

// restore_changes() under its name from when journals held devices only.
RestoreReport restore_devices(const std::filesystem::path& root,
                              const std::filesystem::path& runtime_dir, const std::string& vm,
                              SysfsWriter& writer, const BindOptions& options = {},
                              CommandRunner* runner = nullptr);

void to_json(nlohmann::json& j, const BindResult& result);
void to_json(nlohmann::json& j, const RestoreOutcome& outcome);
void to_json(nlohmann::json& j, const RestoreReport& report);

}  // namespace kvmgpu::host
