#pragma once
// A VM's runtime directory, RUNTIME/NAME/ (0700), and the state file in it that lets other
// kvmgpu processes find and judge a VM: the supervisor's and QEMU's pids with their start times
// (so a reused pid is never mistaken for them), the devices it holds, the profile it came from.
//
//   RUNTIME/NAME/state.json        written by the supervisor
//   RUNTIME/NAME/control.sock      the supervisor's control socket (0600)
//   RUNTIME/NAME/qemu/qmp.sock     QEMU's QMP socket, used by the supervisor
//   RUNTIME/NAME/qemu/qmp-rescue.sock  a second QMP socket, for `stop` when the supervisor is gone
//   RUNTIME/NAME/qemu.log          QEMU's stdout and stderr
//   RUNTIME/NAME/qemu/qemu.pid     written by QEMU (qemu/ belongs to QEMU's user: util/layout.hpp)
//
// Entries of RUNTIME whose names start with '.' are not VMs (a VM name never starts with '.').
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "app/context.hpp"

namespace kvmgpu::app {

struct VmState {
    std::string name;
    std::string profile;  // absolute path of the profile file
    pid_t supervisor_pid = 0;
    std::uint64_t supervisor_start = 0;
    pid_t qemu_pid = 0;
    std::uint64_t qemu_start = 0;
    std::vector<std::string> devices;  // PCI addresses passed through
    std::int64_t started_at = 0;        // unix seconds
    unsigned restarts = 0;              // starts of this VM since the host booted, before this one
    // What `kvmgpu console` serves: QEMU's VNC WebSocket as "HOST:PORT" to connect to (empty:
    // none), whether VNC asks for the password in STATE/NAME/vnc-password, and the host's
    // loopback port forwarded to a WebSocket VNC server inside the guest (0: none).
    std::string websocket;
    bool vnc_password = false;
    unsigned guest_websocket = 0;
};

void to_json(nlohmann::json& j, const VmState& s);
void from_json(const nlohmann::json& j, VmState& s);

enum class Liveness {
    supervised,    // supervisor and QEMU run
    unsupervised,  // QEMU runs, its supervisor is gone (killed -9)
    starting,      // the supervisor runs, QEMU not (yet, or any more)
    stale,         // neither runs: the directory is left over
};
std::string_view liveness_name(Liveness l);

class VmDir {
public:
    VmDir(const Context& ctx, std::string name);

    const std::string& name() const { return name_; }
    const std::filesystem::path& path() const { return layout_.runtime_dir; }
    const util::VmLayout& layout() const { return layout_; }
    std::filesystem::path control_socket() const { return layout_.control_socket(); }
    std::filesystem::path qmp_socket() const { return layout_.qmp_socket(); }
    std::filesystem::path rescue_socket() const { return layout_.rescue_socket(); }
    std::filesystem::path log_file() const { return layout_.qemu_log(); }
    std::filesystem::path state_file() const { return layout_.state_file(); }

    bool exists() const;
    // Nullopt when there is no state file (yet). Throws naming the file when it is unreadable.
    std::optional<VmState> read_state() const;
    // Atomically (temp file + rename).
    void write_state(const VmState& state) const;
    Liveness liveness(const VmState& state) const;

    // Creates the directory (0700, and RUNTIME itself when missing) and writes `provisional`
    // as its state at once, all under RUNTIME's lock: of two launches of one name, one wins and
    // the other leaves the winner's directory alone. A directory left by a VM that no longer
    // runs is removed first; one whose VM still runs or starts is an error naming it. When the
    // state cannot be written (a full filesystem), the new directory is removed again.
    void create(const VmState& provisional) const;
    // Removes the directory and everything in it; quietly does nothing when it is gone.
    void remove() const;
    // Removes the directory under RUNTIME's lock if its VM is gone; false when a launch has
    // taken the name over since the caller looked (then nothing is removed).
    bool remove_if_stale() const;

    // The last `lines` lines of qemu.log as they are, for error messages.
    std::string log_tail(std::size_t lines = 15) const;

private:
    std::string name_;
    util::VmLayout layout_;
};

// Makes `dir` (with `mode`, 0700 by default) if it is missing, and refuses one that is not a
// directory owned by this user and writable only by it (`what` and `option` name it and its
// option in the error).
void ensure_private_dir(const std::filesystem::path& dir, std::string_view what = "runtime directory",
                        std::string_view option = "--runtime-dir", mode_t mode = 0700);

// STATE (made 0711: QEMU's user passes through it to its own VM's directory, and lists
// nothing) and STATE/NAME (made 0700; the access step lets QEMU's user search it while the VM
// runs) pass ensure_private_dir, and the files QEMU, swtpm
// write there by name (OVMF_VARS.fd, tpm/) are, when they exist, regular
// files with one link (tpm/ a directory) owned by this user: never a symlink that would make
// root's QEMU write its target.
void ensure_vm_state_dir(const util::VmLayout& layout);

// A new, empty STATE/NAME/logs (0700) for the run that starts; the last run's logs move to
// logs.previous, replacing the run before it. Whatever was planted there (a symlink, another
// user's file) is moved or removed, never written through. Call after ensure_vm_state_dir.
void start_run_logs(const util::VmLayout& layout);

// Every VM directory under RUNTIME, sorted by name. An unreadable RUNTIME is an error naming it
// (a missing one has no VMs).
std::vector<VmDir> list_vm_dirs(const Context& ctx);

}  // namespace kvmgpu::app
