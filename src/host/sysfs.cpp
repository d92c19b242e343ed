#include "host/sysfs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "util/fd.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;

fs::path under(const fs::path& root, const fs::path& path) {
    return path.is_absolute() ? root / path.relative_path() : root / path;
}

std::optional<std::string> read_attr(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream content;
    content << in.rdbuf();
    if (in.bad()) return std::nullopt;
    std::string text = content.str();
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\t' ||
                             text.back() == '\r' || text.back() == '\0'))
        text.pop_back();
    return text;
}

std::optional<std::string> link_basename(const fs::path& link) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(link, ec);
    if (ec) return std::nullopt;
    fs::path name = target.filename();
    if (name.empty()) name = target.parent_path().filename();  // a trailing "/"
    return name.string();
}

std::optional<std::uint64_t> parse_hex(std::string_view text) {
    if (text.starts_with("0x") || text.starts_with("0X")) text.remove_prefix(2);
    if (text.empty() || text.size() > 16) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : text) {
        const auto d = util::hex_digit(c);
        if (!d) return std::nullopt;
        value = value * 16 + *d;
    }
    return value;
}

std::optional<unsigned> parse_dec(std::string_view text) {
    if (text.empty() || text.size() > 9) return std::nullopt;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    return value;
}

std::optional<std::vector<unsigned>> parse_cpu_list(std::string_view text) {
    std::set<unsigned> cpus;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    while (!text.empty()) {
        const auto comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        if (comma != std::string_view::npos && text.empty()) return std::nullopt;  // "0,"
        const auto dash = item.find('-');
        if (dash == std::string_view::npos) {
            auto cpu = parse_dec(item);
            if (!cpu) return std::nullopt;
            cpus.insert(*cpu);
        } else {
            auto first = parse_dec(item.substr(0, dash));
            auto last = parse_dec(item.substr(dash + 1));
            // A range longer than any machine has is malformed input, not a request to allocate.
            if (!first || !last || *first > *last || *last - *first > 65536) return std::nullopt;
            for (unsigned c = *first; c <= *last; ++c) cpus.insert(c);
        }
    }
    return std::vector<unsigned>(cpus.begin(), cpus.end());
}

std::string format_cpu_list(const std::vector<unsigned>& cpus) {
    std::string out;
    for (std::size_t i = 0; i < cpus.size();) {
        std::size_t j = i;
        while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
        if (!out.empty()) out += ',';
        out += std::to_string(cpus[i]);
        if (j > i) out += '-' + std::to_string(cpus[j]);
        i = j + 1;
    }
    return out;
}

std::string errno_text(int error) {
    return std::error_code(error, std::generic_category()).message();
}

int RealSysfsWriter::write(const fs::path& file, std::string_view data) {
    util::Fd fd(::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
    if (!fd) return errno;
    const ssize_t n = ::write(fd.get(), data.data(), data.size());
    if (n < 0) return errno;
    if (static_cast<std::size_t>(n) != data.size()) return EIO;
    // sysfs reports some store errors only at close; util::Fd ignores close's result.
    if (::close(fd.release()) != 0) return errno;
    return 0;
}

}  // namespace kvmgpu::host
