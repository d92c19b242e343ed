#include "host/host_change.hpp"

#include <signal.h>

#include "host/hugepage_pool.hpp"
#include "util/process.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include "host/console.hpp"
#include "util/fd.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;

std::string_view kind_name(const HostChange& change) {
    return std::visit([](const auto& c) -> std::string_view { return c.kind; }, change);
}

namespace {

template <typename... Fs>
struct Overloaded : Fs... {
    using Fs::operator()...;
};
template <typename... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

std::string mode_text(mode_t mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
    return text;
}

std::string owner_text(uid_t uid, gid_t gid, mode_t mode) {
    return std::to_string(uid) + ":" + std::to_string(gid) + " with mode " + mode_text(mode);
}

// A unit or module name must be one argv word that no program takes for an option.
std::optional<std::string> bad_name(std::string_view what, const std::string& name) {
    if (name.empty()) return "the " + std::string(what) + " name is empty";
    if (name.front() == '-' || util::find_control_char(name))
        return "the " + std::string(what) + " name " + util::quoted(name) + " is not a " +
               std::string(what) + " name";
    return std::nullopt;
}

// `path` must be absolute and must not climb out of the root.
std::optional<std::string> bad_path(const fs::path& path) {
    if (!path.is_absolute()) return "the path " + util::quoted(path.string()) + " is not absolute";
    for (const auto& part : path)
        if (part == "..")
            return "the path " + util::quoted(path.string()) + " climbs out of its directory with \"..\"";
    return std::nullopt;
}

std::string run_undo(const UndoContext& context, const std::vector<std::string>& argv,
                     const std::string& cannot) {
    if (!context.runner) throw UndoError("cannot " + cannot + ": no command runner");
    const std::string shown = "`" + util::shell_join(argv) + "`";
    int status = 0;
    try {
        status = context.runner->run(argv);
    } catch (const std::exception& e) {
        throw UndoError("cannot " + cannot + ": " + shown + " could not be run (" + e.what() + ")");
    }
    if (status != 0)
        throw UndoError("cannot " + cannot + ": " + shown + " exited with status " +
                        std::to_string(status));
    return shown;
}

}  // namespace

std::string subject(const HostChange& change) {
    return std::visit(Overloaded{
                          [](const DeviceToVfio& c) { return c.address.str(); },
                          [](const FileOwnerChanged& c) { return c.path.string(); },
                          [](const SysfsValueChanged& c) { return c.path.string(); },
                          [](const ServiceStopped& c) { return c.unit; },
                          [](const ModuleUnloaded& c) { return c.name; },
                          [](const DriverUnbound& c) { return c.device; },
                          [](const FileCreated& c) { return c.path.string(); },
                          [](const HugepagesAdded& c) { return c.path.string(); },
                          [](const UnitCpusSet& c) { return c.unit; },
                          [](const CgroupCpusSet& c) { return c.path.string(); },
                          [](const CgroupCreated& c) { return c.path.string(); },
                          [](const UnknownChange& c) { return c.kind; },
                      },
                      change);
}

std::string describe(const HostChange& change) {
    const std::string what = util::quoted(subject(change));
    return std::visit(Overloaded{
                          [&](const DeviceToVfio&) { return "PCI device " + what; },
                          [&](const FileOwnerChanged&) { return "the owner and mode of " + what; },
                          [&](const SysfsValueChanged&) { return "the value of " + what; },
                          [&](const ServiceStopped&) { return "the service " + what; },
                          [&](const ModuleUnloaded&) { return "the module " + what; },
                          [&](const DriverUnbound& c) {
                              return "the device " + what + " of " + util::quoted(c.driver.string());
                          },
                          [&](const FileCreated&) { return "the file " + what; },
                          [&](const HugepagesAdded& c) {
                              return std::to_string(c.pages) + " pages added to the hugepage pool " + what;
                          },
                          [&](const UnitCpusSet&) { return "the CPUs allowed to the unit " + what; },
                          [&](const CgroupCpusSet&) { return "the CPUs of the cgroup " + what; },
                          [&](const CgroupCreated&) { return "the cgroup " + what; },
                          [&](const UnknownChange&) { return "a change of kind " + what; },
                      },
                      change);
}

// ---- undo ----------------------------------------------------------------------------------

std::string undo(const FileOwnerChanged& change, const UndoContext& context) {
    if (auto bad = bad_path(change.path)) throw UndoError(*bad);
    const fs::path file = under(context.root, change.path);
    const std::string shown = util::quoted(file.string());
    const std::string wanted = owner_text(change.uid, change.gid, change.mode);
    // O_PATH opens without opening the device behind a node (a /dev/vfio/N open would claim the
    // group); O_NOFOLLOW makes a symbolic link swapped in since then an fd on the link itself,
    // which the S_ISLNK check below refuses.
    util::Fd fd(::open(file.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        const int error = errno;
        if (error == ENOENT) return shown + " is no longer present; nothing to restore.";
        throw UndoError("cannot open " + shown + ": " + errno_text(error));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw UndoError("cannot stat " + shown + ": " + errno_text(errno));
    if (S_ISLNK(st.st_mode))
        throw UndoError(shown + " is a symbolic link now, which kvmgpu does not follow; check where it "
                        "points, and give the file it replaced back its owner " + wanted + " by hand");
    const mode_t mode = change.mode & 07777;
    if (st.st_uid == change.uid && st.st_gid == change.gid && (st.st_mode & 07777) == mode)
        return "The owner of " + shown + " was already " + wanted + ".";

    if (st.st_uid != change.uid || st.st_gid != change.gid) {
        if (::fchownat(fd.get(), "", change.uid, change.gid, AT_EMPTY_PATH) != 0)
            throw UndoError("changing the owner of " + shown + " back to " + std::to_string(change.uid) +
                            ":" + std::to_string(change.gid) + " failed: " + errno_text(errno));
        // chown clears the set-user-ID and set-group-ID bits: the mode is compared afterwards.
        if (::fstat(fd.get(), &st) != 0) throw UndoError("cannot stat " + shown + ": " + errno_text(errno));
    }
    if ((st.st_mode & 07777) != mode) {
        // An O_PATH fd takes no fchmod; its /proc/self/fd entry reaches the same inode without
        // looking the path up again, so the file checked above is the file changed.
        const std::string self = "/proc/self/fd/" + std::to_string(fd.get());
        if (::chmod(self.c_str(), mode) != 0)
            throw UndoError("changing the mode of " + shown + " back to " + mode_text(mode) +
                            " failed: " + errno_text(errno));
    }
    return "The owner of " + shown + " is back to " + wanted + ".";
}

std::string undo(const SysfsValueChanged& change, const UndoContext& context) {
    if (auto bad = bad_path(change.path)) throw UndoError(*bad);
    const fs::path file = under(context.root, change.path);
    const std::string shown = util::quoted(file.string());
    std::error_code ec;
    if (!fs::exists(file, ec)) return shown + " is no longer present; nothing to restore.";
    const std::string old = util::quoted(change.old_value);
    if (read_attr(file) == change.old_value) return shown + " was already " + old + ".";
    // A write of zero bytes may never reach the attribute's store; a lone newline does, and the
    // kernel reads it as empty (a cpuset's cpus, a driver_override).
    const std::string_view data = change.old_value.empty() ? std::string_view("\n") : change.old_value;
    if (const int error = context.writer.write(file, data); error != 0)
        throw UndoError("writing " + old + " back to " + shown + " failed: " + errno_text(error));
    auto now = read_attr(file);
    // fbcon that was unbound from every console has let its framebuffer go, and the kernel
    // ignores a bind of it; taking the framebuffer over again (what registering one does)
    // brings it back.
    if (now != change.old_value && is_console_bind(change.path) && change.old_value == "1" && take_over_console(context.root))
        now = read_attr(file);
    if (now != change.old_value)
        throw UndoError(shown + " was given " + old + " back, but the kernel keeps it " +
                        (now ? util::quoted(*now) : std::string("unreadable")) + " (see `dmesg`)");
    return shown + " is back to " + old + ".";
}

std::string undo(const ServiceStopped& change, const UndoContext& context) {
    if (auto bad = bad_name("unit", change.unit)) throw UndoError(*bad);
    const std::string command =
        run_undo(context, {"systemctl", "start", change.unit}, "start " + util::quoted(change.unit));
    return "The service " + util::quoted(change.unit) + " was started again (" + command + ").";
}

std::string undo(const ModuleUnloaded& change, const UndoContext& context) {
    if (auto bad = bad_name("module", change.name)) throw UndoError(*bad);
    const std::string command =
        run_undo(context, {"modprobe", change.name}, "load " + util::quoted(change.name));
    return "The module " + util::quoted(change.name) + " was loaded again (" + command + ").";
}

std::string undo(const DriverUnbound& change, const UndoContext& context) {
    if (auto bad = bad_path(change.driver)) throw UndoError(*bad);
    if (change.device.empty() || change.device.find('/') != std::string::npos || change.device == "." ||
        change.device == "..")
        throw UndoError("the device name " + util::quoted(change.device) + " is not a name in a driver's directory");
    const fs::path driver = under(context.root, change.driver);
    const std::string shown = util::quoted(change.device);
    std::error_code ec;
    if (fs::exists(driver / change.device, ec)) return "The device " + shown + " was already bound.";
    if (!fs::exists(driver, ec))
        throw UndoError("cannot bind " + shown + " again: " + util::quoted(driver.string()) +
                        " is gone (its driver was unloaded); load it again, or reboot to get the console back");
    if (const int error = context.writer.write(driver / "bind", change.device); error != 0)
        throw UndoError("binding " + shown + " again through " + util::quoted((driver / "bind").string()) +
                        " failed: " + errno_text(error));
    return "The device " + shown + " is bound to " + util::quoted(change.driver.filename().string()) + " again.";
}

std::string undo(const FileCreated& change, const UndoContext& context) {
    if (auto bad = bad_path(change.path)) throw UndoError(*bad);
    const fs::path file = under(context.root, change.path);
    const std::string shown = util::quoted(file.string());
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0) {
        if (errno == ENOENT) return shown + " is gone already; nothing to remove.";
        throw UndoError("cannot inspect " + shown + ": " + errno_text(errno));
    }
    if (!S_ISREG(st.st_mode))
        throw UndoError(shown + " is no longer the regular file kvmgpu created (something replaced it); it was left "
                        "alone: remove it by hand if it is not yours");
    if (::unlink(file.c_str()) != 0 && errno != ENOENT)
        throw UndoError("removing " + shown + " failed: " + errno_text(errno));
    return shown + " was removed.";
}

std::string undo(const HugepagesAdded& change, const UndoContext& context) {
    if (auto bad = bad_path(change.path)) throw UndoError(*bad);
    const fs::path file = under(context.root, change.path);
    const std::string shown = util::quoted(file.string());
    std::error_code ec;
    if (!fs::exists(file, ec)) return shown + " is no longer present; nothing to give back.";
    const auto now = read_page_count(context.root, change.path);
    if (!now) throw UndoError("cannot read the pool size in " + shown);
    const std::uint64_t pages = *now;
    const std::uint64_t target = pages > change.pages ? pages - change.pages : 0;
    if (const int error = context.writer.write(file, std::to_string(target)); error != 0)
        throw UndoError("giving " + std::to_string(change.pages) + " hugepages back through " + shown +
                        " failed: " + errno_text(error));
    return "The hugepage pool " + shown + " went from " + std::to_string(pages) + " to " + std::to_string(target) +
           " pages (" + std::to_string(change.pages) + " given back).";
}

namespace {

std::string online_cpus(const fs::path& root) {
    const auto online = read_attr(under(root, "/sys/devices/system/cpu/online"));
    if (!online || online->empty() || !parse_cpu_list(*online))
        throw UndoError("cannot read the online CPUs in " + under(root, "/sys/devices/system/cpu/online").string());
    return *online;
}

std::string cpus_text(const std::string& old, const std::string& written) {
    if (!old.empty()) return "CPUs " + written;
    return written.empty() ? std::string("every CPU of its parent") : "every CPU (" + written + ")";
}

}  // namespace

std::string undo(const UnitCpusSet& change, const UndoContext& context) {
    if (auto bad = bad_name("unit", change.unit)) throw UndoError(*bad);
    if (!parse_cpu_list(change.old_cpus)) throw UndoError(util::quoted(change.old_cpus) + " is not a CPU list");
    const std::string cpus = change.old_cpus.empty() ? online_cpus(context.root) : change.old_cpus;
    const std::string command = run_undo(context,
                                         {"systemctl", "set-property", "--runtime", change.unit, "AllowedCPUs=" + cpus},
                                         "give " + util::quoted(change.unit) + " its CPUs back");
    return "The unit " + util::quoted(change.unit) + " may use " + cpus_text(change.old_cpus, cpus) + " again (" +
           command + ").";
}

std::string undo(const CgroupCpusSet& change, const UndoContext& context) {
    if (auto bad = bad_path(change.path)) throw UndoError(*bad);
    if (!parse_cpu_list(change.old_cpus)) throw UndoError(util::quoted(change.old_cpus) + " is not a CPU list");
    const fs::path dir = under(context.root, change.path);
    const std::string shown = util::quoted(dir.string());
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return "The cgroup " + shown + " is gone; nothing to restore.";
    std::string cpus = change.old_cpus;
    int error = context.writer.write(dir / "cpuset.cpus", cpus.empty() ? std::string_view("\n") : cpus);
    if (error == ENOSPC && cpus.empty()) {
        cpus = online_cpus(context.root);
        error = context.writer.write(dir / "cpuset.cpus", cpus);
    }
    if (error != 0)
        throw UndoError("writing " + util::quoted(cpus) + " back to " + (dir / "cpuset.cpus").string() +
                        " failed: " + errno_text(error));
    const auto effective = read_attr(dir / "cpuset.cpus.effective");
    const auto parent = read_attr(dir.parent_path() / "cpuset.cpus.effective");
    const std::string wanted = change.old_cpus.empty() ? parent.value_or(online_cpus(context.root)) : change.old_cpus;
    if (effective && parse_cpu_list(*effective) != parse_cpu_list(wanted))
        throw UndoError("the cgroup " + shown + " was given " + util::quoted(cpus) + " back, but may use only CPUs " +
                        *effective);
    return "The cgroup " + shown + " may use " + cpus_text(change.old_cpus, cpus) + " again.";
}

std::string undo(const CgroupCreated& change, const UndoContext& context) {
    if (auto bad = bad_path(change.path)) throw UndoError(*bad);
    const fs::path dir = under(context.root, change.path);
    const std::string shown = util::quoted(dir.string());
    const int error = context.writer.remove_dir(dir);
    if (error == 0) return "The cgroup " + shown + " was removed.";
    if (error == ENOENT) return "The cgroup " + shown + " is gone already.";
    if (error == EBUSY || error == ENOTEMPTY)
        throw UndoError("the cgroup " + shown + " still holds processes (" + (dir / "cgroup.procs").string() +
                        " lists them); end them, then run restore again");
    throw UndoError("removing the cgroup " + shown + " failed: " + errno_text(error));
}

// ---- JSON ----------------------------------------------------------------------------------

namespace {

nlohmann::json optional_json(const std::optional<std::string>& value) {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

std::optional<std::string> optional_string(const nlohmann::json& j, const char* key) {
    const auto& v = j.at(key);
    if (v.is_null()) return std::nullopt;
    return v.get<std::string>();
}

[[noreturn]] void bad_field(std::string_view kind, const char* key, const std::string& why) {
    throw std::runtime_error("a " + util::quoted(kind) + " change has a bad " + util::quoted(key) +
                             ": " + why);
}

fs::path path_field(const nlohmann::json& j, std::string_view kind) {
    fs::path path = j.at("path").get<std::string>();
    if (auto bad = bad_path(path)) bad_field(kind, "path", *bad);
    return path;
}

std::string name_field(const nlohmann::json& j, std::string_view kind, const char* key,
                       std::string_view what) {
    std::string name = j.at(key).get<std::string>();
    if (auto bad = bad_name(what, name)) bad_field(kind, key, *bad);
    return name;
}

// A uid or gid: a JSON number that fits, and not -1 (which chown reads as "leave it").
unsigned id_field(const nlohmann::json& j, std::string_view kind, const char* key) {
    const auto& v = j.at(key);
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() >= 0xffffffffULL)
        bad_field(kind, key, v.dump() + " is not a user or group id");
    return v.get<unsigned>();
}

// The mode as octal text ("0660"), the way a person reading the journal by hand expects it.
mode_t mode_field(const nlohmann::json& j, std::string_view kind) {
    const std::string text = j.at("mode").get<std::string>();
    unsigned mode = 0;
    bool ok = !text.empty() && text.size() <= 5;
    for (char c : text) {
        if (c < '0' || c > '7') ok = false;
        mode = mode * 8 + static_cast<unsigned>(c - '0');
    }
    if (!ok || mode > 07777) bad_field(kind, "mode", util::quoted(text) + " is not an octal mode like \"0660\"");
    return static_cast<mode_t>(mode);
}

template <typename T>
nlohmann::json with_kind(nlohmann::json fields) {
    fields["kind"] = std::string(T::kind);
    return fields;
}

// from_json for the alternative whose static kind is `kind`; false when none is.
template <std::size_t I = 0>
bool from_known_kind(const nlohmann::json& j, std::string_view kind, HostChange& change) {
    if constexpr (I == std::variant_size_v<HostChange>) {
        return false;
    } else {
        using T = std::variant_alternative_t<I, HostChange>;
        if constexpr (!std::is_same_v<T, UnknownChange>) {
            if (kind == T::kind) {
                change = j.get<T>();
                return true;
            }
        }
        return from_known_kind<I + 1>(j, kind, change);
    }
}

}  // namespace

void to_json(nlohmann::json& j, const DeviceToVfio& c) {
    j = with_kind<DeviceToVfio>({{"address", c.address.str()},
                                 {"driver", optional_json(c.driver)},
                                 {"driver_override", optional_json(c.driver_override)}});
    if (!c.nodes.empty()) j["nodes"] = c.nodes;
}

void from_json(const nlohmann::json& j, DeviceToVfio& c) {
    const auto text = j.at("address").get<std::string>();
    auto address = util::PciAddress::parse(text);
    if (!address) throw std::runtime_error("bad PCI address " + util::quoted(text));
    c.address = *address;
    c.driver = optional_string(j, "driver");
    c.driver_override = optional_string(j, "driver_override");
    c.nodes.clear();
    if (const auto nodes = j.find("nodes"); nodes != j.end()) {
        for (const auto& n : nodes->get<std::vector<std::string>>()) {
            // A node name is "class/name": nothing that could climb out of the device's directory.
            if (n.find("..") != std::string::npos || n.empty() || n.front() == '/')
                throw std::runtime_error("bad device node " + util::quoted(n));
            c.nodes.push_back(n);
        }
    }
}

void to_json(nlohmann::json& j, const FileOwnerChanged& c) {
    j = with_kind<FileOwnerChanged>(
        {{"path", c.path.string()}, {"uid", c.uid}, {"gid", c.gid}, {"mode", mode_text(c.mode)}});
}

void from_json(const nlohmann::json& j, FileOwnerChanged& c) {
    constexpr auto kind = FileOwnerChanged::kind;
    c.path = path_field(j, kind);
    c.uid = id_field(j, kind, "uid");
    c.gid = id_field(j, kind, "gid");
    c.mode = mode_field(j, kind);
}

void to_json(nlohmann::json& j, const SysfsValueChanged& c) {
    j = with_kind<SysfsValueChanged>({{"path", c.path.string()}, {"old_value", c.old_value}});
}

void from_json(const nlohmann::json& j, SysfsValueChanged& c) {
    c.path = path_field(j, SysfsValueChanged::kind);
    c.old_value = j.at("old_value").get<std::string>();
}

void to_json(nlohmann::json& j, const ServiceStopped& c) {
    j = with_kind<ServiceStopped>({{"unit", c.unit}});
}

void from_json(const nlohmann::json& j, ServiceStopped& c) {
    c.unit = name_field(j, ServiceStopped::kind, "unit", "unit");
}

void to_json(nlohmann::json& j, const ModuleUnloaded& c) {
    j = with_kind<ModuleUnloaded>({{"name", c.name}});
}

void from_json(const nlohmann::json& j, ModuleUnloaded& c) {
    c.name = name_field(j, ModuleUnloaded::kind, "name", "module");
}

void to_json(nlohmann::json& j, const DriverUnbound& c) {
    j = with_kind<DriverUnbound>({{"driver", c.driver.string()}, {"device", c.device}});
}

void from_json(const nlohmann::json& j, DriverUnbound& c) {
    constexpr auto kind = DriverUnbound::kind;
    fs::path driver = j.at("driver").get<std::string>();
    if (auto bad = bad_path(driver)) bad_field(kind, "driver", *bad);
    c.driver = std::move(driver);
    c.device = name_field(j, kind, "device", "device");
    if (c.device.find('/') != std::string::npos || c.device == "." || c.device == "..")
        bad_field(kind, "device", util::quoted(c.device) + " is not a name in a driver's directory");
}

void to_json(nlohmann::json& j, const FileCreated& c) { j = with_kind<FileCreated>({{"path", c.path.string()}}); }

void from_json(const nlohmann::json& j, FileCreated& c) { c.path = path_field(j, FileCreated::kind); }

void to_json(nlohmann::json& j, const HugepagesAdded& c) {
    j = with_kind<HugepagesAdded>({{"path", c.path.string()}, {"pages", c.pages}});
}

void from_json(const nlohmann::json& j, HugepagesAdded& c) {
    c.path = path_field(j, HugepagesAdded::kind);
    const auto& pages = j.at("pages");
    if (!pages.is_number_unsigned() || pages.get<std::uint64_t>() > (std::uint64_t{1} << 40))
        bad_field(HugepagesAdded::kind, "pages", pages.dump() + " is not a number of pages");
    c.pages = pages.get<std::uint64_t>();
}

void to_json(nlohmann::json& j, const UnitCpusSet& c) {
    j = with_kind<UnitCpusSet>({{"unit", c.unit}, {"old_cpus", c.old_cpus}});
}

void from_json(const nlohmann::json& j, UnitCpusSet& c) {
    c.unit = name_field(j, UnitCpusSet::kind, "unit", "unit");
    c.old_cpus = j.at("old_cpus").get<std::string>();
    if (!parse_cpu_list(c.old_cpus)) bad_field(UnitCpusSet::kind, "old_cpus", util::quoted(c.old_cpus) + " is not a CPU list");
}

void to_json(nlohmann::json& j, const CgroupCpusSet& c) {
    j = with_kind<CgroupCpusSet>({{"path", c.path.string()}, {"old_cpus", c.old_cpus}});
}

void from_json(const nlohmann::json& j, CgroupCpusSet& c) {
    c.path = path_field(j, CgroupCpusSet::kind);
    c.old_cpus = j.at("old_cpus").get<std::string>();
    if (!parse_cpu_list(c.old_cpus)) bad_field(CgroupCpusSet::kind, "old_cpus", util::quoted(c.old_cpus) + " is not a CPU list");
}

void to_json(nlohmann::json& j, const CgroupCreated& c) { j = with_kind<CgroupCreated>({{"path", c.path.string()}}); }

void from_json(const nlohmann::json& j, CgroupCreated& c) { c.path = path_field(j, CgroupCreated::kind); }

void to_json(nlohmann::json& j, const UnknownChange& c) { j = c.entry; }

void to_json(nlohmann::json& j, const HostChange& change) {
    std::visit([&](const auto& c) { to_json(j, c); }, change);
}

void from_json(const nlohmann::json& j, HostChange& change) {
    if (!j.is_object()) throw std::runtime_error("a change is " + j.dump() + ", not a JSON object");
    const auto kind = j.find("kind");
    if (kind == j.end() || !kind->is_string())
        throw std::runtime_error("a change has no \"kind\": " + j.dump());
    const std::string name = kind->get<std::string>();
    if (!from_known_kind(j, name, change)) change = UnknownChange{name, j};
}

int ExecRunner::run(const std::vector<std::string>& argv) {
    util::SpawnOptions options;
    if (!log_.empty()) options.log_file = log_;
    auto child = util::spawn(argv, options);
    if (auto status = child.wait_for(timeout_)) return util::exited_successfully(*status) ? 0 : 1;
    child.kill(SIGKILL);
    child.wait();
    return 1;
}

}  // namespace kvmgpu::host
