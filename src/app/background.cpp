#include "app/background.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "app/vm_dir.hpp"
#include "util/error.hpp"

namespace kvmgpu::app {

util::Fd open_launcher_log(const util::VmLayout& layout, const std::string& name) {
    const auto file = layout.launcher_log();
    auto fail = [&](const std::string& why) {
        return util::RuntimeFailure("cannot open the launcher's log \"" + file.string() + "\": " + why, "failed");
    };
    try {
        ensure_vm_state_dir(layout);
    } catch (const util::Error&) {
        throw;
    } catch (const std::exception& e) {
        throw fail(e.what());
    }
    // O_NOFOLLOW: ensure_vm_state_dir refused a symlink; one made since is refused here.
    util::Fd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) throw fail(std::strerror(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != ::geteuid())
        throw fail("not a regular file of this user with one link; remove it and start again");
    char when[64] = "";
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    if (::gmtime_r(&now, &tm)) std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const std::string header = "---- kvmgpu run --detach " + name + ", " + when + " ----\n";
    if (::write(fd.get(), header.data(), header.size()) < 0) throw fail(std::strerror(errno));
    return fd;
}

}  // namespace kvmgpu::app
