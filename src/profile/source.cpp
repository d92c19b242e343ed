#include "profile/source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "profile/toml_guard.hpp"
#include "util/fd.hpp"

namespace kvmgpu::profile {
namespace {

std::string kind_of(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

void refuse(const std::filesystem::path& file, const std::string& why, Diagnostics& out) {
    out.push_back({Severity::error, file.string(), {}, "", why});
}

std::nullopt_t not_regular(const std::filesystem::path& file, mode_t mode, Diagnostics& out) {
    refuse(file, "the profile is " + kind_of(mode) + ", not a regular file; give the path of a .toml file", out);
    return std::nullopt;
}

std::string too_large(std::size_t bytes_or_more, bool exact) {
    return "the profile is " + std::string(exact ? "" : "more than ") + std::to_string(bytes_or_more) +
           " bytes; kvmgpu reads profiles of at most " + std::to_string(kMaxProfileBytes) +
           " bytes (1 MiB): check that this is the profile you meant";
}

// The length of the UTF-8 sequence starting at text[i] (1 to 4), or 0 when it is not a valid
// one: RFC 3629's table, so overlong forms, surrogates and values above U+10FFFF are refused.
std::size_t utf8_length(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
    const auto left = text.size() - i;
    const auto in = [](unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; };
    const unsigned char b0 = byte(0);
    if (b0 < 0x80) return 1;
    if (in(b0, 0xc2, 0xdf)) return left >= 2 && in(byte(1), 0x80, 0xbf) ? 2 : 0;
    if (in(b0, 0xe0, 0xef)) {
        if (left < 3) return 0;
        const unsigned char lo = b0 == 0xe0 ? 0xa0 : 0x80;
        const unsigned char hi = b0 == 0xed ? 0x9f : 0xbf;
        return in(byte(1), lo, hi) && in(byte(2), 0x80, 0xbf) ? 3 : 0;
    }
    if (in(b0, 0xf0, 0xf4)) {
        if (left < 4) return 0;
        const unsigned char lo = b0 == 0xf0 ? 0x90 : 0x80;
        const unsigned char hi = b0 == 0xf4 ? 0x8f : 0xbf;
        return in(byte(1), lo, hi) && in(byte(2), 0x80, 0xbf) && in(byte(3), 0x80, 0xbf) ? 4 : 0;
    }
    return 0;
}

// Line and column (in characters, from 1) of a byte offset into valid UTF-8 text.
std::pair<std::uint32_t, std::uint32_t> position_of(std::string_view text, std::size_t offset) {
    std::uint32_t line = 1, column = 1;
    for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) {
            ++column;
        }
    }
    return {line, column};
}

}  // namespace

std::optional<std::string> read_profile_file(const std::filesystem::path& file, Diagnostics& out) {
    // O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one.
    util::Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    struct stat st {};
    if (!fd) {
        const int error = errno;
        // A socket cannot be opened at all (ENXIO); say what it is rather than why open failed.
        if (::stat(file.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return not_regular(file, st.st_mode, out);
        refuse(file, "cannot read the profile: " + std::string(std::strerror(error)) +
                         "; check the path (kvmgpu run PROFILE.toml)", out);
        return std::nullopt;
    }
    if (::fstat(fd.get(), &st) != 0) {
        refuse(file, "cannot read the profile: " + std::string(std::strerror(errno)), out);
        return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) return not_regular(file, st.st_mode, out);
    if (static_cast<std::uint64_t>(st.st_size) > kMaxProfileBytes) {
        refuse(file, too_large(static_cast<std::size_t>(st.st_size), true), out);
        return std::nullopt;
    }
    // The buffer starts at the size fstat gave plus the byte that shows growth, not at the limit:
    // zeroing 1 MiB for a 1 KiB profile was most of a launch's profile load. The file may grow
    // while it is read: the buffer then doubles, up to one byte past the limit to see that.
    std::string text(static_cast<std::size_t>(st.st_size) + 1, '\0');
    std::size_t got = 0;
    while (true) {
        if (got == text.size()) {
            if (text.size() > kMaxProfileBytes) break;
            text.resize(std::min(text.size() * 2, kMaxProfileBytes + 1));
        }
        const auto n = ::read(fd.get(), text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            refuse(file, "cannot read the profile: " + std::string(std::strerror(errno)), out);
            return std::nullopt;
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    if (got > kMaxProfileBytes) {
        refuse(file, too_large(kMaxProfileBytes, false), out);
        return std::nullopt;
    }
    text.resize(got);
    return text;
}

bool check_profile_text(std::string_view text, const std::string& label, Diagnostics& out) {
    const auto problem = [&](std::uint32_t line, std::uint32_t column, std::string message) {
        out.push_back({Severity::error, label, {line, column}, "", std::move(message)});
        return false;
    };
    if (text.size() > kMaxProfileBytes) return problem(0, 0, too_large(text.size(), true));
    std::uint32_t line = 1, column = 1;
    std::size_t line_start = 0;
    for (std::size_t i = 0; i < text.size();) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
            line_start = ++i;
            continue;
        }
        const auto length = utf8_length(text, i);
        if (length == 0) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(text[i]));
            return problem(line, column,
                           "byte " + std::string(hex) +
                               " is not valid UTF-8 (a profile is UTF-8 text); save the file as UTF-8");
        }
        i += length;
        ++column;
        if (i - line_start > kMaxLineBytes)
            return problem(line, 1,
                           "line " + std::to_string(line) + " is longer than " + std::to_string(kMaxLineBytes) +
                               " bytes; kvmgpu reads lines of at most that (split a long array over several lines)");
    }
    if (const auto hazard = find_non_ascii_toml_hazard(text)) {
        const auto [at_line, at_column] = position_of(text, hazard->offset);
        return problem(at_line, at_column, hazard->message);
    }
    return true;
}

}  // namespace kvmgpu::profile
