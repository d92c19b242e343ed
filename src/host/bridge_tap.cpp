#include "host/bridge_tap.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <system_error>

#include "util/fd_passing.hpp"
#include "util/process.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(int error) { return std::error_code(error, std::generic_category()).message(); }

}  // namespace

util::Fd open_bridge_tap(const BridgeTapRequest& request, const util::Interrupt* interrupt) {
    const std::string helper = request.helper.string();
    const std::string what = "running " + helper + " for the bridge " + util::quoted(request.bridge);
    auto fail = [&](const std::string& why, bool interrupted = false) -> BridgeTapError {
        std::string text = what + ": " + why;
        if (request.log_file && !interrupted) text += " (its output is in " + request.log_file->string() + ")";
        return BridgeTapError(text, interrupted);
    };

    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
        throw BridgeTapError(what + ": socketpair() failed: " + errno_text(errno), false);
    util::Fd ours(pair[0]);
    util::Fd theirs(pair[1]);

    util::SpawnOptions options;
    options.log_file = request.log_file;
    options.environment = request.environment;
    options.inherit_fds = {theirs.get()};
    util::ChildProcess child;
    try {
        child = util::spawn({helper, "--use-vnet", "--br=" + request.bridge, "--fd=" + std::to_string(theirs.get())},
                            options);
    } catch (const util::SpawnError& e) {
        throw BridgeTapError(e.what(), false);
    }
    // Only the helper holds its end now: when it exits without sending, our end reads EOF.
    theirs.reset();

    const auto deadline = Clock::now() + request.timeout;
    const auto waited = util::wait_readable(ours.get(), deadline, interrupt);
    if (waited == util::WaitResult::interrupted) throw fail("interrupted by a stop signal", true);
    if (waited == util::WaitResult::timed_out)
        throw fail("it sent no tap within " + std::to_string(request.timeout.count()) + " ms");  // ~child kills it
    util::Fd tap;
    try {
        tap = util::receive_fd(ours.get());
    } catch (const std::system_error& e) {
        throw fail(e.what());
    }
    // The helper exits right after sending; its status tells a refusal from a crash.
    const auto status = child.wait_for(deadline);
    if (!status) throw fail("it did not exit within " + std::to_string(request.timeout.count()) + " ms");
    if (!util::exited_successfully(*status)) throw fail("it " + util::describe_wait_status(*status));
    if (!tap) throw fail("it exited without sending a tap");
    return tap;
}

}  // namespace kvmgpu::host
