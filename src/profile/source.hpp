#pragma once
// A profile's bytes before the TOML parser sees them. toml++ 3.3 (Debian 12) trusts its input
// more than a launcher that runs as root can: a key of tens of thousands of dotted parts recurses
// until the stack overflows, and some invalid UTF-8 reaches undefined behaviour. So the reader
// accepts only what a profile can reasonably be, and says which line is not:
//
//   - a regular file (not a directory, FIFO, device or socket) of at most kMaxProfileBytes;
//   - lines of at most kMaxLineBytes, which bounds how deep one dotted key or table header
//     can nest (a key cannot span lines);
//   - valid UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF, no
//     sequence cut short);
//   - no non-ASCII character where toml++ 3.3 would test it for whitespace, which is undefined
//     behaviour there (profile/toml_guard.hpp).
//
// The loader then parses on a thread of its own with kParserStackBytes of stack, so the
// margin does not depend on the caller's stack or `ulimit -s`.
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "profile/diagnostic.hpp"

namespace kvmgpu::profile {

inline constexpr std::size_t kMaxProfileBytes = std::size_t{1} << 20;  // 1 MiB
inline constexpr std::size_t kMaxLineBytes = 4096;
inline constexpr std::size_t kParserStackBytes = std::size_t{8} << 20;

// The file's contents, or nullopt after one diagnostic naming the file and why it was refused
// (cannot be opened, not a regular file, larger than kMaxProfileBytes). Never blocks on a FIFO
// and never reads more than kMaxProfileBytes + 1 bytes.
std::optional<std::string> read_profile_file(const std::filesystem::path& file, Diagnostics& out);

// Whether `text` is within the limits above; otherwise a diagnostic (with line and column)
// for the first problem found, labelled `label`.
bool check_profile_text(std::string_view text, const std::string& label, Diagnostics& out);

}  // namespace kvmgpu::profile
