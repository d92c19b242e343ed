// The launch step `looking-glass`: Looking Glass's shared memory file (shm backend), made for the
// desktop user and removed when the VM ends (see looking_glass_step in launch_steps.hpp).
#include <sys/stat.h>
#include <unistd.h>

#include "app/host_ops.hpp"
#include "app/launch_steps.hpp"
#include "host/file_access.hpp"
#include "host/journal.hpp"
#include "host/shared_memory_file.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {
namespace {

util::SystemUser file_owner(LaunchRun& run, const std::string& message) {
    const auto name = looking_glass_owner_name(run.profile, run.ctx);
    std::optional<util::SystemUser> owner;
    try {
        owner = util::find_user(name);
    } catch (const std::exception& e) {
        run.fail("looking-glass", message, e.what());
    }
    if (!owner)
        run.fail("looking-glass", message,
                 "there is no user " + util::quoted(name) + " to make it for; write the user who runs looking-glass-client "
                 "in [looking_glass] owner");
    return *owner;
}

}  // namespace

void looking_glass_step(LaunchRun& run) {
    const auto& lg = run.profile.looking_glass;
    if (!lg.enabled || lg.backend != profile::LookingGlassBackend::shm) return;
    const auto path = lg.shared_memory_path();
    struct stat st {};
    // One that exists is the user's own (the check refused anything but a regular file): used
    // as it is, never removed.
    if (::lstat(path.c_str(), &st) == 0) return;
    const std::string message = "creating Looking Glass's shared memory " + path.string();
    const auto owner = file_owner(run, message);
    // QEMU's user maps it through the group; without one, the owner's group.
    const gid_t group = run.qemu_user ? run.qemu_user->gid : owner.gid;
    const auto on_host = host::host_path(run.ctx.host_root, path);
    if (!on_host)
        run.fail("looking-glass", message, path.string() + " lies outside the host root " + run.ctx.host_root.string());
    register_journal_undo(run);
    try {
        // Undo before mutate: the journal says to remove it before it exists.
        host::record_change(host_state_dir(run.ctx), run.profile.name, ::getpid(), host::FileCreated{*on_host});
        host::create_shared_memory_file(path, owner.uid, group);
    } catch (const std::exception& e) {
        run.fail("looking-glass", message, e.what());
    }
    run.step("looking-glass", message,
             "for " + owner.name + ", group " + util::group_name(group) + ", mode 0660; removed when the VM ends");
}

}  // namespace kvmgpu::app
