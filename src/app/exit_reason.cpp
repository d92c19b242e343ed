#include "app/exit_reason.hpp"

#include <sys/wait.h>

#include <csignal>

#include "util/process.hpp"

namespace kvmgpu::app {

std::string_view exit_reason_name(ExitReason reason) {
    switch (reason) {
        case ExitReason::guest_shutdown: return "guest-shutdown";
        case ExitReason::stop_requested: return "stop-requested";
        case ExitReason::signal: return "signal";
        case ExitReason::crashed: return "crashed";
        case ExitReason::start_failed: return "start-failed";
    }
    return "unknown";
}

bool ExitVerdict::ok() const { return reason != ExitReason::crashed && reason != ExitReason::start_failed; }

int ExitVerdict::exit_code() const { return ok() ? 0 : 1; }

namespace {

ExitReason reason_of(StopCause cause) {
    return cause == StopCause::signal ? ExitReason::signal : ExitReason::stop_requested;
}

}  // namespace

ExitVerdict classify_exit(const ExitObservation& o) {
    const bool clean = o.wait_status && util::exited_successfully(*o.wait_status);
    const bool sigkilled = o.wait_status && WIFSIGNALED(*o.wait_status) && WTERMSIG(*o.wait_status) == SIGKILL;
    const std::string how = o.wait_status ? util::describe_wait_status(*o.wait_status) : "gone";

    if (!o.start_error.empty()) {
        // The start error often already names QEMU's end (a QMP failure caused by its exit).
        std::string detail = o.start_error;
        if (detail.find("QEMU " + how) == std::string::npos) detail += "; QEMU " + how;
        return {ExitReason::start_failed, std::move(detail)};
    }
    // A stop asked for before `cont` is not a failure to start: the VM was stopped on purpose.
    if (!o.ran && !o.stop_cause) return {ExitReason::start_failed, "QEMU " + how + " before the VM started"};
    if (o.stop_cause && clean) return {reason_of(*o.stop_cause), ""};
    // Our stop sequence ends with SIGKILL when QEMU ignores quit and SIGTERM.
    if (o.stop_cause && sigkilled) return {reason_of(*o.stop_cause), "QEMU did not quit and was killed"};
    if (clean && o.shutdown_reason == "guest-shutdown") return {ExitReason::guest_shutdown, ""};
    if (clean && o.shutdown_reason) return {ExitReason::stop_requested, "QEMU shut down: " + *o.shutdown_reason};
    return {ExitReason::crashed, "QEMU " + how};
}

}  // namespace kvmgpu::app
