#include "cli/quick_args.hpp"

#include <array>
#include <charconv>
#include <string_view>
#include <utility>

namespace kvmgpu::cli {
namespace {

constexpr std::array kQuickCommands{"status", "pause", "resume", "reset", "stop"};

bool is_quick_command(std::string_view word) {
    for (std::string_view c : kQuickCommands)
        if (c == word) return true;
    return false;
}

// Splits "--key=value" or "--key" + the next word. Nullopt when `arg` is not an option with a
// value here or the value is missing, empty or looks like an option.
std::optional<std::string> take_value(const std::vector<std::string>& args, std::size_t& i, std::string_view key) {
    const std::string_view arg = args[i];
    std::string value;
    if (arg == key) {
        if (i + 1 >= args.size()) return std::nullopt;
        value = args[++i];
    } else if (arg.size() > key.size() && arg.starts_with(key) && arg[key.size()] == '=') {
        value = std::string(arg.substr(key.size() + 1));
    } else {
        return std::nullopt;
    }
    if (value.empty() || value.front() == '-') return std::nullopt;
    return value;
}

bool set_once(std::optional<std::string>& slot, std::optional<std::string> value) {
    if (slot || !value) return false;
    slot = std::move(value);
    return true;
}

std::optional<unsigned> parse_seconds(const std::string& text) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// One option word (and its value); false when it is not one the quick path takes.
bool take_option(const std::vector<std::string>& args, std::size_t& i, QuickCommand& q, bool& seen_json,
                 bool& seen_force, std::optional<std::string>& timeout) {
    const std::string_view arg = args[i];
    if (arg == "--json") return !std::exchange(seen_json, true);
    if (arg == "--force") return !std::exchange(seen_force, true);
    for (auto [key, slot] : {std::pair{"--runtime-dir", &q.runtime_dir}, std::pair{"--state-dir", &q.state_dir},
                             std::pair{"--host-root", &q.host_root}, std::pair{"--timeout", &timeout}})
        if (arg == key || arg.starts_with(std::string(key) + "=")) return set_once(*slot, take_value(args, i, key));
    return false;
}

}  // namespace

std::optional<QuickCommand> parse_quick(const std::vector<std::string>& args) {
    QuickCommand q;
    std::vector<std::string> words;
    bool seen_json = false, seen_force = false;
    std::optional<std::string> timeout;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i].starts_with("-")) {
            // Before the command word the full parser knows only the global options: a
            // `--timeout 5` there would make "5" the command.
            if (words.empty() && (args[i].starts_with("--timeout") || args[i] == "--force")) return std::nullopt;
            if (!take_option(args, i, q, seen_json, seen_force, timeout)) return std::nullopt;
        } else {
            words.push_back(args[i]);
        }
    }
    if (words.size() != 2 || !is_quick_command(words[0])) return std::nullopt;
    q.command = words[0];
    q.name = words[1];
    q.json = seen_json;
    if (q.command != "stop" && (seen_force || timeout)) return std::nullopt;
    q.force = seen_force;
    if (timeout) {
        q.timeout = parse_seconds(*timeout);
        if (!q.timeout) return std::nullopt;
    }
    return q;
}

}  // namespace kvmgpu::cli
