#include "host/binder.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <optional>
#include <system_error>
#include <thread>
#include <type_traits>
#include <variant>

#include "host/device_health.hpp"
#include "host/journal.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;
using util::PciAddress;

std::string_view step_name(BindStep step) {
    switch (step) {
        case BindStep::inspect: return "inspect";
        case BindStep::journal: return "journal";
        case BindStep::driver_override: return "driver_override";
        case BindStep::unbind: return "unbind";
        case BindStep::drivers_probe: return "drivers_probe";
        case BindStep::bind: return "bind";
        case BindStep::wait_driver: return "wait_driver";
        case BindStep::wait_vfio_group: return "wait_vfio_group";
    }
    return "?";
}

bool RestoreReport::ok() const {
    return std::all_of(changes.begin(), changes.end(), [](const auto& c) { return c.ok; });
}

bool RestoreReport::working() const {
    return ok() && std::all_of(changes.begin(), changes.end(), [](const auto& c) { return c.working.value_or(true); });
}

namespace {

constexpr std::string_view kVfioPci = "vfio-pci";

// One step of one device failed; `detail` is the sentence saying what and why.
struct StepFailed {
    BindStep step;
    int error;
    std::string detail;
};

struct DeviceState {
    bool exists = false;
    std::optional<std::string> driver;
    std::optional<std::string> driver_override;
    std::optional<std::string> group;
};

fs::path device_dir(const fs::path& root, const PciAddress& address) {
    return under(root, "sys/bus/pci/devices") / address.str();
}

DeviceState read_state(const fs::path& root, const PciAddress& address) {
    const fs::path dir = device_dir(root, address);
    DeviceState s;
    std::error_code ec;
    s.exists = fs::exists(dir, ec);
    if (!s.exists) return s;
    s.driver = link_basename(dir / "driver");
    if (auto text = read_attr(dir / "driver_override"); text && *text != "(null)" && !text->empty())
        s.driver_override = *text;
    s.group = link_basename(dir / "iommu_group");
    return s;
}

void write_or_fail(SysfsWriter& writer, BindStep step, const fs::path& file, std::string_view data) {
    if (const int error = writer.write(file, data); error != 0) {
        std::string shown(data);
        if (shown == "\n") shown = "\\n";
        const std::string what = util::quoted(shown) + " to " + util::quoted(file.string());
        // The writer abandons a write the kernel does not return from; "Connection timed out"
        // or "Interrupted system call" would hide that the host change may still happen.
        const std::string late = "; the kernel may still complete the write once the device is "
                                 "released, so check the device's driver (`kvmgpu list`) before retrying";
        if (error == ETIMEDOUT) {
            std::string after;
            if (const auto t = writer.timeout())
                after = t->count() % 1000 == 0 ? " after " + std::to_string(t->count() / 1000) + " s"
                                               : " after " + std::to_string(t->count()) + " ms";
            throw StepFailed{step, error,
                             "writing " + what + " timed out" + after +
                                 ": the kernel did not return from the write; the device is probably "
                                 "still in use (close the programs using it: a display server, "
                                 "`nvidia-persistenced`; `fuser -v /dev/nvidia* /dev/dri/*` lists them)" +
                                 late};
        }
        if (error == EINTR)
            throw StepFailed{step, error,
                             "writing " + what +
                                 " was abandoned because kvmgpu was asked to stop (SIGINT, SIGTERM or "
                                 "SIGHUP) before the kernel returned from it" + late};
        throw StepFailed{step, error, "writing " + what + " failed: " + errno_text(error)};
    }
}

// Polls `done` until it holds or the deadline passes; the only sleeping in host/.
template <typename Pred>
bool poll_until(const BindOptions& options, Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    while (true) {
        if (done()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(options.poll_interval);
    }
}

std::string driver_text(const std::optional<std::string>& driver) {
    return driver ? util::quoted(*driver) : std::string("no driver");
}

// Restores one device to its journal entry; returns a sentence saying what was done.
// `module_comes_back`: the journal will load a module after this restore (an earlier
// module-unloaded entry), which may be what brings the device's driver back.
std::string restore_one(const fs::path& root, const DeviceToVfio& entry, SysfsWriter& writer,
                        const BindOptions& options, bool module_comes_back = false) {
    const PciAddress& address = entry.address;
    const std::string addr = address.str();
    const fs::path dir = device_dir(root, address);
    // An unbind or probe of this device that was abandoned may still happen in the kernel: the
    // device is not back until it has, so its journal entry (and lock) must stay.
    if (writer.has_unfinished_write(addr))
        throw StepFailed{BindStep::unbind, EBUSY,
                         "an earlier write for this device has not returned from the kernel yet (the device is "
                         "probably still in use); it may still unbind the device later"};
    DeviceState state = read_state(root, address);
    if (!state.exists)
        return "PCI device " + util::quoted(addr) + " is no longer present; nothing to restore.";
    bool changed = false;

    if (state.driver_override != entry.driver_override) {
        write_or_fail(writer, BindStep::driver_override, dir / "driver_override",
                      entry.driver_override ? std::string_view(*entry.driver_override) : "\n");
        changed = true;
    }
    if (state.driver == kVfioPci && entry.driver != kVfioPci) {
        write_or_fail(writer, BindStep::unbind, dir / "driver" / "unbind", addr);
        changed = true;
        state = read_state(root, address);
    }
    const bool driver_loaded = entry.driver && fs::exists(under(root, "sys/bus/pci/drivers") / *entry.driver);
    if (entry.driver && !state.driver && !driver_loaded && module_comes_back)
        // Its module was unloaded to free the card ([release] modules) and comes back later in the
        // restore: loading it probes the device, which is free for it now. The check after the
        // replay (device_health) says whether it did.
        return "PCI device " + util::quoted(addr) + " is free for " + driver_text(entry.driver) +
               ", which is not loaded now; the device goes back to it when its module is loaded.";
    if (entry.driver && !state.driver) {
        const fs::path bind = under(root, "sys/bus/pci/drivers") / *entry.driver / "bind";
        if (const int error = writer.write(bind, addr); error != 0) {
            // The driver may refuse a direct bind (or its directory may be gone while its
            // module is unloaded); drivers_probe lets the kernel match the device again.
            const fs::path probe = under(root, "sys/bus/pci/drivers_probe");
            if (const int error2 = writer.write(probe, addr); error2 != 0)
                throw StepFailed{BindStep::bind, error,
                                 "writing " + util::quoted(addr) + " to " + util::quoted(bind.string()) +
                                     " failed (" + errno_text(error) + ") and so did " +
                                     util::quoted(probe.string()) + " (" + errno_text(error2) + ")"};
        }
        changed = true;
        const bool back = poll_until(options, [&] {
            return link_basename(dir / "driver") == entry.driver;
        });
        if (!back)
            throw StepFailed{BindStep::wait_driver, ETIMEDOUT,
                             "the driver " + util::quoted(*entry.driver) + " did not take the device within " +
                                 std::to_string(options.timeout.count()) + " ms (it is on " +
                                 driver_text(link_basename(dir / "driver")) +
                                 "); see `dmesg`, or load the driver's module and retry"};
        state = read_state(root, address);
    }
    if (state.driver != entry.driver)
        return "PCI device " + util::quoted(addr) + " was left on " + driver_text(state.driver) +
               " (it was on " + driver_text(entry.driver) +
               " before kvmgpu bound it, and something else has rebound it since).";
    if (!changed)
        return "PCI device " + util::quoted(addr) + " was already on " + driver_text(entry.driver) + ".";
    return "PCI device " + util::quoted(addr) + " is back on " + driver_text(entry.driver) + ".";
}

std::string step_hint(BindStep step, const std::string& vm) {
    switch (step) {
        case BindStep::inspect: return "Check the address with `kvmgpu list`.";
        case BindStep::journal: return "Check that the runtime directory is writable.";
        case BindStep::driver_override:
        case BindStep::unbind:
        case BindStep::drivers_probe:
        case BindStep::bind:
            return "kvmgpu must run as root; `dmesg` shows the kernel's reason.";
        case BindStep::wait_driver:
            return "Check that the vfio-pci module is loaded (`modprobe vfio-pci`) and that the "
                   "IOMMU is on; `dmesg` shows why vfio-pci refused the device.";
        case BindStep::wait_vfio_group:
            return "Check that devtmpfs/udev create the /dev/vfio nodes; `kvmgpu restore " + vm +
                   "` undoes a partial bind.";
    }
    return {};
}

int error_of(const std::exception& e) {
    if (const auto* system = dynamic_cast<const std::system_error*>(&e)) return system->code().value();
    return EIO;  // a journal that cannot be read or parsed
}

// The failure of one device's undo during restore, as a sentence with the fix.
std::string device_restore_failed(const DeviceToVfio& entry, const StepFailed& failure,
                                  const std::string& vm) {
    return "restoring PCI device " + util::quoted(entry.address.str()) + " to " +
           driver_text(entry.driver) + " failed at step " +
           util::quoted(std::string(step_name(failure.step))) + ": " + failure.detail +
           "; its journal entry was kept, so `kvmgpu restore " + vm + "` can retry. " +
           (failure.step == BindStep::wait_driver || failure.step == BindStep::bind
                ? "Check that the driver " + driver_text(entry.driver) +
                      " is loaded (`modprobe`); `dmesg` shows why it refused the device."
                : step_hint(failure.step, vm));
}

// Undoes one journaled change: a sentence saying what was done, or an UndoError whose what() is
// the whole sentence for the report.
std::string undo_change(const HostChange& change, const fs::path& root, const fs::path& journal_file,
                        const std::string& vm, SysfsWriter& writer, CommandRunner* runner,
                        const BindOptions& options, bool module_comes_back) {
    const UndoContext context{root, writer, runner};
    const std::string kept = "; its journal entry was kept, so `kvmgpu restore " + vm + "` can retry.";
    return std::visit(
        [&](const auto& c) -> std::string {
            using T = std::decay_t<decltype(c)>;
            if constexpr (std::is_same_v<T, DeviceToVfio>) {
                try {
                    return restore_one(root, c, writer, options, module_comes_back);
                } catch (const StepFailed& failure) {
                    throw UndoError(device_restore_failed(c, failure, vm));
                }
            } else if constexpr (std::is_same_v<T, UnknownChange>) {
                throw UndoError("the journal " + util::quoted(journal_file.string()) +
                                " holds a change of kind " + util::quoted(c.kind) +
                                ", which this kvmgpu does not know how to undo (a newer kvmgpu wrote "
                                "it?); it was kept: undo it with the kvmgpu that made it, or by hand, "
                                "then delete the entry: " + c.entry.dump());
            } else {
                try {
                    return undo(c, context);
                } catch (const UndoError& e) {
                    throw UndoError("restoring " + describe(change) + " failed: " + e.what() + kept);
                }
            }
        },
        change);
}

}  // namespace

BindResult bind_devices(const fs::path& root, const fs::path& runtime_dir, const std::string& vm,
                        const std::vector<PciAddress>& devices, SysfsWriter& writer,
                        const BindOptions& options) {
    const pid_t pid = options.pid ? options.pid : ::getpid();
    BindResult result;
    // A journal that cannot be read stops the bind before anything is looked at, let alone changed.
    try {
        read_changes(runtime_dir, vm);
    } catch (const std::exception& e) {
        throw BindError(devices.empty() ? PciAddress{} : devices.front(), BindStep::journal, EIO,
                        true, std::string("binding to vfio-pci did not start: ") + e.what());
    }
    std::vector<DeviceToVfio> changed;  // journaled by this call, in binding order

    // A device named twice is bound once, at its first place.
    std::vector<PciAddress> unique;
    for (const PciAddress& address : devices)
        if (std::find(unique.begin(), unique.end(), address) == unique.end()) unique.push_back(address);

    for (const PciAddress& address : unique) {
        const std::string addr = address.str();
        const fs::path dir = device_dir(root, address);
        try {
            const DeviceState state = read_state(root, address);
            if (!state.exists)
                throw StepFailed{BindStep::inspect, ENODEV,
                                 "the device does not exist (no " + util::quoted(dir.string()) + ")"};
            if (state.driver == kVfioPci) {
                result.already_vfio.push_back(address);
                continue;
            }
            if (!state.group)
                throw StepFailed{BindStep::inspect, ENOENT,
                                 "the device has no IOMMU group (no " +
                                     util::quoted((dir / "iommu_group").string()) +
                                     "), so vfio-pci cannot take it; turn the IOMMU on"};

            // Undo before mutate: the entry is on disk before the first sysfs write.
            DeviceToVfio entry{address, state.driver, state.driver_override, device_nodes(root, address)};
            if (const auto it = options.before.find(address); it != options.before.end() && !state.driver) {
                entry.driver = it->second.driver;
                entry.nodes = it->second.nodes;
            }
            try {
                record_change(runtime_dir, vm, pid, entry);
            } catch (const std::exception& e) {
                throw StepFailed{BindStep::journal, error_of(e), e.what()};
            }
            changed.push_back(entry);

            write_or_fail(writer, BindStep::driver_override, dir / "driver_override", kVfioPci);
            if (state.driver)
                write_or_fail(writer, BindStep::unbind, dir / "driver" / "unbind", addr);
            write_or_fail(writer, BindStep::drivers_probe, under(root, "sys/bus/pci/drivers_probe"),
                          addr);
            if (!poll_until(options, [&] { return link_basename(dir / "driver") == kVfioPci; }))
                throw StepFailed{BindStep::wait_driver, ETIMEDOUT,
                                 "vfio-pci did not take the device within " +
                                     std::to_string(options.timeout.count()) + " ms (it is on " +
                                     driver_text(link_basename(dir / "driver")) + ")"};
            const fs::path node = under(root, "dev/vfio") / *state.group;
            if (!poll_until(options, [&] {
                    std::error_code ec;
                    return fs::exists(node, ec);
                }))
                throw StepFailed{BindStep::wait_vfio_group, ETIMEDOUT,
                                 util::quoted(node.string()) + " did not appear within " +
                                     std::to_string(options.timeout.count()) + " ms"};
            result.bound.push_back(address);
        } catch (const StepFailed& failure) {
            // Roll back every device this call touched, the failing one first.
            std::vector<std::string> rollback_failures;
            for (auto it = changed.rbegin(); it != changed.rend(); ++it) {
                try {
                    restore_one(root, *it, writer, options);
                } catch (const StepFailed& undo) {
                    rollback_failures.push_back("PCI device " + util::quoted(it->address.str()) +
                                                " at step " + util::quoted(std::string(step_name(undo.step))) +
                                                ": " + undo.detail);
                    continue;
                }
                try {
                    drop_change(runtime_dir, vm, *it);
                } catch (const std::exception& e) {
                    rollback_failures.push_back(std::string("updating the journal: ") + e.what());
                }
            }
            std::string message = "binding PCI device " + util::quoted(addr) +
                                  " to vfio-pci failed at step " +
                                  util::quoted(std::string(step_name(failure.step))) + ": " +
                                  failure.detail + ". ";
            const bool rolled_back = rollback_failures.empty();
            if (rolled_back) {
                message += "Every change was rolled back: the devices are on their original "
                           "drivers again. ";
            } else {
                message += "The rollback failed too (";
                for (std::size_t i = 0; i < rollback_failures.size(); ++i)
                    message += (i ? "; " : "") + rollback_failures[i];
                message += "); the journal " + util::quoted(journal_path(runtime_dir, vm).string()) +
                           " still names them: run `kvmgpu restore " + vm +
                           "` once the cause is fixed. ";
            }
            message += step_hint(failure.step, vm);
            throw BindError(address, failure.step, failure.error, rolled_back, message);
        }
    }
    return result;
}

RestoreReport restore_changes(const fs::path& root, const fs::path& runtime_dir,
                              const std::string& vm, SysfsWriter& writer, CommandRunner* runner,
                              const BindOptions& options, const DeviceGuard& guard) {
    RestoreReport report;
    std::vector<std::pair<std::size_t, DeviceToVfio>> given_back;  // index in report.changes
    auto loaded = read_changes(runtime_dir, vm);
    if (!loaded) return report;
    ChangeJournal journal = std::move(*loaded);
    const fs::path file = journal_path(runtime_dir, vm);
    // Last made, first undone. Only the entry at `i` is ever erased, so the ones before it keep
    // their places.
    for (std::size_t i = journal.changes.size(); i-- > 0;) {
        const HostChange change = journal.changes[i];
        RestoreOutcome outcome;
        outcome.kind = std::string(kind_name(change));
        outcome.what = subject(change);
        const auto* device = std::get_if<DeviceToVfio>(&change);
        if (device) outcome.address = device->address;
        const auto refused = device && guard ? guard(device->address) : std::nullopt;
        try {
            if (refused) throw UndoError("PCI device " + util::quoted(device->address.str()) + " was not touched: " +
                                         *refused + "; its journal entry was kept");
            const bool module_comes_back = std::any_of(journal.changes.begin(), journal.changes.begin() + static_cast<std::ptrdiff_t>(i),
                                                       [](const HostChange& c) { return std::holds_alternative<ModuleUnloaded>(c); });
            outcome.message = undo_change(change, root, file, vm, writer, runner, options, module_comes_back);
            outcome.ok = true;
        } catch (const UndoError& e) {
            outcome.message = e.what();
        } catch (const std::exception& e) {
            outcome.message = "restoring " + describe(change) + " failed: " + e.what() +
                              "; its journal entry was kept, so `kvmgpu restore " + vm + "` can retry.";
        }
        if (outcome.ok) {
            try {
                journal.changes.erase(journal.changes.begin() + static_cast<std::ptrdiff_t>(i));
                write_changes(runtime_dir, journal);
            } catch (const std::exception& e) {
                std::string what = describe(change);
                what[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(what[0])));
                outcome.ok = false;
                outcome.message = what + " was restored but the journal could not be updated: " + e.what();
            }
        }
        if (device && outcome.ok) given_back.emplace_back(report.changes.size(), *device);
        report.changes.push_back(std::move(outcome));
    }
    // Only now: a device whose module or console came back after it is whole only at the end.
    for (const auto& [index, entry] : given_back) {
        const auto health = check_device_back(root, entry, options.verify_wait);
        report.changes[index].working = health.working;
        report.changes[index].health = health.message;
    }
    for (const auto& outcome : report.changes)
        if (outcome.kind == DeviceToVfio::kind) report.devices.push_back(outcome);
    return report;
}

RestoreReport restore_devices(const fs::path& root, const fs::path& runtime_dir,
                              const std::string& vm, SysfsWriter& writer,
                              const BindOptions& options, CommandRunner* runner) {
    return restore_changes(root, runtime_dir, vm, writer, runner, options);
}

void to_json(nlohmann::json& j, const BindResult& result) {
    std::vector<std::string> bound, already;
    for (const auto& a : result.bound) bound.push_back(a.str());
    for (const auto& a : result.already_vfio) already.push_back(a.str());
    j = {{"bound", bound}, {"already_vfio", already}};
}

void to_json(nlohmann::json& j, const RestoreOutcome& outcome) {
    j = {{"kind", outcome.kind}, {"what", outcome.what}, {"ok", outcome.ok}, {"message", outcome.message}};
    if (outcome.kind == DeviceToVfio::kind) j["address"] = outcome.address.str();
    if (outcome.working) {
        j["working"] = *outcome.working;
        j["health"] = outcome.health;
    }
}

void to_json(nlohmann::json& j, const RestoreReport& report) {
    j = {{"ok", report.ok()}, {"working", report.working()}, {"changes", report.changes}, {"devices", report.devices}};
}

}  // namespace kvmgpu::host
