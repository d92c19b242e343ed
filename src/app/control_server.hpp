#pragma once
// The server side of a VM's control socket (the wire format is control_protocol.hpp): accepts
// clients on RUNTIME/NAME/control.sock (0600), reads one request per line, hands each parsed
// request to the supervisor's handler in order, and writes replies and streamed events in order.
// It knows nothing of QEMU; the supervisor answers.
//
// What a client cannot do to the supervisor (ControlLimits):
//   - connect as another user: the peer's credentials (SO_PEERCRED) must be root's or those of
//     the user the supervisor runs as; anyone else gets one error line and is disconnected;
//   - hold more than max_sessions connections, or end the accept loop by exhausting fds (the
//     loop waits and retries on EMFILE and every other accept error);
//   - send a line longer than max_request_bytes (one error line, then the session ends);
//   - leave more than max_queued_lines lines or max_queued_bytes bytes of replies and events
//     unread (a client that sends without reading, a paused pager): the session is dropped;
//   - take the server down with a line that is not UTF-8, or with anything else that throws
//     while its session is served: that session ends, the others and the loop go on.
#include <sys/types.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/control_protocol.hpp"
#include "util/asio.hpp"

namespace kvmgpu::app {

struct ControlLimits {
    std::size_t max_sessions = 64;
    std::size_t max_request_bytes = 256 * 1024;
    std::size_t max_queued_lines = 4096;
    std::size_t max_queued_bytes = 4 * 1024 * 1024;  // beyond this, a client is not reading
};

// One client connection. Lines written are queued and sent in order; a queue over the limits
// drops the session.
class ControlSession : public std::enable_shared_from_this<ControlSession> {
public:
    using Socket = boost::asio::local::stream_protocol::socket;
    explicit ControlSession(Socket socket, ControlLimits limits = {}) : sock_(std::move(socket)), limits_(limits) {}

    // Never throws: text that is not UTF-8 (echoed from a bad request) is replaced, not refused.
    void write(const nlohmann::json& line);
    // Closes once every queued line is written.
    void close_after_writes();
    void force_close() { shut(); }
    bool is_closed() const { return closed_; }
    // Lines written but not yet taken by the client.
    std::size_t queued() const { return out_.size(); }

    Socket& socket() { return sock_; }
    bool wants_events = false;          // {"kvmgpu": "events"} turned it into an event stream
    std::function<void()> on_closed;    // called once, when the socket is closed

private:
    void flush();
    void shut();

    Socket sock_;
    ControlLimits limits_;
    std::deque<std::string> out_;
    std::size_t out_bytes_ = 0;
    bool writing_ = false;
    bool closing_ = false;
    bool closed_ = false;
};

class ControlServer {
public:
    using Handler = std::function<boost::asio::awaitable<void>(std::shared_ptr<ControlSession>, ParsedRequest)>;
    using Socket = boost::asio::local::stream_protocol::socket;

    // `owner`: the user besides root who may connect (the supervisor's own effective uid).
    ControlServer(boost::asio::io_context& io, Handler handler, ControlLimits limits = {}, uid_t owner = ::geteuid())
        : io_(io), acceptor_(io), retry_timer_(io), handler_(std::move(handler)), limits_(limits), owner_(owner) {}

    // Listens on `path` (replacing a stale socket file), created 0600.
    void open(const std::filesystem::path& path);
    // Stops accepting; connected clients stay until closed.
    void stop_accepting();

    // Sends an event line to every client streaming events (one too far behind is dropped).
    void broadcast(const nlohmann::json& event);
    // Closes every client once its queued lines are written.
    void close_all_after_writes();
    void force_close_all();
    bool all_closed() const;
    std::size_t sessions() const { return sessions_.size(); }

    // Called whenever a client's connection closes.
    std::function<void()> on_session_closed;

private:
    boost::asio::awaitable<void> accept_loop();
    // Who may not be served, and why (nullopt: serve it).
    std::optional<std::string> refusal(Socket& sock) const;
    boost::asio::awaitable<void> serve(std::shared_ptr<ControlSession> session);
    boost::asio::awaitable<void> serve_requests(std::shared_ptr<ControlSession> session);

    boost::asio::io_context& io_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    boost::asio::steady_timer retry_timer_;
    Handler handler_;
    ControlLimits limits_;
    uid_t owner_;
    std::vector<std::shared_ptr<ControlSession>> sessions_;
};

}  // namespace kvmgpu::app
