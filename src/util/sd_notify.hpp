#pragma once
// systemd's service notification protocol (sd_notify(3)), spoken without libsystemd: a unit of
// Type=notify sets NOTIFY_SOCKET to an AF_UNIX datagram socket, an absolute path or, when it
// starts with '@', a name in the abstract namespace; the service sends datagrams of
// newline-separated KEY=VALUE lines to it ("READY=1", "STATUS=…", "STOPPING=1"). systemd learns
// the sender from the kernel's credentials (SO_PASSCRED) and, with NotifyAccess=main, accepts
// only the main process.
//
// The supervisor lives as long as its VM, so it links no libsystemd (and what that pulls in):
// this is one socket and one sendto per message. Sending never fails the caller: a message that
// cannot be sent is dropped, as sd_notify's callers drop its errors.
#include <string>
#include <string_view>

#include "util/fd.hpp"

namespace kvmgpu::util {

class SdNotifier {
public:
    // Sends nothing (not under systemd).
    SdNotifier() = default;
    // `address` as NOTIFY_SOCKET holds it. Empty: sends nothing. One that is not an absolute path
    // or '@' + name, or is longer than a socket address holds, sends nothing either, and error()
    // says why (the caller may warn).
    explicit SdNotifier(std::string_view address);

    bool enabled() const { return static_cast<bool>(socket_); }
    const std::string& error() const { return error_; }

    // Sends `message` (lines "KEY=VALUE", '\n'-separated) as one datagram. False when it was not
    // sent (disabled, or the send failed; error() then says why). Never throws, never blocks on
    // a full receiver (MSG_DONTWAIT: systemd reads its socket; a message it is too slow for is
    // dropped).
    bool send(std::string_view message);

    // A "STATUS=" line for `text`: one line, so a newline in a message can never start another
    // assignment (such as READY=1) in the datagram.
    static std::string status_line(std::string_view text);

private:
    Fd socket_;
    std::string address_;  // sun_path as bound: a leading '\0' for the abstract namespace
    std::string error_;
};

// Removes NOTIFY_SOCKET from this process's environment (after reading it), so that no child it
// starts (QEMU, swtpm, hooks, systemctl, modprobe) can notify systemd in its name.
void unset_notify_socket();

}  // namespace kvmgpu::util
