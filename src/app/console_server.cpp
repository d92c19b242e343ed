#include "app/console_server.hpp"

#include <sys/stat.h>

#include <array>
#include <fstream>
#include <iterator>
#include <list>
#include <signal.h>

#include "app/console_http.hpp"
#include "util/asio.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

constexpr std::chrono::seconds kHeadDeadline{10};
constexpr std::uintmax_t kMaxFile = 4 * 1024 * 1024;
constexpr int kMaxConnections = 64;

// Two sockets relayed to each other; the first direction to end shuts both down.
struct Relay {
    explicit Relay(tcp::socket c, tcp::socket u) : client(std::move(c)), upstream(std::move(u)) {}
    tcp::socket client;
    tcp::socket upstream;
    void close() {
        boost::system::error_code ignored;
        client.shutdown(tcp::socket::shutdown_both, ignored);
        upstream.shutdown(tcp::socket::shutdown_both, ignored);
        client.close(ignored);
        upstream.close(ignored);
    }
};

awaitable<void> pump(std::shared_ptr<Relay> relay, tcp::socket& from, tcp::socket& to) {
    std::array<char, 16384> buf;
    try {
        for (;;) {
            const auto n = co_await from.async_read_some(asio::buffer(buf), use_awaitable);
            co_await asio::async_write(to, asio::buffer(buf.data(), n), use_awaitable);
        }
    } catch (const std::exception&) {
    }
    relay->close();
}

// The end of a request head: a blank line, ended by CRLF as HTTP says, or by a bare LF, which
// HTTP lets a server accept (RFC 9112 2.2) and which parse_request_head() reads too. A client
// that ends its lines with LF alone is then answered at once, not when kHeadDeadline runs out.
using HeadIterator = asio::buffers_iterator<asio::streambuf::const_buffers_type>;
std::pair<HeadIterator, bool> end_of_head(HeadIterator begin, HeadIterator end) {
    for (auto it = begin; it != end; ++it) {
        if (*it != '\n') continue;
        auto next = std::next(it);
        if (next != end && *next == '\r') ++next;
        if (next != end && *next == '\n') return {std::next(next), true};
    }
    return {end, false};
}

std::string strip_brackets(std::string host) {
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
    return host;
}

}  // namespace

struct ConsoleServer::Impl {
    explicit Impl(ConsoleOptions o)
        : options(std::move(o)), acceptor(io), signals(io, SIGINT, SIGTERM) {
        const tcp::endpoint at(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(options.port));
        boost::system::error_code ec;
        acceptor.open(at.protocol(), ec);
        if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) acceptor.bind(at, ec);
        if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
        if (ec)
            throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(options.port) + ": " + ec.message() +
                                     (options.port ? "; choose another --port, or leave it out for a free one" : ""));
    }

    ConsoleOptions options;
    asio::io_context io;
    tcp::acceptor acceptor;
    asio::signal_set signals;
    std::function<void(const std::string&)> log;
    int connections = 0;
    bool target_gone = false;
    // The connections still waiting for their request head, oldest first: none has shown the
    // token yet, so at the limit the oldest gives way to a new one. Otherwise anyone on the host
    // could keep the browser out with kMaxConnections idle connections, renewed every kHeadDeadline.
    std::list<tcp::socket*> heads;

    awaitable<void> accept_loop() {
        for (;;) {
            auto socket = co_await acceptor.async_accept(use_awaitable);
            if (connections >= kMaxConnections) {
                if (heads.empty()) continue;  // every one is served: the new one is closed at once
                boost::system::error_code ignored;
                heads.front()->close(ignored);  // its read ends, and with it its connection
                heads.pop_front();
            }
            ++connections;
            asio::co_spawn(io, serve(std::move(socket)), [this](std::exception_ptr) { --connections; });
        }
    }

    // The answer to a HEAD request is the head alone, with the body's length (RFC 9110 9.3.2).
    static awaitable<void> send(tcp::socket& s, int status, std::string_view reason, std::string_view type,
                                const std::string& body, bool head_only = false) {
        const auto head = response_head(status, reason, type, body.size());
        const std::array<asio::const_buffer, 2> parts{asio::buffer(head), asio::buffer(body.data(), head_only ? 0 : body.size())};
        co_await asio::async_write(s, parts, use_awaitable);
    }

    static awaitable<void> send_error(tcp::socket& s, int status, const std::string& reason, bool head_only = false) {
        co_await send(s, status, reason, "text/plain; charset=utf-8", std::to_string(status) + " " + reason + "\n", head_only);
    }

    awaitable<void> serve(tcp::socket socket) {
        // The head must arrive within kHeadDeadline: a client that sends nothing is closed.
        // `waiting` tells a handler that ran late (queued before the cancel) that the socket may
        // be gone: it touches the socket only while the read still waits.
        asio::steady_timer deadline(io, kHeadDeadline);
        auto waiting = std::make_shared<bool>(true);
        deadline.async_wait([&socket, waiting](boost::system::error_code ec) {
            boost::system::error_code ignored;
            if (!ec && *waiting) socket.close(ignored);
        });
        asio::streambuf buf(kMaxRequestHead);
        heads.push_back(&socket);
        std::size_t n = 0;
        boost::system::error_code read_error;
        try {
            n = co_await asio::async_read_until(socket, buf, end_of_head, use_awaitable);
        } catch (const boost::system::system_error& e) {
            read_error = e.code();
        }
        *waiting = false;
        heads.remove(&socket);
        deadline.cancel();
        if (read_error) {
            // A full buffer without the blank line: the head is too long. Anything else: gone.
            if (read_error == asio::error::not_found) co_await send_error(socket, 431, "Request Header Fields Too Large");
            co_return;
        }
        const std::string head(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
        buf.consume(n);
        const auto parsed = parse_request_head(head);
        if (!parsed.request) {
            co_await send_error(socket, parsed.error.status, parsed.error.reason);
            co_return;
        }
        const auto& request = *parsed.request;
        const bool head_only = request.method == "HEAD";
        if (request.method != "GET" && !head_only) {
            co_await send_error(socket, 405, "Method Not Allowed");
            co_return;
        }
        const auto rel = normalise_path(request.path);
        const std::string prefix = options.token + "/";
        // The token is compared in constant time: how long a wrong guess took says nothing of how
        // much of it was right.
        if (!rel || !util::constant_time_equal(std::string_view(*rel).substr(0, rel->find('/')), options.token)) {
            co_await send_error(socket, 404, "Not Found", head_only);
            co_return;
        }
        if (*rel == options.token && request.path.back() != '/') {
            // The page's imports are relative to it: it lives at /TOKEN/.
            const std::string head301 = "HTTP/1.1 301 Moved Permanently\r\nLocation: /" + options.token +
                                        "/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            co_await asio::async_write(socket, asio::buffer(head301), use_awaitable);
            co_return;
        }
        const std::string inner = *rel == options.token ? "" : rel->substr(prefix.size());
        if (inner.empty()) {
            co_await send(socket, 200, "OK", content_type("page.html"), console_page(options.name, options.password), head_only);
        } else if (inner == "websockify" && request.websocket_upgrade()) {
            co_await relay(std::move(socket), head, buf);
        } else {
            co_await send_file(socket, inner, head_only);
        }
    }

    awaitable<void> send_file(tcp::socket& socket, const std::string& inner, bool head_only) {
        const auto file = options.novnc_dir / inner;
        struct stat st {};
        if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || static_cast<std::uintmax_t>(st.st_size) > kMaxFile) {
            co_await send_error(socket, 404, "Not Found", head_only);
            co_return;
        }
        std::ifstream in(file, std::ios::binary);
        std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!in.good() && !in.eof()) {
            co_await send_error(socket, 500, "Internal Server Error", head_only);
            co_return;
        }
        co_await send(socket, 200, "OK", content_type(inner), body, head_only);
    }

    // The client's WebSocket handshake goes on to the VM's WebSocket with the path "/" (QEMU's
    // VNC WebSocket answers no other; websockify any), then bytes flow both ways untouched.
    awaitable<void> relay(tcp::socket client, const std::string& head, asio::streambuf& rest) {
        if (options.target_alive && !options.target_alive()) {
            log("the VM is not running any more (its WebSocket port may be anyone's now); the console ends");
            target_gone = true;
            try {
                co_await send_error(client, 503, "Service Unavailable");
            } catch (const std::exception&) {
            }
            io.stop();
            co_return;
        }
        tcp::socket upstream(io);
        std::string connect_error;
        try {
            tcp::resolver resolver(io);
            const auto endpoints = co_await resolver.async_resolve(strip_brackets(options.target_host),
                                                                   std::to_string(options.target_port), use_awaitable);
            co_await asio::async_connect(upstream, endpoints, use_awaitable);
        } catch (const std::exception& e) {
            connect_error = e.what();
        }
        if (!connect_error.empty()) {
            log("cannot reach the VM's WebSocket at " + options.target_host + ":" + std::to_string(options.target_port) +
                ": " + connect_error);
            co_await send_error(client, 502, "Bad Gateway");
            co_return;
        }
        const auto line_end = head.find('\n');
        std::string forwarded = "GET / HTTP/1.1\r\n" + head.substr(line_end + 1);
        co_await asio::async_write(upstream, asio::buffer(forwarded), use_awaitable);
        if (rest.size() > 0) co_await asio::async_write(upstream, rest.data(), use_awaitable);
        log("relaying a VNC session to " + options.target_host + ":" + std::to_string(options.target_port));
        auto pair = std::make_shared<Relay>(std::move(client), std::move(upstream));
        // Both directions run until one ends; the second completion ends the session.
        auto ended = std::make_shared<int>(0);
        auto done = [this, ended](std::exception_ptr) {
            if (++*ended < 2) return;
            log("the VNC session ended");
            if (options.once) io.stop();
        };
        asio::co_spawn(io, pump(pair, pair->client, pair->upstream), done);
        asio::co_spawn(io, pump(pair, pair->upstream, pair->client), done);
    }
};

ConsoleServer::ConsoleServer(ConsoleOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
ConsoleServer::~ConsoleServer() = default;

unsigned ConsoleServer::port() const { return impl_->acceptor.local_endpoint().port(); }

std::string ConsoleServer::url() const {
    return "http://127.0.0.1:" + std::to_string(port()) + "/" + impl_->options.token + "/";
}

bool ConsoleServer::run(const std::function<void(const std::string&)>& log) {
    impl_->log = log ? log : [](const std::string&) {};
    impl_->signals.async_wait([this](boost::system::error_code ec, int) {
        if (!ec) impl_->io.stop();
    });
    asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
    impl_->io.run();
    return !impl_->target_gone;
}

}  // namespace kvmgpu::app
