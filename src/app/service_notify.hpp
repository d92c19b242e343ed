#pragma once
// `kvmgpu run` as a systemd service (Type=notify, systemd/kvmgpu@.service): the launch's events
// told to systemd over NOTIFY_SOCKET (util/sd_notify.hpp). Each step becomes the unit's STATUS=
// line (`systemctl status kvmgpu@NAME` shows it); READY=1 goes once the VM runs (QMP `cont`
// succeeded: the RunningEvent), so `systemctl start` returns then and units ordered after it start
// against a running VM; STOPPING=1 goes when the VM begins to end (a signal, `kvmgpu stop`, or QEMU
// exiting by itself), before the devices are given back.
#include "app/events.hpp"
#include "util/sd_notify.hpp"

namespace kvmgpu::app {

// A Report that passes every event to `inner` and then tells `notifier` what systemd should know.
// `notifier` must outlive the returned Report. A notifier that sends nothing makes it `inner`
// with one more call per event.
Report notifying_systemd(Report inner, util::SdNotifier& notifier);

// The datagram one event sends (empty: none), for tests and for the Report above.
std::string service_notification(const Event& event);

}  // namespace kvmgpu::app
