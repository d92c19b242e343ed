#include "host/holders.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>
#include <tuple>

#include "host/dir_fd.hpp"
#include "host/host_model.hpp"
#include "host/sysfs.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;
using util::PciAddress;

std::string_view holder_kind_name(HolderKind kind) {
    switch (kind) {
        case HolderKind::process: return "process";
        case HolderKind::console: return "console";
        case HolderKind::firmware_framebuffer: return "firmware-framebuffer";
        case HolderKind::module: return "module";
        case HolderKind::service_process: return "service-process";
    }
    return "?";
}

namespace {

// The kernel keeps at most 15 characters of a command in comm (TASK_COMM_LEN - 1).
constexpr std::size_t kCommLength = 15;
constexpr std::size_t kCmdlineLength = 200;

std::optional<pid_t> parse_pid(std::string_view name) {
    auto value = parse_dec(name);
    if (!value || *value == 0) return std::nullopt;
    return static_cast<pid_t>(*value);
}

// The raw bytes of a small file (cmdline keeps its NULs); nullopt when unreadable.
std::optional<std::string> read_raw(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream content;
    content << in.rdbuf();
    if (in.bad()) return std::nullopt;
    return content.str();
}

}  // namespace

CgroupUnit parse_cgroup_unit(std::string_view text) {
    // Each line is "HIERARCHY-ID:CONTROLLERS:PATH"; cgroup v2 is "0::PATH". systemd's own
    // hierarchy is the v2 one or, on a v1 host, "N:name=systemd:PATH".
    std::string_view chosen;
    int chosen_rank = 0;
    while (!text.empty()) {
        const auto newline = text.find('\n');
        const std::string_view line = text.substr(0, newline);
        text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
        const auto first = line.find(':');
        if (first == std::string_view::npos) continue;
        const auto second = line.find(':', first + 1);
        if (second == std::string_view::npos) continue;
        const std::string_view id = line.substr(0, first);
        const std::string_view controllers = line.substr(first + 1, second - first - 1);
        const int rank = id == "0" && controllers.empty() ? 3 : controllers == "name=systemd" ? 2 : 1;
        if (rank > chosen_rank) {
            chosen = line.substr(second + 1);
            chosen_rank = rank;
        }
    }
    CgroupUnit out;
    bool under_user_manager = false;
    while (!chosen.empty()) {
        const auto slash = chosen.find('/');
        const std::string_view part = chosen.substr(0, slash);
        chosen = slash == std::string_view::npos ? std::string_view{} : chosen.substr(slash + 1);
        if (!part.ends_with(".service") && !part.ends_with(".scope")) continue;
        // A unit below user@UID.service is the user's service manager's, not the system's.
        out.user_unit = under_user_manager;
        out.unit = std::string(part);
        if (part.starts_with("user@")) under_user_manager = true;
    }
    return out;
}

ProcessInfo read_process(const fs::path& root, pid_t pid) {
    const fs::path dir = under(root, "proc") / std::to_string(pid);
    ProcessInfo info;
    info.command = read_attr(dir / "comm").value_or("");
    if (auto raw = read_raw(dir / "cmdline")) {
        std::string argv0 = raw->substr(0, raw->find('\0'));
        std::string line = *raw;
        std::replace(line.begin(), line.end(), '\0', ' ');
        while (!line.empty() && line.back() == ' ') line.pop_back();
        if (line.size() > kCmdlineLength) line = line.substr(0, kCmdlineLength - 3) + "...";
        info.cmdline = std::move(line);
        const std::string base = fs::path(argv0).filename().string();
        // comm is cut at 15 characters ("nvidia-persiste"): argv[0] gives the whole name.
        if (info.command.empty() ||
            (info.command.size() == kCommLength && base.size() > kCommLength && base.starts_with(info.command)))
            info.command = base;
    }
    if (auto cgroup = read_attr(dir / "cgroup")) {
        const CgroupUnit unit = parse_cgroup_unit(*cgroup);
        info.unit = unit.unit;
        info.user_unit = unit.user_unit;
    }
    return info;
}

ProcessScan scan_processes(const fs::path& root, const std::set<std::string>& nodes,
                           const std::set<std::string>& commands) {
    ProcessScan scan;
    std::set<std::string> short_commands;
    for (const std::string& c : commands) short_commands.insert(c.substr(0, kCommLength));
    const fs::path proc = under(root, "proc");
    const OpenedDir proc_dir = open_dir(proc.c_str());
    if (!proc_dir.fd) return scan;
    for_each_entry(proc_dir.fd, [&](std::string_view name) {
        const auto pid = parse_pid(name);
        if (!pid) return;
        const std::string pid_name(name);
        const std::string fd_path = pid_name + "/fd";
        const OpenedDir fd_dir = open_dir(fd_path.c_str(), proc_dir.fd.get());
        std::vector<std::string> held;
        int list_error = fd_dir.error;
        if (!list_error)
            list_error = for_each_entry(fd_dir.fd, [&](std::string_view fd) {
                const std::string target = link_target(fd_dir.fd, std::string(fd).c_str());
                if (!target.empty() && nodes.count(target)) held.push_back(target);
            });
        if (list_error) {
            // A process that exited meanwhile was never there; one that is still there is
            // another user's (EACCES without CAP_SYS_PTRACE).
            if (::faccessat(proc_dir.fd.get(), pid_name.c_str(), F_OK, 0) == 0) ++scan.processes;
            return;
        }
        ++scan.processes;
        ++scan.readable;
        std::sort(held.begin(), held.end());
        held.erase(std::unique(held.begin(), held.end()), held.end());
        for (std::string& node : held) scan.open.push_back(OpenNode{*pid, std::move(node)});
        if (!short_commands.empty())
            if (auto comm = read_attr(proc / pid_name / "comm"); comm && short_commands.count(*comm))
                scan.command_matches.push_back(*pid);
    });
    std::sort(scan.open.begin(), scan.open.end(), [](const OpenNode& a, const OpenNode& b) {
        return std::tie(a.pid, a.node) < std::tie(b.pid, b.node);
    });
    std::sort(scan.command_matches.begin(), scan.command_matches.end());
    return scan;
}

std::vector<IomemRange> parse_iomem(std::string_view text) {
    std::vector<IomemRange> out;
    while (!text.empty()) {
        const auto newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
        std::size_t spaces = 0;
        while (spaces < line.size() && line[spaces] == ' ') ++spaces;
        line.remove_prefix(spaces);
        const auto dash = line.find('-');
        const auto colon = line.find(" : ");
        if (dash == std::string_view::npos || colon == std::string_view::npos || dash > colon) continue;
        auto start = parse_hex(line.substr(0, dash));
        auto end = parse_hex(line.substr(dash + 1, colon - dash - 1));
        if (!start || !end || *end < *start) continue;
        out.push_back(IomemRange{*start, *end, std::string(line.substr(colon + 3)),
                                 static_cast<unsigned>(spaces / 2)});
    }
    return out;
}

namespace {

const std::string kNvidiaDriver = "nvidia";
const std::string kPersistenced = "nvidia-persistenced";
// The NVIDIA modules that hold a GPU for their users: the driver cannot let go of a GPU while a
// program uses it through one of them.
const char* const kNvidiaModules[] = {"nvidia_drm", "nvidia_modeset", "nvidia_uvm"};
// Nodes every GPU on the nvidia driver shares.
const char* const kNvidiaSharedNodes[] = {"/dev/nvidiactl", "/dev/nvidia-modeset", "/dev/nvidia-uvm",
                                          "/dev/nvidia-uvm-tools"};

// The platform driver that owns a firmware framebuffer's memory, by its /proc/iomem name; ""
// for a region no driver owns (BOOTFB: the resource of sysfb's platform device itself).
struct FirmwareFb {
    const char* iomem_name;
    const char* platform_driver;
};
constexpr FirmwareFb kFirmwareFbs[] = {
    {"efifb", "efi-framebuffer"},
    {"vesafb", "vesa-framebuffer"},
    {"simpledrm", "simple-framebuffer"},
    {"simplefb", "simple-framebuffer"},
    {"simple-framebuffer", "simple-framebuffer"},
    {"BOOTFB", ""},
};

struct DeviceNodes {
    std::vector<std::string> nodes;  // process nodes: /dev/dri/*, /dev/fb*, /dev/snd/*, /dev/nvidia*
    std::vector<std::string> framebuffers;  // "/dev/fb0"
};

// /dev/nvidiaN of a GPU: proc/driver/nvidia/gpus/ADDR/information says "Device Minor: N".
// Without that file, every dev/nvidiaN under the root, since any of them may be this GPU's.
std::vector<std::string> nvidia_minor_nodes(const fs::path& root, const PciAddress& address) {
    const fs::path info = under(root, "proc/driver/nvidia/gpus") / address.str() / "information";
    if (auto text = read_attr(info)) {
        std::istringstream lines(*text);
        std::string line;
        while (std::getline(lines, line)) {
            if (!line.starts_with("Device Minor:")) continue;
            std::string value = line.substr(13);
            value.erase(0, value.find_first_not_of(" \t"));
            if (auto minor = parse_dec(value)) return {"/dev/nvidia" + std::to_string(*minor)};
        }
    }
    std::vector<std::string> out;
    for (const std::string& name : entry_names(under(root, "dev")))
        if (numbered(name, "nvidia")) out.push_back("/dev/" + name);
    return out;
}

DeviceNodes device_nodes(const fs::path& root, const PciDeviceInfo& device) {
    DeviceNodes out;
    const fs::path dir = under(root, "sys/bus/pci/devices") / device.address.str();
    for (const std::string& name : entry_names(dir / "drm"))
        if (numbered(name, "card") || numbered(name, "renderD")) out.nodes.push_back("/dev/dri/" + name);
    for (const std::string& name : entry_names(dir / "graphics")) {
        if (!numbered(name, "fb")) continue;
        out.nodes.push_back("/dev/" + name);
        out.framebuffers.push_back("/dev/" + name);
    }
    for (const std::string& card : entry_names(dir / "sound")) {
        if (!numbered(card, "card")) continue;
        for (const std::string& name : entry_names(dir / "sound" / card))
            for (const char* prefix : {"controlC", "pcmC", "hwC", "midiC", "comprC"})
                if (name.starts_with(prefix)) out.nodes.push_back("/dev/snd/" + name);
    }
    if (device.driver == kNvidiaDriver) {
        for (const char* node : kNvidiaSharedNodes) out.nodes.push_back(node);
        for (std::string& node : nvidia_minor_nodes(root, device.address)) out.nodes.push_back(std::move(node));
    }
    return out;
}

void find_consoles(const fs::path& root, const PciDeviceInfo& device, const DeviceNodes& nodes,
                   std::vector<Holder>& out) {
    if (nodes.framebuffers.empty()) return;
    std::string fbs;
    for (const std::string& fb : nodes.framebuffers) fbs += (fbs.empty() ? "" : ", ") + fb;
    const fs::path dir = under(root, "sys/class/vtconsole");
    for (const std::string& name : entry_names(dir)) {
        if (!numbered(name, "vtcon")) continue;
        const std::string console = read_attr(dir / name / "name").value_or("");
        // fbcon is one console over every framebuffer; while bound it draws on this one.
        if (console.find("frame buffer device") == std::string::npos) continue;
        if (read_attr(dir / name / "bind").value_or("0") != "1") continue;
        Holder h;
        h.kind = HolderKind::console;
        h.address = device.address;
        h.command = console;
        h.node = "/sys/class/vtconsole/" + name;
        h.detail = fbs;
        out.push_back(std::move(h));
    }
}

std::string hex_text(std::uint64_t value) {
    std::ostringstream s;
    s << "0x" << std::hex << value;
    return s.str();
}

void find_firmware_framebuffers(const fs::path& root, const std::vector<IomemRange>& iomem,
                                const PciDeviceInfo& device, std::vector<Holder>& out) {
    for (const IomemRange& range : iomem) {
        const FirmwareFb* fw = nullptr;
        for (const FirmwareFb& f : kFirmwareFbs)
            if (range.name == f.iomem_name) fw = &f;
        if (!fw || (range.start == 0 && range.end == 0)) continue;
        for (const Bar& bar : device.bars) {
            if (!bar.mem() || bar.index > 5) continue;
            const std::uint64_t bar_end = bar.start + bar.size - 1;
            if (range.start < bar.start || range.end > bar_end) continue;
            Holder h;
            h.kind = HolderKind::firmware_framebuffer;
            h.address = device.address;
            h.command = range.name;
            h.node = "/proc/iomem";
            if (*fw->platform_driver) {
                const std::string driver = fw->platform_driver;
                const fs::path dir = under(root, "sys/bus/platform/drivers") / driver;
                for (const std::string& name : entry_names(dir))
                    if (name.starts_with(driver + ".")) {
                        h.node = "/sys/bus/platform/drivers/" + driver + "/" + name;
                        break;
                    }
            }
            h.detail = "memory " + hex_text(range.start) + "-" + hex_text(range.end) + " in BAR " +
                       std::to_string(bar.index) + " (" + hex_text(bar.start) + "-" + hex_text(bar_end) + ")";
            out.push_back(std::move(h));
            break;
        }
    }
}

// A module is held when its reference count is more than the modules that depend on it (each
// holds one reference, listed in holders/): the rest are open files and in-kernel users.
void find_modules(const fs::path& root, const PciDeviceInfo& device, std::vector<Holder>& out) {
    for (const char* module : kNvidiaModules) {
        const fs::path dir = under(root, "sys/module") / module;
        auto refcnt = parse_dec(read_attr(dir / "refcnt").value_or(""));
        if (!refcnt) continue;  // not loaded
        const std::vector<std::string> dependents = entry_names(dir / "holders");
        if (*refcnt <= dependents.size()) continue;
        const unsigned users = *refcnt - static_cast<unsigned>(dependents.size());
        Holder h;
        h.kind = HolderKind::module;
        h.address = device.address;
        h.command = module;
        h.node = "/sys/module/" + std::string(module);
        h.detail = std::to_string(users) + (users == 1 ? " user" : " users");
        if (!dependents.empty()) {
            h.detail += "; needed by module";
            h.detail += dependents.size() == 1 ? " " : "s ";
            for (std::size_t i = 0; i < dependents.size(); ++i) h.detail += (i ? ", " : "") + dependents[i];
        }
        out.push_back(std::move(h));
    }
}

}  // namespace

HolderScan find_holders(const fs::path& root, std::span<const PciDeviceInfo> devices) {
    HolderScan scan;
    if (devices.empty()) return scan;
    scan.scanned = true;

    std::map<std::string, std::vector<PciAddress>> by_node;
    std::map<PciAddress, DeviceNodes> nodes;
    bool nvidia = false;
    for (const PciDeviceInfo& d : devices) {
        DeviceNodes n = device_nodes(root, d);
        for (const std::string& node : n.nodes) by_node[node].push_back(d.address);
        nodes[d.address] = std::move(n);
        nvidia = nvidia || d.driver == kNvidiaDriver;
    }
    std::set<std::string> wanted;
    for (const auto& [node, _] : by_node) wanted.insert(node);
    std::set<std::string> commands;
    if (nvidia) commands.insert(kPersistenced);

    // One pass over proc/ for every node of every device.
    const ProcessScan processes = scan_processes(root, wanted, commands);
    scan.processes = processes.processes;
    scan.readable = processes.readable;
    std::map<pid_t, ProcessInfo> info;
    auto process = [&](pid_t pid) -> const ProcessInfo& {
        auto it = info.find(pid);
        if (it == info.end()) it = info.emplace(pid, read_process(root, pid)).first;
        return it->second;
    };
    const std::set<pid_t> daemons(processes.command_matches.begin(), processes.command_matches.end());

    for (const PciDeviceInfo& d : devices) {
        if (d.driver != kNvidiaDriver) continue;
        for (pid_t pid : daemons) {
            const ProcessInfo& p = process(pid);
            Holder h;
            h.kind = HolderKind::service_process;
            h.address = d.address;
            h.pid = pid;
            h.command = p.command;
            h.unit = p.unit;
            h.user_unit = p.user_unit;
            h.detail = p.cmdline;
            for (const OpenNode& o : processes.open) {
                if (o.pid != pid) continue;
                const auto& owners = by_node[o.node];
                if (std::find(owners.begin(), owners.end(), d.address) == owners.end()) continue;
                h.node = o.node;
                break;
            }
            scan.holders.push_back(std::move(h));
        }
    }
    std::map<PciAddress, const PciDeviceInfo*> device_of;
    for (const PciDeviceInfo& d : devices) device_of[d.address] = &d;
    for (const OpenNode& o : processes.open) {
        for (const PciAddress& a : by_node[o.node]) {
            // The driver's daemon is named once per GPU, as a service-process, above.
            if (daemons.count(o.pid) && device_of[a]->driver == kNvidiaDriver) continue;
            const ProcessInfo& p = process(o.pid);
            Holder h;
            h.kind = HolderKind::process;
            h.address = a;
            h.pid = o.pid;
            h.command = p.command;
            h.node = o.node;
            h.unit = p.unit;
            h.user_unit = p.user_unit;
            h.detail = p.cmdline;
            scan.holders.push_back(std::move(h));
        }
    }

    std::optional<std::vector<IomemRange>> iomem;
    for (const PciDeviceInfo& d : devices) {
        find_consoles(root, d, nodes[d.address], scan.holders);
        if (!d.bars.empty()) {
            if (!iomem) {
                iomem = parse_iomem(read_attr(under(root, "proc/iomem")).value_or(""));
                // Without CAP_SYS_ADMIN the kernel prints every range as 00000000-00000000.
                scan.iomem_hidden = !iomem->empty() && std::all_of(iomem->begin(), iomem->end(), [](const IomemRange& r) {
                    return r.start == 0 && r.end == 0;
                });
            }
            find_firmware_framebuffers(root, *iomem, d, scan.holders);
        }
        if (d.driver == kNvidiaDriver) find_modules(root, d, scan.holders);
    }

    std::stable_sort(scan.holders.begin(), scan.holders.end(), [](const Holder& a, const Holder& b) {
        return std::tie(a.address, a.kind, a.pid, a.node) < std::tie(b.address, b.kind, b.pid, b.node);
    });
    return scan;
}

std::string describe_holder(const Holder& h) {
    switch (h.kind) {
        case HolderKind::process:
            return "process " + std::to_string(h.pid) + " " + util::quoted(h.command) + " with " +
                   util::quoted(h.node) + " open";
        case HolderKind::service_process:
            return util::quoted(h.command) + " (pid " + std::to_string(h.pid) + ")";
        case HolderKind::console: return "the framebuffer console " + util::quoted(h.node);
        case HolderKind::firmware_framebuffer: return "the firmware framebuffer " + util::quoted(h.command);
        case HolderKind::module: return "the kernel module " + util::quoted(h.command) + " (" + h.detail + ")";
    }
    return "?";
}

void to_json(nlohmann::json& j, const Holder& h) {
    j = {{"kind", holder_kind_name(h.kind)},
         {"address", h.address.str()},
         {"pid", h.pid ? nlohmann::json(h.pid) : nlohmann::json(nullptr)},
         {"command", h.command},
         {"node", h.node},
         {"unit", h.unit.empty() ? nlohmann::json(nullptr) : nlohmann::json(h.unit)},
         {"user_unit", h.user_unit},
         {"detail", h.detail}};
}

void to_json(nlohmann::json& j, const HolderScan& scan) {
    j = {{"scanned", scan.scanned},
         {"holders", scan.holders},
         {"processes", scan.processes},
         {"processes_readable", scan.readable},
         {"iomem_hidden", scan.iomem_hidden}};
}

}  // namespace kvmgpu::host
