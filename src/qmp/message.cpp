#include "qmp/message.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "util/text.hpp"

namespace kvmgpu::qmp {

Line parse_line(std::string_view line) {
    if (line.find_first_not_of(" \t\r\n") == std::string_view::npos) return BlankLine{};
    Json message = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (!message.is_discarded() && message.is_object()) return message;
    std::string excerpt(line.substr(0, std::min<std::size_t>(line.size(), 80)));
    while (!excerpt.empty() && (excerpt.back() == '\n' || excerpt.back() == '\r')) excerpt.pop_back();
    return "that is not a JSON object: " + util::quoted(excerpt);
}

namespace {

// The integer `member` of `object` if it is one within [min, max]; nullopt otherwise (absent, a
// float, a string, out of range), so that no conversion can overflow.
std::optional<std::int64_t> integer_member(const Json& object, const char* member, std::int64_t min,
                                           std::int64_t max) {
    const auto it = object.find(member);
    if (it == object.end()) return std::nullopt;
    if (it->is_number_unsigned()) {
        const auto v = it->get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(max)) return std::nullopt;
        return static_cast<std::int64_t>(v);
    }
    if (!it->is_number_integer()) return std::nullopt;
    const auto v = it->get<std::int64_t>();
    if (v < min || v > max) return std::nullopt;
    return v;
}

// QEMU's {"seconds": S, "microseconds": U} in microseconds. A missing member counts as 0; one
// that is not an integer or is out of range makes the whole timestamp 0 (so the product cannot
// overflow). QEMU sends -1, -1 when it has no clock.
std::int64_t timestamp_us(const Json& timestamp) {
    constexpr std::int64_t kMaxSeconds = std::numeric_limits<std::int64_t>::max() / 1'000'000 - 1;
    const auto seconds = timestamp.contains("seconds") ? integer_member(timestamp, "seconds", 0, kMaxSeconds) : 0;
    const auto microseconds =
        timestamp.contains("microseconds") ? integer_member(timestamp, "microseconds", 0, 999'999) : 0;
    if (!seconds || !microseconds) return 0;
    return *seconds * 1'000'000 + *microseconds;
}

// One of the version's numbers; std::out_of_range when missing, std::invalid_argument when it
// is not an integer from 0 to INT_MAX (a float would overflow the conversion to int).
int version_number(const Json& qemu, const char* member) {
    if (!qemu.contains(member)) throw std::out_of_range(std::string("no \"") + member + "\" in the version");
    const auto n = integer_member(qemu, member, 0, std::numeric_limits<int>::max());
    if (!n) throw std::invalid_argument(std::string("\"") + member + "\" is not a version number");
    return static_cast<int>(*n);
}

}  // namespace

Greeting parse_greeting(const Json& message) {
    Greeting greeting;
    const Json& qmp = message.at("QMP");
    const Json& version = qmp.at("version");
    const Json& qemu = version.at("qemu");
    greeting.major = version_number(qemu, "major");
    greeting.minor = version_number(qemu, "minor");
    greeting.micro = version_number(qemu, "micro");
    if (auto it = version.find("package"); it != version.end() && it->is_string()) {
        greeting.package = it->get<std::string>();
    }
    if (auto it = qmp.find("capabilities"); it != qmp.end()) {
        for (const auto& capability : *it) greeting.capabilities.push_back(capability.get<std::string>());
    }
    greeting.raw = message;
    return greeting;
}

Event make_event(Json& message) {
    Event event;
    event.name = message["event"].is_string() ? message["event"].get<std::string>() : std::string();
    if (auto it = message.find("data"); it != message.end()) event.data = std::move(*it);
    if (auto it = message.find("timestamp"); it != message.end() && it->is_object())
        event.timestamp_us = timestamp_us(*it);
    return event;
}

std::optional<std::uint64_t> reply_id(const Json& message) {
    if (!message.contains("return") && !message.contains("error")) return std::nullopt;
    const auto id = message.find("id");
    if (id == message.end() || !id->is_number_unsigned()) return std::nullopt;
    return id->get<std::uint64_t>();
}

}  // namespace kvmgpu::qmp
