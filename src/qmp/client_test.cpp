#include "qmp/client.hpp"

#include <catch2/catch.hpp>
#include <optional>

#include "fake_qmp_server.hpp"

namespace asio = boost::asio;
using kvmgpu::qmp::Client;
using kvmgpu::qmp::Clock;
using kvmgpu::qmp::ConnectOptions;
using kvmgpu::qmp::Disconnected;
using kvmgpu::qmp::Event;
using kvmgpu::qmp::Json;
using kvmgpu::qmp::SyncClient;
using kvmgpu::qmp::Timeout;
using kvmgpu::testing::FakeQmpConnection;
using kvmgpu::testing::FakeQmpServer;
using kvmgpu::testing::TempDir;
using namespace std::chrono_literals;

namespace {

constexpr auto kTestDeadline = 10s;

// The outcome of one awaitable run with co_spawn on a test's io_context.
template <typename T>
struct Outcome {
    std::optional<T> value;
    std::exception_ptr error;
    bool done = false;
};

template <typename T>
void start(asio::io_context& io, asio::awaitable<T> operation, Outcome<T>& outcome) {
    asio::co_spawn(io, std::move(operation), [&outcome](std::exception_ptr error, T value) {
        outcome.error = error;
        if (!error) outcome.value = std::move(value);
        outcome.done = true;
    });
}

// Runs the io_context until `done` holds or the deadline passes.
template <typename Predicate>
bool run_until(asio::io_context& io, Predicate done) {
    const auto deadline = Clock::now() + kTestDeadline;
    io.restart();
    while (!done() && Clock::now() < deadline) io.run_one_until(deadline);
    return done();
}

// what() of the exception, if it has type E; a description of the mismatch otherwise.
template <typename E>
std::string message_of(const std::exception_ptr& error) {
    if (!error) return "(no exception)";
    try {
        std::rethrow_exception(error);
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("(wrong exception type) ") + e.what();
    }
    return "(unreachable)";
}

void connect_async(asio::io_context& io, Client& client, const std::filesystem::path& path) {
    Outcome<kvmgpu::qmp::Greeting> connected;
    start(io, client.connect(path), connected);
    REQUIRE(run_until(io, [&] { return connected.done; }));
    if (connected.error) std::rethrow_exception(connected.error);
}

}  // namespace

TEST_CASE("connect parses the greeting and negotiates capabilities", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    Json capabilities_request;
    FakeQmpServer server(sock, [&](FakeQmpConnection& c) {
        c.send(FakeQmpConnection::greeting(7, 2, 1));
        capabilities_request = c.read_request();
        c.reply(capabilities_request, Json::object());
        const auto request = c.read_request();
        c.reply(request, {{"status", "prelaunch"}, {"singlestep", false}, {"running", false}});
        c.expect_eof();
    });
    SyncClient client;
    const auto& greeting = client.connect(sock, Clock::now() + kTestDeadline);
    CHECK(greeting.major == 7);
    CHECK(greeting.minor == 2);
    CHECK(greeting.micro == 1);
    CHECK(greeting.package == "fake");
    CHECK(greeting.capabilities == std::vector<std::string>{"oob"});
    CHECK(client.connected());

    const Json status = client.execute("query-status");
    CHECK(status == Json{{"status", "prelaunch"}, {"singlestep", false}, {"running", false}});
    client.close();
    CHECK_FALSE(client.connected());
    REQUIRE_NOTHROW(server.join());
    CHECK(capabilities_request.at("execute") == "qmp_capabilities");
    CHECK(capabilities_request.at("id").is_number_unsigned());
    CHECK_FALSE(capabilities_request.contains("arguments"));
}

TEST_CASE("connect retries until the socket exists and accepts", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    std::optional<FakeQmpServer> server;
    int attempts = 0;
    ConnectOptions options;
    options.deadline = Clock::now() + kTestDeadline;
    options.retry_interval = 1ms;
    // The server appears only after the client has failed to connect three times.
    options.give_up = [&]() -> std::optional<std::string> {
        if (++attempts == 3) {
            server.emplace(sock, [](FakeQmpConnection& c) {
                c.handshake();
                c.expect_eof();
            });
        }
        return std::nullopt;
    };
    SyncClient client;
    client.connect(sock, options);
    CHECK(attempts == 3);
    CHECK(client.connected());
    client.close();
    REQUIRE_NOTHROW(server->join());
}

TEST_CASE("connect stops waiting when give_up returns a reason", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    ConnectOptions options;
    options.deadline = Clock::now() + kTestDeadline;
    options.give_up = [] { return std::optional<std::string>("QEMU exited with status 1"); };
    SyncClient client;
    const auto started = Clock::now();
    CHECK_THROWS_MATCHES(client.connect(sock, options), Disconnected,
                         Catch::Message("cannot connect to QMP socket \"" + sock.string() +
                                        "\": QEMU exited with status 1"));
    CHECK(Clock::now() - started < 2s);
    CHECK_FALSE(client.connected());
}

TEST_CASE("connect times out when nothing listens on the socket", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    SyncClient client;
    CHECK_THROWS_MATCHES(client.connect(sock, Clock::now() + 100ms), Timeout,
                         Catch::Message("cannot connect to QMP socket \"" + sock.string() +
                                        "\" before the deadline: No such file or directory"));
}

TEST_CASE("connect times out when the greeting never comes", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) { c.expect_eof(); });
    SyncClient client;
    CHECK_THROWS_MATCHES(client.connect(sock, Clock::now() + 200ms), Timeout,
                         Catch::Message("QEMU sent no QMP greeting on \"" + sock.string() + "\" before the deadline"));
    CHECK_FALSE(client.connected());
    // The half-open connection was closed, which the server sees as EOF.
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("replies arriving out of order are routed to their calls by id", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    std::vector<Json> requests;
    FakeQmpServer server(sock, [&](FakeQmpConnection& c) {
        c.handshake();
        for (int i = 0; i < 3; ++i) requests.push_back(c.read_request());
        c.reply(requests[2], "third");
        c.reply(requests[0], "first");
        c.reply(requests[1], "second");
        c.expect_eof();
    });
    asio::io_context io;
    {
        Client client(io.get_executor());
        connect_async(io, client, sock);
        Outcome<Json> a, b, c;
        start(io, client.execute("cmd-a"), a);
        start(io, client.execute("cmd-b", {{"x", 1}}), b);
        start(io, client.execute("cmd-c"), c);
        REQUIRE(run_until(io, [&] { return a.done && b.done && c.done; }));
        REQUIRE_FALSE(a.error);
        REQUIRE_FALSE(b.error);
        REQUIRE_FALSE(c.error);
        CHECK(*a.value == "first");
        CHECK(*b.value == "second");
        CHECK(*c.value == "third");
        CHECK(client.dropped_replies() == 0);
    }
    io.restart();
    io.poll();  // lets the read loop see the close
    REQUIRE_NOTHROW(server.join());
    REQUIRE(requests.size() == 3);
    CHECK(requests[0].at("execute") == "cmd-a");
    CHECK(requests[1].at("arguments") == Json{{"x", 1}});
    CHECK(requests[0].at("id") != requests[1].at("id"));
    CHECK(requests[1].at("id") != requests[2].at("id"));
    CHECK(requests[0].at("id") != requests[2].at("id"));
}

TEST_CASE("a greeting and a reply split byte by byte are reassembled", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) {
        c.send_bytewise(FakeQmpConnection::line(FakeQmpConnection::greeting(7, 2, 0)));
        c.reply(c.read_request(), Json::object());
        const auto request = c.read_request();
        c.send_bytewise(FakeQmpConnection::line(FakeQmpConnection::reply_to(request, {{"name", "split, \"quoted\""}})));
        c.expect_eof();
    });
    SyncClient client;
    CHECK(client.connect(sock, Clock::now() + kTestDeadline).major == 7);
    CHECK(client.execute("query-name") == Json{{"name", "split, \"quoted\""}});
    client.close();
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("two replies and an event in one write are all delivered", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) {
        c.handshake();
        const auto first = c.read_request();
        const auto second = c.read_request();
        c.send_raw(FakeQmpConnection::line(FakeQmpConnection::reply_to(first, 1)) +
                   FakeQmpConnection::line(FakeQmpConnection::event("STOP", nullptr)) +
                   FakeQmpConnection::line(FakeQmpConnection::reply_to(second, 2)));
        c.expect_eof();
    });
    asio::io_context io;
    Client client(io.get_executor());
    std::vector<std::string> events;
    client.subscribe([&](const Event& e) { events.push_back(e.name); });
    connect_async(io, client, sock);
    Outcome<Json> first, second;
    start(io, client.execute("one"), first);
    start(io, client.execute("two"), second);
    REQUIRE(run_until(io, [&] { return first.done && second.done && !events.empty(); }));
    REQUIRE_FALSE(first.error);
    REQUIRE_FALSE(second.error);
    CHECK(*first.value == 1);
    CHECK(*second.value == 2);
    CHECK(events == std::vector<std::string>{"STOP"});
    client.close();
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("a reply with an unknown id is dropped", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) {
        c.handshake();
        const auto request = c.read_request();
        c.send(Json{{"return", "not yours"}, {"id", 999999}});
        c.send(Json{{"return", "no id at all"}});
        c.send(Json{{"return", "string id"}, {"id", "x"}});
        c.reply(request, "yours");
        c.expect_eof();
    });
    SyncClient client;
    client.connect(sock, Clock::now() + kTestDeadline);
    CHECK(client.execute("query-x") == "yours");
    CHECK(client.dropped_replies() == 3);
    CHECK(client.connected());
    client.close();
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("a 512 KiB reply arrives intact", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    std::string blob(512 * 1024, '\0');
    for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>('a' + i % 26);
    FakeQmpServer server(sock, [&](FakeQmpConnection& c) {
        c.handshake();
        const auto request = c.read_request();
        c.reply(request, {{"blob", blob}, {"tail", 42}});
        const auto after = c.read_request();
        c.reply(after, "small");
        c.expect_eof();
    });
    SyncClient client;
    client.connect(sock, Clock::now() + kTestDeadline);
    const Json reply = client.execute("query-blob");
    CHECK(reply.at("blob").get_ref<const std::string&>().size() == 512 * 1024);
    CHECK(reply.at("blob") == blob);
    CHECK(reply.at("tail") == 42);
    CHECK(client.execute("query-small") == "small");
    client.close();
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("an error reply throws qmp::Error with its class and description", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) {
        c.handshake();
        const auto request = c.read_request();
        c.send(FakeQmpConnection::error_to(request, "CommandNotFound", "The command nosuch has not been found"));
        c.reply(c.read_request(), "still fine");
        c.expect_eof();
    });
    SyncClient client;
    client.connect(sock, Clock::now() + kTestDeadline);
    try {
        client.execute("nosuch");
        FAIL("execute did not throw");
    } catch (const kvmgpu::qmp::Error& e) {
        CHECK(e.command() == "nosuch");
        CHECK(e.cls() == "CommandNotFound");
        CHECK(e.desc() == "The command nosuch has not been found");
        CHECK(std::string(e.what()) ==
              "QMP command \"nosuch\" failed: CommandNotFound: The command nosuch has not been found");
    }
    CHECK(client.execute("query-ok") == "still fine");
    client.close();
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("execute_raw forwards a request and restores the caller's id", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    std::vector<Json> requests;
    FakeQmpServer server(sock, [&](FakeQmpConnection& c) {
        c.handshake();
        requests.push_back(c.read_request());
        c.reply(requests.back(), {{"running", true}});
        requests.push_back(c.read_request());
        c.reply(requests.back(), Json::object());
        requests.push_back(c.read_request());
        c.send(FakeQmpConnection::error_to(requests.back(), "GenericError", "bad"));
        c.expect_eof();
    });
    SyncClient client;
    client.connect(sock, Clock::now() + kTestDeadline);
    CHECK(client.execute_raw(Json{{"execute", "query-status"}, {"id", "caller-7"}}) ==
          Json{{"return", {{"running", true}}}, {"id", "caller-7"}});
    CHECK(client.execute_raw(Json{{"execute", "stop"}}) == Json{{"return", Json::object()}});
    // Error replies come back as data, not as exceptions: a proxy forwards them unchanged.
    CHECK(client.execute_raw(Json{{"execute", "x"}, {"arguments", {{"a", 1}}}, {"id", 5}}) ==
          Json{{"error", {{"class", "GenericError"}, {"desc", "bad"}}}, {"id", 5}});
    CHECK_THROWS_AS(client.execute_raw(Json::array()), std::invalid_argument);
    CHECK_THROWS_AS(client.execute("x", Json::array({1})), std::invalid_argument);
    client.close();
    REQUIRE_NOTHROW(server.join());
    REQUIRE(requests.size() == 3);
    CHECK(requests[0].at("id").is_number_unsigned());  // the client's id went on the wire
    CHECK(requests[0].at("execute") == "query-status");
    CHECK(requests[2].at("arguments") == Json{{"a", 1}});
}

TEST_CASE("events are delivered in order to every subscriber", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) {
        c.handshake();
        const auto request = c.read_request();
        c.send(FakeQmpConnection::event("STOP", nullptr, 1700000000, 5));
        c.send(FakeQmpConnection::event("RESUME", nullptr));
        c.send(FakeQmpConnection::event("SHUTDOWN", {{"guest", true}, {"reason", "guest-shutdown"}}));
        c.reply(request, Json::object());
        c.expect_eof();
    });
    asio::io_context io;
    Client client(io.get_executor());
    std::vector<std::string> first, second;
    std::vector<Event> all;
    client.subscribe([&](const Event& e) { first.push_back(e.name); });
    const auto id = client.subscribe([&](const Event& e) {
        second.push_back(e.name);
        all.push_back(e);
    });
    connect_async(io, client, sock);
    Outcome<Json> reply;
    start(io, client.execute("query-events"), reply);
    REQUIRE(run_until(io, [&] { return reply.done; }));
    REQUIRE_FALSE(reply.error);
    const std::vector<std::string> expected{"STOP", "RESUME", "SHUTDOWN"};
    CHECK(first == expected);
    CHECK(second == expected);
    REQUIRE(all.size() == 3);
    CHECK(all[0].timestamp_us == 1700000000'000005);
    CHECK(all[0].data.is_null());
    CHECK(all[2].data == Json{{"guest", true}, {"reason", "guest-shutdown"}});
    client.unsubscribe(id);
    int disconnects = 0;
    client.on_disconnect([&](const std::string&) { ++disconnects; });
    client.close();
    CHECK(disconnects == 0);  // the owner closed it: no callback into the owner
    CHECK(client.disconnect_reason() == "the QMP connection was closed by the client");
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("an event handler may unsubscribe itself, and a throwing handler ends the connection", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) {
        c.handshake();
        const auto request = c.read_request();
        // One write: the client hangs up at BOOM, and a later write would fail with EPIPE.
        c.send_raw(FakeQmpConnection::line(FakeQmpConnection::event("ONE", nullptr)) +
                   FakeQmpConnection::line(FakeQmpConnection::event("TWO", nullptr)) +
                   FakeQmpConnection::line(FakeQmpConnection::event("BOOM", nullptr)) +
                   FakeQmpConnection::line(FakeQmpConnection::reply_to(request, Json::object())));
        c.expect_eof();
    });
    asio::io_context io;
    Client client(io.get_executor());
    std::vector<std::string> once, always;
    std::size_t once_id = 0;
    once_id = client.subscribe([&](const Event& e) {
        once.push_back(e.name);
        client.unsubscribe(once_id);
    });
    client.subscribe([&](const Event& e) {
        always.push_back(e.name);
        if (e.name == "BOOM") throw std::runtime_error("handler bug");
    });
    std::vector<std::string> disconnects;
    client.on_disconnect([&](const std::string& reason) { disconnects.push_back(reason); });
    connect_async(io, client, sock);
    Outcome<Json> reply;
    start(io, client.execute("query-x"), reply);
    REQUIRE(run_until(io, [&] { return reply.done; }));
    CHECK(once == std::vector<std::string>{"ONE"});
    CHECK(always == std::vector<std::string>{"ONE", "TWO", "BOOM"});
    CHECK(message_of<Disconnected>(reply.error) ==
          "QMP command \"query-x\" got no reply: a QMP event handler failed: handler bug");
    CHECK(disconnects == std::vector<std::string>{"a QMP event handler failed: handler bug"});
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("the server closing the connection fails every pending call", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) {
        c.handshake();
        c.read_request();
        c.read_request();
        c.close();
    });
    asio::io_context io;
    Client client(io.get_executor());
    std::vector<std::string> disconnects;
    client.on_disconnect([&](const std::string& reason) { disconnects.push_back(reason); });
    connect_async(io, client, sock);
    Outcome<Json> a, b;
    start(io, client.execute("cmd-a"), a);
    start(io, client.execute("cmd-b"), b);
    REQUIRE(run_until(io, [&] { return a.done && b.done; }));
    const std::string eof = "QEMU closed the QMP connection on \"" + sock.string() + "\" (end of file)";
    CHECK(message_of<Disconnected>(a.error) == "QMP command \"cmd-a\" got no reply: " + eof);
    CHECK(message_of<Disconnected>(b.error) == "QMP command \"cmd-b\" got no reply: " + eof);
    CHECK_FALSE(client.connected());
    CHECK(client.disconnect_reason() == eof);
    CHECK(disconnects == std::vector<std::string>{eof});

    Outcome<Json> later;
    start(io, client.execute("cmd-c"), later);
    REQUIRE(run_until(io, [&] { return later.done; }));
    CHECK(message_of<Disconnected>(later.error) == "QMP command \"cmd-c\" cannot be sent: " + eof);
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("a call without a reply times out and the client stays usable", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) {
        c.handshake();
        const auto ignored = c.read_request();
        const auto next = c.read_request();
        c.reply(ignored, "too late");  // after the timeout: must be dropped, not given to `next`
        c.reply(next, "on time");
        c.expect_eof();
    });
    SyncClient client;
    client.connect(sock, Clock::now() + kTestDeadline);
    const auto started = Clock::now();
    CHECK_THROWS_MATCHES(client.execute("hang", nullptr, 100ms), Timeout,
                         Catch::Message("QMP command \"hang\" got no reply within 100 ms"));
    CHECK(Clock::now() - started >= 100ms);
    CHECK(client.connected());
    CHECK(client.execute("next") == "on time");
    CHECK(client.dropped_replies() == 1);
    client.close();
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("a line that is not JSON ends the connection with a clear reason", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) {
        c.handshake();
        c.read_request();
        c.send_raw("this is not json\r\n");
        c.expect_eof();
    });
    SyncClient client;
    client.connect(sock, Clock::now() + kTestDeadline);
    CHECK_THROWS_MATCHES(client.execute("query-x"), Disconnected,
                         Catch::Message("QMP command \"query-x\" got no reply: QEMU sent a line on \"" + sock.string() +
                                        "\" that is not a JSON object: \"this is not json\""));
    CHECK_FALSE(client.connected());
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("SyncClient buffers events and wait_event picks one by name", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [&](FakeQmpConnection& c) {
        c.handshake();
        const auto request = c.read_request();
        c.send(FakeQmpConnection::event("RESUME", nullptr));
        c.reply(request, Json::object());
        c.send(FakeQmpConnection::event("STOP", nullptr));
        c.send(FakeQmpConnection::event("SHUTDOWN", {{"reason", "host-qmp-quit"}}));
        c.close();
    });
    SyncClient client;
    client.connect(sock, Clock::now() + kTestDeadline);
    CHECK(client.execute("cont") == Json::object());
    // STOP and SHUTDOWN arrive after the reply; wait_event runs the loop until SHUTDOWN is in.
    const Event shutdown = client.wait_event("SHUTDOWN", Clock::now() + kTestDeadline);
    CHECK(shutdown.data.at("reason") == "host-qmp-quit");
    const Event resume = client.wait_event("RESUME", Clock::now() + kTestDeadline);
    CHECK(resume.name == "RESUME");
    CHECK(client.wait_disconnected(Clock::now() + kTestDeadline));
    const auto rest = client.take_events();
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].name == "STOP");
    CHECK_THROWS_AS(client.wait_event("RESET", Clock::now() + kTestDeadline), Disconnected);
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("wait_event times out when the event does not come", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) {
        c.handshake();
        c.expect_eof();
    });
    SyncClient client;
    client.connect(sock, Clock::now() + kTestDeadline);
    CHECK_THROWS_MATCHES(client.wait_event("RESUME", Clock::now() + 50ms), Timeout,
                         Catch::Message("QMP event \"RESUME\" did not arrive before the deadline"));
    CHECK(client.connected());
    client.close();
    REQUIRE_NOTHROW(server.join());
}

TEST_CASE("destroying a Client fails its pending calls", "[qmp]") {
    TempDir dir;
    const auto sock = dir.path() / "qmp.sock";
    FakeQmpServer server(sock, [](FakeQmpConnection& c) {
        c.handshake();
        c.expect_eof();
    });
    asio::io_context io;
    Outcome<Json> pending;
    {
        Client client(io.get_executor());
        connect_async(io, client, sock);
        start(io, client.execute("query-x"), pending);
        io.restart();
        io.poll();  // the call is now registered and waiting
        REQUIRE_FALSE(pending.done);
    }
    REQUIRE(run_until(io, [&] { return pending.done; }));
    CHECK(message_of<Disconnected>(pending.error) ==
          "QMP command \"query-x\" got no reply: the QMP connection was closed by the client");
    REQUIRE_NOTHROW(server.join());
}
