#include "app/supervisor.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <filesystem>
#include <memory>
#include <set>

#include "qmp/client.hpp"
#include "util/asio.hpp"
#include "util/signals.hpp"

namespace kvmgpu::app {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using local_socket = asio::local::stream_protocol::socket;
using nlohmann::json;

json error_reply(const std::string& desc, const json& id = nullptr) {
    json reply = {{"error", {{"class", "GenericError"}, {"desc", desc}}}};
    if (!id.is_null()) reply["id"] = id;
    return reply;
}

// One control connection. Replies and streamed events are queued and written in order.
struct Session : std::enable_shared_from_this<Session> {
    explicit Session(local_socket s) : sock(std::move(s)) {}

    void write(const json& j) {
        if (closed) return;
        out.push_back(j.dump() + "\n");
        if (!writing) flush();
    }
    // Closes once every queued line is written.
    void close_after_writes() {
        closing = true;
        if (!writing) shut();
    }
    // Lines written but not yet taken by the client.
    std::size_t queued() const { return out.size(); }
    void force_close() { shut(); }
    bool is_closed() const { return closed; }
    std::function<void()> on_closed;  // called once, when the socket is closed

    local_socket sock;
    bool events = false;

private:
    void flush() {
        writing = true;
        asio::async_write(sock, asio::buffer(out.front()),
                          [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                              self->out.pop_front();
                              if (ec) {
                                  self->out.clear();
                                  self->shut();
                              }
                              if (self->out.empty()) {
                                  self->writing = false;
                                  if (self->closing) self->shut();
                              } else {
                                  self->flush();
                              }
                          });
    }
    void shut() {
        out.clear();
        if (closed) return;
        closed = true;
        boost::system::error_code ec;
        sock.shutdown(local_socket::shutdown_both, ec);
        sock.close(ec);
        if (on_closed) on_closed();
    }

    std::deque<std::string> out;
    bool writing = false;
    bool closing = false;
    bool closed = false;
};

constexpr std::size_t kMaxQueuedEvents = 4096;

class Supervisor {
public:
    Supervisor(const VmDir& dir, util::ChildProcess& qemu, VmState state, const SuperviseOptions& options,
               const Report& report)
        : dir_(dir), qemu_(qemu), state_(std::move(state)), options_(options), report_(report),
          qmp_(io_.get_executor()), exit_watch_(io_), signals_(io_, SIGINT, SIGTERM, SIGHUP), acceptor_(io_),
          stop_timer_(io_), poll_timer_(io_), finish_timer_(io_) {}

    ExitVerdict run(const OnEnd& on_end) {
        on_end_ = &on_end;
        qmp_.subscribe([this](const qmp::Event& e) { on_event(e); });
        qmp_.on_disconnect([this](const std::string&) {
            if (exit_seen_) finish();
        });
        watch_exit();
        watch_signals();
        // The launcher blocked these while it changed the host; from here the loop handles them.
        util::BlockSignals::unblock({SIGINT, SIGTERM, SIGHUP});
        asio::co_spawn(io_, start(), asio::detached);
        io_.run();
        return result_;
    }

private:
    void step(std::string name, std::string message, std::string detail = {}) {
        report_(StepEvent{std::move(name), std::move(message), true, std::move(detail), ""});
    }

    // ---- start: negotiate, configure, cont ----
    awaitable<void> start() {
        try {
            qmp::ConnectOptions connect;
            connect.deadline = qmp::Clock::now() + options_.connect_timeout;
            // QEMU opens its socket some 20 ms after exec; a short retry interval keeps that
            // wait from rounding up to the next retry (a stat and a refused connect are cheap).
            connect.retry_interval = std::chrono::milliseconds(1);
            connect.give_up = [this]() -> std::optional<std::string> {
                if (ended_) return std::string("QEMU exited before its QMP socket was ready");
                if (auto status = qemu_.try_wait())
                    return "QEMU " + util::describe_wait_status(*status) + " before its QMP socket was ready";
                return std::nullopt;
            };
            const auto greeting = co_await qmp_.connect(dir_.qmp_socket(), connect);
            step("qmp", "connecting to QMP",
                 "QEMU " + std::to_string(greeting.major) + "." + std::to_string(greeting.minor) + "." +
                     std::to_string(greeting.micro));
            if (!options_.pin.empty() || !options_.emulator_pin.empty()) co_await pin();
            open_control_socket();
            if (stopping_) co_return;  // a stop arrived while starting: nothing to resume
            co_await qmp_.execute("cont");
            running_ = true;
            report_(RunningEvent{state_.name, state_.qemu_pid, state_.supervisor_pid, dir_.control_socket().string()});
        } catch (const std::exception& e) {
            if (ended_) co_return;
            start_error_ = e.what();
            report_(StepEvent{"start", "starting the VM", false, "", start_error_});
            // A VM that never ran is not worth keeping: end QEMU so the devices come back.
            kill_qemu();
        }
    }

    awaitable<void> pin() {
        const auto cpus = co_await qmp_.execute("query-cpus-fast");
        std::set<pid_t> vcpu_threads;
        for (const auto& cpu : cpus) {
            const auto index = cpu.at("cpu-index").get<std::size_t>();
            const auto tid = cpu.at("thread-id").get<pid_t>();
            vcpu_threads.insert(tid);
            if (index < options_.pin.size()) set_affinity(tid, {options_.pin[index]}, "vCPU " + std::to_string(index));
        }
        if (!options_.emulator_pin.empty()) {
            // Every other thread of QEMU: the main loop, I/O threads, workers.
            const auto tasks = std::filesystem::path("/proc") / std::to_string(state_.qemu_pid) / "task";
            std::error_code ec;
            for (const auto& entry : std::filesystem::directory_iterator(tasks, ec)) {
                const pid_t tid = static_cast<pid_t>(std::strtol(entry.path().filename().c_str(), nullptr, 10));
                // A worker thread may end between the listing and the call: nothing to pin.
                if (tid > 0 && !vcpu_threads.count(tid))
                    set_affinity(tid, options_.emulator_pin, "QEMU thread " + std::to_string(tid), true);
            }
        }
        std::string detail;
        for (std::size_t i = 0; i < options_.pin.size(); ++i)
            detail += (i ? " " : "") + std::to_string(i) + "→" + std::to_string(options_.pin[i]);
        step("pin", "pinning vCPUs to host CPUs", detail);
    }

    static void set_affinity(pid_t tid, const std::vector<unsigned>& cpus, const std::string& what,
                             bool may_be_gone = false) {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (unsigned c : cpus) CPU_SET(c, &set);
        if (::sched_setaffinity(tid, sizeof set, &set) != 0 && !(may_be_gone && errno == ESRCH))
            throw std::system_error(errno, std::generic_category(), "cannot pin " + what);
    }

    // ---- control socket ----
    void open_control_socket() {
        const auto path = dir_.control_socket();
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

    awaitable<void> accept_loop() {
        while (acceptor_.is_open()) {
            boost::system::error_code ec;
            auto sock = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
            if (ec) co_return;
            auto session = std::make_shared<Session>(std::move(sock));
            // Once the VM has ended, the last session to close lets the loop finish at once.
            session->on_closed = [this] {
                if (ended_ && std::all_of(sessions_.begin(), sessions_.end(), [](const auto& s) { return s->is_closed(); }))
                    finish_timer_.cancel();
            };
            sessions_.push_back(session);
            asio::co_spawn(io_, serve(session), asio::detached);
        }
    }

    awaitable<void> serve(std::shared_ptr<Session> s) {
        asio::streambuf buf;
        while (true) {
            boost::system::error_code ec;
            const auto n = co_await asio::async_read_until(s->sock, buf, '\n', asio::redirect_error(use_awaitable, ec));
            if (ec) break;
            std::string line(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
            buf.consume(n);
            json req;
            try {
                req = json::parse(line);
            } catch (const std::exception& e) {
                s->write(error_reply(std::string("the request is not JSON: ") + e.what()));
                continue;
            }
            try {
                co_await handle(s, std::move(req));
            } catch (const std::exception& e) {
                s->write(error_reply(std::string("bad request: ") + e.what()));
            }
        }
        std::erase(sessions_, s);
    }

    awaitable<void> handle(std::shared_ptr<Session> s, json req) {
        const json id = req.is_object() && req.contains("id") ? req["id"] : json(nullptr);
        if (!req.is_object()) {
            s->write(error_reply("a request is a JSON object"));
            co_return;
        }
        if (ended_) {
            s->write(error_reply("the VM has ended", id));
            co_return;
        }
        if (req.contains("execute")) {
            try {
                s->write(co_await qmp_.execute_raw(std::move(req)));
            } catch (const std::exception& e) {
                s->write(error_reply(e.what(), id));
            }
            co_return;
        }
        const std::string op = req.value("kvmgpu", "");
        if (op == "status") {
            json status = {{"name", state_.name},
                           {"supervisor_pid", state_.supervisor_pid},
                           {"qemu_pid", state_.qemu_pid},
                           {"devices", state_.devices},
                           {"supervised", true},
                           {"stopping", stopping_}};
            try {
                const auto q = co_await qmp_.execute("query-status");
                status["status"] = q.at("status");
                status["running"] = q.at("running");
            } catch (const std::exception& e) {
                status["status"] = "unknown";
                status["error"] = e.what();
            }
            json reply = {{"return", status}};
            if (!id.is_null()) reply["id"] = id;
            s->write(reply);
        } else if (op == "stop") {
            stop_waiters_.push_back({s, id});
            const auto timeout = std::chrono::seconds(req.value("timeout", options_.stop_timeout.count()));
            request_stop(StopCause::stop_requested, timeout, req.value("force", false));
        } else if (op == "events") {
            s->events = true;
            json reply = {{"return", json::object()}};
            if (!id.is_null()) reply["id"] = id;
            s->write(reply);
        } else {
            s->write(error_reply("unknown request; send a QMP command ({\"execute\": ...}) or "
                                 "{\"kvmgpu\": \"status\"|\"stop\"|\"events\"}",
                                 id));
        }
    }

    // ---- events ----
    void on_event(const qmp::Event& e) {
        if (e.name == "SHUTDOWN") shutdown_reason_ = e.data.value("reason", "");
        if (running_ && e.name == "STOP") report_(PausedEvent{state_.name});
        if (running_ && e.name == "RESUME") report_(ResumedEvent{state_.name});
        const json line = {{"event", e.name}, {"data", e.data}, {"timestamp_us", e.timestamp_us}};
        for (auto& s : sessions_) {
            if (!s->events) continue;
            // A client that stopped reading (a paused pager) is dropped rather than let its
            // backlog grow without bound.
            if (s->queued() > kMaxQueuedEvents) s->force_close();
            else s->write(line);
        }
    }

    // ---- stopping ----
    void watch_signals() {
        signals_.async_wait([this](boost::system::error_code ec, int sig) {
            if (ec) return;
            ++signals_seen_;
            const bool force = signals_seen_ > 1;
            report_(StoppingEvent{sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "SIGTERM", force});
            request_stop(StopCause::signal, options_.stop_timeout, force);
            watch_signals();
        });
    }

    void request_stop(StopCause why, std::chrono::seconds timeout, bool force) {
        if (!stop_why_) stop_why_ = why;
        if (stopping_ && !force) return;
        const bool escalate = stopping_ && force;
        stopping_ = true;
        if (force) force_ = true;
        if (escalate) {
            stop_timer_.cancel();  // the running sequence moves on at its next wait
            return;
        }
        asio::co_spawn(io_, stop_sequence(timeout, force), asio::detached);
    }

    // ACPI power button, wait; quit, wait; SIGTERM (QEMU shuts down cleanly on it), wait;
    // SIGKILL. Each stage ends early when QEMU exits; a forced stop skips the power button.
    awaitable<void> stop_sequence(std::chrono::seconds timeout, bool force) {
        (void)force;
        if (!force_ && running_) {
            try {
                co_await qmp_.execute("system_powerdown", nullptr, std::chrono::seconds(5));
                step("powerdown", "asking the guest to power off", "waiting up to " + std::to_string(timeout.count()) + " s");
                co_await wait_stop_timer(timeout);
            } catch (const std::exception&) {
            }
        }
        if (ended_) co_return;
        try {
            co_await qmp_.execute("quit", nullptr, std::chrono::seconds(5));
            co_await wait_stop_timer(std::chrono::seconds(5));
        } catch (const std::exception&) {
        }
        if (ended_) co_return;
        try {
            qemu_.kill(SIGTERM);
        } catch (const std::exception&) {
        }
        co_await wait_stop_timer(std::chrono::seconds(5));
        if (ended_) co_return;
        kill_qemu();
    }

    // Waits `timeout`, or not at all once the stop is forced (a second Ctrl-C, --force).
    awaitable<void> wait_stop_timer(std::chrono::seconds timeout) {
        if (force_ && timeout > std::chrono::seconds(5)) timeout = std::chrono::seconds(0);
        stop_timer_.expires_after(timeout);
        boost::system::error_code ec;
        co_await stop_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    }

    void kill_qemu() {
        try {
            qemu_.kill(SIGKILL);
        } catch (const std::exception&) {
        }
    }

    // ---- QEMU's exit ----
    void watch_exit() {
        if (qemu_.pidfd() >= 0) {
            exit_watch_.assign(::dup(qemu_.pidfd()));
            exit_watch_.async_wait(asio::posix::descriptor::wait_read, [this](boost::system::error_code ec) {
                if (!ec) on_exit();
            });
            return;
        }
        // No pidfd (kernel < 5.3): poll the child at a short interval.
        poll_timer_.expires_after(std::chrono::milliseconds(50));
        poll_timer_.async_wait([this](boost::system::error_code ec) {
            if (ec) return;
            if (qemu_.try_wait()) on_exit();
            else watch_exit();
        });
    }

    // QEMU is gone. Its QMP socket may still hold its last events (SHUTDOWN and its reason), read
    // in the same loop turn or the next: classify once the client has read to EOF, or after 1 s.
    void on_exit() {
        if (exit_seen_) return;
        exit_seen_ = true;
        if (!qmp_.connected()) {
            finish();
            return;
        }
        finish_timer_.expires_after(std::chrono::seconds(1));
        finish_timer_.async_wait([this](boost::system::error_code ec) {
            if (!ec) finish();
        });
    }

    void finish() {
        if (ended_) return;
        ended_ = true;
        finish_timer_.cancel();
        ExitObservation seen;
        seen.start_error = start_error_;
        seen.ran = running_;
        seen.stop_cause = stop_why_;
        seen.wait_status = qemu_.try_wait();
        seen.shutdown_reason = shutdown_reason_;
        result_ = classify_exit(seen);
        signals_.cancel();
        stop_timer_.cancel();
        poll_timer_.cancel();
        boost::system::error_code ec;
        acceptor_.close(ec);
        qmp_.close();
        // Restore devices and run hooks while `kvmgpu stop` clients wait for the outcome.
        const StoppedEvent stopped = (*on_end_)(result_);
        const json outcome = outcome_json(stopped);
        for (auto& [session, id] : stop_waiters_) {
            json reply = {{"return", outcome}};
            if (!id.is_null()) reply["id"] = id;
            session->write(reply);
        }
        // A client that does not read its last lines does not keep the supervisor alive: those
        // still open after 1 s are closed (the timer is cancelled as soon as all are closed).
        finish_timer_.expires_after(std::chrono::seconds(1));
        finish_timer_.async_wait([this](boost::system::error_code ec) {
            if (ec) return;
            for (auto& s : sessions_) s->force_close();
        });
        for (auto& s : sessions_) s->close_after_writes();
        if (std::all_of(sessions_.begin(), sessions_.end(), [](const auto& s) { return s->is_closed(); }))
            finish_timer_.cancel();
        report_(stopped);
    }

    const VmDir& dir_;
    util::ChildProcess& qemu_;
    VmState state_;
    const SuperviseOptions& options_;
    const Report& report_;
    const OnEnd* on_end_ = nullptr;

    asio::io_context io_;
    qmp::Client qmp_;
    asio::posix::stream_descriptor exit_watch_;
    asio::signal_set signals_;
    asio::local::stream_protocol::acceptor acceptor_;
    asio::steady_timer stop_timer_;
    asio::steady_timer poll_timer_;
    asio::steady_timer finish_timer_;
    std::vector<std::shared_ptr<Session>> sessions_;
    std::vector<std::pair<std::shared_ptr<Session>, json>> stop_waiters_;

    bool running_ = false;
    bool stopping_ = false;
    bool force_ = false;
    bool ended_ = false;
    bool exit_seen_ = false;
    int signals_seen_ = 0;
    std::optional<StopCause> stop_why_;
    std::optional<std::string> shutdown_reason_;
    std::string start_error_;
    ExitVerdict result_{ExitReason::crashed, ""};
};

}  // namespace

ExitVerdict supervise(const VmDir& dir, util::ChildProcess& qemu, VmState state, const SuperviseOptions& options,
                      const Report& report, const OnEnd& on_end) {
    Supervisor s(dir, qemu, std::move(state), options, report);
    return s.run(on_end);
}

}  // namespace kvmgpu::app
