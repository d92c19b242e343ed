#pragma once
// The restore journal: what each device was bound to before kvmgpu moved it to vfio-pci, on
// disk before the first sysfs write so that `kvmgpu restore` can undo a launch whose launcher
// was killed with -9.
//
// Layout: one file per VM, RUNTIME/journal/<vm>.json:
//   {"vm": "win11", "pid": 1234, "devices": [
//     {"address": "0000:01:00.0", "driver": "nouveau", "driver_override": null}, ...]}
// "driver" null: the device had no driver. Entries are in binding order; restore walks them in
// reverse. Every update writes a temporary file in the same directory, fsyncs it, renames it
// over the journal and fsyncs the directory, so a crash leaves the old or the new journal,
// never a torn one. The file is removed when its last entry is dropped.
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/pci_address.hpp"

namespace kvmgpu::host {

struct JournalEntry {
    util::PciAddress address;
    std::optional<std::string> driver;           // the original driver; nullopt: none
    std::optional<std::string> driver_override;  // the original override; nullopt: "(null)"
    bool operator==(const JournalEntry&) const = default;
};

struct Journal {
    std::string vm;
    pid_t pid = 0;  // the launcher that wrote it
    std::vector<JournalEntry> devices;

    const JournalEntry* find(const util::PciAddress& address) const;
};

// RUNTIME/journal/<vm>.json. Throws std::invalid_argument for a VM name that is not a plain
// file name (empty, ".", "..", contains '/').
std::filesystem::path journal_path(const std::filesystem::path& runtime_dir, const std::string& vm);

// Nullopt when the VM has no journal. Throws std::runtime_error naming the file when it exists
// but cannot be read or parsed: restore must not guess.
std::optional<Journal> read_journal(const std::filesystem::path& runtime_dir, const std::string& vm);

// Atomically replaces the VM's journal (temp file, fsync, rename, fsync of the directory);
// removes it when `journal.devices` is empty. Throws std::system_error naming the path.
void write_journal(const std::filesystem::path& runtime_dir, const Journal& journal);

// Names of the VMs that have a journal, sorted: what `kvmgpu restore --all` walks.
std::vector<std::string> list_journals(const std::filesystem::path& runtime_dir);

void to_json(nlohmann::json& j, const JournalEntry& entry);
void from_json(const nlohmann::json& j, JournalEntry& entry);
void to_json(nlohmann::json& j, const Journal& journal);
void from_json(const nlohmann::json& j, Journal& journal);

}  // namespace kvmgpu::host
