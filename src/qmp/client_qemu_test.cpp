// The QMP client against the real qemu-system-x86_64 (TCG), started through util::spawn.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "fake_qmp_server.hpp"
#include "qmp/client.hpp"
#include "util/process.hpp"

namespace asio = boost::asio;
using kvmgpu::qmp::Client;
using kvmgpu::qmp::Clock;
using kvmgpu::qmp::ConnectOptions;
using kvmgpu::qmp::Disconnected;
using kvmgpu::qmp::Json;
using kvmgpu::qmp::SyncClient;
using kvmgpu::testing::TempDir;
using namespace std::chrono_literals;

namespace {

constexpr auto kDeadline = 30s;  // generous: TCG on a shared 2-core machine

// One paused QEMU with its QMP monitor on a unix socket in a temp dir. Owned by a ChildProcess
// whose destructor SIGKILLs and reaps it if a test ends early.
class Qemu {
public:
    Qemu() {
        socket_ = dir_.path() / "qmp.sock";
        log_ = dir_.path() / "qemu.log";
        kvmgpu::util::SpawnOptions options;
        options.log_file = log_;
        options.new_session = true;
        try {
            child_ = kvmgpu::util::spawn(
                {"qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-nodefaults", "-no-user-config",
                 "-display", "none", "-S", "-m", "64M", "-chardev",
                 "socket,id=qmp,path=" + socket_.string() + ",server=on,wait=off", "-mon", "chardev=qmp,mode=control"},
                options);
        } catch (const kvmgpu::util::SpawnError& e) {
            // A missing QEMU is a broken test environment, not a reason to skip.
            FAIL("these tests need the real qemu-system-x86_64 (Debian package qemu-system-x86): " << e.what());
        }
    }

    // Connects, giving up early (with QEMU's exit status and log) if QEMU dies first.
    void connect(SyncClient& client) {
        ConnectOptions options;
        options.deadline = Clock::now() + kDeadline;
        options.give_up = [this] { return exit_reason(); };
        client.connect(socket_, options);
    }
    void connect(asio::io_context& io, Client& client) {
        ConnectOptions options;
        options.deadline = Clock::now() + kDeadline;
        options.give_up = [this] { return exit_reason(); };
        bool done = false;
        std::exception_ptr error;
        asio::co_spawn(io, client.connect(socket_, options), [&](std::exception_ptr e, kvmgpu::qmp::Greeting) {
            error = e;
            done = true;
        });
        io.restart();
        while (!done && io.run_one() != 0) {
        }
        REQUIRE(done);
        if (error) std::rethrow_exception(error);
    }

    std::optional<std::string> exit_reason() {
        if (auto status = child_.try_wait()) {
            return "QEMU " + kvmgpu::util::describe_wait_status(*status) + "; its log says: " + log_text();
        }
        return std::nullopt;
    }

    std::string log_text() const {
        std::ifstream in(log_);
        std::ostringstream out;
        out << in.rdbuf();
        return out.str();
    }

    kvmgpu::util::ChildProcess& child() { return child_; }

private:
    TempDir dir_;
    std::filesystem::path socket_;
    std::filesystem::path log_;
    kvmgpu::util::ChildProcess child_;
};

}  // namespace

TEST_CASE("real QEMU: greeting, status, cont and stop with events, errors, a large schema", "[qmp][qemu]") {
    Qemu qemu;
    SyncClient client;
    qemu.connect(client);
    INFO("QEMU log: " << qemu.log_text());

    CHECK(client.greeting().major == 7);
    CHECK(client.greeting().raw.at("QMP").contains("capabilities"));

    Json status = client.execute("query-status");
    CHECK(status.at("status") == "prelaunch");
    CHECK(status.at("running") == false);

    CHECK(client.execute("cont") == Json::object());
    CHECK(client.wait_event("RESUME", Clock::now() + kDeadline).name == "RESUME");
    status = client.execute("query-status");
    CHECK(status.at("status") == "running");
    CHECK(status.at("running") == true);

    CHECK(client.execute("stop") == Json::object());
    CHECK(client.wait_event("STOP", Clock::now() + kDeadline).name == "STOP");
    status = client.execute("query-status");
    CHECK(status.at("status") == "paused");
    CHECK(status.at("running") == false);

    try {
        client.execute("no-such-command");
        FAIL("an unknown command did not fail");
    } catch (const kvmgpu::qmp::Error& e) {
        CHECK(e.cls() == "CommandNotFound");
        CHECK(e.desc() == "The command no-such-command has not been found");
    }

    const Json schema = client.execute("query-qmp-schema");
    REQUIRE(schema.is_array());
    CHECK(schema.dump().size() > 100 * 1024);
    const bool has_query_status = std::any_of(schema.begin(), schema.end(), [](const Json& entry) {
        return entry.value("name", "") == "query-status" && entry.value("meta-type", "") == "command";
    });
    CHECK(has_query_status);

    // The client is still in step after the large reply.
    CHECK(client.execute_raw(Json{{"execute", "query-status"}, {"id", "mine"}}).at("id") == "mine");
}

TEST_CASE("real QEMU: quit sends SHUTDOWN, closes the connection and exits with status 0", "[qmp][qemu]") {
    Qemu qemu;
    SyncClient client;
    qemu.connect(client);
    INFO("QEMU log: " << qemu.log_text());

    CHECK(client.execute("quit") == Json::object());
    const auto shutdown = client.wait_event("SHUTDOWN", Clock::now() + kDeadline);
    CHECK(shutdown.data.at("reason") == "host-qmp-quit");
    CHECK(shutdown.data.at("guest") == false);

    REQUIRE(client.wait_disconnected(Clock::now() + kDeadline));
    const auto reason = client.disconnect_reason().value_or("");
    CHECK_THAT(reason, Catch::Contains("QEMU closed the QMP connection") || Catch::Contains("Connection reset"));
    CHECK_THROWS_MATCHES(client.execute("query-status"), Disconnected,
                         Catch::Message("QMP command \"query-status\" cannot be sent: " + reason));

    const auto status = qemu.child().wait_for(kDeadline);
    REQUIRE(status.has_value());
    CHECK(kvmgpu::util::describe_wait_status(*status) == "exited with status 0");
}

TEST_CASE("real QEMU: SIGKILL with a call pending fails that call promptly with Disconnected", "[qmp][qemu]") {
    Qemu qemu;
    asio::io_context io;
    Client client(io.get_executor());
    std::vector<std::string> disconnects;
    client.on_disconnect([&](const std::string& reason) { disconnects.push_back(reason); });
    qemu.connect(io, client);

    // Stopped, QEMU cannot answer, so the call is certainly pending when the kill lands.
    qemu.child().kill(SIGSTOP);
    bool done = false;
    std::exception_ptr error;
    asio::co_spawn(io, client.execute("query-status", nullptr, kDeadline), [&](std::exception_ptr e, Json) {
        error = e;
        done = true;
    });
    io.restart();
    io.poll();
    REQUIRE_FALSE(done);

    const auto killed_at = Clock::now();
    qemu.child().kill(SIGKILL);
    io.restart();
    while (!done && io.run_one_until(killed_at + kDeadline) != 0) {
    }
    REQUIRE(done);
    CHECK(Clock::now() - killed_at < 5s);
    try {
        std::rethrow_exception(error);
    } catch (const Disconnected& e) {
        CHECK_THAT(e.what(), Catch::StartsWith("QMP command \"query-status\" got no reply: "));
    } catch (const std::exception& e) {
        FAIL("expected qmp::Disconnected, got: " << e.what());
    }
    CHECK_FALSE(client.connected());
    CHECK(disconnects.size() == 1);

    const auto status = qemu.child().wait_for(kDeadline);
    REQUIRE(status.has_value());
    CHECK(WIFSIGNALED(*status));
    CHECK(WTERMSIG(*status) == SIGKILL);
}
