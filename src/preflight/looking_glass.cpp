#include "preflight/looking_glass.hpp"

#include <sys/stat.h>

#include <cstdint>
#include <fstream>

#include "host/sysfs.hpp"
#include "util/text.hpp"

namespace kvmgpu::preflight {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;

std::vector<Finding> shm_findings(const profile::LookingGlass& lg, const std::string& owner_name,
                                  const std::optional<util::SystemUser>& owner) {
    const fs::path path = lg.shared_memory_path();
    const std::string shown = util::quoted(path.string());
    if (!owner)
        return {host_finding(Severity::error, "looking-glass-owner-missing",
                        "Looking Glass's shared memory file is for the user " + util::quoted(owner_name) +
                            ", and there is no such user.",
                        "kvmgpu creates " + shown + " for the user who runs looking-glass-client.",
                        "Write that user in [looking_glass] owner.")};
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return {host_finding(Severity::error, "looking-glass-file", shown + " exists and is not a regular file.",
                            "QEMU maps Looking Glass's shared memory from a regular file there.",
                            "Remove it (`rm " + path.string() + "`), or set [looking_glass] path to another file.")};
        return {host_finding(Severity::ok, "looking-glass-file",
                        "Looking Glass uses the existing " + shown + " as it is (kvmgpu neither changes nor removes it).")};
    }
    if (!fs::is_directory(path.parent_path()))
        return {host_finding(Severity::error, "looking-glass-file",
                        "The directory of " + shown + " does not exist.", "",
                        "Set [looking_glass] path to a file in an existing directory (/dev/shm is the usual place).")};
    return {host_finding(Severity::ok, "looking-glass-file",
                    "kvmgpu creates " + shown + " for " + util::quoted(owner->name) +
                        " (mode 0660) when the VM starts and removes it when it ends.")};
}

// The size kvmfr gives its first device, from static_size_mb ("128" or "128,64"); nullopt when
// unreadable.
std::optional<std::uint64_t> kvmfr_first_size_mb(const fs::path& root) {
    std::ifstream in(host::under(root, "/sys/module/kvmfr/parameters/static_size_mb"));
    std::string text;
    if (!std::getline(in, text)) return std::nullopt;
    text = text.substr(0, text.find(','));
    if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoull(text);
}

std::vector<Finding> kvmfr_findings(const profile::LookingGlass& lg, const fs::path& root) {
    const fs::path path = lg.shared_memory_path();
    const std::string shown = util::quoted(path.string());
    const auto needed_mb = lg.shared_memory_bytes() / kMiB;
    const std::string load = "modprobe kvmfr static_size_mb=" + std::to_string(needed_mb);
    const std::string persist = " To load it at boot: `echo kvmfr > /etc/modules-load.d/kvmfr.conf` and `echo \"options kvmfr "
                                "static_size_mb=" + std::to_string(needed_mb) + "\" > /etc/modprobe.d/kvmfr.conf`.";
    if (!fs::is_directory(host::under(root, "/sys/module/kvmfr")))
        return {host_finding(Severity::error, "kvmfr-missing", "[looking_glass] backend = \"kvmfr\" and the kvmfr module is not loaded.",
                        "QEMU maps Looking Glass's memory from " + shown + ", which the module provides.",
                        "Build and install it from Looking Glass's module/ directory (DKMS), then `" + load + "`." + persist)};
    struct stat st {};
    if (::lstat(host::under(root, path).c_str(), &st) != 0)
        return {host_finding(Severity::error, "kvmfr-device-missing", "The kvmfr module is loaded but " + shown + " does not exist.",
                        "The module makes one device per size in its static_size_mb parameter.",
                        "Reload it with a size: `modprobe -r kvmfr && " + load + "`.")};
    if (S_ISREG(st.st_mode))
        return {host_finding(Severity::error, "kvmfr-plain-file", shown + " is a plain file, not the kvmfr device.",
                        "Something wrote it before the module was loaded (QEMU creates a missing file), and the module "
                        "cannot make its device there.",
                        "`rm " + path.string() + " && modprobe -r kvmfr && " + load + "`.")};
    if (!S_ISCHR(st.st_mode))
        return {host_finding(Severity::error, "kvmfr-plain-file", shown + " is not a character device.", "",
                        "Remove it and reload the module: `modprobe -r kvmfr && " + load + "`.")};
    const auto size_mb = kvmfr_first_size_mb(root);
    if (size_mb && *size_mb < needed_mb)
        return {host_finding(Severity::error, "kvmfr-too-small",
                        "The kvmfr device has " + std::to_string(*size_mb) + " MiB; the profile needs " +
                            std::to_string(needed_mb) + " MiB.",
                        "QEMU cannot map more than the device holds.",
                        "`modprobe -r kvmfr && " + load + "`, or lower [looking_glass] size or resolution." + persist)};
    return {host_finding(Severity::ok, "kvmfr", shown + " is the kvmfr device" +
                                               (size_mb ? " (" + std::to_string(*size_mb) + " MiB)." : std::string(".")))};
}

}  // namespace

std::vector<Finding> looking_glass_findings(const profile::LookingGlass& lg, const fs::path& root,
                                            const std::string& owner_name,
                                            const std::optional<util::SystemUser>& owner) {
    if (!lg.enabled) return {};
    return lg.backend == profile::LookingGlassBackend::kvmfr ? kvmfr_findings(lg, root)
                                                             : shm_findings(lg, owner_name, owner);
}

}  // namespace kvmgpu::preflight
