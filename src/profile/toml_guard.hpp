#pragma once
// Where a profile's non-ASCII text would reach undefined behaviour in toml++ 3.3 (Debian 12).
//
// toml++ 3.3 classifies some code points as whitespace with a generated table whose first range
// (U+00A1 to U+0499) ends in `__builtin_unreachable()`: any such character it tests for
// whitespace is undefined behaviour (found by fuzz/profile_fuzz.cpp: "з" or "¸" outside a
// string). It tests characters for whitespace everywhere outside strings and comments, and in a
// """ string right after a backslash and after a line-ending backslash. So, before the parser
// runs, a small TOML lexer looks for a non-ASCII character in exactly those places:
//
//   - outside strings and comments, where TOML 1.0 allows only ASCII anyway (bare keys,
//     numbers, dates, booleans and punctuation are ASCII; a non-ASCII key must be quoted);
//   - in a multi-line basic string ("""), right after a backslash, or as the first
//     non-whitespace character after a line-ending backslash (valid TOML, refused here with
//     the way round it).
//
// Everywhere else (inside "…", '…', '''…''', comments) any valid UTF-8 is left to the parser.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace kvmgpu::profile {

struct UnsafeText {
    std::size_t offset = 0;  // byte offset of the offending character in the text
    std::string message;     // what is wrong there and how to write it instead
};

// The first place in `text` (valid UTF-8) where toml++ would classify a non-ASCII character,
// or nullopt when there is none.
std::optional<UnsafeText> find_non_ascii_toml_hazard(std::string_view text);

}  // namespace kvmgpu::profile
