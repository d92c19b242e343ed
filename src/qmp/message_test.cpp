// The QMP message readers under the client (qmp/message.hpp), on lines a broken or hostile QEMU
// could send. The overflow cases were found by fuzz_qmp (fuzz/corpus/qmp/).
#include <catch2/catch.hpp>

#include "qmp/message.hpp"

using namespace kvmgpu::qmp;

namespace {

Json object(const std::string& line) {
    auto parsed = parse_line(line);
    REQUIRE(std::holds_alternative<Json>(parsed));
    return std::get<Json>(parsed);
}

}  // namespace

TEST_CASE("a line is blank, a JSON object or a protocol violation", "[qmp][message]") {
    CHECK(std::holds_alternative<BlankLine>(parse_line(" \r\n")));
    CHECK(std::get<Json>(parse_line("{\"return\": {}}\r\n")) == Json{{"return", Json::object()}});
    CHECK(std::get<std::string>(parse_line("[1]\r\n")) == "that is not a JSON object: \"[1]\"");
    CHECK(std::get<std::string>(parse_line("{\"a\":\n")).rfind("that is not a JSON object", 0) == 0);
}

TEST_CASE("an event's timestamp that would overflow, or is not an integer, reads as 0", "[qmp][message]") {
    struct Case {
        const char* what;
        const char* timestamp;
        std::int64_t us;
    };
    // clang-format off
    for (const auto& c : {Case{"QEMU's own", R"({"seconds": 1700000000, "microseconds": 5})", 1700000000'000005},
                          Case{"seconds alone", R"({"seconds": 2})", 2'000000},
                          Case{"no clock", R"({"seconds": -1, "microseconds": -1})", 0},
                          Case{"seconds times a million overflow", R"({"seconds": 170000000400000000, "microseconds": 123456})", 0},
                          Case{"seconds beyond int64", R"({"seconds": 18446744073709551615, "microseconds": 0})", 0},
                          Case{"seconds a huge float", R"({"seconds": 1e300, "microseconds": 0})", 0},
                          Case{"microseconds a huge float", R"({"seconds": 1, "microseconds": -1e300})", 0},
                          Case{"microseconds beyond a second", R"({"seconds": 1, "microseconds": 9223372036854775807})", 0},
                          Case{"a string", R"({"seconds": "1", "microseconds": 0})", 0}}) {
        // clang-format on
        DYNAMIC_SECTION(c.what) {
            auto message = object(std::string(R"({"event": "STOP", "timestamp": )") + c.timestamp + "}");
            const auto event = make_event(message);
            CHECK(event.name == "STOP");
            CHECK(event.timestamp_us == c.us);
        }
    }
}

TEST_CASE("a greeting whose version numbers are not small integers is refused", "[qmp][message]") {
    const auto greeting = [](const std::string& major) {
        return object(R"({"QMP": {"version": {"qemu": {"major": )" + major +
                      R"(, "minor": 2, "micro": 0}, "package": "p"}, "capabilities": ["oob"]}})");
    };
    const auto good = parse_greeting(greeting("7"));
    CHECK(good.major == 7);
    CHECK(good.minor == 2);
    CHECK(good.capabilities == std::vector<std::string>{"oob"});
    for (const std::string bad : {"1e300", "-1e300", "4294967296", "-1", "\"7\"", "null"}) {
        DYNAMIC_SECTION(bad) { CHECK_THROWS_AS(parse_greeting(greeting(bad)), std::exception); }
    }
    CHECK_THROWS_AS(parse_greeting(object(R"({"QMP": {"version": {"qemu": {"minor": 2, "micro": 0}}}})")),
                    std::exception);
}

TEST_CASE("only an unsigned integer id of a reply is the client's", "[qmp][message]") {
    CHECK(reply_id(object(R"({"return": {}, "id": 7})")) == 7u);
    CHECK(reply_id(object(R"({"error": {"class": "x", "desc": "y"}, "id": 8})")) == 8u);
    CHECK_FALSE(reply_id(object(R"({"return": {}, "id": -1})")));
    CHECK_FALSE(reply_id(object(R"({"return": {}, "id": "7"})")));
    CHECK_FALSE(reply_id(object(R"({"event": "STOP", "id": 7})")));
}
