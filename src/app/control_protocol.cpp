#include "app/control_protocol.hpp"

#include <algorithm>
#include <ctime>

namespace kvmgpu::app {
namespace {

using nlohmann::json;

std::chrono::seconds parse_timeout(const json& value) {
    if (!value.is_number_integer() || value.get<std::int64_t>() < 0 ||
        value.get<std::int64_t>() > kMaxStopTimeout.count())
        throw BadRequest("\"timeout\" is a whole number of seconds from 0 to " + std::to_string(kMaxStopTimeout.count()) +
                         ", not " + value.dump());
    return std::chrono::seconds(value.get<std::int64_t>());
}

StopRequest parse_stop(const json& req) {
    StopRequest stop;
    if (req.contains("timeout")) stop.timeout = parse_timeout(req["timeout"]);
    if (req.contains("force")) {
        if (!req["force"].is_boolean()) throw BadRequest("\"force\" is true or false, not " + req["force"].dump());
        stop.force = req["force"].get<bool>();
    }
    return stop;
}

ControlRequest parse_kvmgpu_request(const json& req) {
    const json op = req.value("kvmgpu", json(nullptr));
    if (op == "status") return StatusRequest{};
    if (op == "stop") return parse_stop(req);
    if (op == "events") return EventsRequest{};
    throw BadRequest("unknown request; send a QMP command ({\"execute\": ...}) or "
                     "{\"kvmgpu\": \"status\"|\"stop\"|\"events\"}");
}

std::optional<ControlClock::time_point> parse_deadline(const json& req) {
    if (!req.contains("deadline")) return std::nullopt;
    const json& value = req["deadline"];
    // A clock of milliseconds since boot: a year of uptime is 3.2e10, far from overflow.
    constexpr std::int64_t kMax = std::int64_t{1} << 52;
    if (!value.is_number_integer() || value.get<std::int64_t>() < 0 || value.get<std::int64_t>() > kMax)
        throw BadRequest("\"deadline\" is a whole number of milliseconds of CLOCK_MONOTONIC, not " + value.dump());
    return ControlClock::time_point(std::chrono::milliseconds(value.get<std::int64_t>()));
}

}  // namespace

ParsedRequest parse_request(const std::string& line) {
    json req;
    try {
        req = json::parse(line);
    } catch (const std::exception& e) {
        throw BadRequest(std::string("the request is not JSON: ") + e.what());
    }
    if (!req.is_object()) throw BadRequest("a request is a JSON object");
    const json id = req.contains("id") ? req["id"] : json(nullptr);
    try {
        const auto deadline = parse_deadline(req);
        if (req.contains("execute")) {
            req.erase("deadline");
            return {QmpRequest{std::move(req)}, id, deadline};
        }
        return {parse_kvmgpu_request(req), id, deadline};
    } catch (const BadRequest& e) {
        throw BadRequest(e.what(), id);
    }
}

json request_json(const ControlRequest& request, const json& id, std::optional<ControlClock::time_point> deadline) {
    json j = std::visit(
        [](const auto& r) -> json {
            using T = std::decay_t<decltype(r)>;
            if constexpr (std::is_same_v<T, StatusRequest>) return {{"kvmgpu", "status"}};
            if constexpr (std::is_same_v<T, EventsRequest>) return {{"kvmgpu", "events"}};
            if constexpr (std::is_same_v<T, QmpRequest>) return r.command;
            if constexpr (std::is_same_v<T, StopRequest>) {
                json stop = {{"kvmgpu", "stop"}, {"force", r.force}};
                if (r.timeout) stop["timeout"] = r.timeout->count();
                return stop;
            }
        },
        request);
    if (!id.is_null()) j["id"] = id;
    if (deadline)
        j["deadline"] = std::chrono::duration_cast<std::chrono::milliseconds>(deadline->time_since_epoch()).count();
    return j;
}

void to_json(json& j, const VmStatus& s) {
    j = {{"name", s.name},
         {"status", s.status},
         {"qemu_pid", s.qemu_pid},
         {"supervisor_pid", s.supervisor_pid},
         {"devices", s.devices},
         {"supervised", s.supervised}};
    if (s.running) j["running"] = *s.running;
    if (s.supervised) j["stopping"] = s.stopping;
    if (!s.liveness.empty()) j["liveness"] = s.liveness;
    if (!s.error.empty()) j["error"] = s.error;
    if (s.started_at > 0) {
        j["started_at"] = s.started_at;
        j["uptime_seconds"] = uptime_seconds(s.started_at);
    }
    j["restarts"] = s.restarts;
}

std::int64_t uptime_seconds(std::int64_t started_at) {
    return std::max<std::int64_t>(0, static_cast<std::int64_t>(std::time(nullptr)) - started_at);
}

void from_json(const json& j, VmStatus& s) {
    s.name = j.value("name", "");
    s.status = j.value("status", "unknown");
    if (j.contains("running") && j["running"].is_boolean()) s.running = j["running"].get<bool>();
    s.qemu_pid = j.value("qemu_pid", 0);
    s.supervisor_pid = j.value("supervisor_pid", 0);
    s.devices = j.value("devices", std::vector<std::string>{});
    s.supervised = j.value("supervised", false);
    s.stopping = j.value("stopping", false);
    s.liveness = j.value("liveness", "");
    s.error = j.value("error", "");
    s.started_at = j.value("started_at", std::int64_t{0});
    s.restarts = j.value("restarts", 0u);
}

json return_reply(json value, const json& id) {
    json reply = {{"return", std::move(value)}};
    if (!id.is_null()) reply["id"] = id;
    return reply;
}

json error_reply(const std::string& desc, const json& id) {
    json reply = {{"error", {{"class", "GenericError"}, {"desc", desc}}}};
    if (!id.is_null()) reply["id"] = id;
    return reply;
}

}  // namespace kvmgpu::app
