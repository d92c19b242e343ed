#include "app/vm_dir.hpp"

#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "util/fd.hpp"
#include "util/proc.hpp"

namespace kvmgpu::app {

namespace fs = std::filesystem;

void to_json(nlohmann::json& j, const VmState& s) {
    j = {{"name", s.name},
         {"profile", s.profile},
         {"supervisor_pid", s.supervisor_pid},
         {"supervisor_start", s.supervisor_start},
         {"qemu_pid", s.qemu_pid},
         {"qemu_start", s.qemu_start},
         {"devices", s.devices},
         {"started_at", s.started_at}};
}

void from_json(const nlohmann::json& j, VmState& s) {
    j.at("name").get_to(s.name);
    s.profile = j.value("profile", "");
    s.supervisor_pid = j.value("supervisor_pid", 0);
    s.supervisor_start = j.value("supervisor_start", std::uint64_t{0});
    s.qemu_pid = j.value("qemu_pid", 0);
    s.qemu_start = j.value("qemu_start", std::uint64_t{0});
    s.devices = j.value("devices", std::vector<std::string>{});
    s.started_at = j.value("started_at", std::int64_t{0});
}

std::string_view liveness_name(Liveness l) {
    switch (l) {
        case Liveness::supervised: return "supervised";
        case Liveness::unsupervised: return "unsupervised";
        case Liveness::starting: return "starting";
        case Liveness::stale: return "stale";
    }
    return "?";
}

VmDir::VmDir(const Context& ctx, std::string name)
    : name_(std::move(name)), layout_(ctx.vm_layout(name_)) {}

bool VmDir::exists() const {
    std::error_code ec;
    return fs::is_directory(path(), ec);
}

std::optional<VmState> VmDir::read_state() const {
    std::ifstream in(state_file());
    if (!in) return std::nullopt;
    try {
        return nlohmann::json::parse(in).get<VmState>();
    } catch (const std::exception& e) {
        throw std::runtime_error("the state file \"" + state_file().string() +
                                 "\" is damaged (" + e.what() + ")");
    }
}

void VmDir::write_state(const VmState& state) const {
    const fs::path tmp = state_file().string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << nlohmann::json(state).dump() << "\n";
        if (!out.flush())
            throw std::system_error(errno, std::generic_category(),
                                    "cannot write \"" + tmp.string() + "\"");
    }
    fs::rename(tmp, state_file());
}

Liveness VmDir::liveness(const VmState& s) const {
    const bool supervisor = util::process_alive(s.supervisor_pid, s.supervisor_start);
    const bool qemu = s.qemu_pid > 0 && util::process_alive(s.qemu_pid, s.qemu_start);
    if (supervisor && qemu) return Liveness::supervised;
    if (qemu) return Liveness::unsupervised;
    if (supervisor) return Liveness::starting;
    return Liveness::stale;
}

void VmDir::create(const VmState& provisional) const {
    ensure_private_dir(path().parent_path());
    if (exists()) {
        std::optional<VmState> state;
        try {
            state = read_state();
        } catch (const std::exception&) {
            // A damaged state file belongs to no live VM we could find.
        }
        if (state && liveness(*state) != Liveness::stale)
            throw std::runtime_error("a VM named \"" + name_ + "\" is already " +
                                     (liveness(*state) == Liveness::starting ? "starting" : "running") +
                                     " (" + std::string(liveness_name(liveness(*state))) + ", kvmgpu pid " +
                                     std::to_string(state->supervisor_pid) + ", QEMU pid " +
                                     std::to_string(state->qemu_pid) + "); stop it first: kvmgpu stop " + name_);
        remove();
    }
    // mkdir is the exclusion between two launches of one name: only one of them creates it.
    if (::mkdir(path().c_str(), 0700) != 0)
        throw std::system_error(errno, std::generic_category(),
                                errno == EEXIST ? "another kvmgpu is starting \"" + name_ + "\" right now"
                                                : "cannot create the runtime directory \"" + path().string() + "\"");
    // At once, so that a VM that is starting is never taken for a left-over directory.
    write_state(provisional);
}

void ensure_private_dir(const fs::path& dir) {
    std::error_code ec;
    if (!fs::exists(dir, ec)) {
        fs::create_directories(dir.parent_path(), ec);
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
            throw std::system_error(errno, std::generic_category(), "cannot create \"" + dir.string() + "\"");
    }
    // Another user must not own or be able to write the directory whose state files decide
    // which pids kvmgpu signals (a predictable /tmp path could be planted).
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0)
        throw std::system_error(errno, std::generic_category(), "cannot inspect \"" + dir.string() + "\"");
    if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022))
        throw std::runtime_error("the runtime directory \"" + dir.string() +
                                 "\" is not a directory owned by this user and writable only by it; "
                                 "remove it or choose another with --runtime-dir");
}

void VmDir::remove() const {
    std::error_code ec;
    fs::remove_all(path(), ec);
}

std::string VmDir::log_tail(std::size_t lines) const {
    std::ifstream in(log_file());
    std::deque<std::string> tail;
    std::string line;
    while (std::getline(in, line)) {
        tail.push_back(line);
        if (tail.size() > lines) tail.pop_front();
    }
    std::string out;
    for (const auto& l : tail) out += l + "\n";
    return out;
}

std::vector<VmDir> list_vm_dirs(const Context& ctx) {
    std::vector<VmDir> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(ctx.runtime_dir, ec)) {
        const auto name = entry.path().filename().string();
        if (name.empty() || name.front() == '.' || !entry.is_directory()) continue;
        out.emplace_back(ctx, name);
    }
    std::sort(out.begin(), out.end(), [](const VmDir& a, const VmDir& b) { return a.name() < b.name(); });
    return out;
}

}  // namespace kvmgpu::app
