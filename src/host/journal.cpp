#include "host/journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "util/fd.hpp"
#include "util/layout.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;

const JournalEntry* Journal::find(const util::PciAddress& address) const {
    for (const JournalEntry& e : devices)
        if (e.address == address) return &e;
    return nullptr;
}

fs::path journal_path(const fs::path& runtime_dir, const std::string& vm) {
    if (vm.empty() || vm == "." || vm == ".." || vm.find('/') != std::string::npos ||
        vm.find('\0') != std::string::npos)
        throw std::invalid_argument("the VM name " + util::quoted(vm) +
                                    " cannot name a journal file; use a name without '/'");
    return util::HostStateLayout{runtime_dir}.journal(vm);
}

namespace {

[[noreturn]] void throw_errno(int error, const std::string& what, const fs::path& path) {
    throw std::system_error(error, std::generic_category(),
                            what + " " + util::quoted(path.string()));
}

// `text` becomes `file`'s whole content, or `file` keeps its old one: a temporary file in the
// same directory, fsynced, renamed over it.
void replace_file(const fs::path& file, const std::string& text) {
    const fs::path dir = file.parent_path();
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw_errno(ec.value(), "cannot create the journal directory", dir);
    const fs::path temp = dir / ("." + file.filename().string() + ".tmp");
    util::Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) throw_errno(errno, "cannot create", temp);
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int error = errno;
            ::unlink(temp.c_str());
            throw_errno(error, "cannot write", temp);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
        const int error = errno;
        ::unlink(temp.c_str());
        throw_errno(error, "cannot fsync", temp);
    }
    fd.reset();
    if (::rename(temp.c_str(), file.c_str()) != 0) {
        const int error = errno;
        ::unlink(temp.c_str());
        throw_errno(error, "cannot rename the journal into place at", file);
    }
}

// Removes `file`; nothing on disk (ENOENT or ENOTDIR) is already the wanted state. False then.
bool remove_file(const fs::path& file) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(file, ec))) return false;
    if (!fs::remove(file, ec) && ec) throw_errno(ec.value(), "cannot remove the journal", file);
    return true;
}

class NewerJournal : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The rename (or the removal) is durable only once the directory entry is.
void sync_dir(const fs::path& dir) {
    util::Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd && ::fsync(dir_fd.get()) != 0 && errno != EINVAL)
        throw_errno(errno, "cannot fsync the journal directory", dir);
}

}  // namespace

void to_json(nlohmann::json& j, const ChangeJournal& journal) {
    nlohmann::json changes = nlohmann::json::array();
    for (const HostChange& change : journal.changes) changes.push_back(change);
    j = {{"version", kJournalVersion}, {"vm", journal.vm}, {"pid", journal.pid}, {"changes", changes}};
}

void from_json(const nlohmann::json& j, ChangeJournal& journal) {
    journal.vm = j.at("vm").get<std::string>();
    journal.pid = j.at("pid").get<pid_t>();
    journal.changes.clear();
    const auto version = j.find("version");
    if (version == j.end()) {
        // The format from before host changes: devices only, in binding order.
        for (const auto& entry : j.at("devices")) journal.changes.push_back(entry.get<DeviceToVfio>());
        return;
    }
    if (*version != kJournalVersion)
        throw std::runtime_error("\"version\" is " + version->dump() + "; this kvmgpu reads version " +
                                 std::to_string(kJournalVersion) + " and the format without a version");
    for (const auto& entry : j.at("changes")) journal.changes.push_back(entry.get<HostChange>());
}

std::optional<ChangeJournal> read_changes(const fs::path& runtime_dir, const std::string& vm) {
    const fs::path file = journal_path(runtime_dir, vm);
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        if (errno == ENOENT) return std::nullopt;
        std::error_code ec;
        if (!fs::exists(file, ec)) return std::nullopt;
        throw std::runtime_error("cannot read the journal " + util::quoted(file.string()) + ": " +
                                 std::error_code(errno, std::generic_category()).message());
    }
    std::ostringstream content;
    content << in.rdbuf();
    nlohmann::json json;
    try {
        json = nlohmann::json::parse(content.str());
        // A newer format is no damage: the kvmgpu that wrote it can still restore it.
        if (const auto version = json.find("version");
            json.is_object() && version != json.end() && version->is_number_integer() &&
            *version > kJournalVersion)
            throw NewerJournal("the journal " + util::quoted(file.string()) + " has version " +
                               version->dump() + ", newer than this kvmgpu reads (" +
                               std::to_string(kJournalVersion) +
                               "); restore with the kvmgpu that wrote it");
        return json.get<ChangeJournal>();
    } catch (const NewerJournal&) {
        throw;
    } catch (const std::exception& e) {
        throw std::runtime_error("the journal " + util::quoted(file.string()) +
                                 " is damaged (" + e.what() +
                                 "); check the changes it names by hand, then delete it");
    }
}

void write_changes(const fs::path& runtime_dir, const ChangeJournal& journal) {
    const fs::path file = journal_path(runtime_dir, journal.vm);
    if (journal.changes.empty()) {
        if (!remove_file(file)) return;
    } else {
        replace_file(file, nlohmann::json(journal).dump(2) + "\n");
    }
    sync_dir(file.parent_path());
}

void record_change(const fs::path& runtime_dir, const std::string& vm, pid_t pid,
                   const HostChange& change) {
    ChangeJournal journal = read_changes(runtime_dir, vm).value_or(ChangeJournal{vm, pid, {}});
    journal.vm = vm;
    journal.pid = pid;
    journal.changes.push_back(change);
    write_changes(runtime_dir, journal);
}

bool drop_change(const fs::path& runtime_dir, const std::string& vm, const HostChange& change) {
    auto journal = read_changes(runtime_dir, vm);
    if (!journal) return false;
    auto& changes = journal->changes;
    const auto last = std::find(changes.rbegin(), changes.rend(), change);
    if (last == changes.rend()) return false;
    changes.erase(std::next(last).base());
    write_changes(runtime_dir, *journal);
    return true;
}

// ---- the device-only view ----

namespace {

Journal devices_of(const ChangeJournal& changes) {
    Journal journal{changes.vm, changes.pid, {}};
    for (const HostChange& change : changes.changes)
        if (const auto* device = std::get_if<DeviceToVfio>(&change)) journal.devices.push_back(*device);
    return journal;
}

ChangeJournal changes_of(const Journal& journal) {
    return {journal.vm, journal.pid, {journal.devices.begin(), journal.devices.end()}};
}

}  // namespace

void to_json(nlohmann::json& j, const Journal& journal) { j = changes_of(journal); }

void from_json(const nlohmann::json& j, Journal& journal) { journal = devices_of(j.get<ChangeJournal>()); }

std::optional<Journal> read_journal(const fs::path& runtime_dir, const std::string& vm) {
    auto changes = read_changes(runtime_dir, vm);
    if (!changes) return std::nullopt;
    return devices_of(*changes);
}

void write_journal(const fs::path& runtime_dir, const Journal& journal) {
    std::optional<ChangeJournal> on_disk;
    try {
        on_disk = read_changes(runtime_dir, journal.vm);
    } catch (const std::runtime_error&) {
        // A damaged journal holds nothing this view could lose.
    }
    if (on_disk)
        for (const HostChange& change : on_disk->changes)
            if (!std::holds_alternative<DeviceToVfio>(change))
                throw std::logic_error("the journal " + util::quoted(journal_path(runtime_dir, journal.vm).string()) +
                                       " holds a " + util::quoted(kind_name(change)) +
                                       " change, which writing devices only would lose");
    write_changes(runtime_dir, changes_of(journal));
}

std::vector<std::string> list_journals(const fs::path& runtime_dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(util::HostStateLayout{runtime_dir}.journal_dir(), ec), end; !ec && it != end;
         it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.starts_with(".") || !name.ends_with(".json")) continue;
        names.push_back(name.substr(0, name.size() - 5));
    }
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace kvmgpu::host
