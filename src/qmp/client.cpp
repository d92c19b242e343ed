#include "qmp/client.hpp"

#include <algorithm>
#include <deque>
#include <exception>
#include <unordered_map>

#include "util/text.hpp"

// GCC 12 flags Asio's awaitable frames with -Wmismatched-new-delete: their class-specific
// operator new and sized operator delete are a valid pair that GCC misreads after inlining (GCC
// PR middle-end/109224). Whether it fires depends on inlining, so it is silenced for this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace kvmgpu::qmp {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::local::stream_protocol;
using boost::system::error_code;

namespace {

// A message bigger than this is treated as a broken peer rather than buffered without end.
// query-qmp-schema, the largest reply QEMU 7.2 gives, is about 200 KiB.
constexpr std::size_t kMaxMessageBytes = std::size_t{64} << 20;
// The read buffer keeps at most this much capacity between messages, so one large reply does
// not pin its size for the life of the connection.
constexpr std::size_t kKeptBufferCapacity = std::size_t{64} << 10;

std::string ms_text(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

std::string qt(std::string_view text) { return util::quoted(text); }

std::string quoted_path(const std::filesystem::path& path) { return util::quoted(path.string()); }

template <typename F>
struct ScopeExit {
    F f;
    ~ScopeExit() { f(); }
};
template <typename F>
ScopeExit(F) -> ScopeExit<F>;

}  // namespace

Error::Error(std::string command, std::string cls, std::string desc)
    : std::runtime_error("QMP command " + qt(command) + " failed: " + cls + ": " + desc),
      command_(std::move(command)),
      cls_(std::move(cls)),
      desc_(std::move(desc)) {}

namespace detail {

// One outstanding wait: a call's reply or the greeting. The timer doubles as the wake-up signal:
// the waiter sleeps on it until its deadline, and completing the wait cancels it. Lives in the
// waiting coroutine's frame; the session holds only a pointer, removed by the waiter on exit.
struct Waiter {
    Waiter(const asio::any_io_executor& executor, std::string_view what) : timer(executor), command(what) {}
    asio::steady_timer timer;
    std::string_view command;
    std::optional<Json> reply;
    std::exception_ptr failure;

    bool done() const { return reply.has_value() || failure != nullptr; }
    void complete(Json message) {
        reply = std::move(message);
        timer.cancel();
    }
    void fail(std::exception_ptr error) {
        failure = std::move(error);
        timer.cancel();
    }
};

// The protocol state shared by a Client and its read and write coroutines, which hold it alive
// (through shared_ptr) until they finish, so a Client can be destroyed with I/O in flight.
class Session : public std::enable_shared_from_this<Session> {
public:
    enum class State { idle, connecting, greeting, negotiating, running, closed };

    explicit Session(asio::any_io_executor executor)
        : executor_(std::move(executor)), socket_(executor_), retry_timer_(executor_) {}

    awaitable<Greeting> connect(std::filesystem::path path, ConnectOptions options);
    awaitable<Json> call(Json request, std::string command, std::chrono::milliseconds timeout);
    // Ends the session: closes the socket and fails every pending wait with Disconnected.
    // `by_owner` marks a close() or destruction by the Client's owner, which already knows, so the
    // disconnect handler is not called (it might reach into the half-destroyed owner).
    void close_with(std::string reason, bool by_owner = false);

    std::size_t subscribe(EventHandler handler) {
        const std::size_t id = next_subscription_++;
        subscribers_.emplace_back(id, std::make_shared<EventHandler>(std::move(handler)));
        return id;
    }
    void unsubscribe(std::size_t id) {
        auto it = std::find_if(subscribers_.begin(), subscribers_.end(), [&](const auto& s) { return s.first == id; });
        if (it == subscribers_.end()) return;
        *it->second = nullptr;  // a dispatch in progress holds a copy of the pointer and skips it
        subscribers_.erase(it);
    }

    State state_ = State::idle;
    Greeting greeting_;
    std::optional<std::string> reason_;
    std::uint64_t dropped_replies_ = 0;
    DisconnectHandler disconnect_handler_;

private:
    awaitable<void> read_loop(std::shared_ptr<Session> self);
    awaitable<void> write_loop(std::shared_ptr<Session> self);
    awaitable<void> sleep_until_done(Waiter& waiter);
    void send(std::string line);
    void dispatch(Json message);
    void handle_greeting(Json message);
    void deliver(Event event);

    asio::any_io_executor executor_;
    stream_protocol::socket socket_;
    asio::steady_timer retry_timer_;
    std::filesystem::path path_;
    std::string input_;
    std::deque<std::string> outbox_;
    bool writing_ = false;
    std::uint64_t next_id_ = 1;
    std::unordered_map<std::uint64_t, Waiter*> pending_;
    Waiter* greeting_waiter_ = nullptr;
    std::vector<std::pair<std::size_t, std::shared_ptr<EventHandler>>> subscribers_;
    std::size_t next_subscription_ = 1;
};

awaitable<void> Session::sleep_until_done(Waiter& waiter) {
    // Single-threaded: nothing can complete the waiter between this check and the wait starting.
    if (waiter.done()) co_return;
    error_code ignored;
    co_await waiter.timer.async_wait(asio::redirect_error(use_awaitable, ignored));
}

awaitable<Greeting> Session::connect(std::filesystem::path path, ConnectOptions options) {
    auto self = shared_from_this();
    if (state_ != State::idle) throw std::logic_error("qmp::Client::connect() may be called only once per client");
    path_ = std::move(path);
    state_ = State::connecting;

    stream_protocol::endpoint endpoint;
    try {
        endpoint = stream_protocol::endpoint(path_.string());
    } catch (const boost::system::system_error&) {
        std::string message = "cannot connect to QMP socket " + quoted_path(path_) + ": the path is " +
                              std::to_string(path_.string().size()) + " bytes long; unix sockets allow at most " +
                              std::to_string(sizeof(sockaddr_un::sun_path) - 1);
        close_with(message);
        throw Disconnected(message);
    }

    // QEMU creates and starts listening on the socket shortly after it starts: until then the
    // file is missing (ENOENT) or a stale file refuses (ECONNREFUSED). Both are worth a retry.
    for (;;) {
        error_code ec;
        co_await socket_.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
        if (state_ == State::closed) throw Disconnected(*reason_);  // close() was called meanwhile
        if (!ec) break;
        error_code ignored;
        socket_.close(ignored);  // reopened by the next async_connect
        const std::string failure = "cannot connect to QMP socket " + quoted_path(path_);
        if (ec != boost::system::errc::no_such_file_or_directory &&
            ec != asio::error::connection_refused && ec != asio::error::try_again) {
            close_with(failure + ": " + ec.message());
            throw Disconnected(*reason_);
        }
        if (options.give_up) {
            if (auto reason = options.give_up()) {
                close_with(failure + ": " + *reason);
                throw Disconnected(*reason_);
            }
        }
        const auto now = Clock::now();
        if (now >= options.deadline) {
            close_with(failure + " before the deadline: " + ec.message());
            throw Timeout(*reason_);
        }
        retry_timer_.expires_at(std::min(now + options.retry_interval, options.deadline));
        co_await retry_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
        if (state_ == State::closed) throw Disconnected(*reason_);  // close() was called meanwhile
    }

    state_ = State::greeting;
    asio::co_spawn(executor_, read_loop(self), asio::detached);

    Waiter greeting(executor_, "greeting");
    greeting.timer.expires_at(options.deadline);
    greeting_waiter_ = &greeting;
    {
        ScopeExit forget{[this] { greeting_waiter_ = nullptr; }};
        co_await sleep_until_done(greeting);
    }
    if (greeting.failure) std::rethrow_exception(greeting.failure);
    if (!greeting.reply) {
        close_with("QEMU sent no QMP greeting on " + quoted_path(path_) + " before the deadline");
        throw Timeout(*reason_);
    }

    state_ = State::negotiating;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(options.deadline - Clock::now());
    Json reply;
    // Built outside the co_await expression: GCC 12 miscompiles ("array used as initializer")
    // a braced initializer list whose temporaries live across a suspension point.
    Json request = Json::object();
    request["execute"] = "qmp_capabilities";
    try {
        reply = co_await call(std::move(request), "qmp_capabilities", std::max(left, std::chrono::milliseconds(1)));
    } catch (const Timeout&) {
        close_with("QEMU on " + quoted_path(path_) + " did not answer qmp_capabilities before the deadline");
        throw;
    }
    if (auto it = reply.find("error"); it != reply.end()) {
        const std::string text = it->value("class", std::string("?")) + ": " + it->value("desc", std::string("?"));
        close_with("QEMU on " + quoted_path(path_) + " refused qmp_capabilities: " + text);
        throw Disconnected(*reason_);
    }
    state_ = State::running;
    co_return greeting_;
}

awaitable<Json> Session::call(Json request, std::string command, std::chrono::milliseconds timeout) {
    auto self = shared_from_this();
    const bool negotiating = state_ == State::negotiating && command == "qmp_capabilities";
    if (state_ != State::running && !negotiating) {
        throw Disconnected("QMP command " + qt(command) + " cannot be sent: " +
                           (reason_ ? *reason_ : std::string("the client is not connected to QEMU")));
    }
    const std::uint64_t id = next_id_++;
    request["id"] = id;
    std::string line;
    try {
        line = request.dump();
    } catch (const Json::exception& e) {
        throw std::invalid_argument("QMP command " + qt(command) + " cannot be encoded as JSON: " + e.what());
    }
    line += '\n';

    Waiter waiter(executor_, command);
    waiter.timer.expires_after(timeout);
    pending_.emplace(id, &waiter);
    ScopeExit forget{[this, id] { pending_.erase(id); }};
    send(std::move(line));
    co_await sleep_until_done(waiter);
    if (waiter.failure) std::rethrow_exception(waiter.failure);
    if (waiter.reply) co_return std::move(*waiter.reply);
    // The call is forgotten on return; a reply arriving later is dropped as an unknown id.
    throw Timeout("QMP command " + qt(command) + " got no reply within " + ms_text(timeout));
}

void Session::send(std::string line) {
    outbox_.push_back(std::move(line));
    if (!writing_) {
        writing_ = true;
        asio::co_spawn(executor_, write_loop(shared_from_this()), asio::detached);
    }
}

// `self` keeps the session alive until the loop ends, even after its Client is gone.
awaitable<void> Session::write_loop([[maybe_unused]] std::shared_ptr<Session> self) {
    // One writer at a time: Asio forbids overlapping async_write calls on one socket.
    while (!outbox_.empty() && state_ != State::closed) {
        error_code ec;
        co_await asio::async_write(socket_, asio::buffer(outbox_.front()), asio::redirect_error(use_awaitable, ec));
        if (ec) {
            close_with("writing to QMP socket " + quoted_path(path_) + " failed: " + ec.message());
            break;
        }
        outbox_.pop_front();
    }
    if (state_ == State::closed) outbox_.clear();
    writing_ = false;
}

// `self` keeps the session alive until the loop ends, even after its Client is gone.
awaitable<void> Session::read_loop([[maybe_unused]] std::shared_ptr<Session> self) {
    // QEMU ends every message with "\r\n" and never puts a raw newline inside one.
    while (state_ != State::closed) {
        error_code ec;
        const std::size_t length = co_await asio::async_read_until(
            socket_, asio::dynamic_buffer(input_, kMaxMessageBytes), '\n', asio::redirect_error(use_awaitable, ec));
        if (state_ == State::closed) break;
        if (ec == asio::error::eof) {
            close_with("QEMU closed the QMP connection on " + quoted_path(path_) + " (end of file)");
            break;
        }
        if (ec == asio::error::not_found) {
            close_with("QEMU sent a QMP message larger than " + std::to_string(kMaxMessageBytes >> 20) + " MiB on " +
                       quoted_path(path_));
            break;
        }
        if (ec) {
            close_with("reading from QMP socket " + quoted_path(path_) + " failed: " + ec.message());
            break;
        }
        Line line = parse_line(std::string_view(input_.data(), length));
        if (auto* why = std::get_if<std::string>(&line)) {
            close_with("QEMU sent a line on " + quoted_path(path_) + " " + *why);
            break;
        }
        input_.erase(0, length);
        if (input_.capacity() > kKeptBufferCapacity && input_.size() < kKeptBufferCapacity) input_.shrink_to_fit();
        if (std::holds_alternative<BlankLine>(line)) continue;
        try {
            dispatch(std::move(std::get<Json>(line)));
        } catch (const std::exception& e) {
            close_with(std::string("a QMP event handler failed: ") + e.what());
        } catch (...) {
            close_with("a QMP event handler threw a non-standard exception");
        }
    }
}

void Session::dispatch(Json message) {
    if (message.contains("QMP")) {
        if (state_ == State::greeting) handle_greeting(std::move(message));
        return;  // a second greeting is meaningless; ignore it
    }
    if (state_ == State::greeting) {
        close_with("QEMU sent a QMP message on " + quoted_path(path_) + " before its greeting");
        return;
    }
    if (message.contains("event")) {
        deliver(make_event(message));
        return;
    }
    if (const auto id = reply_id(message)) {
        if (auto it = pending_.find(*id); it != pending_.end()) {
            Waiter* waiter = it->second;
            pending_.erase(it);
            waiter->complete(std::move(message));
            return;
        }
    }
    // A reply nobody waits for (its call timed out, or a foreign id) or an unknown message kind.
    ++dropped_replies_;
}

void Session::handle_greeting(Json message) {
    try {
        greeting_ = parse_greeting(message);
    } catch (const std::exception& e) {
        const std::string reason = "QEMU's QMP greeting on " + quoted_path(path_) + " is malformed: " + e.what();
        close_with(reason);
        return;
    }
    if (greeting_waiter_ != nullptr) greeting_waiter_->complete(std::move(message));
}

void Session::deliver(Event event) {
    if (subscribers_.empty()) return;
    // A snapshot, so handlers may subscribe or unsubscribe while being called.
    std::vector<std::shared_ptr<EventHandler>> handlers;
    handlers.reserve(subscribers_.size());
    for (const auto& subscriber : subscribers_) handlers.push_back(subscriber.second);
    for (const auto& handler : handlers) {
        if (*handler) (*handler)(event);
        if (state_ == State::closed) return;
    }
}

void Session::close_with(std::string reason, bool by_owner) {
    if (state_ == State::closed) return;
    const bool notify = state_ == State::running && !by_owner;
    state_ = State::closed;
    reason_ = std::move(reason);
    error_code ignored;
    socket_.close(ignored);
    retry_timer_.cancel();
    // Each waiter removes its own entry when it resumes; the map is emptied here so that no
    // reply can complete a call after the disconnect.
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, waiter] : pending) {
        waiter->fail(std::make_exception_ptr(
            Disconnected("QMP command " + qt(waiter->command) + " got no reply: " + *reason_)));
    }
    if (greeting_waiter_ != nullptr) {
        greeting_waiter_->fail(std::make_exception_ptr(
            Disconnected("no QMP greeting from " + quoted_path(path_) + ": " + *reason_)));
    }
    if (notify && disconnect_handler_) disconnect_handler_(*reason_);
}

}  // namespace detail

// ---- Client ----

Client::Client(asio::any_io_executor executor) : session_(std::make_shared<detail::Session>(std::move(executor))) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&& other) noexcept {
    if (this != &other) {
        if (session_) session_->close_with("the QMP client was replaced", /*by_owner=*/true);
        session_ = std::move(other.session_);
    }
    return *this;
}
Client::~Client() {
    if (session_) session_->close_with("the QMP connection was closed by the client", /*by_owner=*/true);
}

awaitable<Greeting> Client::connect(std::filesystem::path socket_path, ConnectOptions options) {
    auto session = session_;
    co_return co_await session->connect(std::move(socket_path), std::move(options));
}

awaitable<Json> Client::execute(std::string command, Json arguments, std::chrono::milliseconds timeout) {
    auto session = session_;
    if (!arguments.is_null() && !arguments.is_object()) {
        throw std::invalid_argument("the arguments of QMP command " + qt(command) + " must be a JSON object, not " +
                                    arguments.type_name());
    }
    Json request{{"execute", command}};
    if (arguments.is_object() && !arguments.empty()) request["arguments"] = std::move(arguments);
    Json reply = co_await session->call(std::move(request), command, timeout);
    if (auto error = reply.find("error"); error != reply.end()) {
        std::string cls = "GenericError";
        std::string desc;
        if (error->is_object()) {
            if (auto it = error->find("class"); it != error->end() && it->is_string()) cls = it->get<std::string>();
            if (auto it = error->find("desc"); it != error->end() && it->is_string()) desc = it->get<std::string>();
        }
        throw Error(std::move(command), std::move(cls), std::move(desc));
    }
    co_return std::move(reply["return"]);
}

awaitable<Json> Client::execute_raw(Json request, std::chrono::milliseconds timeout) {
    auto session = session_;
    if (!request.is_object()) {
        throw std::invalid_argument(std::string("a QMP request must be a JSON object, not ") + request.type_name());
    }
    std::optional<Json> caller_id;
    if (auto it = request.find("id"); it != request.end()) {
        caller_id = std::move(*it);
        request.erase("id");
    }
    std::string command = "(unnamed)";
    for (const char* key : {"execute", "exec-oob"}) {
        if (auto it = request.find(key); it != request.end() && it->is_string()) command = it->get<std::string>();
    }
    Json reply = co_await session->call(std::move(request), std::move(command), timeout);
    reply.erase("id");
    if (caller_id) reply["id"] = std::move(*caller_id);
    co_return reply;
}

std::size_t Client::subscribe(EventHandler handler) { return session_->subscribe(std::move(handler)); }
void Client::unsubscribe(std::size_t subscription) { session_->unsubscribe(subscription); }
void Client::on_disconnect(DisconnectHandler handler) { session_->disconnect_handler_ = std::move(handler); }
void Client::close() { session_->close_with("the QMP connection was closed by the client", /*by_owner=*/true); }
bool Client::connected() const { return session_ && session_->state_ == detail::Session::State::running; }
const Greeting& Client::greeting() const { return session_->greeting_; }
std::optional<std::string> Client::disconnect_reason() const { return session_->reason_; }
std::uint64_t Client::dropped_replies() const { return session_->dropped_replies_; }

// ---- SyncClient ----

SyncClient::SyncClient() : client_(io_.get_executor()) {
    client_.subscribe([this](const Event& event) {
        if (events_.size() >= kMaxBufferedEvents) events_.pop_front();
        events_.push_back(event);
    });
}

SyncClient::~SyncClient() {
    try {
        close();
    } catch (...) {
        // Closing only fails pending calls; nothing to report from a destructor.
    }
}

template <typename T>
T SyncClient::run(asio::awaitable<T> operation) {
    std::optional<T> result;
    std::exception_ptr failure;
    bool done = false;
    asio::co_spawn(io_, std::move(operation), [&](std::exception_ptr error, T value) {
        failure = error;
        if (!error) result.emplace(std::move(value));
        done = true;
    });
    io_.restart();
    // Every operation ends by itself (reply, timeout, or disconnect), so this terminates.
    while (!done && io_.run_one() != 0) {
    }
    if (!done) throw std::logic_error("qmp::SyncClient: the operation stopped without completing");
    if (failure) std::rethrow_exception(failure);
    return std::move(*result);
}

const Greeting& SyncClient::connect(const std::filesystem::path& socket_path, ConnectOptions options) {
    run(client_.connect(socket_path, std::move(options)));
    return client_.greeting();
}

Json SyncClient::execute(std::string_view command, Json arguments, std::chrono::milliseconds timeout) {
    return run(client_.execute(std::string(command), std::move(arguments), timeout));
}

Json SyncClient::execute_raw(Json request, std::chrono::milliseconds timeout) {
    return run(client_.execute_raw(std::move(request), timeout));
}

Event SyncClient::wait_event(std::string_view name, Clock::time_point deadline) {
    for (;;) {
        auto it = std::find_if(events_.begin(), events_.end(), [&](const Event& e) { return e.name == name; });
        if (it != events_.end()) {
            Event event = std::move(*it);
            events_.erase(it);
            return event;
        }
        if (!client_.connected()) {
            throw Disconnected("QMP event " + qt(name) + " cannot arrive: " +
                               client_.disconnect_reason().value_or("the client is not connected to QEMU"));
        }
        if (Clock::now() >= deadline) throw Timeout("QMP event " + qt(name) + " did not arrive before the deadline");
        io_.restart();
        io_.run_one_until(deadline);
    }
}

std::vector<Event> SyncClient::take_events() {
    io_.restart();
    io_.poll();
    std::vector<Event> events(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
    events_.clear();
    return events;
}

bool SyncClient::wait_disconnected(Clock::time_point deadline) {
    while (client_.connected()) {
        if (Clock::now() >= deadline) return false;
        io_.restart();
        io_.run_one_until(deadline);
    }
    return true;
}

void SyncClient::close() {
    client_.close();
    // Let the read and write coroutines observe the close and release the session.
    io_.restart();
    io_.poll();
}

}  // namespace kvmgpu::qmp
