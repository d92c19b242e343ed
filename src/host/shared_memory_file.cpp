#include "host/shared_memory_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "util/fd.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {

void create_shared_memory_file(const std::filesystem::path& file, uid_t uid, gid_t gid) {
    const std::string shown = util::quoted(file.string());
    util::Fd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) throw std::runtime_error("cannot create " + shown + ": " + std::strerror(errno));
    // Owner first, then the mode: a chown clears set-id bits, and until the fchmod only the
    // new owner can open it.
    if (::fchown(fd.get(), uid, gid) != 0 || ::fchmod(fd.get(), 0660) != 0) {
        const int error = errno;
        ::unlink(file.c_str());
        throw std::runtime_error("cannot give " + shown + " to " + std::to_string(uid) + ":" + std::to_string(gid) +
                                 ": " + std::strerror(error));
    }
}

}  // namespace kvmgpu::host
