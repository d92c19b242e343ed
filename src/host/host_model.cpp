#include "host/host_model.hpp"

#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <set>
#include <sstream>
#include <system_error>

#include "host/pci_ids.hpp"
#include "host/sysfs.hpp"
#include "util/fd.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;

std::vector<Bar> parse_resource(std::string_view text) {
    std::vector<Bar> bars;
    for (unsigned index = 0; !text.empty(); ++index) {
        const std::size_t newline = text.find('\n');
        const std::string_view line = text.substr(0, newline);
        text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
        std::string_view rest = line;
        auto start = parse_hex(util::next_word(rest));
        auto end = parse_hex(util::next_word(rest));
        auto flags = parse_hex(util::next_word(rest));
        // The kernel prints unassigned resources as all zeros.
        if (!start || !end || !flags || *start == 0 || *end < *start) continue;
        bars.push_back(Bar{index, *start, *end - *start + 1, *flags});
    }
    return bars;
}

std::uint64_t PciDeviceInfo::mem64_bytes() const {
    std::uint64_t sum = 0;
    for (const Bar& bar : bars)
        if (bar.index < 6 && bar.mem() && bar.mem64()) sum += bar.size;
    return sum;
}

std::string PciDeviceInfo::name() const {
    if (!vendor_name.empty() && !device_name.empty()) return vendor_name + " " + device_name;
    char ids[16];
    std::snprintf(ids, sizeof ids, "%04x:%04x", vendor, device);
    if (!vendor_name.empty()) return vendor_name + " device " + (ids + 5);
    return ids;
}

const PciDeviceInfo* HostModel::find(const util::PciAddress& address) const {
    auto it = std::lower_bound(devices.begin(), devices.end(), address,
                               [](const PciDeviceInfo& d, const util::PciAddress& a) {
                                   return d.address < a;
                               });
    return it != devices.end() && it->address == address ? &*it : nullptr;
}

const IommuGroup* HostModel::group(unsigned id) const {
    for (const IommuGroup& g : groups)
        if (g.id == id) return &g;
    return nullptr;
}

const HugepagePool* HostModel::hugepage_pool(std::uint64_t page_size) const {
    for (const HugepagePool& pool : hugepages)
        if (!pool.node && pool.page_size == page_size) return &pool;
    return nullptr;
}

bool HostModel::cpu_online(unsigned cpu) const {
    return std::binary_search(online_cpus.begin(), online_cpus.end(), cpu);
}

namespace {

std::optional<std::uint64_t> read_u64(const fs::path& file) {
    auto text = read_attr(file);
    if (!text || text->empty() || text->size() > 19) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : *text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return value;
}

// Directory entries, sorted; empty when the directory is missing.
std::vector<fs::directory_entry> list_dir(const fs::path& dir) {
    std::vector<fs::directory_entry> entries;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        entries.push_back(*it);
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.path() < b.path(); });
    return entries;
}

template <typename T>
T read_hex_or(int dir, const char* name, T fallback) {
    if (auto text = read_attr_at(dir, name))
        if (auto value = parse_hex(*text)) return static_cast<T>(*value);
    return fallback;
}

// A device's attributes, read relative to its directory: a missing directory leaves every fact
// empty, as missing files do.
PciDeviceInfo read_device(const fs::path& path, const util::PciAddress& address, PciIds* ids) {
    const util::Fd fd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    const int dir = fd ? fd.get() : -1;
    PciDeviceInfo d;
    d.address = address;
    d.vendor = read_hex_or<std::uint16_t>(dir, "vendor", 0);
    d.device = read_hex_or<std::uint16_t>(dir, "device", 0);
    d.subsystem_vendor = read_hex_or<std::uint16_t>(dir, "subsystem_vendor", 0);
    d.subsystem_device = read_hex_or<std::uint16_t>(dir, "subsystem_device", 0);
    d.class_code = read_hex_or<std::uint32_t>(dir, "class", 0);
    d.driver = link_basename_at(dir, "driver").value_or("");
    if (auto text = read_attr_at(dir, "driver_override"); text && *text != "(null)" && !text->empty())
        d.driver_override = *text;
    if (auto group = link_basename_at(dir, "iommu_group")) d.iommu_group = parse_dec(*group);
    d.boot_vga = read_attr_at(dir, "boot_vga").value_or("0") == "1";
    d.reset_method = read_attr_at(dir, "reset_method");
    if (auto text = read_attr_at(dir, "numa_node")) {
        try {
            d.numa_node = std::stoi(*text);
        } catch (const std::exception&) {
        }
    }
    if (auto text = read_attr_at(dir, "resource")) d.bars = parse_resource(*text);
    if (ids) {
        d.vendor_name = ids->vendor(d.vendor).value_or("");
        d.device_name = ids->device(d.vendor, d.device).value_or("");
    }
    return d;
}

IommuGroup read_group(const fs::path& dir, unsigned id) {
    IommuGroup group{id, {}};
    for (const auto& member : list_dir(dir / "devices"))
        if (auto a = util::PciAddress::parse(member.path().filename().string())) group.devices.push_back(*a);
    std::sort(group.devices.begin(), group.devices.end());
    return group;
}

void read_every_device_and_group(const fs::path& root, PciIds* names, HostModel& host) {
    for (const auto& entry : list_dir(under(root, "sys/bus/pci/devices"))) {
        auto address = util::PciAddress::parse(entry.path().filename().string());
        if (!address) continue;
        host.devices.push_back(read_device(entry.path(), *address, names));
    }
    for (const auto& entry : list_dir(under(root, "sys/kernel/iommu_groups")))
        if (auto id = parse_dec(entry.path().filename().string())) host.groups.push_back(read_group(entry.path(), *id));
}

// The devices asked for, and through their groups every device they share one with.
void read_devices_and_their_groups(const fs::path& root, const std::vector<util::PciAddress>& only, PciIds* names,
                                   HostModel& host) {
    const fs::path devices = under(root, "sys/bus/pci/devices");
    std::set<util::PciAddress> read;
    std::vector<util::PciAddress> pending(only.begin(), only.end());
    while (!pending.empty()) {
        const auto address = pending.back();
        pending.pop_back();
        if (!read.insert(address).second) continue;
        const fs::path dir = devices / address.str();
        std::error_code ec;
        if (!fs::exists(dir, ec)) continue;
        host.devices.push_back(read_device(dir, address, names));
        const auto group_id = host.devices.back().iommu_group;
        if (!group_id || host.group(*group_id)) continue;
        host.groups.push_back(read_group(under(root, "sys/kernel/iommu_groups") / std::to_string(*group_id), *group_id));
        for (const auto& member : host.groups.back().devices) pending.push_back(member);
    }
}

// "hugepages-2048kB" -> 2 MiB in bytes.
std::optional<std::uint64_t> pool_page_size(const std::string& name) {
    if (!name.starts_with("hugepages-") || !name.ends_with("kB")) return std::nullopt;
    auto kb = parse_dec(std::string_view(name).substr(10, name.size() - 12));
    if (!kb) return std::nullopt;
    return std::uint64_t{*kb} * 1024;
}

void read_pools(const fs::path& dir, std::optional<unsigned> node, std::vector<HugepagePool>& out) {
    for (const auto& entry : list_dir(dir)) {
        auto size = pool_page_size(entry.path().filename().string());
        if (!size) continue;
        HugepagePool pool;
        pool.page_size = *size;
        pool.node = node;
        pool.total = read_u64(entry.path() / "nr_hugepages").value_or(0);
        pool.free = read_u64(entry.path() / "free_hugepages").value_or(0);
        out.push_back(pool);
    }
}

}  // namespace

HostModel scan_host(const fs::path& root, const ScanOptions& options) {
    HostModel host;
    host.root = root;
    host.names = options.names;
    PciIds ids = PciIds::for_root(root);

    // Devices: sys/bus/pci/devices/ADDR are symlinks into sys/devices/pci*/...; the attributes
    // are read through the link.
    if (options.pci) {
        PciIds* names = options.names ? &ids : nullptr;
        if (options.only)
            read_devices_and_their_groups(root, *options.only, names, host);
        else
            read_every_device_and_group(root, names, host);
        std::sort(host.devices.begin(), host.devices.end(),
                  [](const auto& a, const auto& b) { return a.address < b.address; });
        std::sort(host.groups.begin(), host.groups.end(),
                  [](const auto& a, const auto& b) { return a.id < b.id; });
    }

    for (const auto& entry : list_dir(under(root, "sys/class/iommu")))
        host.iommu_units.push_back(entry.path().filename().string());
    host.kernel_cmdline = read_attr(under(root, "proc/cmdline")).value_or("");
    {
        std::istringstream words(host.kernel_cmdline);
        std::string word;
        while (words >> word) {
            if (word == "--") break;  // what follows is init's arguments
            if (word.starts_with("intel_iommu=") || word.starts_with("amd_iommu=") ||
                word.starts_with("iommu="))
                host.iommu_cmdline.push_back(word);
        }
    }

    const fs::path kvm = under(root, "dev/kvm");
    std::error_code ec;
    host.kvm_exists = fs::exists(kvm, ec);
    if (host.kvm_exists) {
        util::Fd fd(::open(kvm.c_str(), O_RDWR | O_CLOEXEC));
        host.kvm_usable = static_cast<bool>(fd);
        host.kvm_errno = fd ? 0 : errno;
    } else {
        host.kvm_errno = ENOENT;
    }

    host.vfio_pci_driver = fs::is_directory(under(root, "sys/bus/pci/drivers/vfio-pci"), ec);
    host.vfio_dir = fs::is_directory(under(root, "dev/vfio"), ec);

    if (options.hugepages) {
        read_pools(under(root, "sys/kernel/mm/hugepages"), std::nullopt, host.hugepages);
        for (const auto& entry : list_dir(under(root, "sys/devices/system/node"))) {
            const std::string name = entry.path().filename().string();
            if (!name.starts_with("node")) continue;
            if (auto node = parse_dec(std::string_view(name).substr(4)))
                read_pools(entry.path() / "hugepages", *node, host.hugepages);
        }
    }


    const fs::path cpu_dir = under(root, "sys/devices/system/cpu");
    host.online_cpus = parse_cpu_list(read_attr(cpu_dir / "online").value_or("")).value_or(
        std::vector<unsigned>{});
    for (unsigned cpu : host.online_cpus) {
        const fs::path file =
            cpu_dir / ("cpu" + std::to_string(cpu)) / "topology" / "thread_siblings_list";
        if (auto text = read_attr(file))
            if (auto siblings = parse_cpu_list(*text)) host.thread_siblings[cpu] = *siblings;
    }

    // proc/meminfo: "MemTotal:       32795164 kB".
    if (auto text = read_attr(under(root, "proc/meminfo"))) {
        std::istringstream lines(*text);
        std::string key, unit;
        std::uint64_t value = 0;
        while (lines >> key >> value) {
            std::getline(lines, unit);
            if (key == "MemTotal:") {
                host.mem_total = value * 1024;
                break;
            }
        }
    }
    host.vendor_reset_loaded = fs::is_directory(under(root, "sys/module/vendor_reset"), ec);

    // proc/fb: "0 EFI VGA" per registered framebuffer.
    if (auto text = read_attr(under(root, "proc/fb"))) {
        std::istringstream lines(*text);
        std::string line;
        while (std::getline(lines, line)) {
            const auto space = line.find(' ');
            if (space == std::string::npos) continue;
            auto index = parse_dec(std::string_view(line).substr(0, space));
            if (!index) continue;
            Framebuffer fb{*index, line.substr(space + 1), std::nullopt};
            // fbN/device links to the PCI function for drivers of real GPUs; efifb and
            // simplefb link to a platform device, which names no PCI function.
            const fs::path link = under(root, "sys/class/graphics") /
                                  ("fb" + std::to_string(*index)) / "device";
            if (auto name = link_basename(link)) fb.device = util::PciAddress::parse(*name);
            host.framebuffers.push_back(std::move(fb));
        }
    }
    return host;
}

void to_json(nlohmann::json& j, const Bar& bar) {
    j = {{"index", bar.index},   {"start", bar.start},       {"size", bar.size},
         {"flags", bar.flags},   {"io", bar.io()},           {"mem64", bar.mem64()},
         {"prefetch", bar.prefetch()}, {"rom", bar.rom()}};
}

namespace {
std::string hex(std::uint64_t value, int digits) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%0*llx", digits, static_cast<unsigned long long>(value));
    return buf;
}
}  // namespace

void to_json(nlohmann::json& j, const PciDeviceInfo& d) {
    j = {{"address", d.address.str()},
         {"vendor", hex(d.vendor, 4)},
         {"device", hex(d.device, 4)},
         {"subsystem_vendor", hex(d.subsystem_vendor, 4)},
         {"subsystem_device", hex(d.subsystem_device, 4)},
         {"class", hex(d.class_code, 6)},
         {"name", d.name()},
         {"driver", d.driver.empty() ? nlohmann::json(nullptr) : nlohmann::json(d.driver)},
         {"driver_override",
          d.driver_override ? nlohmann::json(*d.driver_override) : nlohmann::json(nullptr)},
         {"iommu_group", d.iommu_group ? nlohmann::json(*d.iommu_group) : nlohmann::json(nullptr)},
         {"boot_vga", d.boot_vga},
         {"reset_method",
          d.reset_method ? nlohmann::json(*d.reset_method) : nlohmann::json(nullptr)},
         {"numa_node", d.numa_node},
         {"bridge", d.is_bridge()},
         {"mem64_bytes", d.mem64_bytes()},
         {"bars", d.bars}};
}

void to_json(nlohmann::json& j, const IommuGroup& group) {
    std::vector<std::string> devices;
    for (const auto& a : group.devices) devices.push_back(a.str());
    j = {{"id", group.id}, {"devices", devices}};
}

void to_json(nlohmann::json& j, const HugepagePool& pool) {
    j = {{"page_size", pool.page_size},
         {"total", pool.total},
         {"free", pool.free},
         {"node", pool.node ? nlohmann::json(*pool.node) : nlohmann::json(nullptr)}};
}

void to_json(nlohmann::json& j, const Framebuffer& fb) {
    j = {{"index", fb.index},
         {"driver", fb.driver},
         {"device", fb.device ? nlohmann::json(fb.device->str()) : nlohmann::json(nullptr)}};
}

void to_json(nlohmann::json& j, const HostModel& host) {
    nlohmann::json siblings = nlohmann::json::object();
    for (const auto& [cpu, list] : host.thread_siblings)
        siblings[std::to_string(cpu)] = list;
    j = {{"root", host.root.string()},
         {"devices", host.devices},
         {"iommu_groups", host.groups},
         {"iommu", {{"present", host.iommu_present()},
                    {"units", host.iommu_units},
                    {"cmdline", host.iommu_cmdline}}},
         {"kvm", {{"exists", host.kvm_exists},
                  {"usable", host.kvm_usable},
                  {"error", host.kvm_usable ? nlohmann::json(nullptr)
                                            : nlohmann::json(errno_text(host.kvm_errno))}}},
         {"vfio_pci_driver", host.vfio_pci_driver},
         {"hugepages", host.hugepages},
         {"online_cpus", host.online_cpus},
         {"thread_siblings", siblings},
         {"framebuffers", host.framebuffers},
         {"holders", host.holders},

         {"mem_total", host.mem_total},
         {"vendor_reset_loaded", host.vendor_reset_loaded}};
}

}  // namespace kvmgpu::host
