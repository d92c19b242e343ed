#pragma once
// Why a VM ended: a pure function from what the supervisor observed to one ExitReason and a
// detail sentence. No I/O and no clock, so every combination of observations is unit-tested
// (exit_reason_test.cpp); the supervisor only records observations and calls classify_exit().
#include <optional>
#include <string>
#include <string_view>

namespace kvmgpu::app {

enum class ExitReason { guest_shutdown, stop_requested, signal, crashed, start_failed };

// The name used in JSON ("reason") and text output: "guest-shutdown", "stop-requested",
// "signal", "crashed", "start-failed".
std::string_view exit_reason_name(ExitReason reason);

// What asked the VM to stop: `kvmgpu stop` (a control-socket request) or SIGINT/SIGTERM/SIGHUP
// delivered to the launcher. The first cause asked for is the one that counts.
enum class StopCause { stop_requested, signal };

struct ExitObservation {
    std::string start_error;                     // non-empty: starting failed with this message
    bool ran = false;                            // the VM was resumed (`cont` succeeded)
    std::optional<StopCause> stop_cause;         // a stop was asked for
    std::optional<int> wait_status;              // QEMU's raw wait status; nullopt: not known (gone)
    std::optional<std::string> shutdown_reason;  // "reason" of QMP's SHUTDOWN event, when one came
};

struct ExitVerdict {
    ExitReason reason;
    std::string detail;  // empty when the reason says it all; otherwise what happened

    // False for crashed and start_failed: the VM did not end the way someone asked it to.
    bool ok() const;
    // 0 when ok(), else 1. This is the VM's part only: the launch also exits 1 when a device
    // could not be given back to the host, which only the caller knows.
    int exit_code() const;
};

// The rules, first match wins ("how" is util::describe_wait_status() of the wait status, or
// "gone" when it is not known; "clean" means exited with status 0):
//  1. starting failed                     → start_failed, the start error, plus "; QEMU <how>"
//                                           unless the error already says "QEMU <how>"
//  2. never ran and no stop was asked for → start_failed, "QEMU <how> before the VM started"
//  3. a stop was asked for and clean      → the stop cause, no detail
//  4. a stop was asked for and SIGKILLed  → the stop cause, "QEMU did not quit and was killed"
//                                           (the last stage of our own stop sequence)
//  5. clean after SHUTDOWN guest-shutdown → guest_shutdown, no detail
//  6. clean after any other SHUTDOWN      → stop_requested, "QEMU shut down: <reason>" (someone
//                                           else quit it: a QMP client, a signal from outside)
//  7. anything else                       → crashed, "QEMU <how>"
ExitVerdict classify_exit(const ExitObservation& observation);

}  // namespace kvmgpu::app
