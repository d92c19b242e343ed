#pragma once
// Plain structs for a VM profile. Defaults here are the documented defaults of
// docs/profile.md; the loader fills what the file says, the validator checks meaning.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "util/pci_address.hpp"
#include "util/pci_id.hpp"

namespace kvmgpu::profile {

enum class Accel { kvm, tcg };
enum class Hugepages { none, size_2m, size_1g };
enum class FirmwareType { ovmf, seabios };
enum class DiskFormat { raw, qcow2 };
enum class DiskBus { virtio, nvme, sata, scsi };
enum class DiskMedia { disk, cdrom };
enum class NetworkMode { user, bridge, tap, none };
enum class DisplayType { none, vnc, spice };
// [display] password: "auto" (a password when VNC listens beyond loopback), "on", "off".
enum class VncPassword { automatic, on, off };
enum class LookingGlassBackend { shm, kvmfr };
enum class AudioBackend { none, pipewire, pulseaudio };
enum class Rtc { utc, localtime };
// Where the passed devices' interrupts go while the VM runs; leave: where the host put them.
enum class IrqAffinity { leave, vm, host };

struct Machine {
    std::string type = "q35";
    Accel accel = Accel::kvm;
    std::uint64_t memory = 0;  // bytes; required
    Hugepages hugepages = Hugepages::none;
    // kvmgpu raises the pool by the pages it lacks at launch and gives them back after; true
    // keeps them for the next start.
    bool keep_hugepages = false;
    Rtc rtc = Rtc::utc;  // Windows guests expect localtime

    // Derived: the size of one hugepage in bytes (2 MiB or 1 GiB); 0 without hugepages.
    std::uint64_t hugepage_bytes() const;
};

struct Cpu {
    std::string model = "host";  // "host" becomes "max" under tcg
    unsigned sockets = 1;
    unsigned cores = 2;
    unsigned threads = 1;
    bool hide_kvm = false;                    // kvm=off
    std::optional<std::string> hv_vendor_id;  // 1..12 printable ASCII
    bool hyperv = false;                      // Hyper-V enlightenments
    std::vector<unsigned> pin;                // host CPU per vCPU
    std::vector<unsigned> emulator_pin;       // host CPUs for QEMU's other threads
    std::vector<unsigned> iothread_pin;       // host CPUs for the disks' iothreads
    // While the VM runs, the host's own tasks are kept off the CPUs in `pin` (cgroup cpusets).
    bool isolate = false;
    IrqAffinity irq_affinity = IrqAffinity::leave;
    bool realtime = false;           // vCPU threads SCHED_FIFO
    unsigned realtime_priority = 1;  // 1..99

    unsigned vcpus() const { return sockets * cores * threads; }
};

struct Firmware {
    FirmwareType type = FirmwareType::ovmf;
    std::filesystem::path code;  // empty: the Debian OVMF default for secure_boot
    std::filesystem::path vars;  // template; empty: the Debian default
    bool secure_boot = false;
};

struct PciDevice {
    util::PciAddress address;
    std::filesystem::path rom;  // empty: the card's own ROM
    std::optional<bool> rombar;
    bool vga = false;  // x-vga=on, for legacy VGA ranges (SeaBIOS guests)
    // The device the address must hold, as written: id = "10de:2684" (vendor:device) and
    // subsystem = "1043:8870" (subsystem vendor:device). nullopt: not given. The validator
    // checks the form; preflight refuses an address that now holds another device.
    std::optional<std::string> id;
    std::optional<std::string> subsystem;

    // Derived: the parsed identities; nullopt when not given or malformed.
    std::optional<util::PciId> expected_id() const;
    std::optional<util::PciId> expected_subsystem() const;
};

struct Disk {
    std::filesystem::path path;
    DiskFormat format = DiskFormat::raw;
    DiskBus bus = DiskBus::virtio;
    DiskMedia media = DiskMedia::disk;
    bool readonly = false;
};

struct Network {
    NetworkMode mode = NetworkMode::user;
    std::string bridge;  // mode = bridge
    std::string tap;     // mode = tap
    std::string mac;     // empty: derived from the VM name, stable across runs
    std::string model = "virtio-net-pci";
};

struct Usb {
    std::uint16_t vendor = 0;
    std::uint16_t product = 0;
};

struct Input {
    std::filesystem::path evdev;
    bool grab_all = false;
    std::string grab_toggle = "ctrl-ctrl";
};

struct Display {
    DisplayType type = DisplayType::none;
    std::string listen = "127.0.0.1";
    unsigned port = 0;                 // vnc: 5900 + display; spice: the port. 0: default
    std::optional<unsigned> websocket; // vnc only: websocket port for noVNC
    VncPassword password = VncPassword::automatic;
    // A port inside the guest where a WebSocket VNC server (websockify) listens: the user network
    // forwards 127.0.0.1:PORT on the host to it, and `kvmgpu console --guest` serves it.
    std::optional<unsigned> guest_websocket;
    // Emulated display adapter: "vga", "virtio-vga", "qxl-vga" or "none". Empty: "vga" when
    // type is vnc or spice, "none" otherwise (a passed-through GPU is the display).
    std::string device;

    // Derived: VNC asks for a password (QEMU's password=on; kvmgpu sets it over QMP): "on", or
    // "auto" with `listen` beyond loopback.
    bool vnc_password() const;
    // Derived: where a client on this host reaches the VNC WebSocket, "HOST:PORT" (a wildcard
    // `listen` is reached on loopback; IPv6 in brackets); empty without `websocket`.
    std::string websocket_endpoint() const;
};

// "127.0.0.1" (any 127.x), "::1" and "localhost".
bool is_loopback_address(const std::string& address);

struct LookingGlass {
    bool enabled = false;
    std::uint64_t size = 0;  // bytes; 0 with size_auto
    bool size_auto = true;
    unsigned width = 1920;
    unsigned height = 1080;
    bool hdr = false;
    LookingGlassBackend backend = LookingGlassBackend::shm;
    std::filesystem::path path;  // empty: /dev/shm/looking-glass or /dev/kvmfr0
    // Who runs the client: the shm file kvmgpu creates is theirs. Empty: the user who ran
    // kvmgpu through sudo (SUDO_USER), else kvmgpu's own user.
    std::string owner;

    // Derived: the shared memory the VM gets — the configured size, or for "auto" the frame
    // size (2 frames of WIDTHxHEIGHT at 4 bytes a pixel, 8 with HDR) + 10 MiB, rounded up to a
    // power of two, the rule of the Looking Glass documentation.
    std::uint64_t shared_memory_bytes() const;
    // Derived: the file QEMU maps: `path`, or /dev/shm/looking-glass (shm) / /dev/kvmfr0 (kvmfr).
    std::filesystem::path shared_memory_path() const;
};

struct Audio {
    AudioBackend backend = AudioBackend::none;
    std::string server;  // pulse server, e.g. "unix:/run/user/1000/pulse/native"
};

struct Tpm {
    bool enabled = false;
};

// Programs run at fixed points of a VM's life (docs/profile.md [hooks]), each an argv, never a
// shell string: prepare before anything on the host changes for the devices, prestart once they
// are on vfio-pci, poststop after everything was given back.
struct Hooks {
    std::vector<std::string> prepare;
    std::vector<std::string> prestart;
    std::vector<std::string> poststop;
    unsigned timeout_seconds = 120;  // a hook still running then is ended, and its step fails
};

// What kvmgpu may do to free a card the host is using, before it binds the card and undone after
// the card is back (docs/profile.md [release]). Everything is off unless the profile asks.
struct Release {
    bool display_manager = false;       // stop display-manager.service, start it again after
    bool console = false;               // unbind the framebuffer console and a firmware framebuffer
    std::vector<std::string> modules;   // unload ("nvidia_drm"), reload after; '-' read as '_'
    std::vector<std::string> services;  // stop, start after; "nvidia-persistenced" → ".service"
    bool any() const { return display_manager || console || !modules.empty() || !services.empty(); }
};

// How QEMU and swtpm are confined (docs/security.md). Safe unless the profile opts out.
struct Security {
    // The system user QEMU and swtpm run as when kvmgpu runs as root; "root" opts out (QEMU
    // then runs as root, and `check` warns). Ignored when kvmgpu does not run as root.
    std::string user = "kvmgpu";
    // QEMU's seccomp filter (-sandbox on,...); false opts out and `check` warns.
    bool sandbox = true;
    bool runs_as_root() const { return user == "root"; }
};

struct Qemu {
    std::string binary = "qemu-system-x86_64";
    std::vector<std::string> extra;
};

// Where in the profile file a key was written, for error messages.
struct SourcePos {
    std::uint32_t line = 0;
    std::uint32_t column = 0;
};

struct Profile {
    std::filesystem::path file;  // the profile file, as given
    std::string name;
    Machine machine;
    Cpu cpu;
    Firmware firmware;
    std::vector<PciDevice> pci;
    std::vector<Disk> disks;
    Network network;
    std::vector<Usb> usb;
    std::vector<Input> inputs;
    Display display;
    LookingGlass looking_glass;
    Audio audio;
    Tpm tpm;
    Hooks hooks;
    Release release;
    Security security;
    Qemu qemu;

    // Key path ("cpu.hv_vendor_id", "pci[1].address", "pci[1]") → where it was written.
    std::map<std::string, SourcePos> positions;
    SourcePos where(const std::string& key_path) const;
};

}  // namespace kvmgpu::profile
