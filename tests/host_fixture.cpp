#include "host_fixture.hpp"

#include <stdlib.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "host/host_model.hpp"
#include "host/sysfs.hpp"
#include "util/proc.hpp"

namespace kvmgpu::test {

namespace fs = std::filesystem;

BarSpec mem64_bar(unsigned index, std::uint64_t start, std::uint64_t size) {
    return {index, start, size,
            host::kResourceMem | host::kResourcePrefetch | host::kResourceMem64 | 0x40000 | 0xc};
}
BarSpec mem32_bar(unsigned index, std::uint64_t start, std::uint64_t size) {
    return {index, start, size, host::kResourceMem | 0x40000};
}
BarSpec io_bar(unsigned index, std::uint64_t start, std::uint64_t size) {
    return {index, start, size, host::kResourceIo | 0x40000 | 0x1};
}

namespace {

void put(const fs::path& file, const std::string& content) {
    fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) throw std::runtime_error("fixture: cannot write " + file.string());
}

std::string get(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A relative symlink at `link` pointing at `target`, as sysfs makes them.
void symlink_to(const fs::path& link, const fs::path& target) {
    fs::create_directories(link.parent_path());
    std::error_code ec;
    fs::remove(link, ec);
    fs::create_symlink(target.lexically_relative(link.parent_path()), link);
}

std::string hex(std::uint64_t v, int digits) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%0*llx", digits, static_cast<unsigned long long>(v));
    return buf;
}

std::string trim_newline(std::string_view s) {
    if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
    return std::string(s);
}

}  // namespace

HostFixture::HostFixture() {
    std::string pattern = (fs::temp_directory_path() / "kvmgpu-host-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("fixture: mkdtemp failed");
    // Canonical, so that lexically_relative links agree with what the kernel would show.
    root_ = fs::canonical(pattern);

    fs::create_directories(root_ / "sys/devices/pci0000:00");
    fs::create_directories(root_ / "sys/bus/pci/devices");
    put(root_ / "sys/bus/pci/drivers_probe", "");
    put(root_ / "sys/bus/pci/rescan", "");
    fs::create_directories(root_ / "sys/kernel/iommu_groups");
    for (const char* d : {"vfio-pci", "pci-stub", "pcieport"}) add_driver(d);
    set_iommu(true);
    set_cmdline("BOOT_IMAGE=/vmlinuz-6.1.0-13-amd64 root=/dev/sda1 ro quiet intel_iommu=on");
    put(root_ / "dev/kvm", "");
    put(root_ / "dev/vfio/vfio", "");
    set_cpus("0-7", {{0, "0,4"}, {1, "1,5"}, {2, "2,6"}, {3, "3,7"},
                     {4, "0,4"}, {5, "1,5"}, {6, "2,6"}, {7, "3,7"}});
    set_hugepages(2048, 0, 0);
    set_hugepages(1048576, 0, 0);
    put(root_ / "sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages", "0\n");
    put(root_ / "sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages", "0\n");
    for (const char* f : {"OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", "OVMF_CODE_4M.secboot.fd",
                          "OVMF_VARS_4M.ms.fd"})
        put(root_ / "usr/share/OVMF" / f, "firmware");
    fs::create_directories(runtime());
}

HostFixture::~HostFixture() {
    std::error_code ec;
    fs::remove_all(root_, ec);
}

void HostFixture::add_driver(const std::string& name) {
    const fs::path dir = root_ / "sys/bus/pci/drivers" / name;
    for (const char* f : {"bind", "unbind", "new_id", "remove_id", "uevent"}) put(dir / f, "");
}

void HostFixture::remove_driver(const std::string& name) {
    fs::remove_all(root_ / "sys/bus/pci/drivers" / name);
}

void HostFixture::set_iommu(bool on) {
    if (on) {
        fs::create_directories(root_ / "sys/class/iommu/dmar0");
        return;
    }
    fs::remove_all(root_ / "sys/class/iommu");
    fs::create_directories(root_ / "sys/class/iommu");
    fs::remove_all(root_ / "sys/kernel/iommu_groups");
    fs::create_directories(root_ / "sys/kernel/iommu_groups");
    for (const auto& [address, dir] : dirs_) {
        std::error_code ec;
        fs::remove(dir / "iommu_group", ec);
        specs_[address].group.reset();
    }
}

void HostFixture::set_cmdline(const std::string& cmdline) { put(root_ / "proc/cmdline", cmdline + "\n"); }

void HostFixture::set_hugepages(std::uint64_t page_kb, std::uint64_t total, std::uint64_t free) {
    const fs::path dir = root_ / "sys/kernel/mm/hugepages" / ("hugepages-" + std::to_string(page_kb) + "kB");
    put(dir / "nr_hugepages", std::to_string(total) + "\n");
    put(dir / "free_hugepages", std::to_string(free) + "\n");
}

void HostFixture::add_cgroups(const std::vector<std::string>& names) {
    const fs::path top = "sys/fs/cgroup";
    write(top / "cgroup.controllers", "cpuset cpu io memory pids\n");
    write(top / "cgroup.subtree_control", "cpuset cpu memory\n");
    write(top / "cgroup.procs", "1\n");
    const std::string online = get(root_ / "sys/devices/system/cpu/online");
    for (const auto& name : names) {
        write(top / name / "cpuset.cpus", "\n");
        write(top / name / "cpuset.cpus.effective", online);
        write(top / name / "cgroup.procs", "");
    }
}

void HostFixture::add_irq(unsigned irq, const std::string& cpus, const std::string& handler, const std::string& address,
                          bool msi) {
    const fs::path dir = fs::path("proc/irq") / std::to_string(irq);
    write(dir / "smp_affinity_list", cpus + "\n");
    fs::create_directories(root_ / dir / handler);
    const fs::path device = device_dir(address).lexically_relative(root_);
    if (msi) write(device / "msi_irqs" / std::to_string(irq), "msix\n");
    else write(device / "irq", std::to_string(irq) + "\n");
}

void HostFixture::set_cpus(const std::string& online, const std::map<unsigned, std::string>& siblings) {
    const fs::path dir = root_ / "sys/devices/system/cpu";
    fs::remove_all(dir);
    put(dir / "online", online + "\n");
    for (const auto& [cpu, list] : siblings)
        put(dir / ("cpu" + std::to_string(cpu)) / "topology/thread_siblings_list", list + "\n");
}

void HostFixture::add_framebuffer(unsigned index, const std::string& name,
                                  const std::optional<std::string>& pci_address) {
    std::string fb = get(root_ / "proc/fb");
    fb += std::to_string(index) + " " + name + "\n";
    put(root_ / "proc/fb", fb);
    const fs::path link = root_ / "sys/class/graphics" / ("fb" + std::to_string(index)) / "device";
    if (pci_address) {
        symlink_to(link, device_dir(*pci_address));
    } else {
        const fs::path platform = root_ / "sys/devices/platform/efi-framebuffer.0";
        fs::create_directories(platform);
        symlink_to(link, platform);
    }
}

void HostFixture::add_vtconsole(unsigned index, const std::string& name, bool bound) {
    const fs::path dir = root_ / "sys/class/vtconsole" / ("vtcon" + std::to_string(index));
    put(dir / "name", name + "\n");
    put(dir / "bind", bound ? "1\n" : "0\n");
}

void HostFixture::add_platform_device(const std::string& driver, const std::string& device) {
    const fs::path dir = root_ / "sys/bus/platform/drivers" / driver;
    put(dir / "bind", "");
    put(dir / "unbind", "");
    const fs::path target = root_ / "sys/devices/platform" / device;
    fs::create_directories(target);
    symlink_to(dir / device, target);
}

void HostFixture::add_module(const std::string& name, unsigned refcnt, const std::vector<std::string>& holders,
                             const std::vector<std::string>& pci_drivers) {
    const fs::path dir = root_ / "sys/module" / name;
    put(dir / "refcnt", std::to_string(refcnt) + "\n");
    fs::create_directories(dir / "holders");
    for (const auto& h : holders) symlink_to(dir / "holders" / h, root_ / "sys/module" / h);
    fs::create_directories(dir / "drivers");
    for (const auto& d : pci_drivers) symlink_to(dir / "drivers" / ("pci:" + d), root_ / "sys/bus/pci/drivers" / d);
}

void HostFixture::add_device_node(const std::string& address, const std::string& class_node, const std::string& dev_node) {
    fs::create_directories(device_dir(address) / class_node);
    if (!dev_node.empty()) put(root_ / dev_node.substr(1), "");
}

void HostFixture::write(const fs::path& rel, const std::string& content) { put(root_ / rel, content); }

void HostFixture::remove(const fs::path& rel) { fs::remove_all(root_ / rel); }

void HostFixture::add_device(const DeviceSpec& in) {
    DeviceSpec spec = in;
    if (spec.native_driver.empty()) spec.native_driver = spec.driver;
    const fs::path parent = spec.parent.empty() ? root_ / "sys/devices/pci0000:00" : device_dir(spec.parent);
    const fs::path dir = parent / spec.address;
    specs_[spec.address] = spec;
    dirs_[spec.address] = dir;

    put(dir / "vendor", hex(spec.vendor, 4) + "\n");
    put(dir / "device", hex(spec.device, 4) + "\n");
    put(dir / "subsystem_vendor", hex(spec.vendor, 4) + "\n");
    put(dir / "subsystem_device", hex(0x1234, 4) + "\n");
    put(dir / "class", hex(spec.class_code, 6) + "\n");
    put(dir / "driver_override", (spec.driver_override.empty() ? "(null)" : spec.driver_override) + "\n");
    put(dir / "numa_node", "-1\n");
    if ((spec.class_code >> 16) == 0x03) put(dir / "boot_vga", spec.boot_vga ? "1\n" : "0\n");
    if (spec.reset_method) put(dir / "reset_method", *spec.reset_method + "\n");
    // 6 BARs, the ROM, and (for endpoints) the unused bridge-window lines, all zero unless set.
    std::vector<std::string> lines(13, "0x0000000000000000 0x0000000000000000 0x0000000000000000");
    for (const BarSpec& bar : spec.bars)
        lines.at(bar.index) = hex(bar.start, 16) + " " + hex(bar.start + bar.size - 1, 16) + " " +
                              hex(bar.flags, 16);
    std::string resource;
    for (const auto& l : lines) resource += l + "\n";
    put(dir / "resource", resource);
    put(dir / "remove", "");

    symlink_to(root_ / "sys/bus/pci/devices" / spec.address, dir);
    if (spec.group) {
        const fs::path group = root_ / "sys/kernel/iommu_groups" / std::to_string(*spec.group);
        symlink_to(group / "devices" / spec.address, dir);
        symlink_to(dir / "iommu_group", group);
        put(group / "type", "DMA\n");
    }
    if (!spec.driver.empty()) link_driver(spec.address, spec.driver);
}

const DeviceSpec& HostFixture::spec(const std::string& address) const { return specs_.at(address); }

fs::path HostFixture::device_dir(const std::string& address) const { return dirs_.at(address); }

std::string HostFixture::driver_of(const std::string& address) const {
    return host::link_basename(device_dir(address) / "driver").value_or("");
}

std::string HostFixture::override_of(const std::string& address) const {
    return trim_newline(get(device_dir(address) / "driver_override"));
}

void HostFixture::link_driver(const std::string& address, const std::string& driver) {
    const fs::path dir = device_dir(address);
    const fs::path drv = root_ / "sys/bus/pci/drivers" / driver;
    symlink_to(dir / "driver", drv);
    symlink_to(drv / address, dir);
    const auto& s = specs_.at(address);
    if (driver == "vfio-pci" && s.group && create_vfio_nodes)
        put(root_ / "dev/vfio" / std::to_string(*s.group), "");
}

void HostFixture::unlink_driver(const std::string& address) {
    const fs::path dir = device_dir(address);
    const std::string driver = driver_of(address);
    if (driver.empty()) return;
    fs::remove(dir / "driver");
    fs::remove(root_ / "sys/bus/pci/drivers" / driver / address);
    const auto& s = specs_.at(address);
    if (driver == "vfio-pci" && s.group) {
        bool last = true;
        for (const auto& [other, spec] : specs_)
            if (other != address && spec.group == s.group && driver_of(other) == "vfio-pci") last = false;
        if (last) fs::remove(root_ / "dev/vfio" / std::to_string(*s.group));
    }
}

std::map<std::string, std::string> HostFixture::snapshot() const {
    std::map<std::string, std::string> out;
    for (auto it = fs::recursive_directory_iterator(root_); it != fs::recursive_directory_iterator(); ++it) {
        const fs::path rel = it->path().lexically_relative(root_);
        if (*rel.begin() == "run") {
            if (it->is_directory() && !it->is_symlink()) it.disable_recursion_pending();
            continue;
        }
        // Owner and mode too: a file given to QEMU's user must come back to its owner.
        struct stat st {};
        ::lstat(it->path().c_str(), &st);
        char owner[64];
        std::snprintf(owner, sizeof owner, " [%u:%u %04o]", st.st_uid, st.st_gid, st.st_mode & 07777);
        if (it->is_symlink()) out[rel.string()] = "link -> " + fs::read_symlink(it->path()).string();
        else if (it->is_directory()) out[rel.string()] = std::string("dir") + owner;
        else out[rel.string()] = "file" + std::string(owner) + ": " + get(it->path());
    }
    return out;
}

std::string snapshot_diff(const std::map<std::string, std::string>& before,
                          const std::map<std::string, std::string>& after) {
    std::string diff;
    for (const auto& [path, what] : before) {
        auto it = after.find(path);
        if (it == after.end()) diff += "- " + path + " (" + what + ")\n";
        else if (it->second != what) diff += "~ " + path + ": " + what + " => " + it->second + "\n";
    }
    for (const auto& [path, what] : after)
        if (!before.count(path)) diff += "+ " + path + " (" + what + ")\n";
    return diff;
}

bool SimulatedKernel::matches(const std::string& address, const std::string& driver) const {
    const std::string override = fx_.override_of(address);
    if (override != "(null)") return override == driver;
    return fx_.spec(address).native_driver == driver;
}

namespace {

// Whether `text` is a CPU list of CPUs the fixture has online (empty allowed).
bool online_cpu_list(const fs::path& root, const std::string& text) {
    const auto cpus = host::parse_cpu_list(text);
    const auto online = host::parse_cpu_list(host::read_attr(root / "sys/devices/system/cpu/online").value_or(""));
    if (!cpus || !online) return false;
    return std::all_of(cpus->begin(), cpus->end(),
                       [&](unsigned c) { return std::binary_search(online->begin(), online->end(), c); });
}

}  // namespace

int SimulatedKernel::write_cgroup(const fs::path& rel, const std::string& value) {
    const fs::path file = fx_.root() / rel;
    if (!fs::is_directory(file.parent_path())) return ENOENT;
    const std::string name = rel.filename().string();
    if (name == "cgroup.procs") {
        if (!host::parse_dec(value)) return EINVAL;
        fx_.write(rel, get(file) + value + "\n");
        return 0;
    }
    if (name != "cpuset.cpus") return EACCES;
    if (!online_cpu_list(fx_.root(), value)) return EINVAL;
    // Linux 6.1 refuses to empty the CPUs of a cgroup that has tasks.
    if (value.empty() && !trim_newline(get(file)).empty()) {
        std::istringstream procs(get(file.parent_path() / "cgroup.procs"));
        for (pid_t pid; procs >> pid;)
            if (util::process_alive(pid)) return ENOSPC;  // zombies do not count, as in Linux
    }
    fx_.write(rel, value + "\n");
    const std::string effective = value.empty() ? get(fx_.root() / "sys/devices/system/cpu/online") : value + "\n";
    fx_.write(rel.parent_path() / "cpuset.cpus.effective", effective);
    return 0;
}

namespace {
bool is_cgroup(const fs::path& rel) {
    auto it = rel.begin();
    return it != rel.end() && *it == "sys" && ++it != rel.end() && *it == "fs" && ++it != rel.end() && *it == "cgroup";
}
}  // namespace

int SimulatedKernel::make_dir(const fs::path& dir) {
    const fs::path rel = dir.lexically_relative(fx_.root());
    log.push_back("mkdir " + rel.string());
    if (!is_cgroup(rel)) return SysfsWriter::make_dir(dir);
    if (fs::exists(dir)) return EEXIST;
    if (!fs::is_directory(dir.parent_path())) return ENOENT;
    fx_.write(rel / "cgroup.procs", "");
    fx_.write(rel / "cpuset.cpus", "\n");
    fx_.write(rel / "cpuset.cpus.effective", get(fx_.root() / "sys/devices/system/cpu/online"));
    return 0;
}

int SimulatedKernel::remove_dir(const fs::path& dir) {
    const fs::path rel = dir.lexically_relative(fx_.root());
    log.push_back("rmdir " + rel.string());
    if (!is_cgroup(rel)) return SysfsWriter::remove_dir(dir);
    if (!fs::exists(dir)) return ENOENT;
    std::istringstream procs(get(dir / "cgroup.procs"));
    for (pid_t pid; procs >> pid;)
        if (util::process_alive(pid)) return EBUSY;  // zombies do not count, as in Linux
    fs::remove_all(dir);
    return 0;
}

int SimulatedKernel::write_irq_affinity(const fs::path& rel, const std::string& value) {
    if (!fs::exists(fx_.root() / rel)) return ENOENT;
    if (value.empty() || !online_cpu_list(fx_.root(), value)) return EINVAL;
    fx_.write(rel, value + "\n");
    return 0;
}

int SimulatedKernel::probe(const std::string& address, const std::string& driver) {
    if (!fs::is_directory(fx_.root() / "sys/bus/pci/drivers" / driver)) return ENODEV;
    if (refuse_probe.count(driver)) return EINVAL;
    fx_.link_driver(address, driver);
    return 0;
}

int SimulatedKernel::write(const fs::path& file, std::string_view data) {
    ++count_;
    std::string shown;
    for (char c : data) shown += c == '\n' ? std::string("\\n") : std::string(1, c);
    const fs::path rel = file.lexically_relative(fx_.root());
    log.push_back(rel.string() + " <- " + shown);
    if (count_ >= fail_at_ && count_ < fail_at_ + fail_count_) return fail_errno_;
    return apply(rel, data);
}

void SimulatedKernel::drop_iomem_line(const std::string& name) {
    const std::string before = get(fx_.root() / "proc/iomem");
    std::istringstream in(before);
    std::string line, kept;
    while (std::getline(in, line))
        if (!line.ends_with(" : " + name)) kept += line + "\n";
    if (kept == before) return;
    // Kept in run/ (out of snapshots), so that another process's kernel object (a restore after
    // a launcher was killed) puts it back too.
    put(fx_.root() / "run" / (".iomem-before-" + name), before);
    put(fx_.root() / "proc/iomem", kept);
}

void SimulatedKernel::restore_iomem_line(const std::string& name) {
    const fs::path saved = fx_.root() / "run" / (".iomem-before-" + name);
    if (!fs::exists(saved)) return;
    put(fx_.root() / "proc/iomem", get(saved));
    fs::remove(saved);
}

int SimulatedKernel::apply(const fs::path& rel, std::string_view data) {
    std::vector<std::string> parts;
    for (const auto& p : rel) parts.push_back(p.string());
    if (parts.empty() || parts[0] == "..") return EACCES;  // outside the fixture root
    const std::string value = trim_newline(data);
    auto device_exists = [&](const std::string& a) {
        return fs::exists(fx_.root() / "sys/bus/pci/devices" / a);
    };
    if (parts.back() == "nr_hugepages" && parts[0] == "sys") return resize_hugepage_pool(rel, value);
    if (parts.size() >= 4 && parts[0] == "sys" && parts[1] == "fs" && parts[2] == "cgroup") return write_cgroup(rel, value);
    if (parts.size() == 4 && parts[0] == "proc" && parts[1] == "irq" && parts[3] == "smp_affinity_list")
        return write_irq_affinity(rel, value);
    if (parts.size() == 5 && parts[0] == "sys" && parts[1] == "class" && parts[2] == "vtconsole" && parts[4] == "bind") {
        if (!fs::exists(fx_.root() / rel)) return ENOENT;
        if (value != "0" && value != "1") return EINVAL;
        fx_.write(rel, value + "\n");
        return 0;
    }
    if (parts.size() == 6 && parts[0] == "sys" && parts[1] == "bus" && parts[2] == "platform" && parts[3] == "drivers") {
        const fs::path driver = fx_.root() / "sys/bus/platform/drivers" / parts[4];
        if (!fs::is_directory(driver)) return ENOENT;
        const bool bound = fs::is_symlink(driver / value);
        if (parts[5] == "unbind") {
            if (!bound) return ENODEV;
            fs::remove(driver / value);
            // The driver's memory request goes with it (efifb's line in /proc/iomem).
            if (parts[4] == "efi-framebuffer") drop_iomem_line("efifb");
            return 0;
        }
        if (parts[5] == "bind") {
            if (bound) return EBUSY;
            if (!fs::exists(fx_.root() / "sys/devices/platform" / value)) return ENODEV;
            symlink_to(driver / value, fx_.root() / "sys/devices/platform" / value);
            if (parts[4] == "efi-framebuffer") restore_iomem_line("efifb");
            return 0;
        }
        return EACCES;
    }
    // sys/bus/pci/...
    if (parts.size() < 3 || parts[0] != "sys" || parts[1] != "bus" || parts[2] != "pci") return EACCES;

    if (parts.size() == 4 && parts[3] == "drivers_probe") {
        if (!device_exists(value)) return ENODEV;
        if (!fx_.driver_of(value).empty()) return 0;
        const std::string override = fx_.override_of(value);
        const std::string driver = override != "(null)" ? override : fx_.spec(value).native_driver;
        if (!driver.empty()) probe(value, driver);  // a failing probe leaves it unbound: still success
        return 0;
    }
    if (parts.size() >= 6 && parts[3] == "devices") {
        const std::string& address = parts[4];
        if (!device_exists(address)) return ENOENT;
        if (parts.size() == 6 && parts[5] == "driver_override") {
            fx_.write(fx_.device_dir(address).lexically_relative(fx_.root()) / "driver_override",
                      (value.empty() ? "(null)" : value) + "\n");
            return 0;
        }
        if (parts.size() == 7 && parts[5] == "driver" && parts[6] == "unbind") {
            const std::string driver = fx_.driver_of(address);
            if (driver.empty()) return ENOENT;  // no `driver` link: the path does not exist
            if (!device_exists(value) || fx_.driver_of(value) != driver) return ENODEV;
            fx_.unlink_driver(value);
            return 0;
        }
        return EACCES;
    }
    if (parts.size() == 6 && parts[3] == "drivers") {
        const std::string& driver = parts[4];
        if (!fs::is_directory(fx_.root() / "sys/bus/pci/drivers" / driver)) return ENOENT;
        if (parts[5] == "unbind") {
            if (!device_exists(value) || fx_.driver_of(value) != driver) return ENODEV;
            fx_.unlink_driver(value);
            return 0;
        }
        if (parts[5] == "bind") {
            if (!device_exists(value) || !matches(value, driver)) return ENODEV;
            if (!fx_.driver_of(value).empty()) return EBUSY;
            return probe(value, driver);
        }
    }
    return EACCES;
}

// nr_hugepages: the pool grows by what the kernel can find (up to hugepage_limit) or shrinks,
// and free_hugepages follows.
int SimulatedKernel::resize_hugepage_pool(const fs::path& rel, const std::string& value) {
    const fs::path nr = fx_.root() / rel;
    const fs::path free = nr.parent_path() / "free_hugepages";
    if (!fs::exists(nr)) return ENOENT;
    if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos) return EINVAL;
    const std::uint64_t before = std::stoull(trim_newline(get(nr)));
    const std::uint64_t free_before = std::stoull(trim_newline(get(free)));
    const std::uint64_t used = before - std::min(before, free_before);
    const std::uint64_t after = std::max(used, std::min<std::uint64_t>(std::stoull(value), hugepage_limit));
    fx_.write(rel, std::to_string(after) + "\n");
    fx_.write(rel.parent_path() / "free_hugepages", std::to_string(after - used) + "\n");
    return 0;
}

profile::Profile make_profile(const std::vector<std::string>& addresses) {
    profile::Profile p;
    p.file = "/etc/kvmgpu/test.toml";
    p.name = "test";
    p.machine.memory = std::uint64_t{8} << 30;
    for (const auto& a : addresses) {
        profile::PciDevice d;
        d.address = *util::PciAddress::parse(a);
        p.pci.push_back(d);
    }
    return p;
}

void add_gpu_with_audio(HostFixture& fx, unsigned group) {
    DeviceSpec port;
    port.address = "0000:00:01.0";
    port.device = 0x1901;
    port.class_code = 0x060400;
    port.driver = "pcieport";
    port.group = group;
    port.reset_method.reset();
    fx.add_device(port);

    DeviceSpec gpu;
    gpu.address = "0000:01:00.0";
    gpu.vendor = 0x10de;
    gpu.device = 0x2484;
    gpu.class_code = 0x030000;
    gpu.driver = "nouveau";
    gpu.group = group;
    gpu.parent = "0000:00:01.0";
    gpu.bars = {mem32_bar(0, 0xf6000000, 16 << 20), mem64_bar(1, 0xe0000000, 256 << 20),
                mem64_bar(3, 0xf0000000, 32 << 20), io_bar(5, 0xe000, 128)};
    fx.add_driver("nouveau");
    fx.add_device(gpu);

    DeviceSpec audio;
    audio.address = "0000:01:00.1";
    audio.vendor = 0x10de;
    audio.device = 0x228b;
    audio.class_code = 0x040300;
    audio.driver = "snd_hda_intel";
    audio.group = group;
    audio.parent = "0000:00:01.0";
    audio.bars = {mem32_bar(0, 0xf7080000, 16 << 10)};
    fx.add_driver("snd_hda_intel");
    fx.add_device(audio);
}

}  // namespace kvmgpu::test
