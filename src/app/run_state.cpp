#include "app/run_state.hpp"

namespace kvmgpu::app {

void RunStateCache::on_event(std::string_view event) {
    ++epoch_;
    if (event == "RESUME" || event == "WAKEUP") known_ = RunState{"running", true};
    else if (event == "SUSPEND") known_ = RunState{"suspended", false};
    // Events that change nothing about the run state.
    else if (event == "NIC_RX_FILTER_CHANGED" || event == "RTC_CHANGE" || event == "VNC_CONNECTED" ||
             event == "VNC_INITIALIZED" || event == "VNC_DISCONNECTED" || event == "DEVICE_DELETED" ||
             event == "POWERDOWN" || event == "BALLOON_CHANGE")
        return;
    // STOP (paused, io-error, debug, ...), SHUTDOWN, RESET, GUEST_PANICKED and anything unknown:
    // the state is no longer certain.
    else known_.reset();
}

}  // namespace kvmgpu::app
