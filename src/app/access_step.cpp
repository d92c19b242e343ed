// The launch step that gives the unprivileged QEMU user what this VM needs (docs/security.md);
// see launch_steps.hpp.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <system_error>

#include "app/child_env.hpp"
#include "app/launch_steps.hpp"
#include "host/file_access.hpp"
#include "host/journal.hpp"
#include "host/sysfs.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {
namespace {

namespace fs = std::filesystem;
using host::Access;

struct Grant {
    fs::path file;  // the real path, symbolic links resolved
    Access access;
    // A file of the profile or the host (an image, a device node): the user must be able to
    // reach it; kvmgpu opens no directory on its way. kvmgpu's own state files are reached
    // through the directories this step opens itself.
    bool reach = true;
};

// The /dev/vfio/N node of each IOMMU group the devices are in, and the container node.
std::vector<Grant> vfio_nodes(const LaunchRun& run) {
    std::vector<Grant> out;
    if (run.devices.empty()) return out;
    const auto& root = run.ctx.host_root;
    std::vector<std::string> groups;
    for (const auto& a : run.devices) {
        std::error_code ec;
        const auto link = fs::read_symlink(host::under(root, "/sys/bus/pci/devices/" + a.str() + "/iommu_group"), ec);
        if (ec) continue;  // the bind step found it; a device without a group has no node
        const auto group = link.filename().string();
        if (std::find(groups.begin(), groups.end(), group) == groups.end()) groups.push_back(group);
    }
    out.push_back({host::under(root, "/dev/vfio/vfio"), Access::read_write});
    for (const auto& g : groups) out.push_back({host::under(root, "/dev/vfio/" + g), Access::read_write});
    return out;
}

// /dev/bus/usb/BBB/DDD of every plugged device with a [[usb]] entry's vendor and product.
std::vector<Grant> usb_nodes(const LaunchRun& run) {
    std::vector<Grant> out;
    if (run.profile.usb.empty()) return out;
    const auto& root = run.ctx.host_root;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(host::under(root, "/sys/bus/usb/devices"), ec)) {
        const auto vendor = host::read_attr(entry.path() / "idVendor");
        const auto product = host::read_attr(entry.path() / "idProduct");
        const auto bus = host::read_attr(entry.path() / "busnum");
        const auto dev = host::read_attr(entry.path() / "devnum");
        if (!vendor || !product || !bus || !dev) continue;
        for (const auto& u : run.profile.usb) {
            if (std::stoul(*vendor, nullptr, 16) != u.vendor || std::stoul(*product, nullptr, 16) != u.product) continue;
            char node[32];
            std::snprintf(node, sizeof node, "/dev/bus/usb/%03lu/%03lu", std::stoul(*bus), std::stoul(*dev));
            out.push_back({host::under(root, node), Access::read_write});
        }
    }
    return out;
}

// Everything QEMU and swtpm open by path, as files of the profile or of the host.
std::vector<Grant> files_to_give(const LaunchRun& run) {
    const auto& p = run.profile;
    std::vector<Grant> out = vfio_nodes(run);
    for (const auto& d : p.disks)
        out.push_back({d.path, d.readonly || d.media == profile::DiskMedia::cdrom ? Access::read : Access::read_write});
    if (p.firmware.type == profile::FirmwareType::ovmf)
        out.push_back({p.firmware.code.empty() ? util::OvmfDefaults{}.code_for(p.firmware.secure_boot) : p.firmware.code,
                       Access::read});
    for (const auto& d : p.pci)
        if (!d.rom.empty()) out.push_back({d.rom, Access::read});
    for (const auto& in : p.inputs) out.push_back({in.evdev, Access::read_write});
    if (p.looking_glass.enabled) {
        const auto path = p.looking_glass.shared_memory_path();
        // QEMU creates a missing shared memory file itself, as its user.
        if (fs::exists(path)) out.push_back({path, Access::read_write});
    }
    for (auto& g : usb_nodes(run)) out.push_back(g);
    for (auto& g : out) {
        std::error_code ec;
        if (auto real = fs::canonical(g.file, ec); !ec) g.file = real;
    }
    return out;
}

// The VM's own state: STATE/NAME may be searched, the OVMF variables and the TPM's state are
// the user's while the VM runs. Not reached through the profile's paths, so not checked for
// reach beyond STATE/NAME.
std::vector<Grant> state_to_give(const LaunchRun& run) {
    const auto& layout = run.facts.layout;
    std::vector<Grant> out{{layout.state_dir, Access::search}};
    if (fs::exists(layout.ovmf_vars())) out.push_back({layout.ovmf_vars(), Access::read_write, false});
    if (run.profile.tpm.enabled) {
        out.push_back({layout.tpm_state(), Access::read_write, false});
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(layout.tpm_state(), ec))
            if (entry.is_regular_file(ec)) out.push_back({entry.path(), Access::read_write, false});
    }
    return out;
}

std::string unreachable_text(const util::SystemUser& user, const fs::path& file, const fs::path& dir) {
    struct stat st {};
    std::string how;
    if (::stat(dir.c_str(), &st) == 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
        how = " (mode " + std::string(mode) + ", " + util::user_name(st.st_uid) + ":" + util::group_name(st.st_gid) + ")";
    }
    return "QEMU runs as " + util::quoted(user.name) + ", which cannot reach " + util::quoted(file.string()) + ": the directory " +
           util::quoted(dir.string()) + how + " does not let it search. Move the file to a directory it can reach, or " +
           "let it pass (`chmod o+x " + dir.string() + "`, or a group it is in); kvmgpu changes no directory of yours";
}

// kvmgpu's own runtime directories, which go when the VM ends (not host changes): RUNTIME
// searchable by all (nobody may list it), RUNTIME/NAME searchable by the user's group, and
// RUNTIME/NAME/qemu the user's, for QEMU's sockets and pidfile and swtpm's socket.
void open_runtime_dirs(LaunchRun& run, const util::SystemUser& user) {
    const auto& layout = run.facts.layout;
    const auto runtime_root = layout.runtime_dir.parent_path();
    struct stat st {};
    if (::stat(runtime_root.c_str(), &st) != 0 || ((st.st_mode & S_IXOTH) == 0 && ::chmod(runtime_root.c_str(), (st.st_mode & 07777) | 0711) != 0))
        throw std::system_error(errno, std::generic_category(), "cannot let others search " + util::quoted(runtime_root.string()));
    if (::chown(layout.runtime_dir.c_str(), ::geteuid(), user.gid) != 0 || ::chmod(layout.runtime_dir.c_str(), 0710) != 0)
        throw std::system_error(errno, std::generic_category(), "cannot open " + util::quoted(layout.runtime_dir.string()) + " to its group");
    const auto qemu_dir = layout.qemu_dir();
    if (::mkdir(qemu_dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw std::system_error(errno, std::generic_category(), "cannot create " + util::quoted(qemu_dir.string()));
    if (::lchown(qemu_dir.c_str(), user.uid, user.gid) != 0)
        throw std::system_error(errno, std::generic_category(), "cannot give " + util::quoted(qemu_dir.string()) + " to " + util::quoted(user.name));
    if (auto dir = host::unreachable_at(qemu_dir, user))
        throw std::runtime_error(unreachable_text(user, qemu_dir, *dir));
}

}  // namespace

void access_step(LaunchRun& run) {
    if (!run.qemu_user) {
        // The runtime directory for QEMU's own files exists whoever QEMU runs as.
        fs::create_directories(run.facts.layout.qemu_dir());
        return;
    }
    const auto& user = *run.qemu_user;
    const std::string message = "giving " + util::quoted(user.name) + " what the VM needs";
    if (run.profile.tpm.enabled) fs::create_directories(run.facts.layout.tpm_state());
    auto grants = files_to_give(run);
    for (auto& g : state_to_give(run)) grants.push_back(g);

    // Every check first, so that a file the user cannot reach fails the step before any change.
    struct Planned {
        Grant grant;
        host::FileOwnerChanged original;
    };
    std::vector<Planned> planned;
    try {
        open_runtime_dirs(run, user);
        for (const auto& g : grants) {
            if (g.reach)
                if (auto dir = host::unreachable_at(g.file, user)) throw std::runtime_error(unreachable_text(user, g.file, *dir));
            if (auto change = host::plan_grant(run.ctx.host_root, g.file, user, g.access)) planned.push_back({g, *change});
        }
    } catch (const std::exception& e) {
        run.fail("access", message, e.what());
    }
    register_journal_undo(run);
    const auto host_dir = host_state_dir(run.ctx);
    std::vector<std::string> given;
    for (const auto& [grant, original] : planned) {
        run.check_interrupt("access");
        try {
            // Undo before mutate: the original owner and mode are on disk first.
            host::record_change(host_dir, run.profile.name, ::getpid(), original);
            host::apply_grant(grant.file, original, user, grant.access);
        } catch (const std::exception& e) {
            run.fail("access", message, e.what());
        }
        given.push_back(grant.file.string() + " (" + std::string(host::access_text(grant.access)) + ")");
    }
    run.step("access", message,
             "uid " + std::to_string(user.uid) + ", gid " + std::to_string(user.gid) +
                 (given.empty() ? "; it had all it needs" : "; given: " + util::join(given, ", ")));
}

util::SpawnOptions confined_spawn_options(const LaunchRun& run) {
    util::SpawnOptions options;
    options.new_session = true;  // a terminal's Ctrl-C reaches only the supervisor
    options.environment = child_environment(run.qemu_user ? run.qemu_user->home : own_home());
    options.umask = 0077;
    if (run.qemu_user) options.credentials = run.qemu_user->credentials();
    return options;
}

}  // namespace kvmgpu::app
