#pragma once
// What a VM name may be: 1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit. It names the
// VM's runtime and state directories, its journal and, for `kvmgpu run NAME`, its profile file
// NAME.toml, so it can never be a path, "..", or one of kvmgpu's own '.' entries.
#include <algorithm>
#include <string_view>

namespace kvmgpu::util {

inline constexpr std::size_t kMaxVmName = 64;

constexpr bool valid_vm_name(std::string_view name) {
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
    if (name.empty() || name.size() > kMaxVmName || !alnum(name.front())) return false;
    return std::all_of(name.begin(), name.end(), [&](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

}  // namespace kvmgpu::util
