#pragma once
// QMP messages as the client reads them: one JSON object per line, told apart by their members
// (QEMU's qapi/qmp-spec): the greeting {"QMP": ...}, an event {"event": ...}, a reply
// {"return": ...} or {"error": ...} with the id of its command. A pure layer under the client's
// socket (client.hpp), so that everything QEMU's bytes reach can be tested and fuzzed alone.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmgpu::qmp {

using Json = nlohmann::json;

struct Greeting {
    int major = 0;
    int minor = 0;
    int micro = 0;
    std::string package;                    // e.g. "Debian 1:7.2+dfsg-7"
    std::vector<std::string> capabilities;  // offered by QEMU, e.g. {"oob"}; none are enabled
    Json raw;                               // the greeting object as received
};

struct Event {
    std::string name;               // "RESUME", "STOP", "SHUTDOWN", ...
    Json data;                      // the "data" member, or null when absent
    std::int64_t timestamp_us = 0;  // QEMU's wall-clock timestamp in microseconds since the epoch
};

// One line read from QEMU: nothing (a blank line), a JSON object, or why it is neither (a
// protocol violation: the text of the disconnect).
struct BlankLine {};
using Line = std::variant<BlankLine, Json, std::string>;
Line parse_line(std::string_view line);

// The greeting's fields; throws (Json::exception, std::out_of_range, std::invalid_argument: all
// std::exception) when it lacks one or has one of the wrong type or range.
Greeting parse_greeting(const Json& message);
// An event's name, data and timestamp; missing or malformed members read as empty or 0.
Event make_event(Json& message);
// The id of a reply ({"return"} or {"error"}) to one of the client's commands, which are
// unsigned integers; nullopt for anything else.
std::optional<std::uint64_t> reply_id(const Json& message);

}  // namespace kvmgpu::qmp
