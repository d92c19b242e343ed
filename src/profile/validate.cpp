#include "profile/validate.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <bit>
#include <set>
#include <tuple>

#include "util/text.hpp"
#include "util/vm_name.hpp"

namespace kvmgpu::profile {
namespace {

constexpr std::uint64_t MiB = 1024 * 1024;
constexpr std::uint64_t GiB = 1024 * MiB;
constexpr std::uint64_t TiB = 1024 * GiB;
// Bounds documented in docs/profile.md.
constexpr std::uint64_t kMaxMemory = 16 * TiB;
constexpr std::uint64_t kMaxLookingGlass = 2 * GiB;
// q35's root bus has slots 0x01-0x1f; 0x1f holds the ICH9 functions kvmgpu's SATA disks use.
constexpr unsigned kRootBusSlots = 30;
// kvmgpu's root ports for passed-through cards take slots 0x10-0x1e (qemu/argv.cpp), one a card.
constexpr unsigned kMaxCards = 15;

class Checker {
public:
    Checker(const Profile& p, Diagnostics& out) : p_(p), out_(out) {}

    void error(const std::string& key, std::string message) {
        add(Severity::error, key, std::move(message));
    }
    void warning(const std::string& key, std::string message) {
        add(Severity::warning, key, std::move(message));
    }
    bool written(const std::string& key) const { return p_.positions.count(key) != 0; }

private:
    void add(Severity s, const std::string& key, std::string message) {
        out_.push_back({s, p_.file.string(), p_.where(key), key, std::move(message)});
    }
    const Profile& p_;
    Diagnostics& out_;
};

std::string indexed(const char* table, std::size_t i) {
    return std::string(table) + "[" + std::to_string(i) + "]";
}
std::string shown(const char* table, std::size_t i) {
    return std::string("[[") + table + "]] #" + std::to_string(i + 1);
}

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// 1..max of [A-Za-z0-9_.-]; with `alnum_first`, starting with a letter or digit.
bool is_word(const std::string& text, std::size_t max, bool alnum_first) {
    if (text.empty() || text.size() > max) return false;
    if (alnum_first && !is_alnum(text.front())) return false;
    return std::all_of(text.begin(), text.end(), [](char c) { return is_alnum(c) || c == '_' || c == '.' || c == '-'; });
}

// "q35" or a versioned "pc-q35-7.2".
bool is_q35(const std::string& type) {
    if (type == "q35") return true;
    const std::string prefix = "pc-q35-";
    return type.size() > prefix.size() && type.rfind(prefix, 0) == 0 &&
           std::all_of(type.begin() + static_cast<std::ptrdiff_t>(prefix.size()), type.end(),
                       [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// Six hex pairs separated by ':'.
bool is_mac(const std::string& mac) {
    if (mac.size() != 17) return false;
    for (std::size_t i = 0; i < mac.size(); ++i)
        if (i % 3 == 2 ? mac[i] != ':' : !is_hex(mac[i])) return false;
    return true;
}

// A network interface name as Linux accepts it: 1..15 bytes, no '/', ':' or white space.
bool valid_ifname(const std::string& name) {
    return !name.empty() && name.size() <= 15 && name != "." && name != ".." &&
           name.find_first_of("/: \t") == std::string::npos;
}

void check_name(const Profile& p, Checker& c) {
    // The first character is a letter or digit: names beginning with '.' are kvmgpu's own
    // entries in the runtime directory.
    if (util::valid_vm_name(p.name)) return;
    if (c.written("name"))
        c.error("name", "name " + util::quoted(p.name) +
                            " may only use letters, digits, '_', '.' and '-' (1 to 64 of them, "
                            "starting with a letter or digit)");
    else
        c.error("name", "the file name " + util::quoted(p.name) +
                            " is not a usable VM name; add name = \"...\" with letters, digits, "
                            "'_', '.' or '-' (1 to 64, starting with a letter or digit)");
}

void check_machine(const Profile& p, Checker& c) {
    const auto& m = p.machine;
    if (!is_q35(m.type))
        c.error("machine.type", "[machine] type " + util::quoted(m.type) +
                                    " is not supported; kvmgpu puts passed-through cards on PCIe "
                                    "root ports, which need \"q35\" (or a versioned \"pc-q35-7.2\")");
    if (!c.written("machine.memory")) {
        c.error("machine.memory", "[machine] memory is required; add memory = \"8G\" under [machine]");
        return;
    }
    if (m.memory == 0) return;  // the loader already said why
    if (m.memory < 64 * MiB)
        c.error("machine.memory", "[machine] memory " + util::format_size(m.memory) +
                                      " is too small; give at least \"64M\"");
    else if (m.memory > kMaxMemory) {
        c.error("machine.memory", "[machine] memory " + util::format_size(m.memory) + " is more than " +
                                      util::format_size(kMaxMemory) + ", the most kvmgpu gives a VM");
        return;  // the hugepage rounding below stays far from overflow only under the limit
    }
    else if (m.memory % MiB)
        c.error("machine.memory", "[machine] memory " + util::format_size(m.memory) +
                                      " is not a whole number of MiB; QEMU rounds it, write e.g. \"" +
                                      util::format_size(m.memory / MiB * MiB) + "\"");
    const std::uint64_t page = m.hugepages == Hugepages::size_1g   ? GiB
                               : m.hugepages == Hugepages::size_2m ? 2 * MiB
                                                                   : 0;
    if (page && m.memory % page)
        c.error("machine.memory", "[machine] memory " + util::format_size(m.memory) +
                                      " is not a multiple of the " + util::format_size(page) +
                                      " hugepage size; round it to " +
                                      util::format_size((m.memory / page + 1) * page));
}

// iothread_pin, isolate, irq_affinity and realtime: each is about the pinned vCPUs.
void check_cpu_tuning(const Profile& p, Checker& c) {
    const auto& cpu = p.cpu;
    std::set<unsigned> io;
    for (unsigned host_cpu : cpu.iothread_pin)
        if (!io.insert(host_cpu).second)
            c.error("cpu.iothread_pin", "[cpu] iothread_pin lists host CPU " + std::to_string(host_cpu) + " twice");
    if (c.written("cpu.iothread_pin") && cpu.iothread_pin.empty())
        c.error("cpu.iothread_pin", "[cpu] iothread_pin is empty; list host CPUs or remove the key");
    const auto needs_pin = [&](const char* key, const std::string& what) {
        if (cpu.pin.empty())
            c.error(std::string("cpu.") + key, "[cpu] " + what +
                                                   " needs the vCPUs pinned: add pin = [...] (one host CPU per vCPU)");
    };
    if (cpu.isolate) needs_pin("isolate", "isolate = true");
    if (cpu.irq_affinity != IrqAffinity::leave)
        needs_pin("irq_affinity", std::string("irq_affinity = \"") +
                                      (cpu.irq_affinity == IrqAffinity::vm ? "vm" : "host") + "\"");
    if (cpu.realtime) needs_pin("realtime", "realtime = true");
    if (c.written("cpu.realtime_priority") && !cpu.realtime)
        c.warning("cpu.realtime_priority", "[cpu] realtime_priority has no effect without realtime = true");
    if (cpu.realtime && !cpu.isolate && !cpu.pin.empty())
        c.warning("cpu.realtime", "[cpu] realtime vCPUs on CPUs the host also uses can starve the host's tasks "
                                  "there; add isolate = true");
}

void check_cpu(const Profile& p, Checker& c) {
    const auto& cpu = p.cpu;
    if (!is_word(cpu.model, 64, false))
        c.error("cpu.model", "[cpu] model " + util::quoted(cpu.model) +
                                 " is not a QEMU CPU model name; use \"host\" or a name from "
                                 "`qemu-system-x86_64 -cpu help`");
    const unsigned vcpus = cpu.vcpus();
    if (vcpus > 255)
        c.error("cpu", "[cpu] sockets x cores x threads = " + std::to_string(vcpus) +
                           " vCPUs; q35 without x2APIC supports at most 255");
    if (!cpu.pin.empty() && cpu.pin.size() != vcpus)
        c.error("cpu.pin", "[cpu] pin lists " + std::to_string(cpu.pin.size()) +
                               " host CPUs but the VM has sockets x cores x threads = " +
                               std::to_string(cpu.sockets) + " x " + std::to_string(cpu.cores) +
                               " x " + std::to_string(cpu.threads) + " = " + std::to_string(vcpus) +
                               " vCPUs; give one host CPU per vCPU");
    std::set<unsigned> seen;
    for (unsigned host_cpu : cpu.pin) {
        if (!seen.insert(host_cpu).second) {
            c.warning("cpu.pin", "[cpu] pin puts two vCPUs on host CPU " + std::to_string(host_cpu) +
                                     "; they will compete for it (give each vCPU its own host CPU)");
            break;
        }
    }
    std::set<unsigned> emu;
    for (unsigned host_cpu : cpu.emulator_pin) {
        if (!emu.insert(host_cpu).second)
            c.error("cpu.emulator_pin",
                    "[cpu] emulator_pin lists host CPU " + std::to_string(host_cpu) + " twice");
        else if (seen.count(host_cpu))
            c.warning("cpu.emulator_pin",
                      "[cpu] emulator_pin shares host CPU " + std::to_string(host_cpu) +
                          " with a vCPU in pin; QEMU's I/O threads will steal time from that vCPU");
    }
    if (c.written("cpu.emulator_pin") && cpu.emulator_pin.empty())
        c.error("cpu.emulator_pin", "[cpu] emulator_pin is empty; list host CPUs or remove the key");
    check_cpu_tuning(p, c);
    if (cpu.hv_vendor_id) {
        const auto& id = *cpu.hv_vendor_id;
        if (id.empty() || id.size() > 12)
            c.error("cpu.hv_vendor_id", "[cpu] hv_vendor_id " + util::quoted(id) + " is " +
                                            std::to_string(id.size()) +
                                            " characters; QEMU accepts 1 to 12");
        else if (!std::all_of(id.begin(), id.end(), [](char ch) { return ch > 0x20 && ch < 0x7f && ch != ','; }))
            c.error("cpu.hv_vendor_id", "[cpu] hv_vendor_id " + util::quoted(id) +
                                            " must be printable ASCII without spaces or commas "
                                            "(QEMU's -cpu cannot carry a comma)");
        if (!cpu.hyperv)
            c.warning("cpu.hv_vendor_id",
                      "[cpu] hv_vendor_id has no effect without Hyper-V enlightenments: the guest "
                      "only sees it with hyperv = true");
    }
}

void check_accel(const Profile& p, Checker& c) {
    if (p.machine.accel == Accel::tcg && p.cpu.hyperv)
        c.warning("cpu.hyperv", "[cpu] hyperv under accel = \"tcg\": hv-vpindex, hv-synic, "
                                "hv-stimer, hv-tlbflush and hv-ipi need KVM and are left out");
}

void check_firmware(const Profile& p, Checker& c) {
    const auto& f = p.firmware;
    if (f.type != FirmwareType::seabios) return;
    for (const char* key : {"code", "vars", "secure_boot"}) {
        const std::string k = std::string("firmware.") + key;
        if (c.written(k))
            c.error(k, std::string("[firmware] ") + key +
                           " is for type = \"ovmf\"; SeaBIOS has no such setting (remove it, or "
                           "use type = \"ovmf\")");
    }
}

// id and subsystem: "vendor:device", 4 hex digits each. A subsystem alone is refused: it names
// the board maker's variant of a device, which means nothing without the device.
void check_identity(const PciDevice& d, const std::string& key, const std::string& table,
                    Checker& c) {
    if (d.id && !util::PciId::parse(*d.id))
        c.error(key + ".id", table + " id " + util::quoted(*d.id) +
                                 " is not a PCI identity; write vendor:device as 4 hex digits "
                                 "each, as `kvmgpu list` or `lspci -nn` shows it, e.g. "
                                 "\"10de:2684\"");
    if (d.subsystem && !util::PciId::parse(*d.subsystem))
        c.error(key + ".subsystem",
                table + " subsystem " + util::quoted(*d.subsystem) +
                    " is not a PCI subsystem identity; write subsystem vendor:device as 4 hex "
                    "digits each, as `lspci -vnn` shows it after \"Subsystem:\", e.g. "
                    "\"1043:8870\"");
    if (d.subsystem && !d.id)
        c.error(key + ".subsystem", table + " has a subsystem but no id; add the device's own "
                                            "id = \"vendor:device\" (see `kvmgpu list`) too");
}

void check_pci(const Profile& p, Checker& c) {
    std::set<util::PciAddress> seen;
    std::size_t vga_count = 0;
    const util::PciAddress invalid{0xffff, 0xff, 0x1f, 7};
    for (std::size_t i = 0; i < p.pci.size(); ++i) {
        const auto& d = p.pci[i];
        const auto key = indexed("pci", i);
        if (d.address != invalid && c.written(key + ".address") && !seen.insert(d.address).second)
            c.error(key + ".address", shown("pci", i) + " address \"" + d.address.str() +
                                          "\" is listed twice; remove one of them");
        check_identity(d, key, shown("pci", i), c);
        if (d.vga) {
            ++vga_count;
            if (p.firmware.type == FirmwareType::ovmf)
                c.warning(key + ".vga", shown("pci", i) +
                                            " vga = true (x-vga) is for SeaBIOS guests; UEFI "
                                            "(OVMF) guests do not need legacy VGA ranges");
        }
        if (!d.rom.empty() && d.rombar == false)
            c.warning(key + ".rom", shown("pci", i) +
                                        " gives a rom file but rombar = false hides every ROM "
                                        "from the guest; remove one of them");
    }
    if (vga_count > 1)
        c.error("pci", "more than one [[pci]] device has vga = true; only one device can own the "
                       "legacy VGA ranges");
    std::set<std::tuple<unsigned, unsigned, unsigned>> cards;
    for (const auto& a : seen) cards.insert({a.domain, a.bus, a.slot});
    if (cards.size() > kMaxCards)
        c.error("pci", "the [[pci]] devices are on " + std::to_string(cards.size()) + " cards (domain:bus:slot); kvmgpu gives each card a root port and has " +
                           std::to_string(kMaxCards) + " of them: pass at most " + std::to_string(kMaxCards) + " cards");
}

// Every device kvmgpu puts on q35's root bus (qemu/argv.cpp) takes one of its slots; QEMU
// refuses to start when they run out, so the profile is refused first.
void check_root_bus(const Profile& p, Checker& c) {
    std::set<std::tuple<unsigned, unsigned, unsigned>> cards;
    const util::PciAddress invalid{0xffff, 0xff, 0x1f, 7};  // a malformed address (loader.cpp)
    for (const auto& d : p.pci)
        if (d.address != invalid) cards.insert({d.address.domain, d.address.bus, d.address.slot});
    const auto on_pcie = std::count_if(p.disks.begin(), p.disks.end(), [](const Disk& d) {
        return d.bus == DiskBus::virtio || d.bus == DiskBus::nvme;
    });
    const bool scsi = std::any_of(p.disks.begin(), p.disks.end(), [](const Disk& d) { return d.bus == DiskBus::scsi; });
    const bool video = p.display.device.empty() ? p.display.type != DisplayType::none : p.display.device != "none";
    const bool xhci = !p.usb.empty() || p.display.type != DisplayType::none;
    const auto slots = cards.size() + static_cast<std::size_t>(on_pcie) + scsi + (p.network.mode != NetworkMode::none) +
                       xhci + video + p.looking_glass.enabled + (p.audio.backend != AudioBackend::none);
    if (slots > kRootBusSlots)
        c.error(p.disks.empty() ? "pci" : "disk",
                "the VM needs " + std::to_string(slots) + " slots on the q35 root bus (a root port per card, one per "
                "virtio or nvme disk, one each for the SCSI controller, NIC, USB controller, video, Looking Glass "
                "and audio) and it has " + std::to_string(kRootBusSlots) +
                    "; put disks on bus = \"scsi\" or \"sata\", or pass fewer devices");
}

void check_disks(const Profile& p, Checker& c) {
    std::set<std::filesystem::path> seen;
    for (std::size_t i = 0; i < p.disks.size(); ++i) {
        const auto& d = p.disks[i];
        const auto key = indexed("disk", i);
        if (!c.written(key + ".path")) {
            c.error(key + ".path", shown("disk", i) + " has no path; add path = \"...\"");
            continue;
        }
        if (d.path.empty()) continue;
        if (!seen.insert(d.path).second)
            c.error(key + ".path", shown("disk", i) + " path " + util::quoted(d.path.string()) +
                                       " is used by another [[disk]]; a disk image can be "
                                       "attached once");
        if (d.media == DiskMedia::cdrom && (d.bus == DiskBus::virtio || d.bus == DiskBus::nvme))
            c.error(key + ".bus", shown("disk", i) + " is a CD-ROM on bus \"" +
                                      (d.bus == DiskBus::virtio ? "virtio" : "nvme") +
                                      "\", which has no CD-ROM; use bus = \"sata\" or \"scsi\"");
        if (d.media == DiskMedia::cdrom && !d.readonly)
            c.error(key + ".readonly", shown("disk", i) + " is a CD-ROM; it cannot be writable");
    }
    const auto sata = std::count_if(p.disks.begin(), p.disks.end(),
                                    [](const Disk& d) { return d.bus == DiskBus::sata; });
    if (sata > 6)
        c.error("disk", "the q35 SATA controller has 6 ports; " + std::to_string(sata) +
                            " [[disk]] entries use bus = \"sata\" (move some to virtio or scsi)");
}

void check_network(const Profile& p, Checker& c) {
    const auto& n = p.network;
    if (n.mode == NetworkMode::bridge && !valid_ifname(n.bridge))
        c.error(c.written("network.bridge") ? "network.bridge" : "network.mode",
                n.bridge.empty() ? "[network] mode = \"bridge\" needs bridge = \"br0\" (the host "
                                   "bridge to join)"
                                 : "[network] bridge " + util::quoted(n.bridge) +
                                       " is not a network interface name (1 to 15 characters, "
                                       "no '/', ':' or spaces)");
    if (n.mode == NetworkMode::tap && !valid_ifname(n.tap))
        c.error(c.written("network.tap") ? "network.tap" : "network.mode",
                n.tap.empty() ? "[network] mode = \"tap\" needs tap = \"tap0\" (an existing tap "
                                "interface)"
                              : "[network] tap " + util::quoted(n.tap) +
                                    " is not a network interface name (1 to 15 characters, no "
                                    "'/', ':' or spaces)");
    if (n.mode != NetworkMode::bridge && c.written("network.bridge"))
        c.error("network.bridge", "[network] bridge is only used with mode = \"bridge\"");
    if (n.mode != NetworkMode::tap && c.written("network.tap"))
        c.error("network.tap", "[network] tap is only used with mode = \"tap\"");
    if (!n.mac.empty()) {
        if (!is_mac(n.mac))
            c.error("network.mac", "[network] mac " + util::quoted(n.mac) +
                                       " is not a MAC address; write six hex pairs like "
                                       "\"52:54:00:12:34:56\"");
        else if (std::stoi(n.mac.substr(0, 2), nullptr, 16) & 1)
            c.error("network.mac", "[network] mac " + util::quoted(n.mac) +
                                       " is a multicast address (first byte odd); a NIC needs a "
                                       "unicast one such as \"52:54:00:…\"");
    }
    static const std::array<std::string_view, 5> models{"virtio-net-pci", "e1000e", "e1000",
                                                        "rtl8139", "vmxnet3"};
    if (std::find(models.begin(), models.end(), n.model) == models.end()) {
        std::string msg = "[network] model " + util::quoted(n.model) +
                          " is not one of virtio-net-pci, e1000e, e1000, rtl8139, vmxnet3";
        if (auto s = util::closest_match(n.model, models)) msg += "; did you mean " + util::quoted(*s) + "?";
        c.error("network.model", msg);
    }
    if (n.mode == NetworkMode::none) {
        for (const char* key : {"network.mac", "network.model"})
            if (c.written(key))
                c.warning(key, std::string("[network] ") + (key + 8) +
                                   " has no effect with mode = \"none\"");
    }
}

void check_usb(const Profile& p, Checker& c) {
    std::set<std::pair<std::uint16_t, std::uint16_t>> seen;
    for (std::size_t i = 0; i < p.usb.size(); ++i) {
        const auto key = indexed("usb", i);
        bool complete = true;
        for (const char* field : {"vendor", "product"}) {
            if (!c.written(key + "." + field)) {
                complete = false;
                c.error(key + "." + field, shown("usb", i) + " has no " + field +
                                               "; add it as an integer from `lsusb` (e.g. "
                                               "vendor = 0x046d, product = 0xc52b)");
            }
        }
        const auto& u = p.usb[i];
        if (complete && !seen.insert({u.vendor, u.product}).second) {
            char buf[16];
            std::snprintf(buf, sizeof buf, "%04x:%04x", u.vendor, u.product);
            c.error(key, shown("usb", i) + " " + buf + " is listed twice; remove one");
        }
    }
}

void check_inputs(const Profile& p, Checker& c) {
    static const std::array<std::string_view, 6> toggles{
        "ctrl-ctrl", "alt-alt", "shift-shift", "meta-meta", "scrolllock", "ctrl-scrolllock"};
    std::set<std::filesystem::path> seen;
    for (std::size_t i = 0; i < p.inputs.size(); ++i) {
        const auto& in = p.inputs[i];
        const auto key = indexed("input", i);
        if (!c.written(key + ".evdev")) {
            c.error(key + ".evdev", shown("input", i) +
                                        " has no evdev; add evdev = \"/dev/input/by-id/...-event-kbd\"");
        } else if (!in.evdev.empty()) {
            if (!seen.insert(in.evdev).second)
                c.error(key + ".evdev", shown("input", i) + " evdev " +
                                            util::quoted(in.evdev.string()) + " is listed twice");
            if (in.evdev.string().rfind("/dev/input/", 0) != 0)
                c.warning(key + ".evdev", shown("input", i) + " evdev " +
                                              util::quoted(in.evdev.string()) +
                                              " is not under /dev/input/; use a stable "
                                              "/dev/input/by-id/... path");
        }
        if (std::find(toggles.begin(), toggles.end(), in.grab_toggle) == toggles.end())
            c.error(key + ".grab_toggle",
                    shown("input", i) + " grab_toggle " + util::quoted(in.grab_toggle) +
                        " is not one of ctrl-ctrl, alt-alt, shift-shift, meta-meta, scrolllock, "
                        "ctrl-scrolllock");
    }
}

// The forwarded port a VNC server inside the guest is reached through (docs/headless-gpu.md).
void check_guest_websocket(const Profile& p, Checker& c) {
    const auto& d = p.display;
    if (!d.guest_websocket) return;
    if (p.network.mode != NetworkMode::user) {
        c.error("display.guest_websocket",
                "[display] guest_websocket forwards a port of the user network, and [network] mode is not \"user\"; "
                "set mode = \"user\", or reach the guest's websockify at the guest's own address");
        return;
    }
    const unsigned vnc = d.port ? d.port : 5900;
    if (d.type == DisplayType::vnc && (*d.guest_websocket == vnc || d.websocket == d.guest_websocket))
        c.error("display.guest_websocket", "[display] guest_websocket port " + std::to_string(*d.guest_websocket) +
                                               " is QEMU's own VNC or WebSocket port too; give it a port of its own");
}

void check_display(const Profile& p, Checker& c) {
    const auto& d = p.display;
    static const std::array<std::string_view, 4> devices{"vga", "virtio-vga", "qxl-vga", "none"};
    if (!d.device.empty() && std::find(devices.begin(), devices.end(), d.device) == devices.end())
        c.error("display.device", "[display] device " + util::quoted(d.device) +
                                      " is not one of vga, virtio-vga, qxl-vga, none");
    check_guest_websocket(p, c);
    if (d.type == DisplayType::none) {
        for (const char* key : {"display.listen", "display.port", "display.websocket", "display.password"})
            if (c.written(key))
                c.warning(key, std::string("[display] ") + (key + 8) +
                                   " has no effect with type = \"none\"");
        return;
    }
    unsigned char buf[16];
    const bool ip = inet_pton(AF_INET, d.listen.c_str(), buf) == 1 ||
                    inet_pton(AF_INET6, d.listen.c_str(), buf) == 1;
    if (!ip && d.listen != "localhost")
        c.error("display.listen", "[display] listen " + util::quoted(d.listen) +
                                      " is not an IP address; write e.g. \"127.0.0.1\" or \"::1\"");
    else if (!is_loopback_address(d.listen) && !d.vnc_password())
        c.warning("display.listen", "[display] listen " + util::quoted(d.listen) +
                                        " is reachable from the network and has no password; "
                                        "anyone who can reach it controls the VM (prefer "
                                        "\"127.0.0.1\" and an SSH tunnel)");
    else if (!is_loopback_address(d.listen))
        c.warning("display.listen", "[display] listen " + util::quoted(d.listen) +
                                        " is reachable from the network: VNC asks for a password, "
                                        "but VNC passwords are 8 characters and the traffic is not "
                                        "encrypted (prefer \"127.0.0.1\" and an SSH tunnel)");
    if (d.type == DisplayType::spice && c.written("display.password"))
        c.error("display.password", "[display] password is for type = \"vnc\"; SPICE runs without a ticket here");
    if (d.type == DisplayType::vnc && d.port != 0 && d.port < 5900)
        c.error("display.port", "[display] port " + std::to_string(d.port) +
                                    " is below 5900; QEMU's VNC ports are 5900 + display number");
    if (d.websocket) {
        if (d.type != DisplayType::vnc)
            c.error("display.websocket", "[display] websocket is for type = \"vnc\" (noVNC)");
        else if (*d.websocket == (d.port ? d.port : 5900))
            c.error("display.websocket", "[display] websocket port " + std::to_string(*d.websocket) +
                                             " is the VNC port too; give it a port of its own");
    }
}

void check_looking_glass(const Profile& p, Checker& c) {
    const auto& lg = p.looking_glass;
    if (!lg.enabled) return;
    if (lg.size_auto) {
        if (const auto bytes = lg.shared_memory_bytes(); bytes > kMaxLookingGlass)
            c.error(c.written("looking_glass.resolution") ? "looking_glass.resolution" : "looking_glass",
                    "[looking_glass] size \"auto\" for " + std::to_string(lg.width) + "x" + std::to_string(lg.height) +
                        (lg.hdr ? " HDR" : "") + " is " + util::format_size(bytes) + ", more than the " +
                        util::format_size(kMaxLookingGlass) + " Looking Glass can use; lower the resolution");
        return;
    }
    if (lg.size == 0) return;  // the loader said why
    if (!std::has_single_bit(lg.size) || lg.size < MiB || lg.size > kMaxLookingGlass) {
        c.error("looking_glass.size", "[looking_glass] size " + util::format_size(lg.size) +
                                          " must be a power of two between 1M and 2G, e.g. \"64M\"");
        return;
    }
    LookingGlass automatic = lg;
    automatic.size_auto = true;
    const auto needed = automatic.shared_memory_bytes();
    if (lg.size < needed)
        c.warning("looking_glass.size",
                  "[looking_glass] size " + util::format_size(lg.size) + " is smaller than the " +
                      util::format_size(needed) + " that " + std::to_string(lg.width) + "x" +
                      std::to_string(lg.height) + (lg.hdr ? " HDR" : "") +
                      " needs; use size = \"auto\"");
}

void check_audio_hooks_qemu(const Profile& p, Checker& c) {
    if (p.audio.backend == AudioBackend::none && c.written("audio.server"))
        c.warning("audio.server", "[audio] server has no effect with backend = \"none\"");
    for (const auto& [hook, argv] : {std::pair{"prepare", &p.hooks.prepare}, std::pair{"prestart", &p.hooks.prestart},
                                      std::pair{"poststop", &p.hooks.poststop}}) {
        const std::string key = std::string("hooks.") + hook;
        if (!c.written(key)) continue;
        if (argv->empty() || argv->front().empty())
            c.error(key, std::string("[hooks] ") + hook +
                             " must name a program: write it as an argv array, e.g. [\"/usr/local/"
                             "bin/my-hook\", \"arg\"]");
    }
    if (p.qemu.binary.empty())
        c.error("qemu.binary", "[qemu] binary is empty; remove it to use qemu-system-x86_64");
    // Options kvmgpu owns (passing them again breaks the launch or the supervision), and options
    // that would change them behind kvmgpu's back. QEMU reads "--name" as "-name", so each word
    // is compared in that form.
    static const std::array<std::pair<std::string_view, std::string_view>, 13> refused{{
        {"-S", "kvmgpu sets itself"},
        {"-daemonize", "kvmgpu sets itself"},
        {"-qmp", "kvmgpu sets itself"},
        {"-qmp-pretty", "kvmgpu sets itself"},
        {"-mon", "kvmgpu sets itself"},
        {"-monitor", "kvmgpu sets itself"},
        {"-name", "kvmgpu sets itself"},
        {"-pidfile", "kvmgpu sets itself"},
        {"-nodefaults", "kvmgpu sets itself"},
        {"-no-user-config", "kvmgpu sets itself"},
        {"-readconfig", "can set any of the options kvmgpu owns"},
        {"-runas", "changes the user QEMU runs as under kvmgpu's feet"},
        {"-chroot", "changes the root QEMU's paths are read under"},
    }};
    for (const auto& word : p.qemu.extra) {
        const std::string_view option =
            word.rfind("--", 0) == 0 ? std::string_view(word).substr(1) : std::string_view(word);
        for (const auto& [name, why] : refused)
            if (option == name)
                c.error("qemu.extra", "[qemu] extra contains " + util::quoted(word) + ", which " + std::string(why) +
                                          "; remove it");
    }
}

// Names only: whether a module is loaded or a unit exists is the host check's question.
void check_release(const Profile& p, Checker& c) {
    const auto& rel = p.release;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < rel.modules.size(); ++i) {
        const auto& m = rel.modules[i];
        const bool ok = !m.empty() && m.size() <= 55 &&
                        std::all_of(m.begin(), m.end(), [](char ch) { return is_alnum(ch) || ch == '_'; });
        if (!ok)
            c.error("release.modules", "[release] modules: " + util::quoted(m) +
                                           " is not a kernel module name (letters, digits, '_' or '-', at most 55); "
                                           "write it as `lsmod` shows it, e.g. \"nvidia_drm\"");
        else if (!seen.insert(m).second)
            c.error("release.modules", "[release] modules lists " + util::quoted(m) + " twice; remove one");
    }
    seen.clear();
    for (const auto& s : rel.services) {
        const auto dot = s.rfind('.');
        const bool ok = s.size() <= 255 && dot != std::string::npos && dot > 0 && s.substr(dot) == ".service" &&
                        is_alnum(s.front()) &&
                        std::all_of(s.begin(), s.end(), [](char ch) {
                            return is_alnum(ch) || ch == '_' || ch == '.' || ch == '-' || ch == '@' || ch == ':' || ch == '\\';
                        });
        if (!ok)
            c.error("release.services", "[release] services: " + util::quoted(s) +
                                            " is not a systemd service name; write e.g. \"nvidia-persistenced\" or "
                                            "\"nvidia-persistenced.service\"");
        else if (!seen.insert(s).second)
            c.error("release.services", "[release] services lists " + util::quoted(s) + " twice; remove one");
    }
    if (rel.any() && p.pci.empty())
        c.warning("release", "[release] has nothing to free: the profile passes no [[pci]] device");
}

// A name useradd accepts: a lowercase letter or '_', then lowercase letters, digits, '_' or '-',
// at most 32 characters.
bool is_user_name(const std::string& user) {
    return !user.empty() && user.size() <= 32 && ((user[0] >= 'a' && user[0] <= 'z') || user[0] == '_') &&
           std::all_of(user.begin(), user.end(), [](char ch) {
               return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
           });
}

const char* const kUserNameRule =
    " is not a user name (a lowercase letter or '_', then lowercase letters, digits, '_' or '-', at most 32)";

void check_security(const Profile& p, Checker& c) {
    if (!is_user_name(p.security.user))
        c.error("security.user", "[security] user " + util::quoted(p.security.user) + kUserNameRule +
                                     "; remove it to use \"kvmgpu\", or write \"root\" to opt out");
    const auto& lg = p.looking_glass;
    if (c.written("looking_glass.owner") && !is_user_name(lg.owner))
        c.error("looking_glass.owner", "[looking_glass] owner " + util::quoted(lg.owner) + kUserNameRule +
                                           "; write the user who runs looking-glass-client");
    if (c.written("looking_glass.owner") && lg.backend == LookingGlassBackend::kvmfr)
        c.warning("looking_glass.owner", "[looking_glass] owner has no effect with backend = \"kvmfr\": the kvmfr "
                                         "module's udev rule decides who may open /dev/kvmfr0");
}

}  // namespace

void validate(const Profile& p, Diagnostics& out) {
    Checker c(p, out);
    check_name(p, c);
    check_machine(p, c);
    check_cpu(p, c);
    check_accel(p, c);
    check_firmware(p, c);
    check_pci(p, c);
    check_disks(p, c);
    check_root_bus(p, c);
    check_network(p, c);
    check_usb(p, c);
    check_inputs(p, c);
    check_display(p, c);
    check_looking_glass(p, c);
    check_audio_hooks_qemu(p, c);
    check_release(p, c);
    check_security(p, c);
    std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return std::tie(a.pos.line, a.pos.column) < std::tie(b.pos.line, b.pos.column);
    });
}

}  // namespace kvmgpu::profile

namespace kvmgpu::profile {

LoadResult load_and_validate(const std::filesystem::path& file) {
    LoadResult result = load_file(file);
    // A file that did not parse has no keys to check.
    const bool parsed = result.diagnostics.empty() || result.diagnostics.front().key.size() ||
                        !result.profile.positions.empty();
    if (parsed) validate(result.profile, result.diagnostics);
    return result;
}

}  // namespace kvmgpu::profile
