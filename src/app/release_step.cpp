// The launch step that frees the card ([release]); see launch_steps.hpp.
#include <unistd.h>

#include "app/launch_steps.hpp"
#include "host/holders.hpp"
#include "host/host_model.hpp"
#include "host/journal.hpp"
#include "host/release.hpp"
#include "host/sysfs.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {
namespace {

template <typename... Fs>
struct Overloaded : Fs... {
    using Fs::operator()...;
};
template <typename... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

// Whether the change still has to be made: a service that does not run, a module that is not
// loaded, a console already unbound are left alone and not journaled, so the end of the VM does
// not start or load what the user had off.
bool still_needed(const LaunchRun& run, const preflight::PlannedRelease& planned) {
    const auto& root = run.ctx.host_root;
    return std::visit(Overloaded{
                          [&](const host::ServiceStopped& c) { return host::service_active(c.unit, *run.runner); },
                          [&](const host::ModuleUnloaded& c) { return host::read_module(root, c.name).loaded; },
                          [&](const host::SysfsValueChanged& c) {
                              return host::read_attr(host::under(root, c.path)) == c.old_value;
                          },
                          [&](const host::DriverUnbound& c) {
                              return std::filesystem::exists(host::under(root, c.driver) / c.device);
                          },
                          [](const auto&) { return false; },
                      },
                      planned.change);
}

void make_change(LaunchRun& run, const preflight::PlannedRelease& planned) {
    const auto& root = run.ctx.host_root;
    std::visit(Overloaded{
                   [&](const host::ServiceStopped& c) { host::stop_service(c.unit, *run.runner); },
                   [&](const host::ModuleUnloaded& c) { host::unload_module(c.name, *run.runner); },
                   [&](const host::SysfsValueChanged& c) { host::write_value(root, c.path, planned.value, run.writer); },
                   [&](const host::DriverUnbound& c) { host::unbind_driver(root, c, run.writer); },
                   [](const auto&) {},
               },
               planned.change);
}

// Whether the change ends programs or module users that held the card: a stopped service (the
// display manager with its desktop session) or an unloaded module. Only then can something
// have outlived it; a console or firmware framebuffer is released by a write the kernel
// accepted, and the check before found no other holder.
bool ends_programs(const host::HostChange& change) {
    return std::holds_alternative<host::ServiceStopped>(change) ||
           std::holds_alternative<host::ModuleUnloaded>(change);
}

// What still holds the devices after the release (a program of the desktop session that
// outlived the display manager, a module's user): an unbind of a held device can hang in the
// kernel, so the launch stops here.
std::vector<std::string> still_held(const LaunchRun& run) {
    const auto model = host::scan_host(run.ctx.host_root, {.names = false, .pci = true, .only = run.devices, .hugepages = false});
    std::vector<host::PciDeviceInfo> devices;
    for (const auto& a : run.devices)
        if (const auto* d = model.find(a)) devices.push_back(*d);
    std::vector<std::string> held;
    for (const auto& h : host::find_holders(run.ctx.host_root, devices).holders) {
        using K = host::HolderKind;
        if (h.kind == K::process || h.kind == K::service_process || h.kind == K::module)
            held.push_back(host::describe_holder(h));
    }
    return held;
}

}  // namespace

void release_step(LaunchRun& run) {
    if (run.checked.release.empty()) return;
    register_journal_undo(run);
    const auto host_dir = host_state_dir(run.ctx);
    bool programs_ended = false;
    for (const auto& planned : run.checked.release) {
        run.check_interrupt("release");
        bool needed = false;
        try {
            needed = still_needed(run, planned);
        } catch (const std::exception& e) {
            run.fail("release", planned.what, e.what());
        }
        if (!needed) {
            run.step("release", planned.what, "nothing to do: already so");
            continue;
        }
        // Undo before mutate: the journal holds the change before the host sees it.
        try {
            host::record_change(host_dir, run.profile.name, ::getpid(), planned.change);
        } catch (const std::exception& e) {
            run.fail("release", planned.what, std::string("cannot record it in the journal: ") + e.what());
        }
        try {
            make_change(run, planned);
        } catch (const std::exception& e) {
            run.fail("release", planned.what, e.what());
        }
        run.step("release", planned.what);
        programs_ended = programs_ended || ends_programs(planned.change);
    }
    // The scan of every process's descriptors is the dearest part of a launch's check; it is
    // repeated only when a program could have outlived what was stopped.
    if (!programs_ended) return;
    const std::string checking = "checking that nothing holds the devices any more";
    if (const auto held = still_held(run); !held.empty())
        run.fail("release", checking,
                 "still held after the release: " + util::join(held, "; ") +
                     "; kvmgpu does not unbind a device in use. Everything released is given back; end those "
                     "programs (or add them to [release]) and run again");
    run.step("release", checking);
}

}  // namespace kvmgpu::app
