#pragma once
// Receiving a descriptor another process sends over a unix socket (SCM_RIGHTS), as
// qemu-bridge-helper --fd=N sends the tap it opened.
#include "util/fd.hpp"

namespace kvmgpu::util {

// Reads one message from the unix socket `socket` without blocking and returns the descriptor it
// carries, close-on-exec in this process; an empty Fd when the peer has closed its end (or no
// message is waiting) without sending one. Extra descriptors in the same message are closed.
// Throws std::system_error when recvmsg fails for another reason.
Fd receive_fd(int socket);

}  // namespace kvmgpu::util
