#pragma once
// The toml++ loader: TOML syntax and the profile's shape (known tables and keys, value types,
// enum words, sizes, addresses). No toml++ type leaves this file's .cpp.
#include <filesystem>
#include <string>
#include <string_view>

#include "profile/diagnostic.hpp"
#include "profile/profile.hpp"

namespace kvmgpu::profile {

struct LoadResult {
    Profile profile;
    Diagnostics diagnostics;  // every problem found, in file order
};

// Reads and loads `file`. A file that cannot be read is one diagnostic.
LoadResult load_file(const std::filesystem::path& file);

// Loads `text` as if it were the contents of `file` (relative paths resolve against
// `file`'s directory; the default name is `file`'s stem).
LoadResult load_text(std::string_view text, const std::filesystem::path& file);

}  // namespace kvmgpu::profile
