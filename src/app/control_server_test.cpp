// The control server's sessions on a real socket pair.
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include "app/control_server.hpp"

using namespace kvmgpu::app;
namespace asio = boost::asio;

TEST_CASE("a session closed while a write is in flight drops its queue without touching freed lines", "[app][control]") {
    asio::io_context io;
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    ControlSession::Socket ours(io, asio::local::stream_protocol(), fds[0]);
    auto session = std::make_shared<ControlSession>(std::move(ours));
    bool closed = false;
    session->on_closed = [&] { closed = true; };
    // A client that never reads: lines pile up until the kernel's socket buffer is full and a
    // write stays in flight.
    const nlohmann::json line = {{"event", "X"}, {"data", std::string(4096, 'x')}};
    for (int i = 0; i < 200; ++i) session->write(line);
    io.poll();
    REQUIRE(session->queued() > 0);
    // What the server does to a client more than kMaxQueuedEvents behind, and at the end.
    session->force_close();
    CHECK(closed);
    io.run();  // the in-flight write completes with an error and must find the queue intact
    CHECK(session->queued() == 0);
    CHECK(session->is_closed());
    session->write(line);  // ignored once closed
    CHECK(session->queued() == 0);
    ::close(fds[1]);
}
