#pragma once
// The launch as a pipeline: an ordered list of named steps that share one LaunchRun. Each step
// registers the undo of a change (run.revert) before it makes the change, and reports what it
// does through one StepEvent; a step that fails throws StepFailed after reporting it. Between
// steps, and inside every wait a step makes, a pending SIGINT/SIGTERM/SIGHUP (run.interrupt)
// ends the launch: everything registered is undone and the launcher exits 1.
//
// Adding a host change to the launch is adding one step function and one line in
// launch_steps(), in the place where it must happen.
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "app/context.hpp"
#include "app/events.hpp"
#include "app/launch.hpp"
#include "app/run_logs.hpp"
#include "app/vm_dir.hpp"
#include "host/binder.hpp"
#include "host/host_model.hpp"
#include "host/sysfs.hpp"
#include "preflight/check.hpp"
#include "profile/profile.hpp"
#include "qemu/argv.hpp"
#include "util/error.hpp"
#include "util/interrupt.hpp"
#include "util/pci_address.hpp"
#include "util/process.hpp"
#include "util/revert.hpp"
#include "util/user.hpp"

namespace kvmgpu::app {

// A step failed and said so with a failed StepEvent; the launch undoes what was done.
struct StepFailed : util::RuntimeFailure {
    explicit StepFailed(const std::string& message) : util::RuntimeFailure(message, "launch-failed") {}
};

// Everything the steps share. Members are declared so that `revert` is destroyed (and so runs
// its undos) before anything an undo uses.
struct LaunchRun {
    LaunchRun(const profile::Profile& p, const Context& c, const LaunchOptions& o, const Report& r,
              util::Interrupt& i, host::SysfsWriter& w)
        : profile(p), ctx(c), options(o), report(r), interrupt(i), writer(w), dir(c, p.name) {}

    const profile::Profile& profile;
    const Context& ctx;
    const LaunchOptions& options;
    const Report& report;
    util::Interrupt& interrupt;
    host::SysfsWriter& writer;
    host::CommandRunner* runner = nullptr;  // systemctl, modprobe

    VmDir dir;
    VmState state;
    preflight::CheckResult checked;
    std::vector<util::PciAddress> devices;           // what the check's plan binds
    std::vector<util::PciAddress> not_restored;      // filled by the journal's undo
    std::vector<util::PciAddress> not_working;       // given back, but not in working order
    std::vector<std::string> changes_not_restored;   // other host changes whose undo failed
    bool journal_undo_registered = false;
    std::map<util::PciAddress, std::string> original_driver;  // for the bind messages
    std::map<util::PciAddress, host::DeviceBefore> before;    // as the check found them, for the journal
    qemu::HostFacts facts;
    std::string vnc_password;  // [display] password: STATE/NAME/vnc-password, for the supervisor
    // The unprivileged user QEMU and swtpm run as ([security] user, when kvmgpu runs as root);
    // nullopt: they run as kvmgpu does.
    std::optional<util::SystemUser> qemu_user;
    util::ChildProcess swtpm;
    // [network] mode = "bridge": the tap qemu-bridge-helper opened, until QEMU inherits it.
    util::Fd bridge_tap;
    util::ChildProcess qemu;
    // Where the run's events are kept; the runtime-dir step opens it in STATE/NAME/logs.
    EventLog* event_log = nullptr;
    // The host-wide hugepage lock (hugepages_step), released once QEMU has its memory.
    util::Fd* hugepages_lock = nullptr;

    util::Revert revert;  // last: its destructor runs the undos while the rest still lives

    void step(std::string name, std::string message, std::string detail = {}) const;
    // Reports the step as failed and throws StepFailed(error).
    [[noreturn]] void fail(std::string name, std::string message, const std::string& error) const;
    // Throws StepFailed when a stop signal is pending: the launch ends here.
    void check_interrupt(std::string_view next_step);
};

struct LaunchStep {
    std::string_view name;
    void (*run)(LaunchRun&);
};

// The steps before supervision, in order: check, runtime-dir, reserve, prepare, hugepages, release, bind, prestart,
// firmware, looking-glass, access, tpm, network, spawn, isolate. The supervisor then connects QMP, configures (pins), and resumes.
std::span<const LaunchStep> launch_steps();

// Registers, once, the undo of everything the VM's journal holds: the journal is replayed, last
// change first (restore_changes), each change reported as a "restore" step and each device given
// back checked. Call it before the first change that is journaled.
void register_journal_undo(LaunchRun& run);

// Frees the card as the check planned ([release]): each change journaled, then made. In
// release_step.cpp.
void release_step(LaunchRun& run);

// [machine] hugepages: under a host-wide lock (RUNTIME/.host/hugepages.lock, held until QEMU
// has allocated its memory, i.e. until the supervisor's QMP connect: run.hugepages_lock), raises
// the pool of the page size (the NUMA node's when every pinned vCPU is on one node) by exactly
// the pages the VM lacks after compacting memory, journaled first as hugepages-added (unless
// keep_hugepages), and checks the kernel gave them: on a shortfall the pool goes back and the
// step fails saying how many pages the kernel could give. In hugepages_step.cpp.
void hugepages_step(LaunchRun& run);

// Looking Glass with the shm backend: creates the shared memory file for the desktop user
// (looking_glass_owner_name), in the group of QEMU's user, mode 0660, journaled first as a
// file-created change, so that the journal's replay (the end of the VM, `kvmgpu restore`)
// removes it. A file that exists already is the user's and is left as it is. In
// looking_glass_step.cpp.
void looking_glass_step(LaunchRun& run);

// [cpu] isolate, once QEMU runs (paused): QEMU is moved to a cgroup of its own (without
// systemd: /sys/fs/cgroup/kvmgpu-NAME, journaled as cgroup-created; with systemd: the transient
// scope machine.slice/kvmgpu-NAME.scope, which ends with QEMU), then each cgroup of the host's
// own tasks (host::scan_cgroups) is confined to the CPUs it may use now without the VM's
// pinned ones: without systemd its cpuset.cpus written (cgroup-cpus-set), with systemd
// `systemctl set-property --runtime UNIT AllowedCPUs=` (unit-cpus-set). Each change is
// journaled first, so the end of the VM or `kvmgpu restore` gives the CPUs back. In
// isolate_step.cpp.
void isolate_step(LaunchRun& run);

// Gives the unprivileged QEMU user (run.qemu_user) what this VM needs: its /dev/vfio nodes, its
// disks and images, its OVMF variables and TPM state, its evdev, USB and Looking Glass nodes,
// and a runtime directory of its own; each change to a file journaled first, as a
// file-owner-changed (host/file_access.hpp). A file the user cannot reach fails the step before
// anything changes. In access_step.cpp.
void access_step(LaunchRun& run);

// How QEMU and swtpm are started: their own session, the minimal environment (child_env.hpp),
// umask 077, and as run.qemu_user when there is one.
util::SpawnOptions confined_spawn_options(const LaunchRun& run);

// Runs a hook (argv, no shell; nothing when `argv` is empty) to completion, with the minimal
// environment (child_env.hpp) plus what it is run for: KVMGPU_VM_NAME, KVMGPU_HOOK (`phase`),
// KVMGPU_DEVICES (the plan's PCI addresses, space-separated), KVMGPU_PROFILE,
// KVMGPU_VM_STATE_DIR, KVMGPU_VM_LOG_DIR (not KVMGPU_STATE_DIR, which kvmgpu itself reads: a hook
// that runs kvmgpu must not move its STATE), and `extra_env`. Its output, between two lines
// kvmgpu writes (what runs, how it ended), goes to STATE/NAME/logs/hooks.log, kept after the
// run. A hook still running after [hooks] timeout, or when a stop signal arrives, is ended
// (SIGTERM, then SIGKILL after 5 s). A hook that fails, times out or is stopped fails the step
// (StepFailed). In hook.cpp.
void run_hook(LaunchRun& run, std::string_view phase, const std::vector<std::string>& argv,
              const std::vector<std::string>& extra_env = {});

}  // namespace kvmgpu::app
