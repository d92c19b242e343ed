#pragma once
// Giving an unprivileged user (the one QEMU and swtpm run as) exactly the access one VM needs
// to a file, a device node or a directory, as a file-owner-changed host change: the caller
// journals the change (the original owner and mode) before apply_grant() makes it, and the
// journal's undo gives the original back (host_change.hpp).
//
// How access is given:
//   read, read_write  the file's owner becomes the user, its group stays, and the owner bits
//                     get r (read) or rw (read_write; rwx for a directory);
//   search            a directory's group becomes the user's primary group, with g+x: the user
//                     may reach the entries it knows by name, but neither list nor create any.
// A file the user can already use as needed is left alone (no change, nothing to journal).
//
// Paths: `file` is the real path; the change names it as on the host (host_path()), so that
// `kvmgpu restore` finds it under the same host root.
#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <string>

#include "host/host_change.hpp"
#include "util/user.hpp"

namespace kvmgpu::host {

enum class Access { search, read, read_write };

// "search", "read", "read and write".
std::string_view access_text(Access access);

// Whether mode bits and owner of `st` give `user` `access` (as the kernel's permission check
// does for a user without capabilities).
bool allows(const struct stat& st, const util::SystemUser& user, Access access);

// `real` as on the host: itself under the root "/", or with the root's prefix taken off (in
// tests, where the host is a temporary tree). nullopt when `real` lies outside the root.
std::optional<std::filesystem::path> host_path(const std::filesystem::path& root, const std::filesystem::path& real);

// The change that gives `user` `access` to `file`, or nullopt when it has it already. The
// file is not followed if it is a symbolic link (resolve it first). Throws std::runtime_error
// naming the file when it cannot be inspected or lies outside the host root.
std::optional<FileOwnerChanged> plan_grant(const std::filesystem::path& root, const std::filesystem::path& file,
                                           const util::SystemUser& user, Access access);

// Makes the change plan_grant() returned, through an O_PATH|O_NOFOLLOW descriptor (a symbolic
// link swapped in since is refused, never followed). Throws std::runtime_error naming the file.
void apply_grant(const std::filesystem::path& file, const FileOwnerChanged& original, const util::SystemUser& user,
                 Access access);

// The first directory on the way to `file` (from "/" down, the file's own directory included)
// that `user` may not search, or nullopt when it may reach the file.
std::optional<std::filesystem::path> unreachable_at(const std::filesystem::path& file, const util::SystemUser& user);

}  // namespace kvmgpu::host
