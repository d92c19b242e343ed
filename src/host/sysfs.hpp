#pragma once
// Small helpers for reading the host's sysfs/procfs under a root directory, and the one
// interface through which kvmgpu writes to sysfs.
//
// The root is the seam that makes the host testable: production passes "/", tests pass a fresh
// temporary directory. Every path is built with under(root, "sys/..."); nothing in host/ names
// an absolute host path without going through it.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "host/write_helper.hpp"
#include "util/interrupt.hpp"

namespace kvmgpu::host {

// `root` joined with `path`, where an absolute `path` ("/sys/bus/pci") is taken relative to the
// root: under("/tmp/x", "/sys") is "/tmp/x/sys", under("/", "/sys") is "/sys".
std::filesystem::path under(const std::filesystem::path& root, const std::filesystem::path& path);

// The whole content of a small file with trailing whitespace (the kernel's "\n") removed;
// nullopt when it cannot be read (missing, permission, not a file).
std::optional<std::string> read_attr(const std::filesystem::path& file);

// The same for the file `name` in the directory open as `dir` ("vendor" in an O_PATH fd of
// /sys/bus/pci/devices/ADDR): for a scan that reads a dozen files per device, where walking the
// whole path (and the device's symlink) again for each, and building a std::filesystem::path for
// each, cost more than the reads.
std::optional<std::string> read_attr_at(int dir, const char* name);

// The last component of a symlink's target ("driver" -> "../../bus/pci/drivers/e1000" gives
// "e1000"); nullopt when `link` is not a symlink.
std::optional<std::string> link_basename(const std::filesystem::path& link);
std::optional<std::string> link_basename_at(int dir, const char* name);

// Names of a directory's entries, sorted; empty when it cannot be read.
std::vector<std::string> entry_names(const std::filesystem::path& dir);

// "card0" with prefix "card": true; "card", "card0-HDMI-A-1": false.
bool numbered(std::string_view name, std::string_view prefix);

// "0x10de" or "10de" as hex; nullopt on anything else.
std::optional<std::uint64_t> parse_hex(std::string_view text);
// A decimal number of at most 9 digits (ids, counts, CPU numbers in sysfs); nullopt otherwise.
std::optional<unsigned> parse_dec(std::string_view text);

// The kernel's CPU list format ("0-3,8,10-11", as in cpu/online and thread_siblings_list):
// sorted, without duplicates. Nullopt on malformed text. An empty string is an empty list.
std::optional<std::vector<unsigned>> parse_cpu_list(std::string_view text);
// The inverse: [0,1,2,3,8] gives "0-3,8".
std::string format_cpu_list(const std::vector<unsigned>& cpus);

// Strerror text for an errno value ("Device or resource busy"), thread-safe.
std::string errno_text(int error);

// The only way host/ writes to sysfs. Each call is one open/write/close of one attribute, the
// way the kernel wants sysfs attributes written; the return value is 0 or the errno of the
// first failing call. Tests substitute a simulated kernel that applies Linux's semantics to a
// temporary tree after each write.
class SysfsWriter {
public:
    virtual ~SysfsWriter() = default;
    virtual int write(const std::filesystem::path& file, std::string_view data) = 0;
    // How long one write may take before it is abandoned with ETIMEDOUT, for error messages;
    // nullopt when writes have no deadline.
    virtual std::optional<std::chrono::milliseconds> timeout() const { return std::nullopt; }
    // Whether a write this writer abandoned (timed out, interrupted) may still be carried out by
    // the kernel and concerns `subject` (named in the file's path, or the data written: an
    // unbind of ADDR, a drivers_probe of ADDR). A restore must not call such a device back
    // while it may still be unbound behind its back.
    virtual bool has_unfinished_write(std::string_view /*subject*/) { return false; }
    // mkdir (mode 0755) and rmdir of a directory in a kernel file system, a cgroup: the kernel
    // fills a new cgroup with its files and refuses to remove one that holds processes (EBUSY).
    // 0 or the errno.
    virtual int make_dir(const std::filesystem::path& dir);
    virtual int remove_dir(const std::filesystem::path& dir);
    // The writes of a phase are done (the launch's steps, a restore, one round of IRQ steering):
    // a writer may let go of what it kept for them. The next write works all the same.
    virtual void rest() {}
};

struct SysfsWriteOptions {
    // An unbind waits in the kernel until the driver lets go of the device, which a device in
    // use may never do; 10 s is far more than a free device takes.
    std::chrono::milliseconds timeout{10000};
    // Not owned; when set, a pending stop signal abandons the write at once (EINTR).
    const util::Interrupt* interrupt = nullptr;
};

// Production writer: open(O_WRONLY|O_TRUNC|O_CLOEXEC) without O_CREAT, so a missing attribute
// is ENOENT rather than a new regular file; a single write(2) of all of `data` (sysfs stores
// take the whole buffer in one call; a short write is reported as EIO); close(2), whose error
// is reported too.
//
// The kernel may block that write uninterruptibly for as long as the device is in use (an
// unbind), and a thread stuck there would keep the launcher from exiting. So the writes are made
// by a child process (host/write_helper.hpp), forked at the first write and kept for the next
// ones until rest(), that holds none of the launcher's fds and makes only async-signal-safe
// calls; the launcher waits for each answer with a deadline and the interrupt:
//   - the child answered: 0 or the errno (EIO when it died of someone else's signal);
//   - the deadline passed: ETIMEDOUT;
//   - a stop signal is pending: EINTR, also before the request is sent, so no new host change
//     begins after a stop request. The signal is left pending for the Interrupt's owner.
// A child whose write is abandoned is sent SIGKILL and is not waited for: it dies when the kernel
// returns from its write, which may be never. It is reaped without blocking by reap_abandoned()
// (each write() calls it first, and so does the destructor); one that is still stuck then stays a
// child of the launcher until the launcher exits, after which init reaps it. Whether the kernel
// still completes an abandoned write is unknown. The next write forks a new child.
//
// One write() at a time per object.
class RealSysfsWriter final : public SysfsWriter {
public:
    RealSysfsWriter() = default;
    explicit RealSysfsWriter(SysfsWriteOptions options) : options_(options) {}
    RealSysfsWriter(const RealSysfsWriter&) = delete;
    RealSysfsWriter& operator=(const RealSysfsWriter&) = delete;
    ~RealSysfsWriter() override;

    int write(const std::filesystem::path& file, std::string_view data) override;
    std::optional<std::chrono::milliseconds> timeout() const override { return options_.timeout; }

    // Reaps the abandoned children that have exited, without blocking; returns how many are
    // still running (still stuck in the kernel, or not yet dead of their SIGKILL).
    std::size_t reap_abandoned();
    bool has_unfinished_write(std::string_view subject) override;
    // Ends the child that makes the writes; the next write forks a new one.
    void rest() override;
    // The child that makes the writes, when one runs (tests).
    std::optional<pid_t> helper_pid() const { return helper_.running() ? std::optional(helper_.pid()) : std::nullopt; }

private:
    bool has_unfinished_pid(pid_t pid) const;
    int send_request(const std::filesystem::path& file, std::string_view data);
    struct Abandoned {
        pid_t pid;
        std::string file;
        std::string data;
    };
    SysfsWriteOptions options_;
    WriteHelper helper_;
    std::vector<Abandoned> abandoned_;
};

}  // namespace kvmgpu::host
