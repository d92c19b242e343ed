#include "preflight/audio.hpp"

#include <sys/stat.h>

#include <algorithm>

#include "host/file_access.hpp"
#include "host/sysfs.hpp"
#include "util/text.hpp"

namespace kvmgpu::preflight {
namespace {

namespace fs = std::filesystem;

std::string backend_text(const profile::Profile& p) {
    return p.audio.backend == profile::AudioBackend::pipewire ? "pipewire" : "pulseaudio";
}

std::optional<Finding> driver_finding(const profile::Profile& p, const CheckOptions& o) {
    if (!o.qemu_audio_drivers)
        return host_finding(Severity::warning, "audio-driver-unknown",
                       "kvmgpu could not ask " + util::quoted(p.qemu.binary) + " for its audio drivers (`-audiodev help`).",
                       "If it lacks PulseAudio's (`pa`), QEMU stops at start with \"Unknown audio driver\".",
                       "Run `" + p.qemu.binary + " -audiodev help` and look for `pa`.");
    const auto& drivers = *o.qemu_audio_drivers;
    if (std::find(drivers.begin(), drivers.end(), "pa") != drivers.end()) return std::nullopt;
    return host_finding(Severity::error, "audio-driver-missing",
                   util::quoted(p.qemu.binary) + " has no PulseAudio audio driver (`pa`), which [audio] backend = \"" +
                       backend_text(p) + "\" uses (it has: " + util::join(drivers, ", ") + ").",
                   "Debian ships it in the package qemu-system-gui; without it QEMU stops at start with \"Unknown audio "
                   "driver\".",
                   "`apt install qemu-system-gui`, or set [audio] backend = \"none\".");
}

std::vector<Finding> server_findings(const profile::Profile& p, const fs::path& root, const CheckOptions& o) {
    const std::string& server = o.audio_server;
    if (server.empty())
        return {host_finding(Severity::warning, "audio-server-unknown",
                        "kvmgpu runs as root, not through sudo, and does not know whose sound server the VM should use.",
                        "QEMU would look for root's, which a desktop does not run.",
                        "Set [audio] server = \"unix:/run/user/UID/pulse/native\" (UID: `id -u` of the desktop user).")};
    if (server.rfind("unix:", 0) != 0) return {};  // a network server: nothing to look at here
    const fs::path socket = server.substr(5);
    const fs::path on_host = host::under(root, socket);
    const std::string shown = util::quoted(socket.string());
    struct stat st {};
    if (socket.is_relative() || ::stat(on_host.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode))
        return {host_finding(Severity::error, "audio-server-missing", "There is no sound server socket at " + shown + ".",
                        "QEMU connects to it at start and stops when it cannot.",
                        "Log in to the desktop session whose PipeWire (pipewire-pulse) or PulseAudio serves it, or set "
                        "[audio] server to the right one (`pactl info` in that session shows \"Server String\").")};
    if (!o.qemu_user || p.security.runs_as_root()) return {};
    const auto& user = *o.qemu_user;
    const auto blocked = host::unreachable_at(on_host, user);
    if (!blocked && host::allows(st, user, host::Access::read_write)) return {};
    return {host_finding(Severity::error, "audio-server-unreachable",
                    "QEMU runs as " + util::quoted(user.name) + ", which cannot " +
                        (blocked ? "reach " + shown + " (the directory " + util::quoted(blocked->string()) +
                                       " does not let it search)"
                                 : "connect to " + shown) + ".",
                    "A desktop user's runtime directory is theirs alone.",
                    "Run QEMU as the desktop user ([security] user = \"THEM\"), or let " + util::quoted(user.name) +
                        " through: `setfacl -m u:" + user.name + ":x " + socket.parent_path().parent_path().string() + " " +
                        socket.parent_path().string() + "`.")};
}

}  // namespace

std::vector<Finding> audio_findings(const profile::Profile& p, const fs::path& root, const CheckOptions& options) {
    if (p.audio.backend == profile::AudioBackend::none) return {};
    std::vector<Finding> out;
    if (auto f = driver_finding(p, options)) out.push_back(std::move(*f));
    for (auto& f : server_findings(p, root, options)) out.push_back(std::move(f));
    if (out.empty())
        out.push_back(host_finding(Severity::ok, "audio", "QEMU has its PulseAudio driver and the sound server " +
                                                         util::quoted(options.audio_server) + " is there."));
    return out;
}

}  // namespace kvmgpu::preflight
