#pragma once
// The control socket's wire format, shared by the supervisor (the server) and every kvmgpu
// command that talks to it (the client): RUNTIME/NAME/control.sock carries one JSON object per
// line in each direction, replies in the order of the requests. docs/commands.md and
// docs/json.md document it for people; this file is its one definition in code.
//
//   request                                   reply
//   {"execute": CMD, "arguments": {...}}      QEMU's own reply ({"return": ...} | {"error": ...})
//   {"kvmgpu": "status"}                      {"return": VmStatus}
//   {"kvmgpu": "stop", "timeout": S,          {"return": outcome} once the VM has ended and its
//    "force": B}                              devices are back (see StoppedEvent)
//   {"kvmgpu": "events"}                      {"return": {}}, then one event object per line
//
// Every request may carry "id" (any JSON value); its reply carries the same "id". Every request
// may carry "deadline": CLOCK_MONOTONIC in whole milliseconds; a request the supervisor reads
// after it is answered with an error and not carried out (kvmgpu's own commands always send one,
// so a request to a supervisor that was stopped or hung does not happen later, after the command
// gave up and fell back to QEMU's rescue socket). A request that cannot be understood gets
// {"error": {"class": "GenericError", "desc": ...}} and the connection stays usable.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmgpu::app {

struct StatusRequest {};
struct StopRequest {
    std::optional<std::chrono::seconds> timeout;  // nullopt: the supervisor's --stop-timeout
    bool force = false;
};
struct EventsRequest {};
// A QMP command for QEMU, passed on as it is ({"execute": ..., "arguments": ...}).
struct QmpRequest {
    nlohmann::json command;
};
using ControlRequest = std::variant<StatusRequest, StopRequest, EventsRequest, QmpRequest>;

// How long the supervisor waits for QEMU's run state before it answers a status with
// "unknown" and the reason (a stopped or hung QEMU).
inline constexpr std::chrono::milliseconds kStatusQueryTimeout{3000};

// The longest a stop may give the guest: a day. Longer is a typo, and would overflow timers.
inline constexpr std::chrono::seconds kMaxStopTimeout{86400};

// A request that cannot be understood; what() is the reply's "desc", `id` the request's id
// when it had one that could be read.
struct BadRequest : std::runtime_error {
    explicit BadRequest(const std::string& desc, nlohmann::json request_id = nullptr)
        : std::runtime_error(desc), id(std::move(request_id)) {}
    nlohmann::json id;
};

// The clock of "deadline": CLOCK_MONOTONIC, which every process of the host shares.
using ControlClock = std::chrono::steady_clock;

struct ParsedRequest {
    ControlRequest request;
    nlohmann::json id;  // null when the request had none
    std::optional<ControlClock::time_point> deadline;
};

// One line from a client. Throws BadRequest naming what is wrong (not JSON, not an object, an
// unknown request, a timeout that is not a whole number of seconds in [0, kMaxStopTimeout], a
// deadline that is not a whole number of milliseconds). A QMP command loses its "deadline".
ParsedRequest parse_request(const std::string& line);
// The line a client sends (without "\n").
nlohmann::json request_json(const ControlRequest& request, const nlohmann::json& id = nullptr,
                            std::optional<ControlClock::time_point> deadline = std::nullopt);

// What `kvmgpu status` shows: from the supervisor, or from the VM directory when there is none.
struct VmStatus {
    std::string name;
    std::string status;  // QEMU's run state ("running", "paused", ...), "starting" or "unknown"
    std::optional<bool> running;
    pid_t qemu_pid = 0;
    pid_t supervisor_pid = 0;
    std::vector<std::string> devices;
    bool supervised = false;
    bool stopping = false;
    std::string liveness;  // without a supervisor: "unsupervised" or "starting"
    std::string error;     // why the status is "unknown"
    std::int64_t started_at = 0;  // unix seconds when `kvmgpu run` began the launch; 0: unknown
    unsigned restarts = 0;        // starts of this VM since the host booted, before this one
};

// Seconds since `started_at` (unix seconds), never negative.
std::int64_t uptime_seconds(std::int64_t started_at);
void to_json(nlohmann::json& j, const VmStatus& s);
void from_json(const nlohmann::json& j, VmStatus& s);

// {"return": value, "id": id} and {"error": {"class": "GenericError", "desc": desc}, "id": id};
// "id" only when not null.
nlohmann::json return_reply(nlohmann::json value, const nlohmann::json& id);
nlohmann::json error_reply(const std::string& desc, const nlohmann::json& id = nullptr);

}  // namespace kvmgpu::app
