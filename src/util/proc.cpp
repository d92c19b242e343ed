#include "util/proc.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>

#include "util/fd.hpp"
#include "util/text.hpp"

namespace kvmgpu::util {
namespace {

struct Stat {
    char state = 0;
    std::uint64_t start_time = 0;
};

// /proc/PID/stat, read with one open and read: it is asked often (every lock, every liveness
// check), and a stream cost more than the kernel's work.
std::optional<std::string> read_stat_line(pid_t pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    std::string line(2048, '\0');  // twice the longest line: a 64-byte comm and 52 numbers
    ssize_t n;
    do n = ::read(fd.get(), line.data(), line.size());
    while (n < 0 && errno == EINTR);
    if (n <= 0) return std::nullopt;
    line.resize(static_cast<std::size_t>(n));
    return line;
}

std::optional<Stat> read_stat(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    const auto line = read_stat_line(pid);
    if (!line) return std::nullopt;
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    const auto close = line->rfind(')');
    if (close == std::string::npos) return std::nullopt;
    // Fields 3 (the state) to 22 (the start time) follow it.
    const auto fields = split_words(std::string_view(*line).substr(close + 1));
    if (fields.size() < 20 || fields[0].size() != 1) return std::nullopt;
    Stat s;
    s.state = fields[0][0];
    const auto start = fields[19];
    const auto [end, error] = std::from_chars(start.data(), start.data() + start.size(), s.start_time);
    if (error != std::errc() || end != start.data() + start.size()) return std::nullopt;
    return s;
}

}  // namespace

std::optional<std::uint64_t> process_start_time(pid_t pid) {
    auto s = read_stat(pid);
    if (!s) return std::nullopt;
    return s->start_time;
}

bool process_alive(pid_t pid, std::optional<std::uint64_t> start_time) {
    auto s = read_stat(pid);
    if (!s || s->state == 'Z' || s->state == 'X') return false;
    return !start_time || *start_time == s->start_time;
}

}  // namespace kvmgpu::util
