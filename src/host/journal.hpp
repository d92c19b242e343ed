#pragma once
// The restore journal: every change kvmgpu made to the host for one VM (host_change.hpp), each
// on disk before the change is made, so that `kvmgpu restore` can undo a launch whose launcher
// was killed with -9.
//
// Layout: one file per VM, RUNTIME/journal/<vm>.json (RUNTIME being what the caller passes as
// `runtime_dir`):
//   {"version": 2, "vm": "win11", "pid": 1234, "changes": [
//     {"kind": "device-to-vfio", "address": "0000:01:00.0", "driver": "nouveau",
//      "driver_override": null},
//     {"kind": "file-owner-changed", "path": "/dev/vfio/1", "uid": 0, "gid": 0, "mode": "0600"},
//     {"kind": "sysfs-value-changed", "path": "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
//      "old_value": "0"},
//     {"kind": "service-stopped", "unit": "display-manager.service"},
//     {"kind": "module-unloaded", "name": "nouveau"}]}
// Changes are in the order they were made; restore undoes them in reverse. A journal without
// "version" is the format from before host changes, {"vm", "pid", "devices": [{"address",
// "driver", "driver_override"}, ...]}: it reads as device-to-vfio changes in the same order, and
// the next write turns it into version 2. A newer version is refused.
//
// Every update writes a temporary file in the same directory, fsyncs it, renames it over the
// journal and fsyncs the directory, so a crash leaves the old or the new journal, never a torn
// one. The file is removed when its last change is dropped.
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "host/host_change.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::host {

// The version write_changes() writes.
inline constexpr int kJournalVersion = 2;

// One VM's journal.
struct ChangeJournal {
    std::string vm;
    pid_t pid = 0;  // the launcher that wrote it last
    std::vector<HostChange> changes;  // in the order they were made
    bool operator==(const ChangeJournal&) const = default;
};

// RUNTIME/journal/<vm>.json. Throws std::invalid_argument for a VM name that is not a plain
// file name (empty, ".", "..", contains '/').
std::filesystem::path journal_path(const std::filesystem::path& runtime_dir, const std::string& vm);

// Nullopt when the VM has no journal. Throws std::runtime_error naming the file when it exists
// but cannot be read or parsed, or has a version newer than this kvmgpu reads: restore must not
// guess. Entries of unknown kinds are no error here: they read as UnknownChange.
std::optional<ChangeJournal> read_changes(const std::filesystem::path& runtime_dir,
                                          const std::string& vm);

// Atomically replaces the VM's journal with `journal` (version 2); removes the file when
// `journal.changes` is empty. Throws std::system_error naming the path.
void write_changes(const std::filesystem::path& runtime_dir, const ChangeJournal& journal);

// Undo before mutate: appends `change` to the VM's journal (creating it), records `pid` as its
// writer, and returns once that is durable. Call it before making the change. Throws what
// read_changes() and write_changes() throw; then nothing was recorded.
void record_change(const std::filesystem::path& runtime_dir, const std::string& vm, pid_t pid,
                   const HostChange& change);

// Drops the last entry equal to `change` (the newest record of it) from the VM's journal, once
// it was undone; removes the file with its last entry. False when no entry equals it.
bool drop_change(const std::filesystem::path& runtime_dir, const std::string& vm,
                 const HostChange& change);

// Names of the VMs that have a journal, sorted: what `kvmgpu restore --all` walks.
std::vector<std::string> list_journals(const std::filesystem::path& runtime_dir);

void to_json(nlohmann::json& j, const ChangeJournal& journal);
void from_json(const nlohmann::json& j, ChangeJournal& journal);

// ---- The device-only view, for the callers written before host changes ---------------------
// A Journal is a ChangeJournal's device-to-vfio changes, in order. New code uses ChangeJournal.

using JournalEntry = DeviceToVfio;

struct Journal {
    std::string vm;
    pid_t pid = 0;  // the launcher that wrote it
    std::vector<JournalEntry> devices;

    const JournalEntry* find(const util::PciAddress& address) const;
};

// read_changes() with only the device-to-vfio changes kept.
std::optional<Journal> read_journal(const std::filesystem::path& runtime_dir, const std::string& vm);

// Replaces the VM's journal with one holding exactly `journal.devices` (removes it when there
// are none). Throws std::logic_error, writing nothing, when the journal on disk holds changes
// of other kinds, which this view would lose; std::system_error naming the path on I/O errors.
void write_journal(const std::filesystem::path& runtime_dir, const Journal& journal);

// Written as version 2; read from either format.
void to_json(nlohmann::json& j, const Journal& journal);
void from_json(const nlohmann::json& j, Journal& journal);

}  // namespace kvmgpu::host
