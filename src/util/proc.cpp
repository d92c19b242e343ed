#include "util/proc.hpp"

#include <fstream>
#include <sstream>
#include <string>

namespace kvmgpu::util {
namespace {

struct Stat {
    char state = 0;
    std::uint64_t start_time = 0;
};

std::optional<Stat> read_stat(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!in || !std::getline(in, line)) return std::nullopt;
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(line.substr(close + 2));
    Stat s;
    fields >> s.state;
    std::string skip;
    for (int field = 4; field < 22; ++field) fields >> skip;  // fields 4..21
    if (!(fields >> s.start_time)) return std::nullopt;
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
