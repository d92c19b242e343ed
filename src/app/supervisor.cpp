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

#include "app/control_server.hpp"
#include "app/run_state.hpp"
#include "app/stop_policy.hpp"
#include "qmp/client.hpp"
#include "util/asio.hpp"
#include "util/signals.hpp"

namespace kvmgpu::app {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using nlohmann::json;

class Supervisor {
public:
    Supervisor(const VmDir& dir, util::ChildProcess& qemu, VmState state, const SuperviseOptions& options,
               const Report& report)
        : dir_(dir), qemu_(qemu), state_(std::move(state)), options_(options), report_(report),
          qmp_(io_.get_executor()), exit_watch_(io_), signals_(io_, SIGINT, SIGTERM, SIGHUP),
          control_(io_, [this](std::shared_ptr<ControlSession> s, ParsedRequest r) { return handle(std::move(s), std::move(r)); }),
          stop_timer_(io_), poll_timer_(io_), finish_timer_(io_), irq_timer_(io_) {}

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
            if (!options_.pin.empty() || !options_.emulator_pin.empty() || !options_.iothread_pin.empty()) co_await pin();
            if (!options_.vnc_password.empty()) {
                json arguments = json::object();  // (GCC 12 miscompiles a braced json in a coroutine)
                arguments["protocol"] = "vnc";
                arguments["password"] = options_.vnc_password;
                co_await qmp_.execute("set_password", std::move(arguments));
                step("vnc-password", "setting the VNC password", dir_.layout().vnc_password().string());
            }
            open_control_socket();
            if (stopping_) co_return;  // a stop arrived while starting: nothing to resume
            co_await qmp_.execute("cont");
            running_ = true;
            // The run state follows RESUME, which QEMU sends before this reply; setting it here
            // could overwrite a STOP that arrived in the same read.
            report_(RunningEvent{state_.name, state_.qemu_pid, state_.supervisor_pid, dir_.control_socket().string()});
            if (options_.steer_irqs) asio::co_spawn(io_, steer_irqs(), asio::detached);
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
        std::set<pid_t> pinned;
        std::string detail;
        for (const auto& cpu : cpus) {
            const auto index = cpu.at("cpu-index").get<std::size_t>();
            const auto tid = cpu.at("thread-id").get<pid_t>();
            pinned.insert(tid);
            if (index >= options_.pin.size()) continue;
            const std::string what = "vCPU " + std::to_string(index);
            set_affinity(tid, {options_.pin[index]}, what);
            if (options_.realtime_priority) make_realtime(tid, options_.realtime_priority, what);
            detail += (detail.empty() ? "" : " ") + std::to_string(index) + "→" + std::to_string(options_.pin[index]);
        }
        // The iothreads go where iothread_pin says, else with QEMU's other threads.
        std::size_t iothread_count = 0;
        if (!options_.iothread_pin.empty()) {
            const auto iothreads = co_await qmp_.execute("query-iothreads");
            for (const auto& io : iothreads) {
                const auto tid = io.at("thread-id").get<pid_t>();
                pinned.insert(tid);
                set_affinity(tid, options_.iothread_pin, "iothread " + io.value("id", ""), true);
                ++iothread_count;
            }
        }
        if (!options_.emulator_pin.empty()) {
            // Every other thread of QEMU: the main loop, workers (and the iothreads, unless pinned above).
            const auto tasks = std::filesystem::path("/proc") / std::to_string(state_.qemu_pid) / "task";
            std::error_code ec;
            for (const auto& entry : std::filesystem::directory_iterator(tasks, ec)) {
                const pid_t tid = static_cast<pid_t>(std::strtol(entry.path().filename().c_str(), nullptr, 10));
                // A worker thread may end between the listing and the call: nothing to pin.
                if (tid > 0 && !pinned.count(tid))
                    set_affinity(tid, options_.emulator_pin, "QEMU thread " + std::to_string(tid), true);
            }
        }
        if (options_.realtime_priority) detail += "; vCPUs SCHED_FIFO " + std::to_string(options_.realtime_priority);
        if (iothread_count) detail += "; " + std::to_string(iothread_count) + " iothread(s) → " + cpu_text(options_.iothread_pin);
        step("pin", "pinning vCPUs to host CPUs", detail);
    }

    static std::string cpu_text(const std::vector<unsigned>& cpus) {
        std::string text;
        for (unsigned c : cpus) text += (text.empty() ? "" : ",") + std::to_string(c);
        return text;
    }

    static void make_realtime(pid_t tid, int priority, const std::string& what) {
        sched_param param{};
        param.sched_priority = priority;
        if (::sched_setscheduler(tid, SCHED_FIFO, &param) != 0)
            throw std::system_error(errno, std::generic_category(),
                                    "cannot give " + what + " real-time priority " + std::to_string(priority) +
                                        " (SCHED_FIFO needs root or CAP_SYS_NICE)");
    }

    // ---- IRQ steering ----
    awaitable<void> steer_irqs() {
        while (!ended_) {
            try {
                if (auto changed = options_.steer_irqs(); !changed.empty())
                    step("irq", "steering the devices' interrupts", changed);
            } catch (const std::exception& e) {
                report_(StepEvent{"irq", "steering the devices' interrupts", false, "", e.what()});
            }
            irq_timer_.expires_after(options_.steer_interval);
            boost::system::error_code ec;
            co_await irq_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
        }
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
        // Once the VM has ended, the last client to close lets the loop finish at once.
        control_.on_session_closed = [this] {
            if (ended_ && control_.all_closed()) finish_timer_.cancel();
        };
        control_.open(dir_.control_socket());
    }

    awaitable<void> handle(std::shared_ptr<ControlSession> s, ParsedRequest req) {
        if (ended_) {
            // A stop that arrives as the VM ends gets the outcome the others got.
            if (std::holds_alternative<StopRequest>(req.request) && !final_outcome_.is_null())
                s->write(return_reply(final_outcome_, req.id));
            else
                s->write(error_reply("the VM has ended", req.id));
            co_return;
        }
        if (auto* qmp = std::get_if<QmpRequest>(&req.request)) {
            try {
                s->write(co_await qmp_.execute_raw(std::move(qmp->command)));
            } catch (const std::exception& e) {
                s->write(error_reply(e.what(), req.id));
            }
        } else if (std::holds_alternative<StatusRequest>(req.request)) {
            s->write(return_reply(co_await status(), req.id));
        } else if (auto* stop = std::get_if<StopRequest>(&req.request)) {
            stop_waiters_.push_back({s, req.id});
            if (!stopping_ || (stop->force && !force_)) report_(StoppingEvent{"", stop->force, "stop-requested"});
            request_stop(StopCause::stop_requested, stop->timeout.value_or(options_.stop_timeout), stop->force);
        } else if (std::holds_alternative<EventsRequest>(req.request)) {
            s->wants_events = true;
            s->write(return_reply(json::object(), req.id));
        }
    }

    awaitable<VmStatus> status() {
        VmStatus status;
        status.name = state_.name;
        status.supervisor_pid = state_.supervisor_pid;
        status.qemu_pid = state_.qemu_pid;
        status.devices = state_.devices;
        status.supervised = true;
        status.stopping = stopping_;
        status.started_at = state_.started_at;
        status.restarts = state_.restarts;
        try {
            std::optional<RunState> state = run_state_.known();
            if (!state) {
                const auto asked = run_state_.epoch();
                // Bounded below the client's wait, so that a stopped or hung QEMU gets an answer
                // that says so instead of a client that gives up.
                const auto q = co_await qmp_.execute("query-status", nullptr, kStatusQueryTimeout);
                state = RunState{q.at("status").get<std::string>(), q.at("running").get<bool>()};
                run_state_.answered(*state, asked);
            }
            status.status = state->status;
            status.running = state->running;
        } catch (const std::exception& e) {
            status.status = "unknown";
            status.error = "QEMU (pid " + std::to_string(state_.qemu_pid) + ") did not tell its run state (" + e.what() +
                           "); it may be stopped (SIGSTOP) or hung";
        }
        co_return status;
    }

    // ---- events ----
    void on_event(const qmp::Event& e) {
        if (e.name == "SHUTDOWN") shutdown_reason_ = e.data.value("reason", "");
        run_state_.on_event(e.name);
        if (e.name == "RESUME" || e.name == "WAKEUP") vcpus_running_ = true;
        if (e.name == "STOP" || e.name == "SUSPEND") vcpus_running_ = false;
        if (running_ && e.name == "STOP") report_(PausedEvent{state_.name});
        if (running_ && e.name == "RESUME") report_(ResumedEvent{state_.name});
        control_.broadcast({{"event", e.name}, {"data", e.data}, {"timestamp_us", e.timestamp_us}});
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

    // The stop policy's stages (stop_policy.hpp), each ending early once QEMU has exited.
    awaitable<void> stop_sequence(std::chrono::seconds timeout, bool force) {
        for (const auto& stage : stop_plan(timeout, force, running_ && vcpus_running_)) {
            if (ended_) co_return;
            // A stop forced while the guest was being asked skips the rest of that wait.
            if (stage.action == StopAction::powerdown && force_) continue;
            try {
                co_await act(stage, timeout);
            } catch (const std::exception&) {
                continue;  // QMP gone or refusing: the next stage does not need it
            }
            co_await wait_stop_timer(stage.wait);
        }
    }

    awaitable<void> act(const StopStage& stage, std::chrono::seconds timeout) {
        switch (stage.action) {
            case StopAction::powerdown:
                co_await qmp_.execute("system_powerdown", nullptr, kStopStageWait);
                step("powerdown", "asking the guest to power off", "waiting up to " + std::to_string(timeout.count()) + " s");
                break;
            case StopAction::quit: co_await qmp_.execute("quit", nullptr, kStopStageWait); break;
            case StopAction::terminate: qemu_.kill(SIGTERM); break;
            case StopAction::kill: kill_qemu(); break;
        }
    }

    // Waits `timeout`, or not at all once the stop is forced (a second Ctrl-C, --force).
    awaitable<void> wait_stop_timer(std::chrono::seconds timeout) {
        if (force_ && timeout > kStopStageWait) timeout = std::chrono::seconds(0);
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
        irq_timer_.cancel();
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
        control_.stop_accepting();
        qmp_.close();
        if (!stopping_) report_(StoppingEvent{"", false, "qemu-exited"});
        // Restore devices and run hooks while `kvmgpu stop` clients wait for the outcome.
        const StoppedEvent stopped = (*on_end_)(result_);
        const json outcome = outcome_json(stopped);
        final_outcome_ = outcome;
        for (auto& [session, id] : stop_waiters_) session->write(return_reply(outcome, id));
        // A client that does not read its last lines does not keep the supervisor alive: those
        // still open after 1 s are closed (the timer is cancelled as soon as all are closed).
        finish_timer_.expires_after(std::chrono::seconds(1));
        finish_timer_.async_wait([this](boost::system::error_code ec) {
            if (!ec) control_.force_close_all();
        });
        control_.close_all_after_writes();
        if (control_.all_closed()) finish_timer_.cancel();
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
    ControlServer control_;
    asio::steady_timer stop_timer_;
    asio::steady_timer poll_timer_;
    asio::steady_timer finish_timer_;
    asio::steady_timer irq_timer_;  // the next look at the devices' interrupts
    std::vector<std::pair<std::shared_ptr<ControlSession>, json>> stop_waiters_;

    RunStateCache run_state_;
    bool vcpus_running_ = true;  // false while paused or suspended: the guest cannot see the power button
    json final_outcome_;         // the stop outcome, for a stop request that comes after the end
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
