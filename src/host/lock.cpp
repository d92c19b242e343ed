#include "host/lock.hpp"

#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "host/sysfs.hpp"
#include "util/fd.hpp"
#include "util/layout.hpp"
#include "util/proc.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;

bool pid_alive(pid_t pid) {
    if (pid <= 0) return false;
    return ::kill(pid, 0) == 0 || errno == EPERM;
}

bool owner_alive(const LockOwner& owner) {
    if (owner.pid <= 0) return false;
    // No recorded start time: a lock of an older kvmgpu, judged the way that kvmgpu did.
    if (owner.start_time == 0) return pid_alive(owner.pid);
    return util::process_alive(owner.pid, owner.start_time);
}

fs::path lock_path(const fs::path& runtime_dir, const util::PciAddress& address) {
    return util::HostStateLayout{runtime_dir}.lock(address.str());
}

namespace {

[[noreturn]] void throw_errno(int error, const std::string& what, const fs::path& path) {
    throw std::system_error(error, std::generic_category(),
                            what + " " + util::quoted(path.string()));
}

// Holds flock(LOCK_EX) on RUNTIME/locks/.mutex for its lifetime.
class DirMutex {
public:
    explicit DirMutex(const fs::path& runtime_dir) {
        const fs::path dir = util::HostStateLayout{runtime_dir}.locks_dir();
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec) throw_errno(ec.value(), "cannot create the lock directory", dir);
        const fs::path file = util::HostStateLayout{runtime_dir}.locks_mutex();
        fd_.reset(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!fd_) throw_errno(errno, "cannot open", file);
        while (::flock(fd_.get(), LOCK_EX) != 0)
            if (errno != EINTR) throw_errno(errno, "cannot lock", file);
    }
    // Closing the fd releases the flock.

private:
    util::Fd fd_;
};

std::optional<LockOwner> read_owner(const fs::path& file) {
    auto text = read_attr(file);
    if (!text) return std::nullopt;
    try {
        const auto j = nlohmann::json::parse(*text);
        // "start_time" is absent from the lock files of older kvmgpu versions: 0, unknown.
        return LockOwner{j.at("vm").get<std::string>(), j.at("pid").get<pid_t>(),
                         j.value("start_time", std::uint64_t{0})};
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

// Creates `file` with O_EXCL holding the owner, fsynced. EEXIST when it is already there.
int create_lock(const fs::path& file, const LockOwner& owner) {
    util::Fd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd) return errno;
    nlohmann::json j{{"vm", owner.vm}, {"pid", owner.pid}};
    // An unknown start time is left out rather than written as 0: the file then reads exactly
    // like an older kvmgpu's, which is what it means.
    if (owner.start_time != 0) j["start_time"] = owner.start_time;
    const std::string text = j.dump() + "\n";
    int error = 0;
    const ssize_t n = ::write(fd.get(), text.data(), text.size());
    if (n < 0) error = errno;
    else if (static_cast<std::size_t>(n) != text.size()) error = EIO;  // a short write
    else if (::fsync(fd.get()) != 0) error = errno;
    if (error != 0) ::unlink(file.c_str());
    return error;
}

// Whether two owners name the same process: the same pid, and the same start time unless
// either is unknown.
bool same_process(const LockOwner& a, const LockOwner& b) {
    return a.pid == b.pid &&
           (a.start_time == 0 || b.start_time == 0 || a.start_time == b.start_time);
}


}  // namespace

std::vector<DeviceLock> read_locks(const fs::path& runtime_dir, const OwnerAlive& alive) {
    std::vector<DeviceLock> locks;
    std::error_code ec;
    for (fs::directory_iterator it(util::HostStateLayout{runtime_dir}.locks_dir(), ec), end; !ec && it != end;
         it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.ends_with(".lock")) continue;
        auto address = util::PciAddress::parse(std::string_view(name).substr(0, name.size() - 5));
        if (!address) continue;
        auto owner = read_owner(it->path());
        if (!owner) continue;
        const bool live = alive(*owner);
        locks.push_back(DeviceLock{*address, std::move(*owner), live});
    }
    std::sort(locks.begin(), locks.end(),
              [](const auto& a, const auto& b) { return a.address < b.address; });
    return locks;
}


AcquireResult acquire_locks(const fs::path& runtime_dir, const std::string& vm, pid_t pid,
                            const std::vector<util::PciAddress>& addresses,
                            const OwnerAlive& alive) {
    return acquire_locks(runtime_dir, LockOwner{vm, pid, util::process_start_time(pid).value_or(0)},
                         addresses, alive);
}


AcquireResult acquire_locks(const fs::path& runtime_dir, const LockOwner& self,
                            const std::vector<util::PciAddress>& addresses,
                            const OwnerAlive& alive) {
    DirMutex mutex(runtime_dir);
    AcquireResult result;
    std::vector<fs::path> created;
    auto undo = [&] {
        for (auto it = created.rbegin(); it != created.rend(); ++it) ::unlink(it->c_str());
    };
    for (const util::PciAddress& address : addresses) {
        const fs::path file = lock_path(runtime_dir, address);
        int error = create_lock(file, self);
        if (error == EEXIST) {
            auto owner = read_owner(file);
            if (owner && owner->vm == self.vm && same_process(*owner, self)) continue;  // ours already
            if (owner && alive(*owner)) {
                undo();
                throw LockError(address, *owner,
                                "PCI device " + util::quoted(address.str()) +
                                    " is reserved by the running VM " + util::quoted(owner->vm) +
                                    " (pid " + std::to_string(owner->pid) +
                                    "); stop that VM first, or remove the device from this "
                                    "profile");
            }
            // Stale (dead owner, or its pid now names another process) or unreadable: replace
            // it. The mutex makes the unlink-then-create pair atomic with respect to other
            // kvmgpu processes.
            if (owner) result.taken_over.push_back(DeviceLock{address, *owner, false});
            ::unlink(file.c_str());
            error = create_lock(file, self);
        }
        if (error != 0) {
            undo();
            throw_errno(error, "cannot create the reservation lock", file);
        }
        created.push_back(file);
    }
    return result;
}

std::size_t release_locks(const fs::path& runtime_dir, const std::string& vm,
                          const std::vector<util::PciAddress>& addresses) {
    std::error_code ec;
    if (!fs::is_directory(util::HostStateLayout{runtime_dir}.locks_dir(), ec)) return 0;
    DirMutex mutex(runtime_dir);
    std::size_t removed = 0;
    for (const util::PciAddress& address : addresses) {
        const fs::path file = lock_path(runtime_dir, address);
        auto owner = read_owner(file);
        if (owner && owner->vm == vm && ::unlink(file.c_str()) == 0) ++removed;
    }
    return removed;
}

void to_json(nlohmann::json& j, const DeviceLock& lock) {
    j = {{"address", lock.address.str()},
         {"vm", lock.owner.vm},
         {"pid", lock.owner.pid},
         {"start_time", lock.owner.start_time},
         {"alive", lock.alive}};
}

}  // namespace kvmgpu::host
