// libFuzzer target: one line from a control-socket client (app/control_protocol.hpp). A line
// either fails with BadRequest or parses; a parsed request written back with request_json()
// must parse to the same request. Then the bytes as a status reply a client reads (VmStatus
// from JSON). A crash, a sanitizer report or a request that does not survive the round trip is
// a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "app/control_protocol.hpp"

using namespace kvmgpu;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string line(reinterpret_cast<const char*>(data), size);
    try {
        const auto parsed = app::parse_request(line);
        const auto again = app::parse_request(app::request_json(parsed.request, parsed.id).dump());
        if (app::request_json(again.request, again.id) != app::request_json(parsed.request, parsed.id)) std::abort();
    } catch (const app::BadRequest&) {
    }
    const auto reply = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (reply.is_object()) {
        try {
            (void)reply.get<app::VmStatus>();
        } catch (const json::exception&) {
        }
    }
    return 0;
}
