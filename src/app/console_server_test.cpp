// `kvmgpu console`'s server on real loopback sockets: what a browser, or another user of the host,
// gets from it.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <vector>

#include "app/console_server.hpp"
#include "temp_dir.hpp"
#include "util/fd.hpp"

using namespace kvmgpu;
using namespace kvmgpu::app;

namespace {

// A TCP socket listening on 127.0.0.1 at a free port: the VM's WebSocket, or whoever took its port.
struct Listener {
    Listener() : fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd.get(), 8) == 0);
        REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port = ntohs(a.sin_port);
    }
    bool has_pending_connection() const {
        pollfd p{fd.get(), POLLIN, 0};
        return ::poll(&p, 1, 0) == 1;
    }
    util::Fd fd;
    unsigned port = 0;
};

// Sends `request` to 127.0.0.1:port and returns all it gets back until the server closes (or 10 s pass).
std::string http_exchange(unsigned port, const std::string& request) {
    util::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const timeval ten{10, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &ten, sizeof ten);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<unsigned short>(port));
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
    std::string reply;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) > 0;) reply.append(buf, static_cast<std::size_t>(n));
    return reply;
}

std::string upgrade(const std::string& path) {
    return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

}  // namespace

TEST_CASE("a console whose VM has ended relays to nobody who took its port and ends", "[console]") {
    const testing::TempDir novnc;
    const Listener taken;  // the VM's WebSocket port, bound by someone else after the VM ended
    ConsoleOptions o;
    o.name = "vm";
    o.novnc_dir = novnc.path();
    o.token = "tok";
    o.password = "Ab3dEf7h";
    o.target_host = "127.0.0.1";
    o.target_port = taken.port;
    o.target_alive = [] { return false; };
    ConsoleServer server(std::move(o));
    const auto port = server.port();
    auto ran = std::async(std::launch::async, [&] { return server.run({}); });

    const auto reply = http_exchange(port, upgrade("/tok/websockify"));
    CHECK(reply.rfind("HTTP/1.1 503 ", 0) == 0);
    CHECK_FALSE(taken.has_pending_connection());
    if (ran.wait_for(std::chrono::seconds(10)) != std::future_status::ready) ::kill(::getpid(), SIGTERM);
    CHECK_FALSE(ran.get());
}

TEST_CASE("without the token the console answers 404 and never relays", "[console]") {
    const testing::TempDir novnc;
    std::ofstream(novnc.path() / "secret.js") << "x";
    const Listener vm;
    ConsoleOptions o;
    o.name = "vm";
    o.novnc_dir = novnc.path();
    o.token = "tok";
    o.target_host = "127.0.0.1";
    o.target_port = vm.port;
    o.once = true;
    ConsoleServer server(std::move(o));
    const auto port = server.port();
    auto ran = std::async(std::launch::async, [&] { return server.run({}); });

    for (const char* path : {"/websockify", "/tok2/websockify", "/to/websockify", "/%74ok/../tok/websockify",
                             "/x/..%2ftok/websockify", "/TOK/websockify", "/secret.js", "/tok/../secret.js"}) {
        INFO(path);
        CHECK(http_exchange(port, upgrade(path)).rfind("HTTP/1.1 404 ", 0) == 0);
    }
    CHECK_FALSE(vm.has_pending_connection());
    CHECK(http_exchange(port, "GET /tok/secret.js HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 ", 0) == 0);
    ::kill(::getpid(), SIGTERM);  // the server's signal set ends it
    CHECK(ran.get());
}

TEST_CASE("idle connections without the token cannot keep the browser out", "[console]") {
    const testing::TempDir novnc;
    const Listener vm;
    ConsoleOptions o;
    o.name = "vm";
    o.novnc_dir = novnc.path();
    o.token = "tok";
    o.target_host = "127.0.0.1";
    o.target_port = vm.port;
    ConsoleServer server(std::move(o));
    const auto port = server.port();
    auto ran = std::async(std::launch::async, [&] { return server.run({}); });

    // More idle connections than the server serves at once (64), each sending nothing.
    std::vector<util::Fd> idle;
    for (int i = 0; i < 80; ++i) {
        idle.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<unsigned short>(port));
        REQUIRE(::connect(idle.back().get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    }
    CHECK(http_exchange(port, "GET /tok/ HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 ", 0) == 0);
    ::kill(::getpid(), SIGTERM);
    CHECK(ran.get());
}

TEST_CASE("HEAD gets the head alone and a head ended by bare LFs is answered at once", "[console]") {
    const testing::TempDir novnc;
    std::ofstream(novnc.path() / "app.js") << "console.log(1);\n";
    ConsoleOptions o;
    o.name = "vm";
    o.novnc_dir = novnc.path();
    o.token = "tok";
    o.target_host = "127.0.0.1";
    o.target_port = 1;
    ConsoleServer server(std::move(o));
    const auto port = server.port();
    auto ran = std::async(std::launch::async, [&] { return server.run({}); });

    for (const char* path : {"/tok/app.js", "/tok/", "/tok/missing.js", "/other/"}) {
        INFO(path);
        const auto reply = http_exchange(port, std::string("HEAD ") + path + " HTTP/1.1\r\n\r\n");
        const auto end = reply.find("\r\n\r\n");
        REQUIRE(end != std::string::npos);
        CHECK(reply.size() == end + 4);  // no body after the head
        CHECK(reply.find("Content-Length: 0\r\n") == std::string::npos);  // the length a GET would get
    }
    const auto start = std::chrono::steady_clock::now();
    const auto reply = http_exchange(port, "GET /tok/app.js HTTP/1.1\nHost: 127.0.0.1\n\n");
    CHECK(reply.rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(reply.find("console.log(1);") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));  // not the 10 s head deadline
    ::kill(::getpid(), SIGTERM);
    CHECK(ran.get());
}
