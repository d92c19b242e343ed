#include "app/control_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

namespace kvmgpu::app {

namespace asio = boost::asio;
using asio::use_awaitable;

void ControlSession::write(const nlohmann::json& line) {
    if (closed_) return;
    // A client that leaves its replies or events unread does not make the supervisor grow.
    if (out_.size() >= limits_.max_queued_lines || out_bytes_ > limits_.max_queued_bytes) {
        shut();
        return;
    }
    // Replace, not throw: a reply may quote a request's bytes that are not UTF-8.
    out_.push_back(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    out_bytes_ += out_.back().size();
    if (!writing_) flush();
}

void ControlSession::close_after_writes() {
    closing_ = true;
    if (!writing_) shut();
}

void ControlSession::flush() {
    writing_ = true;
    asio::async_write(sock_, asio::buffer(out_.front()),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                          // Closed while this write was in flight (force_close): the queue was
                          // kept for the write's buffer and is dropped now.
                          if (self->closed_) {
                              self->writing_ = false;
                              self->out_.clear();
                              self->out_bytes_ = 0;
                              return;
                          }
                          self->out_bytes_ -= self->out_.front().size();
                          self->out_.pop_front();
                          if (ec) {
                              self->out_.clear();
                              self->out_bytes_ = 0;
                              self->shut();
                          }
                          if (self->out_.empty()) {
                              self->writing_ = false;
                              if (self->closing_) self->shut();
                          } else {
                              self->flush();
                          }
                      });
}

void ControlSession::shut() {
    // A write in flight still reads its line from the queue; its handler clears it.
    if (!writing_) {
        out_.clear();
        out_bytes_ = 0;
    }
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    sock_.shutdown(Socket::shutdown_both, ec);
    sock_.close(ec);
    if (on_closed) on_closed();
}

void ControlServer::open(const std::filesystem::path& path) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    // Created 0600 from the start: the umask closes the window between bind and chmod.
    struct Umask {
        mode_t old;
        ~Umask() { ::umask(old); }
    } umask{::umask(0177)};
    acceptor_.open();
    acceptor_.bind(asio::local::stream_protocol::endpoint(path.string()));
    acceptor_.listen();
    asio::co_spawn(io_, accept_loop(), asio::detached);
}

void ControlServer::stop_accepting() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    retry_timer_.cancel();
}

void ControlServer::broadcast(const nlohmann::json& event) {
    for (auto& s : sessions_)
        if (s->wants_events) s->write(event);
}

void ControlServer::close_all_after_writes() {
    for (auto& s : sessions_) s->close_after_writes();
}

void ControlServer::force_close_all() {
    for (auto& s : sessions_) s->force_close();
}

bool ControlServer::all_closed() const {
    return std::all_of(sessions_.begin(), sessions_.end(), [](const auto& s) { return s->is_closed(); });
}

std::optional<std::string> ControlServer::refusal(Socket& sock) const {
    ucred peer{};
    socklen_t len = sizeof peer;
    if (::getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0)
        return "the supervisor cannot tell who is connecting (SO_PEERCRED failed)";
    if (peer.uid != 0 && peer.uid != owner_)
        return "user " + std::to_string(peer.uid) + " may not control this VM: only root and user " +
               std::to_string(owner_) + ", who started it, may connect";
    if (sessions_.size() >= limits_.max_sessions)
        return "the supervisor already serves " + std::to_string(limits_.max_sessions) +
               " connections, its limit; close one and try again";
    return std::nullopt;
}

asio::awaitable<void> ControlServer::accept_loop() {
    while (acceptor_.is_open()) {
        boost::system::error_code ec;
        auto sock = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        if (ec) {
            // Out of fds (EMFILE, ENFILE) or memory, or a client gone before it was accepted:
            // the connection waits in the backlog; try again shortly instead of giving up on
            // every later `status` and `stop`.
            retry_timer_.expires_after(std::chrono::milliseconds(100));
            co_await retry_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        if (auto why = refusal(sock)) {
            // One line, without waiting for a client that may never read it.
            const std::string line = error_reply(*why).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
            [[maybe_unused]] const auto sent = ::send(sock.native_handle(), line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            continue;  // `sock` closes here
        }
        auto session = std::make_shared<ControlSession>(std::move(sock), limits_);
        session->on_closed = [this] {
            if (on_session_closed) on_session_closed();
        };
        sessions_.push_back(session);
        asio::co_spawn(io_, serve(session), asio::detached);
    }
}

asio::awaitable<void> ControlServer::serve(std::shared_ptr<ControlSession> s) {
    // Whatever goes wrong in one session ends that session only.
    try {
        co_await serve_requests(s);
    } catch (const std::exception&) {
        s->force_close();
    }
    std::erase(sessions_, s);
}

asio::awaitable<void> ControlServer::serve_requests(std::shared_ptr<ControlSession> s) {
    asio::streambuf buf(limits_.max_request_bytes);
    while (!s->is_closed()) {
        boost::system::error_code ec;
        const auto n = co_await asio::async_read_until(s->socket(), buf, '\n', asio::redirect_error(use_awaitable, ec));
        if (ec == asio::error::not_found) {
            s->write(error_reply("a request is one line of at most " + std::to_string(limits_.max_request_bytes) +
                                 " bytes; this connection is closed"));
            s->close_after_writes();
            co_return;
        }
        // EOF: the client sent all it will; replies still owed (a stop's) are written.
        if (ec) co_return;
        std::string line(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
        buf.consume(n);
        std::optional<ParsedRequest> request;
        try {
            request = parse_request(line);
        } catch (const BadRequest& e) {
            s->write(error_reply(e.what(), e.id));
            continue;
        }
        // A request read after its deadline is refused and never carried out: the client gave
        // up on it (a supervisor stopped or hung while it waited) and may have acted otherwise.
        if (request->deadline && ControlClock::now() > *request->deadline) {
            s->write(error_reply("the request arrived after its deadline (the supervisor was not running); "
                                 "it was not carried out",
                                 request->id));
            continue;
        }
        try {
            co_await handler_(s, std::move(*request));
        } catch (const std::exception& e) {
            s->write(error_reply(std::string("bad request: ") + e.what()));
        }
    }
}

}  // namespace kvmgpu::app
