#pragma once
// The VNC password of a VM: 8 random letters and digits in STATE/NAME/vnc-password (0600, owned
// by kvmgpu's user). The launcher makes it on the first run that needs one and sets it over QMP
// (never on QEMU's command line); `kvmgpu console` reads it for its page. VNC's authentication
// (DES) uses at most 8 characters of a password, so there is no point in a longer one: it keeps
// out the casual, not an eavesdropper (docs/headless-gpu.md advises an SSH tunnel).
#include <string>

#include "util/layout.hpp"

namespace kvmgpu::app {

inline constexpr std::size_t kVncPasswordLength = 8;

// Reads the VM's password, making it first when there is none. Throws naming the file when it is
// not a regular file owned by this user with mode 0600, or not 8 letters and digits.
std::string ensure_vnc_secret(const util::VmLayout& layout);

// Reads the VM's password; the same checks. Throws when there is none.
std::string read_vnc_secret(const util::VmLayout& layout);

// `length` random letters and digits (getrandom).
std::string random_alphanumeric(std::size_t length);

}  // namespace kvmgpu::app
