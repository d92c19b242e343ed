#include "qemu/argv.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>

#include "qemu/options.hpp"
#include "util/text.hpp"

namespace kvmgpu::qemu {
namespace {

using namespace profile;

std::string hex(unsigned value, int width) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%0*x", width, value);
    return buf;
}

// Builds the options in order; `render` turns them into argv once at the end.
class Builder {
public:
    Builder(const Profile& p, const HostFacts& f) : p_(p), f_(f) {}

    std::vector<std::string> build() {
        machine_and_cpu();
        firmware();
        control();
        passthrough();
        display();
        disks();
        network();
        usb();
        inputs();
        looking_glass();
        audio();
        tpm();
        std::vector<std::string> argv{p_.qemu.binary};
        for (const auto& opt : opts_) render(opt, argv);
        argv.insert(argv.end(), p_.qemu.extra.begin(), p_.qemu.extra.end());
        return argv;
    }

private:
    Option& add(std::string flag, std::string head = {}) {
        opts_.push_back({std::move(flag), std::move(head), {}});
        return opts_.back();
    }

    bool ovmf() const { return p_.firmware.type == FirmwareType::ovmf; }
    bool tcg() const { return p_.machine.accel == Accel::tcg; }

    void machine_and_cpu() {
        add("-name").set("guest", p_.name).set("debug-threads", "on");
        add("-nodefaults");
        add("-no-user-config");
        add("-S");  // vCPUs start only after QMP configured them (`cont`)
        add("-display", "none");
        add("-msg").set("timestamp", "on");
        // QEMU's seccomp filter: no obsolete system calls, no setuid/setgid, no fork/exec, no
        // scheduler or priority changes (kvmgpu pins QEMU's threads from outside).
        if (p_.security.sandbox)
            add("-sandbox", "on")
                .set("obsolete", "deny")
                .set("elevateprivileges", "deny")
                .set("spawn", "deny")
                .set("resourcecontrol", "deny");

        Option machine{"-machine", p_.machine.type, {}};
        if (ovmf()) machine.set("pflash0", "kvmgpu-ovmf-code").set("pflash1", "kvmgpu-ovmf-vars");
        machine.set("smm", ovmf() && p_.firmware.secure_boot ? "on" : "off");
        machine.set("vmport", "off");
        if (p_.machine.hugepages != Hugepages::none) machine.set("memory-backend", "kvmgpu-ram");
        opts_.push_back(machine);
        add("-accel", tcg() ? "tcg" : "kvm");

        const auto& c = p_.cpu;
        Option cpu{"-cpu", c.model == "host" && tcg() ? "max" : c.model, {}};
        if (c.hide_kvm) cpu.set("kvm", "off");
        if (c.hv_vendor_id) cpu.set("hv-vendor-id", *c.hv_vendor_id);
        if (c.hyperv) {
            for (const auto& flag : hyperv_flags(p_.machine.accel)) {
                const auto eq = flag.find('=');
                if (eq == std::string::npos) cpu.set(flag, "on");
                else cpu.set(flag.substr(0, eq), flag.substr(eq + 1));
            }
        }
        opts_.push_back(cpu);
        add("-smp", std::to_string(c.vcpus()))
            .set("sockets", std::to_string(c.sockets))
            .set("cores", std::to_string(c.cores))
            .set("threads", std::to_string(c.threads));
        const auto memory = util::format_size(p_.machine.memory);
        add("-m", memory);
        if (p_.machine.hugepages != Hugepages::none) {
            // memfd with hugetlb needs no hugetlbfs mount; prealloc fails at start, not later.
            add("-object", "memory-backend-memfd")
                .set("id", "kvmgpu-ram")
                .set("size", memory)
                .set("hugetlb", "on")
                .set("hugetlbsize", p_.machine.hugepages == Hugepages::size_1g ? "1G" : "2M")
                .set("prealloc", "on");
        }
        if (p_.machine.rtc == Rtc::localtime) add("-rtc").set("base", "localtime");
    }

    void firmware() {
        if (!ovmf()) return;
        const auto& fw = p_.firmware;
        const auto code = fw.code.empty() ? util::OvmfDefaults{}.code_for(fw.secure_boot) : fw.code;
        add("-blockdev", "")
            .set("driver", "file")
            .set("filename", code.string())
            .set("node-name", "kvmgpu-ovmf-code-file")
            .set("read-only", "on");
        add("-blockdev", "")
            .set("driver", "raw")
            .set("file", "kvmgpu-ovmf-code-file")
            .set("node-name", "kvmgpu-ovmf-code")
            .set("read-only", "on");
        add("-blockdev", "")
            .set("driver", "file")
            .set("filename", f_.layout.ovmf_vars().string())
            .set("node-name", "kvmgpu-ovmf-vars-file");
        add("-blockdev", "")
            .set("driver", "raw")
            .set("file", "kvmgpu-ovmf-vars-file")
            .set("node-name", "kvmgpu-ovmf-vars");
        if (fw.secure_boot)
            add("-global", "").set("driver", "cfi.pflash01").set("property", "secure").set("value", "on");
    }

    void control() {
        for (const auto& [id, path] : {std::pair{"kvmgpu-qmp", f_.layout.qmp_socket()},
                                       std::pair{"kvmgpu-qmp-rescue", f_.layout.rescue_socket()}}) {
            add("-chardev", "socket")
                .set("id", id)
                .set("path", path.string())
                .set("server", "on")
                .set("wait", "off");
            add("-mon").set("chardev", id).set("mode", "control");
        }
        add("-pidfile", f_.layout.qemu_pidfile().string()).verbatim = true;
    }

    // Each card (one domain:bus:slot) gets a PCIe root port of its own; its functions stay
    // together behind it as one multifunction device, as on the host. Root ports come before
    // any device QEMU places itself, at fixed slots from 0x10, so auto-placement avoids them.
    void passthrough() {
        std::map<util::PciAddress, std::vector<const PciDevice*>> cards;  // key: function 0
        std::vector<PciDevice> extras;
        for (const auto& a : f_.extra_functions) {
            PciDevice extra;
            extra.address = a;
            extras.push_back(extra);
        }
        for (const auto* list : std::array<const std::vector<PciDevice>*, 2>{&p_.pci, &extras})
            for (const auto& d : *list) {
                auto key = d.address;
                key.function = 0;
                cards[key].push_back(&d);
            }
        unsigned port = 0, index = 0;
        for (auto& [card, functions] : cards) {
            std::sort(functions.begin(), functions.end(),
                      [](auto* a, auto* b) { return a->address < b->address; });
            const std::string bus = "kvmgpu-rp" + std::to_string(port);
            add("-device", "pcie-root-port")
                .set("id", bus)
                .set("bus", "pcie.0")
                .set("addr", hex(0x10 + port, 2))
                .set("chassis", std::to_string(port + 1));
            // A guest finds a device only through its function 0, so a card passed without its
            // function 0 is renumbered from 0.
            const bool has_zero = functions.front()->address.function == 0;
            for (std::size_t i = 0; i < functions.size(); ++i) {
                const auto& d = *functions[i];
                const unsigned guest_fn = has_zero ? d.address.function : static_cast<unsigned>(i);
                auto& dev = add("-device", "vfio-pci")
                                .set("host", d.address.str())
                                .set("id", "kvmgpu-hostpci" + std::to_string(index++))
                                .set("bus", bus)
                                .set("addr", "0x0." + std::to_string(guest_fn));
                dev.set_if(i == 0 && functions.size() > 1, "multifunction", "on");
                dev.set_if(d.vga, "x-vga", "on");
                dev.set_if(!d.rom.empty(), "romfile", d.rom.string());
                if (d.rombar) dev.set("rombar", *d.rombar ? "1" : "0");
            }
            ++port;
        }
        if (f_.mmio64_mb && ovmf())
            add("-fw_cfg").set("name", "opt/ovmf/X-PciMmio64Mb").set("string", std::to_string(*f_.mmio64_mb));
    }

    std::string display_device() const {
        if (!p_.display.device.empty()) return p_.display.device;
        return p_.display.type == DisplayType::none ? "none" : "vga";
    }

    void display() {
        const auto device = display_device();
        if (device == "vga") add("-device", "VGA").set("id", "kvmgpu-video");
        else if (device != "none") add("-device", device).set("id", "kvmgpu-video");
        const auto& d = p_.display;
        // An IPv6 address is written in brackets wherever a port follows it.
        const std::string host = d.listen.find(':') != std::string::npos ? "[" + d.listen + "]" : d.listen;
        if (d.type == DisplayType::vnc) {
            const unsigned port = d.port ? d.port : 5900;
            auto& vnc = add("-vnc", host + ":" + std::to_string(port - 5900));
            if (d.websocket) vnc.set("websocket", host + ":" + std::to_string(*d.websocket));
            // The password itself is set over QMP (set_password) before the guest runs: never on
            // the command line, where every user of the host could read it.
            if (d.vnc_password()) vnc.set("password", "on");
        } else if (d.type == DisplayType::spice) {
            add("-spice", "")
                .set("port", std::to_string(d.port ? d.port : 5930))
                .set("addr", d.listen)
                .set("disable-ticketing", "on");
        }
    }

    void disks() {
        bool scsi_controller = false;
        unsigned sata_port = 0;
        for (std::size_t i = 0; i < p_.disks.size(); ++i) {
            const auto& d = p_.disks[i];
            const std::string node = "kvmgpu-disk" + std::to_string(i);
            const bool ro = d.readonly || d.media == DiskMedia::cdrom;
            add("-blockdev", "")
                .set("driver", "file")
                .set("filename", d.path.string())
                .set("node-name", node + "-file")
                .set_if(ro, "read-only", "on");
            add("-blockdev", "")
                .set("driver", d.format == DiskFormat::qcow2 ? "qcow2" : "raw")
                .set("file", node + "-file")
                .set("node-name", node)
                .set_if(ro, "read-only", "on");
            const bool cd = d.media == DiskMedia::cdrom;
            Option dev{"-device", "", {}};
            switch (d.bus) {
                case DiskBus::virtio:
                    // Each virtio disk does its I/O in an iothread of its own, off QEMU's main
                    // loop ([cpu] iothread_pin pins them).
                    add("-object", "iothread").set("id", node + "-io");
                    dev.head = "virtio-blk-pci";
                    dev.set("iothread", node + "-io");
                    break;
                case DiskBus::nvme:
                    dev.head = "nvme";
                    dev.set("serial", "kvmgpu" + std::to_string(i));
                    break;
                case DiskBus::sata:
                    dev.head = cd ? "ide-cd" : "ide-hd";
                    dev.set("bus", "ide." + std::to_string(sata_port++));
                    break;
                case DiskBus::scsi:
                    if (!scsi_controller) {
                        add("-object", "iothread").set("id", "kvmgpu-scsi-io");
                        add("-device", "virtio-scsi-pci").set("id", "kvmgpu-scsi").set("iothread", "kvmgpu-scsi-io");
                        scsi_controller = true;
                    }
                    dev.head = cd ? "scsi-cd" : "scsi-hd";
                    dev.set("bus", "kvmgpu-scsi.0");
                    break;
            }
            dev.set("drive", node).set("id", node + "-dev").set("bootindex", std::to_string(i + 1));
            opts_.push_back(dev);
        }
    }

    void network() {
        const auto& n = p_.network;
        if (n.mode == NetworkMode::none) return;
        auto& netdev = add("-netdev", "");
        switch (n.mode) {
            case NetworkMode::user:
                netdev.head = "user";
                netdev.set("id", "kvmgpu-net0");
                // A VNC server inside the guest, reachable on the host's loopback only.
                if (const auto port = p_.display.guest_websocket)
                    netdev.set("hostfwd", "tcp:127.0.0.1:" + std::to_string(*port) + "-:" + std::to_string(*port));
                break;
            case NetworkMode::bridge:
                // QEMU may not start qemu-bridge-helper (-sandbox spawn=deny, no privileges): kvmgpu
                // ran it and QEMU inherits the tap in the bridge.
                if (!f_.bridge_tap_fd)
                    throw std::logic_error("build_argv: [network] mode = \"bridge\" without the tap's descriptor");
                netdev.head = "tap";
                netdev.set("id", "kvmgpu-net0").set("fd", std::to_string(*f_.bridge_tap_fd));
                break;
            case NetworkMode::tap:
                // script=no: kvmgpu runs no shell script; the tap must already exist.
                netdev.head = "tap";
                netdev.set("id", "kvmgpu-net0").set("ifname", n.tap).set("script", "no").set("downscript", "no");
                break;
            case NetworkMode::none: break;
        }
        add("-device", n.model).set("netdev", "kvmgpu-net0").set("mac", mac_address(p_)).set("id", "kvmgpu-nic0");
    }

    void usb() {
        const bool tablet = p_.display.type != DisplayType::none;
        if (p_.usb.empty() && !tablet) return;
        add("-device", "qemu-xhci").set("id", "kvmgpu-xhci");
        // An absolute pointer keeps a VNC/SPICE cursor where the viewer's is.
        if (tablet) add("-device", "usb-tablet").set("bus", "kvmgpu-xhci.0").set("id", "kvmgpu-tablet");
        for (std::size_t i = 0; i < p_.usb.size(); ++i)
            add("-device", "usb-host")
                .set("bus", "kvmgpu-xhci.0")
                .set("vendorid", hex(p_.usb[i].vendor, 4))
                .set("productid", hex(p_.usb[i].product, 4))
                .set("id", "kvmgpu-usb" + std::to_string(i));
    }

    void inputs() {
        for (std::size_t i = 0; i < p_.inputs.size(); ++i) {
            const auto& in = p_.inputs[i];
            add("-object", "input-linux")
                .set("id", "kvmgpu-input" + std::to_string(i))
                .set("evdev", in.evdev.string())
                .set_if(in.grab_all, "grab_all", "on")
                .set_if(in.grab_all, "repeat", "on")
                .set("grab-toggle", in.grab_toggle);
        }
    }

    void looking_glass() {
        const auto& lg = p_.looking_glass;
        if (!lg.enabled) return;
        const auto path = lg.shared_memory_path();
        add("-object", "memory-backend-file")
            .set("id", "kvmgpu-lg")
            .set("mem-path", path.string())
            .set("size", util::format_size(lg.shared_memory_bytes()))
            .set("share", "on");
        add("-device", "ivshmem-plain").set("memdev", "kvmgpu-lg").set("id", "kvmgpu-lg-dev");
    }

    void audio() {
        const auto& a = p_.audio;
        if (a.backend == AudioBackend::none) return;
        // QEMU 7.2 has no native PipeWire backend; PipeWire serves the PulseAudio protocol.
        const std::string& server = f_.audio_server.empty() ? a.server : f_.audio_server;
        add("-audiodev", "pa").set("id", "kvmgpu-snd").set_if(!server.empty(), "server", server);
        add("-device", "ich9-intel-hda").set("id", "kvmgpu-hda");
        add("-device", "hda-duplex").set("audiodev", "kvmgpu-snd").set("bus", "kvmgpu-hda.0");
    }

    void tpm() {
        if (!p_.tpm.enabled) return;
        add("-chardev", "socket").set("id", "kvmgpu-tpm-chr").set("path", f_.layout.swtpm_socket().string());
        add("-tpmdev", "emulator").set("id", "kvmgpu-tpm").set("chardev", "kvmgpu-tpm-chr");
        add("-device", "tpm-crb").set("tpmdev", "kvmgpu-tpm");
    }

    const Profile& p_;
    const HostFacts& f_;
    std::vector<Option> opts_;
};

}  // namespace


std::string mac_address(const profile::Profile& p) {
    if (!p.network.mac.empty()) return p.network.mac;
    std::uint32_t h = 2166136261u;  // FNV-1a: stable across versions and machines
    for (unsigned char c : p.name) h = (h ^ c) * 16777619u;
    char buf[18];
    std::snprintf(buf, sizeof buf, "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff);
    return buf;
}

std::vector<std::string> hyperv_flags(profile::Accel accel) {
    std::vector<std::string> flags{"hv-relaxed",  "hv-vapic",       "hv-spinlocks=0x1fff",
                                   "hv-time",     "hv-reset",       "hv-frequencies",
                                   "hv-runtime"};
    if (accel == profile::Accel::kvm)
        flags.insert(flags.end(), {"hv-vpindex", "hv-synic", "hv-stimer", "hv-tlbflush", "hv-ipi"});
    return flags;
}

std::vector<std::string> build_argv(const profile::Profile& p, const HostFacts& facts) {
    return Builder(p, facts).build();
}

}  // namespace kvmgpu::qemu
