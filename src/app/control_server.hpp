#pragma once
// The server side of a VM's control socket (the wire format is control_protocol.hpp): accepts
// clients on RUNTIME/NAME/control.sock (0600), reads one request per line, hands each parsed
// request to the supervisor's handler in order, and writes replies and streamed events in order.
// It knows nothing of QEMU; the supervisor answers.
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/control_protocol.hpp"
#include "util/asio.hpp"

namespace kvmgpu::app {

// One client connection. Lines written are queued and sent in order.
class ControlSession : public std::enable_shared_from_this<ControlSession> {
public:
    using Socket = boost::asio::local::stream_protocol::socket;
    explicit ControlSession(Socket socket) : sock_(std::move(socket)) {}

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
    std::deque<std::string> out_;
    bool writing_ = false;
    bool closing_ = false;
    bool closed_ = false;
};

class ControlServer {
public:
    using Handler = std::function<boost::asio::awaitable<void>(std::shared_ptr<ControlSession>, ParsedRequest)>;

    ControlServer(boost::asio::io_context& io, Handler handler) : io_(io), acceptor_(io), handler_(std::move(handler)) {}

    // Listens on `path` (replacing a stale socket file), created 0600.
    void open(const std::filesystem::path& path);
    // Stops accepting; connected clients stay until closed.
    void stop_accepting();

    // Sends an event line to every client streaming events; a client more than
    // kMaxQueuedEvents lines behind (a paused pager) is dropped rather than let it grow.
    void broadcast(const nlohmann::json& event);
    // Closes every client once its queued lines are written.
    void close_all_after_writes();
    void force_close_all();
    bool all_closed() const;

    // Called whenever a client's connection closes.
    std::function<void()> on_session_closed;

    static constexpr std::size_t kMaxQueuedEvents = 4096;

private:
    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> serve(std::shared_ptr<ControlSession> session);

    boost::asio::io_context& io_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    Handler handler_;
    std::vector<std::shared_ptr<ControlSession>> sessions_;
};

}  // namespace kvmgpu::app
