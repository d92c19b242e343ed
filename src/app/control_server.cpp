#include "app/control_server.hpp"

#include <sys/stat.h>

#include <algorithm>

namespace kvmgpu::app {

namespace asio = boost::asio;
using asio::use_awaitable;

void ControlSession::write(const nlohmann::json& line) {
    if (closed_) return;
    out_.push_back(line.dump() + "\n");
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
                              return;
                          }
                          self->out_.pop_front();
                          if (ec) {
                              self->out_.clear();
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
    if (!writing_) out_.clear();
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
}

void ControlServer::broadcast(const nlohmann::json& event) {
    for (auto& s : sessions_) {
        if (!s->wants_events) continue;
        if (s->queued() > kMaxQueuedEvents) s->force_close();
        else s->write(event);
    }
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

asio::awaitable<void> ControlServer::accept_loop() {
    while (acceptor_.is_open()) {
        boost::system::error_code ec;
        auto sock = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;
        auto session = std::make_shared<ControlSession>(std::move(sock));
        session->on_closed = [this] {
            if (on_session_closed) on_session_closed();
        };
        sessions_.push_back(session);
        asio::co_spawn(io_, serve(session), asio::detached);
    }
}

asio::awaitable<void> ControlServer::serve(std::shared_ptr<ControlSession> s) {
    asio::streambuf buf;
    while (true) {
        boost::system::error_code ec;
        const auto n = co_await asio::async_read_until(s->socket(), buf, '\n', asio::redirect_error(use_awaitable, ec));
        if (ec) break;
        std::string line(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
        buf.consume(n);
        std::optional<ParsedRequest> request;
        try {
            request = parse_request(line);
        } catch (const BadRequest& e) {
            s->write(error_reply(e.what(), e.id));
            continue;
        }
        try {
            co_await handler_(s, std::move(*request));
        } catch (const std::exception& e) {
            s->write(error_reply(std::string("bad request: ") + e.what()));
        }
    }
    std::erase(sessions_, s);
}

}  // namespace kvmgpu::app
