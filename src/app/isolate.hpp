#pragma once
// `kvmgpu isolate PROFILE`: hands a dedicated card to vfio-pci from early boot on, by identity,
// through one modprobe.d file (host/boot_config.hpp), and says which steps the user has to take
// (kernel command line, initramfs, reboot). `--undo` removes that file and only that file.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "app/context.hpp"
#include "host/boot_config.hpp"
#include "host/host_model.hpp"
#include "profile/profile.hpp"

namespace kvmgpu::app {

// A step kvmgpu cannot take itself. `id`: "kernel-cmdline", "initramfs", "reboot".
struct IsolateStep {
    std::string id;
    bool needed = true;  // false: already done (the command line has the words)
    std::string text;
};

struct IsolateReport {
    std::filesystem::path file;  // the file, under the host root
    std::string vm;              // empty: an undo that was not given a profile and found no file
    bool undo = false;
    bool dry_run = false;
    // isolate: "written", "unchanged", "would-write"; undo: "removed", "absent", "would-remove".
    std::string outcome;
    host::VfioModprobeConf conf;  // isolate only
    std::string content;          // isolate: the file's bytes
    std::vector<std::string> warnings;
    std::vector<IsolateStep> steps;
};

// The file's configuration for a profile on this host: every device of the profile's bind plan
// (its [[pci]] devices and the other functions of their cards in the same IOMMU group) with
// its identity and driver, and the modules vfio-pci must precede: the drivers bound now and the
// ones known for each device's vendor and class. A [[pci]] device missing from the host, a
// bridge or a chipset function, or a profile without [[pci]] devices is HostInputError.
host::VfioModprobeConf isolation_for(const profile::Profile& profile, const host::HostModel& host);

// What may go wrong at boot with that configuration: devices not in the plan that share an
// identity (ids= takes them too), other vfio-pci ids= settings, a boot VGA.
std::vector<std::string> isolation_warnings(const profile::Profile& profile, const host::HostModel& host,
                                            const host::VfioModprobeConf& conf);

// The steps left to the user, from the host's boot tools and its current command line.
std::vector<IsolateStep> isolation_steps(const host::HostModel& host, bool undo);

// Writes (or, dry, only shows) the file for `profile`. A file there that kvmgpu did not write,
// that was edited, or that isolates another VM is refused (host::ManagedFileRefused), dry or not.
IsolateReport isolate(const profile::Profile& profile, const Context& ctx, bool dry_run);

// Removes the file when it is kvmgpu's and unchanged; `vm` given: only when written for that VM.
IsolateReport isolate_undo(const Context& ctx, const std::optional<std::string>& vm, bool dry_run);

void to_json(nlohmann::json& j, const IsolateStep& step);
void to_json(nlohmann::json& j, const IsolateReport& report);

}  // namespace kvmgpu::app
