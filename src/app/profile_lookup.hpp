#pragma once
// Profiles by name: a PROFILE argument is a file when it looks like one (it has a '/' or ends in
// ".toml") and otherwise the name of a VM whose profile NAME.toml lies in one of the profile
// directories (Context::profile_dirs: $XDG_CONFIG_HOME/kvmgpu, by default ~/.config/kvmgpu, then
// /etc/kvmgpu for a user; /etc/kvmgpu for root; KVMGPU_PROFILE_PATH replaces the list). The first
// directory that has it wins. The VM a profile found by name defines must carry that name, so that
// `kvmgpu stop NAME` (and systemd's kvmgpu@NAME.service) reach the VM `kvmgpu run NAME` started.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/context.hpp"

namespace kvmgpu::app {

struct FoundProfile {
    std::filesystem::path file;
    std::optional<std::string> name;  // set when found by name
};

// Whether `word` is meant as a file: it contains '/' or ends in ".toml".
bool is_profile_path(std::string_view word);

// `word` as given when it is a path; else NAME.toml from the first profile directory that has it.
// Throws util::BadInput (code "no-profile") for a name that is not a valid VM name or that no
// directory has: the message lists where it looked and how to write one (`kvmgpu init --output`).
FoundProfile find_profile(const Context& ctx, const std::string& word);

// Throws util::BadInput (code "invalid-profile") when a profile found by name defines a VM of
// another name (a `name = "..."` that differs from its file's).
void check_found_name(const FoundProfile& found, const std::string& vm_name);

// `kvmgpu ps --all`: every NAME.toml of the profile directories whose NAME is a valid VM name,
// sorted by name; a name in two directories is the first one's. Unreadable directories are
// skipped (a user may not read /etc/kvmgpu): each adds a line to `warnings`.
struct DefinedVm {
    std::string name;
    std::filesystem::path file;
};
std::vector<DefinedVm> defined_vms(const Context& ctx, std::vector<std::string>& warnings);

}  // namespace kvmgpu::app
