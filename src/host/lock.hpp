#pragma once
// Device reservations: which running kvmgpu VM holds which PCI function.
//
// Layout: RUNTIME/locks/<address>.lock (e.g. "0000:01:00.0.lock"), holding JSON
// {"vm": NAME, "pid": PID}. A lock names its owner in a file, rather than living only as a
// flock on an open fd, because it must outlive the launcher: after a `kill -9` the devices stay
// bound to vfio-pci until `kvmgpu restore`, and `check` must be able to name who holds them.
// Liveness is the owner pid (kill(pid, 0), injectable for tests); a lock whose pid is not
// running is stale and may be taken over.
//
// Races between kvmgpu processes are closed by a short flock(LOCK_EX) on RUNTIME/locks/.mutex
// around every read-decide-write sequence; inside it each lock file is created with O_EXCL
// (never overwriting a file we did not decide to replace) and fsynced before the mutex is
// released, so no reader ever sees a half-written owner. The flock is released by the kernel
// if the process dies, so a crash inside the critical section cannot wedge the directory.
//
// Known limit: a reused pid makes a stale lock look live; `kvmgpu restore` (which removes the
// VM's own locks by name) is the way out.
#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/pci_address.hpp"

namespace kvmgpu::host {

struct LockOwner {
    std::string vm;
    pid_t pid = 0;
};

// Whether a process is running: kill(pid, 0) succeeds or fails with EPERM (running, not ours).
bool pid_alive(pid_t pid);
using PidAlive = std::function<bool(pid_t)>;

struct DeviceLock {
    util::PciAddress address;
    LockOwner owner;
    bool alive = false;  // the owner pid is running; false: stale
};

std::filesystem::path lock_path(const std::filesystem::path& runtime_dir,
                                const util::PciAddress& address);

// Every lock in RUNTIME/locks, sorted by address; unreadable or malformed files are skipped.
std::vector<DeviceLock> read_locks(const std::filesystem::path& runtime_dir,
                                   const PidAlive& alive = pid_alive);

// A device held by another live VM (or another live instance of the same VM name).
class LockError : public std::runtime_error {
public:
    LockError(util::PciAddress address, LockOwner owner, const std::string& message)
        : std::runtime_error(message), address(address), owner(std::move(owner)) {}
    util::PciAddress address;
    LockOwner owner;
};

struct AcquireResult {
    std::vector<DeviceLock> taken_over;  // stale locks whose dead owner we replaced
};

// Reserves every address for (vm, pid), all or nothing. A lock already held by exactly this
// (vm, pid) is kept. A lock of a live other owner throws LockError naming the VM, its pid and
// the address; the locks this call created are removed first. Stale locks are replaced and
// reported. Other I/O failures throw std::system_error naming the path.
AcquireResult acquire_locks(const std::filesystem::path& runtime_dir, const std::string& vm,
                            pid_t pid, const std::vector<util::PciAddress>& addresses,
                            const PidAlive& alive = pid_alive);

// Removes the locks of `addresses` owned by `vm` (any pid: restore runs in a new process after
// the launcher died). Locks of other VMs and missing locks are left alone. Returns how many
// were removed.
std::size_t release_locks(const std::filesystem::path& runtime_dir, const std::string& vm,
                          const std::vector<util::PciAddress>& addresses);

void to_json(nlohmann::json& j, const DeviceLock& lock);

}  // namespace kvmgpu::host
