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
    return runtime_dir / "journal" / (vm + ".json");
}

namespace {

[[noreturn]] void throw_errno(int error, const std::string& what, const fs::path& path) {
    throw std::system_error(error, std::generic_category(),
                            what + " " + util::quoted(path.string()));
}

nlohmann::json optional_json(const std::optional<std::string>& value) {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

std::optional<std::string> optional_string(const nlohmann::json& j, const char* key) {
    const auto& v = j.at(key);
    if (v.is_null()) return std::nullopt;
    return v.get<std::string>();
}

}  // namespace

void to_json(nlohmann::json& j, const JournalEntry& e) {
    j = {{"address", e.address.str()},
         {"driver", optional_json(e.driver)},
         {"driver_override", optional_json(e.driver_override)}};
}

void from_json(const nlohmann::json& j, JournalEntry& e) {
    const auto text = j.at("address").get<std::string>();
    auto address = util::PciAddress::parse(text);
    if (!address) throw std::runtime_error("bad PCI address " + util::quoted(text));
    e.address = *address;
    e.driver = optional_string(j, "driver");
    e.driver_override = optional_string(j, "driver_override");
}

void to_json(nlohmann::json& j, const Journal& journal) {
    j = {{"vm", journal.vm}, {"pid", journal.pid}, {"devices", journal.devices}};
}

void from_json(const nlohmann::json& j, Journal& journal) {
    journal.vm = j.at("vm").get<std::string>();
    journal.pid = j.at("pid").get<pid_t>();
    journal.devices = j.at("devices").get<std::vector<JournalEntry>>();
}

std::optional<Journal> read_journal(const fs::path& runtime_dir, const std::string& vm) {
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
    try {
        return nlohmann::json::parse(content.str()).get<Journal>();
    } catch (const std::exception& e) {
        throw std::runtime_error("the journal " + util::quoted(file.string()) +
                                 " is damaged (" + e.what() +
                                 "); check the devices it names by hand, then delete it");
    }
}

void write_journal(const fs::path& runtime_dir, const Journal& journal) {
    const fs::path file = journal_path(runtime_dir, journal.vm);
    const fs::path dir = file.parent_path();
    std::error_code ec;
    if (journal.devices.empty()) {
        // Nothing on disk (ENOENT or ENOTDIR) is already the wanted state.
        if (!fs::exists(fs::symlink_status(file, ec))) return;
        if (!fs::remove(file, ec) && ec) throw_errno(ec.value(), "cannot remove the journal", file);
    } else {
        fs::create_directories(dir, ec);
        if (ec) throw_errno(ec.value(), "cannot create the journal directory", dir);
        const fs::path temp = dir / ("." + journal.vm + ".json.tmp");
        const std::string text = nlohmann::json(journal).dump(2) + "\n";
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
    // The rename (or the removal) is durable only once the directory entry is.
    util::Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd && ::fsync(dir_fd.get()) != 0 && errno != EINVAL)
        throw_errno(errno, "cannot fsync the journal directory", dir);
}

std::vector<std::string> list_journals(const fs::path& runtime_dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(runtime_dir / "journal", ec), end; !ec && it != end;
         it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.starts_with(".") || !name.ends_with(".json")) continue;
        names.push_back(name.substr(0, name.size() - 5));
    }
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace kvmgpu::host
