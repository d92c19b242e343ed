#pragma once
// The file Looking Glass's shared memory lives in with the `shm` backend
// ("/dev/shm/looking-glass"): created by kvmgpu for the VM, owned by the desktop user who runs
// the client, in a group QEMU's user is in, mode 0660 (the Looking Glass documentation's
// setting), and removed when the VM ends (a file-created change in the journal).
#include <sys/types.h>

#include <filesystem>

namespace kvmgpu::host {

// Creates `file`, which must not exist (O_EXCL: never through a symbolic link, never another's
// file), as uid:gid with mode 0660. QEMU sizes it. Throws std::runtime_error naming the file;
// a file made before the failure is removed again.
void create_shared_memory_file(const std::filesystem::path& file, uid_t uid, gid_t gid);

}  // namespace kvmgpu::host
