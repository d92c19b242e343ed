#pragma once
// QMP (QEMU Machine Protocol) client over a unix socket.
//
// Layers, as in QEMU's python/qemu/qmp:
//   transport  newline-framed JSON objects on a local stream socket, one writer queue;
//   protocol   run state (connecting → greeting → negotiating → running → closed), the greeting,
//              qmp_capabilities, request ids, replies routed by id, events, a timeout per call;
//   commands   callers build them from execute(); nothing here knows what a command means.
//
// Two faces on one implementation:
//   Client      async, for an event loop (the supervisor): awaitables on an io_context;
//   SyncClient  blocking, for one-shot CLI commands and tests; runs its own io_context.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "qmp/message.hpp"
#include "util/asio.hpp"

namespace kvmgpu::qmp {

using Clock = std::chrono::steady_clock;

// The default time a command may take before execute() gives up on it.
inline constexpr std::chrono::milliseconds kDefaultTimeout{10'000};

// QEMU answered a command with {"error": {"class": ..., "desc": ...}}.
class Error : public std::runtime_error {
public:
    Error(std::string command, std::string cls, std::string desc);
    const std::string& command() const { return command_; }
    const std::string& cls() const { return cls_; }    // e.g. "CommandNotFound", "GenericError"
    const std::string& desc() const { return desc_; }  // QEMU's human-readable text

private:
    std::string command_;
    std::string cls_;
    std::string desc_;
};

// The connection could not be established or was lost (EOF, reset, a protocol violation such as
// a line that is not JSON). Every call pending at that moment fails with this; the client is
// then closed for good.
class Disconnected : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A call (or connect) did not complete before its deadline. The connection stays usable: a reply
// that arrives later carries an id nobody waits for and is dropped.
class Timeout : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct ConnectOptions {
    // Give up (with qmp::Timeout) when the socket is not connected, greeted and negotiated by then.
    Clock::time_point deadline = Clock::now() + std::chrono::seconds(10);
    // Asked between attempts while the socket does not exist yet or refuses connections. Returning
    // a reason stops waiting with qmp::Disconnected carrying it, e.g. a launcher returns
    // "QEMU exited with status 1" once its child is gone instead of waiting for the deadline.
    std::function<std::optional<std::string>()> give_up;
    // Pause between connection attempts.
    std::chrono::milliseconds retry_interval{20};
};

using EventHandler = std::function<void(const Event&)>;
using DisconnectHandler = std::function<void(const std::string& reason)>;

namespace detail {
class Session;
}

// Async QMP client. All members must be called, and all awaitables awaited, on the executor's
// thread (an io_context run by one thread); the class is not internally synchronised. Single use:
// after a disconnect, make a new Client. Destroy it before its io_context.
class Client {
public:
    explicit Client(boost::asio::any_io_executor executor);
    Client(Client&&) noexcept;
    Client& operator=(Client&&) noexcept;
    ~Client();  // closes the connection; pending calls fail with Disconnected

    // Connects to `socket_path`, retrying while the file is missing or the connection is refused,
    // reads the greeting and negotiates capabilities. Throws Timeout, Disconnected.
    boost::asio::awaitable<Greeting> connect(std::filesystem::path socket_path, ConnectOptions options = {});

    // Runs `command` with `arguments` (an object, or null for none) and returns its "return"
    // value. Throws Error for an error reply, Timeout, Disconnected; std::invalid_argument if
    // `arguments` is neither an object nor null.
    boost::asio::awaitable<Json> execute(std::string command, Json arguments = nullptr,
                                         std::chrono::milliseconds timeout = kDefaultTimeout);

    // Sends a caller-built request object verbatim except for "id", which the client replaces
    // with its own for routing. Returns the whole reply object ({"return": ...} or {"error": ...},
    // error replies do not throw) with the caller's "id" put back, or without "id" if the
    // request had none. Throws Timeout, Disconnected; std::invalid_argument if `request` is not
    // an object.
    boost::asio::awaitable<Json> execute_raw(Json request, std::chrono::milliseconds timeout = kDefaultTimeout);

    // Handlers run on the executor, in arrival order, from the read loop; they must not throw
    // (a throwing handler closes the connection). Register before connect() to miss no event.
    // unsubscribe() may be called from inside a handler.
    std::size_t subscribe(EventHandler handler);
    void unsubscribe(std::size_t subscription);
    // Called once when an established connection is lost: EOF, a read or write error, a protocol
    // violation. Not called for close() or destruction by the owner, nor when connect() fails.
    void on_disconnect(DisconnectHandler handler);

    // Closes the socket; pending calls fail with Disconnected("... closed by the client").
    void close();

    bool connected() const;  // true from a successful connect() until the disconnect
    const Greeting& greeting() const;
    // Why the connection ended, once it has.
    std::optional<std::string> disconnect_reason() const;
    // Replies whose id matched no pending call (late replies to timed-out calls, foreign ids).
    std::uint64_t dropped_replies() const;

private:
    std::shared_ptr<detail::Session> session_;
};

// Blocking QMP client: each call runs a private io_context until the call completes. Events
// that arrive meanwhile are buffered (at most kMaxBufferedEvents, oldest dropped first) for
// wait_event()/take_events(). Not thread-safe. Single use, like Client: connect once.
class SyncClient {
public:
    static constexpr std::size_t kMaxBufferedEvents = 1024;

    SyncClient();
    SyncClient(const SyncClient&) = delete;
    SyncClient& operator=(const SyncClient&) = delete;
    ~SyncClient();

    const Greeting& connect(const std::filesystem::path& socket_path, ConnectOptions options = {});
    const Greeting& connect(const std::filesystem::path& socket_path, Clock::time_point deadline) {
        ConnectOptions options;
        options.deadline = deadline;
        return connect(socket_path, std::move(options));
    }

    Json execute(std::string_view command, Json arguments = nullptr,
                 std::chrono::milliseconds timeout = kDefaultTimeout);
    Json execute_raw(Json request, std::chrono::milliseconds timeout = kDefaultTimeout);

    // Removes and returns the first buffered or arriving event named `name` (earlier events of
    // other names stay buffered). Throws Timeout at the deadline, Disconnected if the connection
    // ends without such an event.
    Event wait_event(std::string_view name, Clock::time_point deadline);
    // Removes and returns every buffered event, oldest first; processes input already received.
    std::vector<Event> take_events();
    // Waits until the connection is gone; false at the deadline.
    bool wait_disconnected(Clock::time_point deadline);

    void close();
    bool connected() const { return client_.connected(); }
    const Greeting& greeting() const { return client_.greeting(); }
    std::optional<std::string> disconnect_reason() const { return client_.disconnect_reason(); }
    std::uint64_t dropped_replies() const { return client_.dropped_replies(); }

private:
    template <typename T>
    T run(boost::asio::awaitable<T> operation);

    boost::asio::io_context io_;  // declared first: destroyed after client_
    Client client_;
    std::deque<Event> events_;
};

}  // namespace kvmgpu::qmp
