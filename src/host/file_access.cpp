#include "host/file_access.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "host/sysfs.hpp"
#include "util/fd.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {
namespace {

namespace fs = std::filesystem;

// The owner bits a user needs for `access` to a file of this type.
mode_t owner_bits(Access access, bool directory) {
    switch (access) {
        case Access::search: return S_IXUSR;
        case Access::read: return directory ? S_IRUSR | S_IXUSR : S_IRUSR;
        case Access::read_write: return directory ? S_IRWXU : S_IRUSR | S_IWUSR;
    }
    return 0;
}

}  // namespace

std::string_view access_text(Access access) {
    switch (access) {
        case Access::search: return "search";
        case Access::read: return "read";
        case Access::read_write: return "read and write";
    }
    return "?";
}

bool allows(const struct stat& st, const util::SystemUser& user, Access access) {
    // The owner's bits, else the group's, else the others' decide: never more than one class.
    const mode_t wanted = owner_bits(access, S_ISDIR(st.st_mode));
    mode_t have;
    if (st.st_uid == user.uid) have = st.st_mode & S_IRWXU;
    else if (user.in_group(st.st_gid)) have = (st.st_mode & S_IRWXG) << 3;
    else have = (st.st_mode & S_IRWXO) << 6;
    return (have & wanted) == wanted;
}

std::optional<fs::path> host_path(const fs::path& root, const fs::path& real) {
    const auto r = root.lexically_normal();
    const auto p = real.lexically_normal();
    if (r == "/" || r.empty()) return p;
    const auto rel = p.lexically_relative(r);
    if (rel.empty() || *rel.begin() == "..") return std::nullopt;
    return fs::path("/") / rel;
}

std::optional<FileOwnerChanged> plan_grant(const fs::path& root, const fs::path& file, const util::SystemUser& user,
                                           Access access) {
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0)
        throw std::runtime_error("cannot inspect " + util::quoted(file.string()) + ": " + errno_text(errno));
    if (S_ISLNK(st.st_mode))
        throw std::runtime_error(util::quoted(file.string()) + " is a symbolic link; kvmgpu gives access to files, not links");
    if (allows(st, user, access)) return std::nullopt;
    const auto on_host = host_path(root, file);
    if (!on_host)
        throw std::runtime_error("cannot give access to " + util::quoted(file.string()) + ": it lies outside the host root " +
                                 util::quoted(root.string()));
    return FileOwnerChanged{*on_host, st.st_uid, st.st_gid, static_cast<mode_t>(st.st_mode & 07777)};
}

void apply_grant(const fs::path& file, const FileOwnerChanged& original, const util::SystemUser& user, Access access) {
    const std::string shown = util::quoted(file.string());
    util::Fd fd(::open(file.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) throw std::runtime_error("cannot open " + shown + ": " + errno_text(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw std::runtime_error("cannot stat " + shown + ": " + errno_text(errno));
    if (S_ISLNK(st.st_mode)) throw std::runtime_error(shown + " became a symbolic link; kvmgpu does not follow it");
    const bool search = access == Access::search;
    const uid_t uid = search ? original.uid : user.uid;
    const gid_t gid = search ? user.gid : original.gid;
    if (::fchownat(fd.get(), "", uid, gid, AT_EMPTY_PATH) != 0)
        throw std::runtime_error("giving " + shown + " to " + std::to_string(uid) + ":" + std::to_string(gid) +
                                 " failed: " + errno_text(errno));
    // chown may clear the set-id bits; an O_PATH fd takes no fchmod, its /proc/self/fd entry
    // reaches the same inode without looking the path up again.
    const mode_t bits = search ? S_IXGRP : owner_bits(access, S_ISDIR(st.st_mode));
    const mode_t mode = static_cast<mode_t>((original.mode & 07777) | bits);
    const std::string self = "/proc/self/fd/" + std::to_string(fd.get());
    if (::chmod(self.c_str(), mode) != 0)
        throw std::runtime_error("changing the mode of " + shown + " failed: " + errno_text(errno));
}

std::optional<fs::path> unreachable_at(const fs::path& file, const util::SystemUser& user) {
    fs::path dir;
    const auto parent = file.lexically_normal().parent_path();
    for (const auto& part : parent) {
        dir /= part;
        struct stat st {};
        if (::stat(dir.c_str(), &st) != 0) return dir;
        if (!allows(st, user, Access::search)) return dir;
    }
    return std::nullopt;
}

}  // namespace kvmgpu::host
