// libFuzzer target: bytes as QEMU could send them on a QMP socket, read line by line the way the
// client's read loop does (qmp/message.hpp): each line parsed, then taken as a greeting, an event
// or a reply. Exceptions the client catches (from a malformed greeting) are
// expected; a crash or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string_view>
#include <variant>

#include "qmp/message.hpp"

using namespace kvmgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    bool greeted = false;
    while (!input.empty()) {
        const auto nl = input.find('\n');
        const auto line = input.substr(0, nl == std::string_view::npos ? input.size() : nl + 1);
        input.remove_prefix(line.size());
        auto parsed = qmp::parse_line(line);
        auto* message = std::get_if<qmp::Json>(&parsed);
        if (!message) continue;
        if (message->contains("QMP")) {
            try {
                const auto greeting = qmp::parse_greeting(*message);
                greeted = greeting.major >= 0 || !greeted;
            } catch (const std::exception&) {  // as Session::handle_greeting
            }
        } else if (message->contains("event")) {
            const auto event = qmp::make_event(*message);
            (void)event.data.dump();
        } else if (const auto id = qmp::reply_id(*message)) {
            (void)*id;
        }
    }
    return 0;
}
