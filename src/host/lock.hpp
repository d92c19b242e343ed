#pragma once
// Device reservations: which running kvmgpu VM holds which PCI function.
//
// Layout: RUNTIME/locks/<address>.lock (e.g. "0000:01:00.0.lock"), holding JSON
// {"vm": NAME, "pid": PID, "start_time": TICKS}. A lock names its owner in a file, rather than
// living only as a flock on an open fd, because it must outlive the launcher: after a `kill -9`
// the devices stay bound to vfio-pci until `kvmgpu restore`, and `check` must be able to name who
// holds them.
//
// Liveness is the owner process, named by its pid and its start time (field 22 of
// /proc/PID/stat): a pid alone may have been reused by an unrelated process since the owner died,
// and a reused pid must not keep a device reserved. A lock whose owner is not running is stale and
// may be taken over. Lock files written by a kvmgpu from before start times were recorded have no
// "start_time" (read as 0, "unknown"); they are judged by the pid alone, as that kvmgpu did, so
// for them a reused pid still looks live and `kvmgpu restore` (which removes the VM's own locks by
// name) is the way out. The liveness check is injectable for tests and for callers that know of
// more holders (a QEMU that outlived its launcher).
//
// Races between kvmgpu processes are closed by a short flock(LOCK_EX) on RUNTIME/locks/.mutex
// around every read-decide-write sequence; inside it each lock file is created with O_EXCL
// (never overwriting a file we did not decide to replace) and fsynced before the mutex is
// released, so no reader ever sees a half-written owner. The flock is released by the kernel
// if the process dies, so a crash inside the critical section cannot wedge the directory.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "util/error.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::host {

struct LockOwner {
    std::string vm;
    pid_t pid = 0;
    // When `pid` started, in clock ticks since boot (util::process_start_time). 0: unknown (a
    // lock file of an older kvmgpu, or a pid that was not running when the lock was taken);
    // such an owner is judged by its pid alone.
    std::uint64_t start_time = 0;
};

// Whether a process is running: kill(pid, 0) succeeds or fails with EPERM (running, not ours).
bool pid_alive(pid_t pid);

// Whether the owner process still runs: its pid runs and started at the recorded start time
// (a zombie counts as gone). With start_time 0 (unknown) this is pid_alive(owner.pid).
bool owner_alive(const LockOwner& owner);
using OwnerAlive = std::function<bool(const LockOwner&)>;

struct DeviceLock {
    util::PciAddress address;
    LockOwner owner;
    bool alive = false;  // the owner process is running; false: stale
};

std::filesystem::path lock_path(const std::filesystem::path& runtime_dir,
                                const util::PciAddress& address);

// Every lock in RUNTIME/locks, sorted by address; unreadable or malformed files are skipped.
std::vector<DeviceLock> read_locks(const std::filesystem::path& runtime_dir,
                                   const OwnerAlive& alive = owner_alive);

// A device held by another live VM (or another live instance of the same VM name).
class LockError : public util::RuntimeFailure {
public:
    LockError(util::PciAddress address, LockOwner owner, const std::string& message)
        : util::RuntimeFailure(message, "device-reserved"), address(address), owner(std::move(owner)) {}
    util::PciAddress address;
    LockOwner owner;
};

struct AcquireResult {
    std::vector<DeviceLock> taken_over;  // stale locks whose dead owner we replaced
};

// Reserves every address for `self`, all or nothing. A lock already held by this owner (same
// vm and pid, and the same start time unless either is unknown) is kept. A lock of a live other
// owner throws LockError naming the VM, its pid and the address; the locks this call created are
// removed first. Stale locks are replaced and reported. Other I/O failures throw
// std::system_error naming the path.
AcquireResult acquire_locks(const std::filesystem::path& runtime_dir, const LockOwner& self,
                            const std::vector<util::PciAddress>& addresses,
                            const OwnerAlive& alive = owner_alive);
// The same for (vm, pid), recording the start time of `pid` as /proc shows it now (0 when no
// such process runs). `pid` is a real process: the caller itself, normally.
AcquireResult acquire_locks(const std::filesystem::path& runtime_dir, const std::string& vm,
                            pid_t pid, const std::vector<util::PciAddress>& addresses,
                            const OwnerAlive& alive = owner_alive);

// Removes the locks of `addresses` owned by `vm` (any pid: restore runs in a new process after
// the launcher died). Locks of other VMs and missing locks are left alone. Returns how many
// were removed.
std::size_t release_locks(const std::filesystem::path& runtime_dir, const std::string& vm,
                          const std::vector<util::PciAddress>& addresses);

void to_json(nlohmann::json& j, const DeviceLock& lock);

}  // namespace kvmgpu::host
