#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvmgpu::util {

// Parses a size with an optional binary suffix: "16G", "512M", "64K", "1T", "4096" (bytes).
// Suffixes are powers of 1024; "16GiB"/"16GB" are accepted as "16G". Nullopt on anything else
// or on overflow.
std::optional<std::uint64_t> parse_size(std::string_view text);

// The value of one hexadecimal digit, either case.
std::optional<unsigned> hex_digit(char c);

// "16G" for 16 GiB; the largest unit that divides the value exactly.
std::string format_size(std::uint64_t bytes);

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, if it is close enough to be a plausible typo.
std::optional<std::string> closest_match(std::string_view word,
                                         std::span<const std::string_view> candidates);

// The first ASCII control character (< 0x20 or 0x7f) in `text`, if any.
std::optional<char> find_control_char(std::string_view text);

// Quotes one word for a POSIX shell so that copy-pasting the result gives back `word` exactly.
std::string shell_quote(std::string_view word);
std::string shell_join(const std::vector<std::string>& argv);

// The words of `text`, split at spaces, tabs and newlines; views into `text`. For the kernel's
// small tables (a sysfs `resource` file, /proc/PID/stat), where a stream per line cost more than
// the reading.
std::vector<std::string_view> split_words(std::string_view text);
// The first word of `text`, which is advanced past it; empty when only blanks are left.
std::string_view next_word(std::string_view& text);

// Whether a and b are equal, in a time that depends on their lengths only, not on where they
// first differ: for comparing a secret (a URL's token) with what a client sent.
bool constant_time_equal(std::string_view a, std::string_view b);

// The parts with `separator` between them: join({"a", "b"}, ", ") is "a, b".
std::string join(const std::vector<std::string>& parts, std::string_view separator);

// `"name"` with the inner quotes and backslashes escaped as in a TOML basic string, and
// control characters shown as \n, \t or \u00XX: safe to print in an error message.
std::string quoted(std::string_view text);

}  // namespace kvmgpu::util
