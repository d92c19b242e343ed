// The control socket's wire format: what the client sends is what the server understands, and
// every malformed request gets a clear error, never a crash or silence.
#include <catch2/catch.hpp>

#include "app/control_protocol.hpp"

using namespace kvmgpu::app;
using nlohmann::json;
using std::chrono::seconds;

namespace {

ParsedRequest round_trip(const ControlRequest& request, const json& id) {
    return parse_request(request_json(request, id).dump());
}

}  // namespace

TEST_CASE("every control request survives the round trip through its wire form with its id", "[app][control]") {
    for (const json& id : {json(nullptr), json(7), json("abc"), json::object({{"k", 1}})}) {
        INFO(id.dump());
        CHECK(std::holds_alternative<StatusRequest>(round_trip(StatusRequest{}, id).request));
        CHECK(std::holds_alternative<EventsRequest>(round_trip(EventsRequest{}, id).request));
        CHECK(round_trip(StatusRequest{}, id).id == id);

        const auto stop = round_trip(StopRequest{seconds(30), true}, id);
        REQUIRE(std::holds_alternative<StopRequest>(stop.request));
        CHECK(std::get<StopRequest>(stop.request).timeout == seconds(30));
        CHECK(std::get<StopRequest>(stop.request).force);
        CHECK(stop.id == id);

        const auto default_stop = round_trip(StopRequest{}, id);
        CHECK_FALSE(std::get<StopRequest>(default_stop.request).timeout);
        CHECK_FALSE(std::get<StopRequest>(default_stop.request).force);

        const json command = {{"execute", "query-pci"}, {"arguments", {{"x", 1}}}};
        const auto qmp = round_trip(QmpRequest{command}, id);
        REQUIRE(std::holds_alternative<QmpRequest>(qmp.request));
        // The command is passed on to QEMU as it came, its id included.
        json expected = command;
        if (!id.is_null()) expected["id"] = id;
        CHECK(std::get<QmpRequest>(qmp.request).command == expected);
    }
}

TEST_CASE("malformed control requests are refused with a reason and keep their id when they have one", "[app][control]") {
    struct Case { std::string line; std::string fragment; json id; };
    for (const auto& c : {
             Case{"not json", "the request is not JSON", nullptr},
             Case{"\"\\xff\"", "the request is not JSON", nullptr},
             Case{"[1,2]", "a request is a JSON object", nullptr},
             Case{R"({"kvmgpu": "reboot", "id": 3})", "unknown request", 3},
             Case{R"({"id": "x"})", "unknown request", "x"},
             Case{R"({"kvmgpu": 5})", "unknown request", nullptr},
             Case{R"({"kvmgpu": "stop", "timeout": 1e300, "id": 1})", "\"timeout\" is a whole number of seconds", 1},
             Case{R"({"kvmgpu": "stop", "timeout": 9223372036854775807})", "from 0 to 86400", nullptr},
             Case{R"({"kvmgpu": "stop", "timeout": -1})", "from 0 to 86400", nullptr},
             Case{R"({"kvmgpu": "stop", "timeout": "60"})", "\"timeout\"", nullptr},
             Case{R"({"kvmgpu": "stop", "force": "yes"})", "\"force\" is true or false", nullptr},
             Case{R"({"kvmgpu": "stop", "timeout": 18446744073709551615})", "from 0 to 86400", nullptr},
             Case{R"({"kvmgpu": "status", "deadline": "soon", "id": 2})", "\"deadline\" is a whole number of milliseconds", 2},
             Case{R"({"kvmgpu": "status", "deadline": -5})", "\"deadline\"", nullptr},
             Case{R"({"kvmgpu": "status", "deadline": 1.5})", "\"deadline\"", nullptr},
             Case{R"({"kvmgpu": "status", "deadline": 18446744073709551615})", "\"deadline\"", nullptr},
             Case{R"({"execute": "stop", "deadline": 9223372036854775807, "id": 4})", "\"deadline\"", 4},
         }) {
        INFO(c.line);
        try {
            parse_request(c.line);
            FAIL("accepted");
        } catch (const BadRequest& e) {
            CHECK(std::string(e.what()).find(c.fragment) != std::string::npos);
            CHECK(e.id == c.id);
        }
    }
}

TEST_CASE("a stop timeout of a whole day is the most a request may ask for", "[app][control]") {
    const auto day = parse_request(R"({"kvmgpu": "stop", "timeout": 86400})");
    CHECK(std::get<StopRequest>(day.request).timeout == kMaxStopTimeout);
    CHECK_THROWS_AS(parse_request(R"({"kvmgpu": "stop", "timeout": 86401})"), BadRequest);
}

TEST_CASE("a VM status survives the round trip through JSON", "[app][control]") {
    VmStatus s;
    s.name = "win11";
    s.status = "paused";
    s.running = false;
    s.qemu_pid = 42;
    s.supervisor_pid = 41;
    s.devices = {"0000:01:00.0", "0000:01:00.1"};
    s.supervised = true;
    s.stopping = true;
    const auto back = json(s).get<VmStatus>();
    CHECK(back.name == s.name);
    CHECK(back.status == s.status);
    CHECK(back.running == s.running);
    CHECK(back.qemu_pid == 42);
    CHECK(back.supervisor_pid == 41);
    CHECK(back.devices == s.devices);
    CHECK(back.supervised);
    CHECK(back.stopping);
    CHECK(json(s)["stopping"] == true);

    VmStatus unsupervised;
    unsupervised.name = "x";
    unsupervised.status = "starting";
    unsupervised.liveness = "starting";
    const json j = unsupervised;
    CHECK_FALSE(j.contains("running"));
    CHECK_FALSE(j.contains("stopping"));
    CHECK(j["liveness"] == "starting");
    CHECK(j.get<VmStatus>().liveness == "starting");
}

TEST_CASE("replies carry the request's id only when it had one", "[app][control]") {
    CHECK(return_reply(json::object(), nullptr) == json{{"return", json::object()}});
    CHECK(return_reply(1, "a") == json{{"return", 1}, {"id", "a"}});
    CHECK(error_reply("no", 2) == json{{"error", {{"class", "GenericError"}, {"desc", "no"}}}, {"id", 2}});
}

TEST_CASE("a request's deadline is read on CLOCK_MONOTONIC and never reaches QEMU", "[app][control]") {
    const auto at = ControlClock::time_point(std::chrono::milliseconds(123456));
    const auto status = parse_request(request_json(StatusRequest{}, 1, at).dump());
    CHECK(status.deadline == at);
    const auto qmp = parse_request(R"({"execute": "query-status", "deadline": 123456, "id": 9})");
    CHECK(qmp.deadline == at);
    CHECK(std::get<QmpRequest>(qmp.request).command == json{{"execute", "query-status"}, {"id", 9}});
    CHECK_FALSE(parse_request(R"({"kvmgpu": "status"})").deadline);
}
