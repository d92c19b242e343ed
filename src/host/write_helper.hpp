#pragma once
// The child process that makes a RealSysfsWriter's writes (host/sysfs.hpp says why they are not
// made in the launcher itself). One child serves every write of its writer in turn, over a
// socket pair: forking a child per write cost milliseconds each in a slow guest, more than the
// kernel's own work for a driver_override.
//
// The child closes every fd it inherited but its end of the socket pair (a child stuck in the
// kernel must not keep the launcher's locks, sockets or pipes open), has every signal blocked
// (only SIGKILL ends it), makes only async-signal-safe calls (it is forked from a launcher that
// may have threads), and exits when the launcher's end of the socket closes.
#include <sys/types.h>

#include <cstddef>
#include <string_view>

#include "util/fd.hpp"

namespace kvmgpu::host {

// The most a request may carry: sysfs values are short (an address, a driver, a CPU list).
inline constexpr std::size_t kMaxHelperWriteBytes = 16 * 1024;

class WriteHelper {
public:
    WriteHelper() = default;
    WriteHelper(const WriteHelper&) = delete;
    WriteHelper& operator=(const WriteHelper&) = delete;
    ~WriteHelper() { end(); }

    bool running() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }
    // Readable once the child answered, or ended.
    int socket() const { return socket_.get(); }

    // Forks the child; 0 or the errno.
    int start();
    // Asks the running child to write `data` to `file`: 0 once the request is queued, EPIPE when
    // the child had ended before reading it (nothing was written), E2BIG or ENAMETOOLONG when the
    // request is larger than the child takes.
    int request(const char* file, std::string_view data);
    // The answer to the request, once socket() is readable: 0 or the errno of the write; EIO
    // when the child ended without answering (whether the write happened is unknown), and the
    // child is then reaped and gone.
    int answer();
    // Ends an idle child: closes the socket and reaps it (it is waiting for a request, so a
    // SIGKILL ends it at once).
    void end();
    // Gives the child up without waiting for it: SIGKILL, the socket closed. Returns its pid,
    // the caller's to reap (a child stuck in the kernel dies only when the kernel returns).
    pid_t abandon();

private:
    pid_t pid_ = -1;
    util::Fd socket_;
};

}  // namespace kvmgpu::host
