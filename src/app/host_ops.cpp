#include "app/host_ops.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include "app/launch.hpp"
#include "app/vm_dir.hpp"
#include "host/holders.hpp"
#include "host/host_change.hpp"
#include "host/journal.hpp"
#include "host/lock.hpp"
#include "host/qemu_probe.hpp"
#include "preflight/memlock.hpp"
#include "util/process.hpp"
#include "host/sysfs.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {

host::HostModel scan(const Context& ctx, bool names, bool pci) {
    return host::scan_host(ctx.host_root, {.names = names, .pci = pci, .only = std::nullopt, .hugepages = true});
}

host::HostModel scan_for(const profile::Profile& profile, const Context& ctx, bool names, ScanScope scope) {
    host::ScanOptions options{.names = names, .pci = !profile.pci.empty(), .only = std::nullopt, .hugepages = true};
    if (scope == ScanScope::profile_devices) {
        options.only.emplace();
        for (const auto& d : profile.pci) options.only->push_back(d.address);
        options.hugepages = profile.machine.hugepage_bytes() != 0;
    }
    auto model = host::scan_host(ctx.host_root, options);
    std::vector<host::PciDeviceInfo> devices;
    for (const auto& a : preflight::plan_binding(profile, model).devices)
        if (const auto* d = model.find(a)) devices.push_back(*d);
    model.holders = host::find_holders(ctx.host_root, devices);
    if (profile.release.any()) model.release = host::scan_release(ctx.host_root, profile.release.modules);
    return model;
}

std::string looking_glass_owner_name(const profile::Profile& profile, const Context& ctx) {
    if (!profile.looking_glass.owner.empty()) return profile.looking_glass.owner;
    if (!ctx.invoking_user.empty()) return ctx.invoking_user;
    return util::user_name(::geteuid());
}

std::string resolved_audio_server(const profile::Profile& profile, const Context& ctx) {
    if (!profile.audio.server.empty()) return profile.audio.server;
    std::optional<uid_t> desktop;
    if (::geteuid() != 0) {
        desktop = ::geteuid();
    } else if (!ctx.invoking_user.empty()) {
        try {
            if (const auto user = util::find_user(ctx.invoking_user)) desktop = user->uid;
        } catch (const std::exception&) {
        }
    }
    return desktop ? "unix:/run/user/" + std::to_string(*desktop) + "/pulse/native" : "";
}

preflight::CheckOptions check_options(const profile::Profile& profile, const Context& ctx) {
    preflight::CheckOptions options;
    options.locks = host::read_locks(host_state_dir(ctx), lock_liveness(ctx));
    options.as_root = ::geteuid() == 0;
    if (options.as_root && !profile.security.runs_as_root()) {
        options.qemu_user = util::find_user(profile.security.user);
        options.kvm_group = util::find_group("kvm");
    }
    // QEMU as root (CAP_IPC_LOCK) is not held to a locked-memory limit; any other QEMU is.
    if (!profile.pci.empty() && (!options.as_root || !profile.security.runs_as_root())) {
        options.memlock_raisable = util::can_set_memlock(preflight::vfio_locked_bytes(profile));
        rlimit limit{};
        if (::getrlimit(RLIMIT_MEMLOCK, &limit) == 0 && limit.rlim_max != RLIM_INFINITY)
            options.memlock_hard = static_cast<std::uint64_t>(limit.rlim_max);
    }
    if (profile.audio.backend != profile::AudioBackend::none) {
        options.qemu_audio_drivers = host::qemu_audio_drivers(profile.qemu.binary);
        options.audio_server = resolved_audio_server(profile, ctx);
    }
    if (profile.looking_glass.enabled) {
        options.looking_glass_owner = looking_glass_owner_name(profile, ctx);
        options.looking_glass_user = util::find_user(options.looking_glass_owner);
    }
    return options;
}

preflight::CheckResult check_host(const profile::Profile& profile, const Context& ctx, bool names) {
    const auto model = scan_for(profile, ctx, names);
    return preflight::check(profile, model, check_options(profile, ctx));
}

host::BindResult bind_by_hand(const Context& ctx, const std::string& name,
                              const std::vector<util::PciAddress>& devices) {
    const auto model = scan(ctx, false);
    for (const auto& a : devices) {
        const auto* d = model.find(a);
        if (!d)
            throw HostInputError("PCI device " + util::quoted(a.str()) +
                                 " does not exist on this host; `kvmgpu list` shows the devices");
        if (d->is_bridge() || d->is_chipset())
            throw HostInputError("PCI device " + util::quoted(a.str()) + " is a " +
                                 (d->is_bridge() ? "PCI bridge" : "chipset function") +
                                 ", which vfio-pci does not take; pass the devices behind it");
    }
    // An unbind of a device in use can block in the kernel until a reboot: never try one.
    std::vector<host::PciDeviceInfo> infos;
    for (const auto& a : devices) infos.push_back(*model.find(a));
    const auto held = host::find_holders(ctx.host_root, infos);
    if (!held.holders.empty()) {
        const auto& h = held.holders.front();
        std::string others;
        if (held.holders.size() > 1) others = " (and " + std::to_string(held.holders.size() - 1) + " more holders)";
        throw util::RuntimeFailure("PCI device " + util::quoted(h.address.str()) + " is in use: " +
                                       host::describe_holder(h) + others +
                                       "; kvmgpu does not unbind a device that is held, since the unbind "
                                       "could wait in the kernel until a reboot. End what holds it and try "
                                       "again; `kvmgpu list --json` names every holder",
                                   "device-held");
    }
    const auto host_dir = host_state_dir(ctx);
    ensure_private_dir(ctx.runtime_dir);
    std::filesystem::create_directories(host_dir);
    // The locks only refuse devices a running VM holds: this process ends at once, so they are
    // released again after the bind (the journal keeps what `restore` needs).
    host::acquire_locks(host_dir, name, ::getpid(), devices, lock_liveness(ctx));
    host::RealSysfsWriter writer;
    try {
        auto result = host::bind_devices(ctx.host_root, host_dir, name, devices, writer);
        host::release_locks(host_dir, name, devices);
        return result;
    } catch (...) {
        host::release_locks(host_dir, name, devices);
        throw;
    }
}

RestoreResult restore_vm(const Context& ctx, const std::string& name, host::SysfsWriter* writer,
                         host::CommandRunner* runner) {
    RestoreResult out;
    out.name = name;
    VmDir dir(ctx, name);
    std::optional<VmState> state;
    try {
        if (dir.exists()) state = dir.read_state();
    } catch (const std::exception& e) {
        out.warnings.push_back(std::string(e.what()) + "; taking \"" + name + "\" as not running");
    }
    if (state && dir.liveness(*state) != Liveness::stale) {
        out.refused = "\"" + name + "\" is still " + std::string(liveness_name(dir.liveness(*state))) +
                      " (QEMU pid " + std::to_string(state->qemu_pid) + "); stop it first: kvmgpu stop " + name;
        return out;
    }
    const auto host_dir = host_state_dir(ctx);
    host::RealSysfsWriter real_writer;
    // Services and modules a launch stopped come back through systemctl / modprobe; their output
    // goes with the journal's other news, to stderr.
    host::ExecRunner exec_runner;
    // A device another running VM holds now (it took the device after this VM's launcher died)
    // stays where it is: giving it back would pull it out of that guest.
    const auto locks = host::read_locks(host_dir, lock_liveness(ctx));
    const host::DeviceGuard in_use = [&](const util::PciAddress& address) -> std::optional<std::string> {
        for (const auto& lock : locks)
            if (lock.address == address && lock.alive && lock.owner.vm != name)
                return "the VM \"" + lock.owner.vm + "\" (pid " + std::to_string(lock.owner.pid) +
                       ") holds it now; stop that VM first (kvmgpu stop " + lock.owner.vm + ")";
        return std::nullopt;
    };
    out.report = host::restore_changes(ctx.host_root, host_dir, name, writer ? *writer : real_writer,
                                       runner ? runner : &exec_runner, {}, in_use);
    for (const auto& o : out.report.devices)
        if (o.ok) host::release_locks(host_dir, name, {o.address});
    // A launcher killed before it bound a device still left that device's lock: stale, but in the way
    // of `ps` and of the next reader. Once everything is back, nothing of this VM's is held.
    if (out.report.ok()) {
        std::vector<util::PciAddress> stale;
        for (const auto& lock : host::read_locks(host_dir, lock_liveness(ctx)))
            if (lock.owner.vm == name && !lock.alive) stale.push_back(lock.address);
        host::release_locks(host_dir, name, stale);
    }
    if (out.report.ok()) dir.remove_if_stale();  // a left-over runtime directory goes with it (not a new launch's)
    return out;
}

std::vector<std::string> journal_names(const Context& ctx) { return host::list_journals(host_state_dir(ctx)); }

}  // namespace kvmgpu::app
