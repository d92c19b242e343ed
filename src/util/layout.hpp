#pragma once
// Where kvmgpu keeps things: every runtime and state path, and the firmware defaults, named in
// this one file. Nothing else spells a file name under RUNTIME or STATE.
//
//   RUNTIME/NAME/                 one directory per running VM (0700), removed when it ends
//     state.json                  the supervisor's pids and start times, devices, profile
//     control.sock                the supervisor's control socket (0600)
//     qemu/                       what QEMU and swtpm create, owned by the user they run as
//                                 (0700), so that they cannot touch the files beside it
//       qmp.sock, qmp-rescue.sock QEMU's QMP sockets: the supervisor's, and one kept free for
//                                 `kvmgpu stop` when the supervisor is gone
//       qemu.pid                  QEMU's pidfile
//       swtpm.sock                the software TPM's socket
//   RUNTIME/.host/                kvmgpu's host bookkeeping, shared by all VMs
//     journal/NAME.json           the journal of host changes a VM's launch made
//     locks/ADDRESS.lock, .mutex  device reservations
//   STATE/NAME/                   what a VM keeps between runs (0700)
//     OVMF_VARS.fd                its UEFI variables, copied from the template on the first run
//     tpm/                        swtpm's state
//     vnc-password                the VNC password (0600), made on the first run that needs one
//                                 ([display] password); `kvmgpu console` hands it to its page
//     logs/                       the logs of the last run (0700), kept after it ends:
//       qemu.log, swtpm.log       QEMU's and swtpm's output (opened by kvmgpu)
//       hooks.log                 the prepare, prestart and poststop hooks' output
//       release.log               what systemctl and modprobe said freeing the card and after
//       events.log                every event of the run, one JSON object per line (docs/json.md)
//     logs.previous/              the run before it, moved aside when a run starts
//     launcher.log                a detached launcher's output (`kvmgpu run --detach`), appended
//                                 (outside logs/: it is written before the run's logs start)
//
// A VM name never starts with '.', so RUNTIME/.host is never a VM's directory.
#include <filesystem>
#include <string>

namespace kvmgpu::util {

struct VmLayout {
    std::filesystem::path runtime_dir;  // RUNTIME/NAME
    std::filesystem::path state_dir;    // STATE/NAME

    static VmLayout of(const std::filesystem::path& runtime_root, const std::filesystem::path& state_root,
                       const std::string& name) {
        return {runtime_root / name, state_root / name};
    }

    std::filesystem::path state_file() const { return runtime_dir / "state.json"; }
    std::filesystem::path control_socket() const { return runtime_dir / "control.sock"; }
    std::filesystem::path qemu_dir() const { return runtime_dir / "qemu"; }
    std::filesystem::path qmp_socket() const { return qemu_dir() / "qmp.sock"; }
    std::filesystem::path rescue_socket() const { return qemu_dir() / "qmp-rescue.sock"; }
    std::filesystem::path qemu_pidfile() const { return qemu_dir() / "qemu.pid"; }
    std::filesystem::path swtpm_socket() const { return qemu_dir() / "swtpm.sock"; }

    std::filesystem::path ovmf_vars() const { return state_dir / "OVMF_VARS.fd"; }
    std::filesystem::path tpm_state() const { return state_dir / "tpm"; }
    std::filesystem::path vnc_password() const { return state_dir / "vnc-password"; }
    std::filesystem::path logs_dir() const { return state_dir / "logs"; }
    std::filesystem::path previous_logs_dir() const { return state_dir / "logs.previous"; }
    std::filesystem::path qemu_log() const { return logs_dir() / "qemu.log"; }
    std::filesystem::path swtpm_log() const { return logs_dir() / "swtpm.log"; }
    std::filesystem::path hooks_log() const { return logs_dir() / "hooks.log"; }
    // What `systemctl` and `modprobe` said while freeing the card and giving it back.
    std::filesystem::path release_log() const { return logs_dir() / "release.log"; }
    std::filesystem::path events_log() const { return logs_dir() / "events.log"; }
    // What a launcher that went to the background (`kvmgpu run --detach`) printed.
    std::filesystem::path launcher_log() const { return state_dir / "launcher.log"; }
};

// RUNTIME/.host: the journals and device locks of every VM.
struct HostStateLayout {
    std::filesystem::path root;  // RUNTIME/.host

    static HostStateLayout of(const std::filesystem::path& runtime_root) { return {runtime_root / ".host"}; }

    std::filesystem::path journal_dir() const { return root / "journal"; }
    std::filesystem::path journal(const std::string& vm) const { return journal_dir() / (vm + ".json"); }
    std::filesystem::path locks_dir() const { return root / "locks"; }
    std::filesystem::path lock(const std::string& address) const { return locks_dir() / (address + ".lock"); }
    std::filesystem::path locks_mutex() const { return locks_dir() / ".mutex"; }
};

// Debian 12's OVMF builds (package ovmf), used when a profile's [firmware] code / vars are empty.
struct OvmfDefaults {
    std::filesystem::path code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
    std::filesystem::path code_secure = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
    std::filesystem::path vars = "/usr/share/OVMF/OVMF_VARS_4M.fd";
    std::filesystem::path vars_secure = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";  // Microsoft keys enrolled

    const std::filesystem::path& code_for(bool secure_boot) const { return secure_boot ? code_secure : code; }
    const std::filesystem::path& vars_for(bool secure_boot) const { return secure_boot ? vars_secure : vars; }
};

}  // namespace kvmgpu::util
