#pragma once
// Reading a directory through its file descriptor, with one getdents64 per 32 KiB of entries and
// nothing else: no stat of the directory or of its entries, no path strings. For scans over
// every process (`/proc/PID/fd` of each), where std::filesystem's stat and path work per entry
// cost more than the scan itself (a launch's dearest part under TCG, bench/README.md).
#include <fcntl.h>

#include <cerrno>
#include <string>
#include <string_view>

#include "util/fd.hpp"

namespace kvmgpu::host {

// Opens DIR (relative to AT_FDCWD or to `at`) as a directory; the errno on failure
// (ENOENT: gone, EACCES: not ours to read). O_NOFOLLOW is not used: /proc/self and the
// paths under a host root are links on purpose.
struct OpenedDir {
    util::Fd fd;
    int error = 0;
};
OpenedDir open_dir(const char* path, int at = AT_FDCWD);

// Calls visit(name) for each entry of the open directory but "." and "..", in the kernel's
// order. Returns 0, or the errno of a failed read (the entries before it were visited).
template <typename Visit>
int for_each_entry(const util::Fd& dir, Visit&& visit);

// The target of the symbolic link NAME in the open directory (readlinkat, no lstat first);
// empty when it is not a link or is gone.
std::string link_target(const util::Fd& dir, const char* name);

namespace detail {
// One getdents64 call into buf; the byte count, 0 at the end, -1 with errno set.
long read_entries(int fd, char* buf, unsigned size);
// The name of the entry at buf[offset] and the offset of the next one.
std::string_view entry_name(const char* buf, long offset, long& next);
}  // namespace detail

template <typename Visit>
int for_each_entry(const util::Fd& dir, Visit&& visit) {
    alignas(8) char buf[32768];
    for (;;) {
        const long n = detail::read_entries(dir.get(), buf, sizeof buf);
        if (n == 0) return 0;
        if (n < 0) return errno;
        for (long offset = 0, next = 0; offset < n; offset = next) {
            const std::string_view name = detail::entry_name(buf, offset, next);
            if (name != "." && name != "..") visit(name);
        }
    }
}

}  // namespace kvmgpu::host
