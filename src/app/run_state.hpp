#pragma once
// QEMU's run state as the supervisor last knew it, so that `kvmgpu status` need not ask QEMU
// each time (a `query-status` round trip is most of a status command's cost above the process
// floor). Only transitions whose outcome is certain set it; any event that may lead to a state
// the events do not name (STOP: paused, or io-error, or debug...) forgets it, and the next
// status asks QEMU. QMP delivers events before the reply of the command that caused them, so a
// `kvmgpu pause` that has returned has already made the cache forget "running".
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvmgpu::app {

struct RunState {
    std::string status;  // as query-status says: "running", "paused", "suspended", ...
    bool running = false;
};

class RunStateCache {
public:
    // `cont` succeeded.
    void resumed() { set(RunState{"running", true}); }
    // A QMP event arrived.
    void on_event(std::string_view event);
    // What query-status answered to a question asked at `asked` (epoch() then): kept only when
    // no event came in between, since QEMU's answer may predate it.
    void answered(RunState state, std::uint64_t asked) {
        if (asked == epoch_) set(std::move(state));
    }

    const std::optional<RunState>& known() const { return known_; }
    // Counts the events seen; see answered().
    std::uint64_t epoch() const { return epoch_; }

private:
    void set(std::optional<RunState> state) { known_ = std::move(state); }

    std::optional<RunState> known_;
    std::uint64_t epoch_ = 0;
};

}  // namespace kvmgpu::app
