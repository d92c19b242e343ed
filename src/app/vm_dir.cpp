#include "app/vm_dir.hpp"

#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <sys/file.h>
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

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

// RUNTIME's lock (flock on the directory itself), held while a launch claims a name (looks for a
// live VM, clears a left-over directory, makes its own and writes its state) and while a command
// clears a left-over directory: neither can then remove a directory the other has just made.
class RuntimeLock {
public:
    explicit RuntimeLock(const fs::path& runtime) : fd_(::open(runtime.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
        if (!fd_) fail("cannot open the runtime directory \"" + runtime.string() + "\"");
        while (::flock(fd_.get(), LOCK_EX) != 0)
            if (errno != EINTR) fail("cannot lock the runtime directory \"" + runtime.string() + "\"");
    }

private:
    util::Fd fd_;
};

// Writes `text` to `file` through a temporary file and a rename, so readers see the old or the
// new content. Every failure (a full filesystem among them) throws naming the file, and leaves
// no temporary file.
void replace_file(const fs::path& file, const std::string& text) {
    const fs::path tmp = file.string() + ".tmp";
    util::Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) fail("cannot write \"" + tmp.string() + "\"");
    struct Unlink {
        const fs::path& path;
        bool armed = true;
        ~Unlink() {
            if (armed) ::unlink(path.c_str());
        }
    } unlink_tmp{tmp};
    for (std::size_t done = 0; done < text.size();) {
        const auto n = ::write(fd.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("cannot write \"" + tmp.string() + "\"");
        done += static_cast<std::size_t>(n);
    }
    if (::close(fd.release()) != 0) fail("cannot write \"" + tmp.string() + "\"");
    if (::rename(tmp.c_str(), file.c_str()) != 0) fail("cannot rename \"" + tmp.string() + "\"");
    unlink_tmp.armed = false;
}

}  // namespace

void to_json(nlohmann::json& j, const VmState& s) {
    j = {{"name", s.name},
         {"profile", s.profile},
         {"supervisor_pid", s.supervisor_pid},
         {"supervisor_start", s.supervisor_start},
         {"qemu_pid", s.qemu_pid},
         {"qemu_start", s.qemu_start},
         {"devices", s.devices},
         {"started_at", s.started_at},
         {"restarts", s.restarts},
         {"websocket", s.websocket},
         {"vnc_password", s.vnc_password},
         {"guest_websocket", s.guest_websocket}};
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
    s.restarts = j.value("restarts", 0u);
    s.websocket = j.value("websocket", "");
    s.vnc_password = j.value("vnc_password", false);
    s.guest_websocket = j.value("guest_websocket", 0u);
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

void VmDir::write_state(const VmState& state) const { replace_file(state_file(), nlohmann::json(state).dump() + "\n"); }

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
    RuntimeLock lock(path().parent_path());
    if (exists()) {
        std::optional<VmState> state;
        try {
            state = read_state();
        } catch (const std::exception&) {
            // A damaged state file belongs to no live VM we could find.
        }
        // Under the lock a launch has its state written, so a directory without one is left over.
        if (state && liveness(*state) != Liveness::stale)
            throw std::runtime_error("a VM named \"" + name_ + "\" is already " +
                                     (liveness(*state) == Liveness::starting ? "starting" : "running") +
                                     " (" + std::string(liveness_name(liveness(*state))) + ", kvmgpu pid " +
                                     std::to_string(state->supervisor_pid) + ", QEMU pid " +
                                     std::to_string(state->qemu_pid) + "); stop it first: kvmgpu stop " + name_);
        remove();
    }
    if (::mkdir(path().c_str(), 0700) != 0)
        fail("cannot create the runtime directory \"" + path().string() + "\"");
    // At once, so that a VM that is starting is never taken for a left-over directory; a start
    // that cannot write it (a full filesystem) leaves nothing that would block the name.
    try {
        write_state(provisional);
    } catch (...) {
        remove();
        throw;
    }
}

bool VmDir::remove_if_stale() const {
    if (!exists()) return true;
    RuntimeLock lock(path().parent_path());
    std::optional<VmState> state;
    try {
        state = read_state();
    } catch (const std::exception&) {
    }
    if (state && liveness(*state) != Liveness::stale) return false;
    remove();
    return true;
}

void ensure_private_dir(const fs::path& dir, std::string_view what, std::string_view option, mode_t mode) {
    std::error_code ec;
    if (!fs::exists(dir, ec)) {
        fs::create_directories(dir.parent_path(), ec);
        if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST)
            fail("cannot create the " + std::string(what) + " \"" + dir.string() + "\"");
    }
    // Another user must not own or be able to write the directory whose state files decide
    // which pids kvmgpu signals, or whose files root's QEMU writes (a predictable /tmp path, or
    // a symlink in it, could be planted).
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) fail("cannot inspect the " + std::string(what) + " \"" + dir.string() + "\"");
    if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022))
        throw std::runtime_error("the " + std::string(what) + " \"" + dir.string() +
                                 "\" is not a directory owned by this user and writable only by it; "
                                 "remove it or choose another with " + std::string(option));
}

void ensure_vm_state_dir(const util::VmLayout& layout) {
    ensure_private_dir(layout.state_dir.parent_path(), "state directory", "--state-dir", 0711);
    ensure_private_dir(layout.state_dir, "state directory", "--state-dir");
    if (::chmod(layout.state_dir.c_str(), 0700) != 0) fail("cannot chmod \"" + layout.state_dir.string() + "\"");
    // What kvmgpu, QEMU and swtpm write in it by name: none may lead elsewhere.
    for (const auto& [file, directory] : {std::pair{layout.ovmf_vars(), false}, std::pair{layout.launcher_log(), false},
                                           std::pair{layout.tpm_state(), true}}) {
        struct stat st {};
        if (::lstat(file.c_str(), &st) != 0) {
            if (errno == ENOENT) continue;
            fail("cannot inspect \"" + file.string() + "\"");
        }
        const bool right_type = directory ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode) && st.st_nlink == 1;
        if (!right_type || st.st_uid != ::geteuid())
            throw std::runtime_error("\"" + file.string() + "\" is not a " + (directory ? "directory" : "regular file") +
                                     " owned by this user" + (directory ? "" : " with one link") +
                                     " (a symlink or a link to another file is refused: QEMU would write through it); "
                                     "remove it, then start the VM again");
    }
}

void start_run_logs(const util::VmLayout& layout) {
    std::error_code ec;
    // remove_all and rename act on a symlink itself, never on what it points to.
    fs::remove_all(layout.previous_logs_dir(), ec);
    if (ec) throw std::system_error(ec, "cannot remove \"" + layout.previous_logs_dir().string() + "\"");
    if (::rename(layout.logs_dir().c_str(), layout.previous_logs_dir().c_str()) != 0 && errno != ENOENT)
        fail("cannot move the last run's logs aside to \"" + layout.previous_logs_dir().string() + "\"");
    if (::mkdir(layout.logs_dir().c_str(), 0700) != 0)
        fail("cannot create the log directory \"" + layout.logs_dir().string() + "\"");
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
    fs::directory_iterator entries(ctx.runtime_dir, ec);
    // No runtime directory: no VM has run. One that cannot be read is not an empty one.
    if (ec && ec != std::errc::no_such_file_or_directory)
        throw std::system_error(ec, "cannot list the runtime directory \"" + ctx.runtime_dir.string() +
                                        "\" (" + (ec == std::errc::permission_denied
                                                        ? "its VMs are another user's: run this as root or as that user, "
                                                          "or choose the directory with --runtime-dir"
                                                        : "check it") +
                                        ")");
    for (const auto& entry : entries) {
        const auto name = entry.path().filename().string();
        if (name.empty() || name.front() == '.' || !entry.is_directory()) continue;
        out.emplace_back(ctx, name);
    }
    std::sort(out.begin(), out.end(), [](const VmDir& a, const VmDir& b) { return a.name() < b.name(); });
    return out;
}

}  // namespace kvmgpu::app
