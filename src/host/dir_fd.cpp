#include "host/dir_fd.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

namespace kvmgpu::host {

namespace {

// The record getdents64 fills (linux_dirent64); glibc declares no type for it.
struct LinuxDirent64 {
    ino64_t d_ino;
    off64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[1];
};

}  // namespace

OpenedDir open_dir(const char* path, int at) {
    OpenedDir out;
    out.fd.reset(::openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!out.fd) out.error = errno;
    return out;
}

std::string link_target(const util::Fd& dir, const char* name) {
    char target[4096];
    const ssize_t n = ::readlinkat(dir.get(), name, target, sizeof target);
    if (n <= 0 || static_cast<std::size_t>(n) >= sizeof target) return {};
    return std::string(target, static_cast<std::size_t>(n));
}

namespace detail {

long read_entries(int fd, char* buf, unsigned size) { return ::syscall(SYS_getdents64, fd, buf, size); }

std::string_view entry_name(const char* buf, long offset, long& next) {
    // Copied out rather than cast in place: the buffer is plain bytes to the compiler.
    unsigned short reclen = 0;
    std::memcpy(&reclen, buf + offset + offsetof(LinuxDirent64, d_reclen), sizeof reclen);
    next = offset + reclen;
    const char* name = buf + offset + offsetof(LinuxDirent64, d_name);
    return std::string_view(name, ::strnlen(name, static_cast<std::size_t>(reclen) - offsetof(LinuxDirent64, d_name)));
}

}  // namespace detail

}  // namespace kvmgpu::host
