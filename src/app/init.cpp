#include "app/init.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <set>
#include <sstream>

#include "profile/loader.hpp"
#include "profile/validate.hpp"
#include "util/fd.hpp"
#include "util/pci_id.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {
namespace {

namespace fs = std::filesystem;
using host::PciDeviceInfo;

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
constexpr std::uint16_t kNvidia = 0x10de;

// The rule of the profile's name (profile/validate.cpp): it becomes a directory name.
bool usable_name(const std::string& name) {
    if (name.empty() || name.size() > 64 || !std::isalnum(static_cast<unsigned char>(name.front())))
        return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    });
}

std::string cpu_list(const std::vector<unsigned>& cpus) {
    std::string out;
    for (std::size_t i = 0; i < cpus.size(); ++i) out += (i ? ", " : "") + std::to_string(cpus[i]);
    return "[" + out + "]";
}

std::string class_name(std::uint32_t class_code) {
    switch (class_code >> 8) {
        case 0x0300: return "VGA compatible controller";
        case 0x0302: return "3D controller";
        case 0x0380: return "Display controller";
        case 0x0403: return "Audio device";
        case 0x0c03: return "USB controller";
        case 0x0c80: return "Serial bus controller";
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "class %04x", class_code >> 8);
    return buf;
}

// A key = value line's text padded so that the comments after it line up.
std::string pad(std::string text) {
    text.resize(std::max<std::size_t>(text.size() + 1, 30), ' ');
    return text;
}

std::string id_of(const PciDeviceInfo& d) { return util::PciId{d.vendor, d.device}.str(); }
std::string subsystem_of(const PciDeviceInfo& d) {
    return util::PciId{d.subsystem_vendor, d.subsystem_device}.str();
}

// Writes `text` to `file`: a new file only, unless `force`; then through a temporary file
// renamed into place, so that a reader never sees half a profile.
// A missing directory of `file` is made first (`kvmgpu init --output /etc/kvmgpu/NAME.toml` on a
// host without /etc/kvmgpu yet: where `kvmgpu run NAME` looks).
void write_profile(const fs::path& file, const std::string& text, bool force) {
    if (const auto dir = file.parent_path(); !dir.empty()) {
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec) throw util::RuntimeFailure("cannot make the directory " + util::quoted(dir.string()) + ": " + ec.message());
    }
    const fs::path target = force ? fs::path(file.string() + ".kvmgpu-tmp") : file;
    util::Fd fd(::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), 0644));
    if (!fd) {
        if (errno == EEXIST)
            throw util::BadInput(util::quoted(file.string()) +
                                     " exists; choose another --output or add --force to replace it",
                                 "exists");
        throw util::RuntimeFailure("cannot write " + util::quoted(target.string()) + ": " +
                                   std::strerror(errno));
    }
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw util::RuntimeFailure("cannot write " + util::quoted(target.string()) + ": " + std::strerror(errno));
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0)
        throw util::RuntimeFailure("cannot write " + util::quoted(target.string()) + ": " + std::strerror(errno));
    if (force && ::rename(target.c_str(), file.c_str()) != 0) {
        const int e = errno;
        ::unlink(target.c_str());
        throw util::RuntimeFailure("cannot replace " + util::quoted(file.string()) + ": " + std::strerror(e));
    }
}

}  // namespace

std::vector<GpuChoice> find_gpus(const host::HostModel& host) {
    std::vector<GpuChoice> out;
    for (const PciDeviceInfo& d : host.devices) {
        if (!d.is_display()) continue;
        if (std::any_of(out.begin(), out.end(), [&](const GpuChoice& g) { return g.gpu.address.same_slot(d.address); }))
            continue;
        GpuChoice g;
        g.gpu = d;
        for (const PciDeviceInfo& f : host.devices)
            if (f.address.same_slot(d.address) && !f.is_bridge()) g.functions.push_back(f);
        if (d.iommu_group)
            if (const host::IommuGroup* group = host.group(*d.iommu_group))
                for (const util::PciAddress& m : group->devices) {
                    const PciDeviceInfo* member = host.find(m);
                    if (!m.same_slot(d.address) && !(member && member->is_bridge())) g.group_others.push_back(m);
                }
        out.push_back(std::move(g));
    }
    return out;
}

HostSizing size_for(const host::HostModel& host) {
    HostSizing s;
    s.host_cpus = static_cast<unsigned>(host.online_cpus.size());
    s.host_memory = host.mem_total;
    // Half of MemTotal: whole GiB from 2 GiB up, else whole 256 MiB (at least 256 MiB).
    if (host.mem_total) {
        const std::uint64_t half = host.mem_total / 2;
        const std::uint64_t unit = half >= 2 * kGiB ? kGiB : 256 * kMiB;
        s.memory = util::format_size(std::max(half / unit * unit, 256 * kMiB));
    }
    if (host.online_cpus.empty()) return s;

    // The host's cores: each online CPU's set of SMT siblings, once.
    std::vector<std::vector<unsigned>> cores;
    std::set<unsigned> seen;
    for (unsigned cpu : host.online_cpus) {
        if (seen.count(cpu)) continue;
        std::vector<unsigned> siblings{cpu};
        if (auto it = host.thread_siblings.find(cpu); it != host.thread_siblings.end()) {
            siblings.clear();
            for (unsigned sib : it->second)
                if (host.cpu_online(sib)) siblings.push_back(sib);
            if (siblings.empty()) siblings = {cpu};
        }
        for (unsigned sib : siblings) seen.insert(sib);
        cores.push_back(std::move(siblings));
    }
    std::size_t smt = cores.front().size();
    for (const auto& c : cores) smt = std::min(smt, c.size());
    // Two threads a core is what guests schedule well; more (POWER-like SMT) is given as cores.
    s.threads = smt == 2 ? 2 : 1;
    const std::size_t host_cores = cores.size();
    s.cores = static_cast<unsigned>(std::max<std::size_t>(1, host_cores / 2));
    if (host_cores < 2) {
        s.threads = 1;
        s.cores = 1;
        return s;
    }
    // The VM takes the last cores, the host keeps the first (where its interrupts and
    // housekeeping usually run) and QEMU's other threads run on core 0's CPUs.
    for (std::size_t c = host_cores - s.cores; c < host_cores; ++c)
        for (unsigned t = 0; t < s.threads; ++t) s.pin.push_back(cores[c][t]);
    s.emulator_pin = cores.front();
    return s;
}

std::string starter_profile(const host::HostModel& host, const GpuChoice& choice, const std::string& name) {
    const PciDeviceInfo& gpu = choice.gpu;
    const HostSizing size = size_for(host);
    const bool nvidia = gpu.vendor == kNvidia;
    std::ostringstream o;
    o << "# " << name << ".toml — a starter profile for " << gpu.name() << " at " << gpu.address.str()
      << ",\n# written by `kvmgpu init`. Every key is explained in docs/profile.md.\n"
         "#\n"
         "# Next steps:\n"
         "#   1. Add a disk (the [[disk]] example below) and an installer ISO.\n"
         "#   2. `kvmgpu check " << name << ".toml` says what the host still needs (IOMMU, vfio-pci,\n"
         "#      devices sharing the card's IOMMU group, a display or console still using the card).\n"
         "#   3. `kvmgpu run " << name << ".toml`.\n\n"
      << "name = \"" << name << "\"\n\n";

    o << "[machine]\n"
         "type = \"q35\"                  # PCIe chipset: passed-through cards sit on PCIe root ports\n"
         "accel = \"kvm\"\n";
    o << pad("memory = \"" + size.memory + "\"");
    if (size.host_memory) {
        char total[32];
        std::snprintf(total, sizeof total, "%.1f GiB", static_cast<double>(size.host_memory) / kGiB);
        o << "# half of this host's " << total << " (MemTotal)\n";
    } else {
        o << "# /proc/meminfo could not be read; size it to your host\n";
    }
    o << "hugepages = \"none\"            # \"1G\" or \"2M\" pages are faster; reserve them first (see docs/profile.md)\n"
         "# rtc = \"localtime\"           # for Windows guests, which keep the hardware clock in local time\n\n";

    o << "[cpu]\n"
         "model = \"host\"                # the host's CPU model with all its features\n";
    o << pad("cores = " + std::to_string(size.cores)) << "# ";
    if (size.host_cpus)
        o << "this host has " << size.host_cpus << " online CPUs; the VM gets about half, the host keeps the rest\n";
    else
        o << "the host's CPUs could not be read; adjust\n";
    o << pad("threads = " + std::to_string(size.threads)) << "# "
      << (size.threads == 2 ? "2 SMT threads a core, as the host has them\n" : "no SMT threads\n");
    if (!size.pin.empty()) {
        o << "# One host CPU per vCPU, pairs of SMT siblings together; the host keeps the other CPUs.\n"
          << "pin = " << cpu_list(size.pin) << "\n"
          << pad("emulator_pin = " + cpu_list(size.emulator_pin)) << "# QEMU's I/O threads, off the vCPUs' CPUs\n";
    }
    o << "hyperv = true                 # Hyper-V enlightenments: much lower latency for Windows guests\n";
    if (nvidia)
        o << "# NVIDIA's driver used to refuse to run in a VM (Code 43); hide the hypervisor from it.\n"
             "hide_kvm = true\n"
             "hv_vendor_id = \"KVMGPUVENDOR\" # 1-12 characters the guest sees as the Hyper-V vendor\n";
    o << "\n";

    o << "[firmware]\n"
         "type = \"ovmf\"                 # UEFI (Debian: apt install ovmf); the VM keeps its own copy of the variables\n"
         "secure_boot = false           # Windows 11 wants true, with [tpm] enabled = true\n\n";

    o << "# The card: every function of its slot (" << gpu.address.str().substr(0, 10)
      << "*). vfio passes a whole IOMMU group, and a\n"
         "# GPU's HDMI audio or USB-C controller belongs to the guest with it. `id` is what the address\n"
         "# must hold: if the address ever holds another device, kvmgpu refuses to start.\n";
    if (gpu.iommu_group)
        o << "# IOMMU group " << *gpu.iommu_group << ".";
    else
        o << "# No IOMMU group: the IOMMU is off; `kvmgpu check` explains how to turn it on.";
    if (!choice.group_others.empty()) {
        o << " The group also holds";
        for (const auto& a : choice.group_others) o << " " << a.str();
        o << ",\n# outside this slot: `kvmgpu check` says whether the group can be passed.";
    }
    o << "\n";
    if (gpu.boot_vga)
        o << "# This GPU is the boot VGA: the host's console runs on it. `kvmgpu check` says what to release.\n";
    for (const PciDeviceInfo& f : choice.functions) {
        o << "[[pci]]\n"
          << pad("address = \"" + f.address.str() + "\"") << "# " << class_name(f.class_code) << ": " << f.name()
          << (f.driver.empty() ? "" : " (driver " + f.driver + ")") << "\n"
          << "id = \"" << id_of(f) << "\"\n";
        if (f.subsystem_vendor || f.subsystem_device)
            o << pad("# subsystem = \"" + subsystem_of(f) + "\"") << "# uncomment to insist on this maker's board\n";
    }
    o << "\n";

    o << "# The guest's disk. Create one with: qemu-img create -f qcow2 /var/lib/kvmgpu/images/" << name
      << ".qcow2 100G\n"
         "# [[disk]]\n"
         "# path = \"/var/lib/kvmgpu/images/" << name << ".qcow2\"\n"
         "# An installer:\n"
         "# [[disk]]\n"
         "# path = \"/var/lib/kvmgpu/iso/installer.iso\"\n"
         "# media = \"cdrom\"\n\n";

    o << "[network]\n"
         "mode = \"user\"                 # NAT through QEMU; \"bridge\" with bridge = \"br0\" puts the VM on your LAN\n\n";

    o << "[display]\n"
         "type = \"none\"                 # the monitor is plugged into the passed-through GPU;\n"
         << pad("") << "# \"vnc\" or \"spice\" add an emulated screen for the installer\n";
    return o.str();
}

InitResult init(const Context& ctx, const InitRequest& request) {
    InitResult r;
    r.name = !request.name.empty()        ? request.name
             : !request.output.empty()    ? request.output.stem().string()
                                          : std::string("vm");
    if (!usable_name(r.name))
        throw util::BadInput("the name " + util::quoted(r.name) +
                                 " may only use letters, digits, '_', '.' and '-' (1 to 64 of them, starting "
                                 "with a letter or digit); choose one with --name",
                             "usage");
    const host::HostModel host = host::scan_host(ctx.host_root);
    r.iommu = host.iommu_present();
    r.gpus = find_gpus(host);
    if (r.gpus.empty()) {
        r.refused = util::RuntimeFailure(
            "this host has no GPU (no PCI device of class 03, display controller); `kvmgpu list` shows its devices",
            "no-gpu");
        return r;
    }
    if (request.gpu) {
        for (std::size_t i = 0; i < r.gpus.size(); ++i)
            if (r.gpus[i].gpu.address == *request.gpu) r.chosen = i;
        if (!r.chosen) {
            const PciDeviceInfo* d = host.find(*request.gpu);
            r.refused = util::BadInput(
                "PCI device " + util::quoted(request.gpu->str()) +
                    (d ? " is not a GPU (" + class_name(d->class_code) + "); " : " does not exist on this host; ") +
                    "choose one of the GPUs listed with --gpu (its other functions come along)",
                "not-a-gpu");
            return r;
        }
    } else if (r.gpus.size() == 1) {
        r.chosen = 0;
    } else {
        std::string list;
        for (const auto& g : r.gpus) list += (list.empty() ? "" : ", ") + g.gpu.address.str();
        r.refused = util::BadInput("this host has " + std::to_string(r.gpus.size()) + " GPUs (" + list +
                                       "); choose the one to pass with --gpu ADDRESS",
                                   "choose-gpu");
        return r;
    }
    r.profile = starter_profile(host, r.gpus[*r.chosen], r.name);
    // The promise of `init`: what it writes, kvmgpu reads. A profile that does not validate is
    // a bug here, reported before anything is written.
    auto loaded = profile::load_text(r.profile, request.output.empty() ? fs::path(r.name + ".toml") : request.output);
    profile::validate(loaded.profile, loaded.diagnostics);
    if (profile::has_errors(loaded.diagnostics))
        throw util::RuntimeFailure("the starter profile kvmgpu made does not validate (a bug in kvmgpu): " +
                                   loaded.diagnostics.front().str());
    if (!request.output.empty()) {
        try {
            write_profile(request.output, r.profile, request.force);
            r.written = request.output;
        } catch (const util::Error& e) {
            r.refused = e;
        }
    }
    return r;
}

}  // namespace kvmgpu::app
