#pragma once
// The host's next boot, as far as kvmgpu shapes it: the modprobe.d file that hands devices to
// vfio-pci by identity before their host drivers load (`kvmgpu isolate`), and the facts about
// the host's boot tools that say which steps the user still has to take.
//
// The file is kvmgpu's only when it says so and was not edited since: its first line is a
// marker, "# kvmgpu-managed: vm=NAME fnv1a64=HASH", where HASH is the FNV-1a 64-bit hash of
// every byte after that line. The hash finds edits (it is no protection against someone who
// wants to forge it: whoever can write /etc/modprobe.d owns the boot anyway). Keeping the proof
// in the file itself means it survives the reboot it is written for, where /run does not.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::host {

// Where `kvmgpu isolate` writes, as a host path (under the host root in use).
inline constexpr std::string_view kVfioModprobeConf = "/etc/modprobe.d/kvmgpu-vfio.conf";

// One device the file hands to vfio-pci.
struct IsolatedDevice {
    util::PciAddress address;
    std::uint16_t vendor = 0;
    std::uint16_t device = 0;
    std::string driver;  // bound when the file was made; empty: none
};

struct VfioModprobeConf {
    std::string vm;
    std::vector<IsolatedDevice> devices;
    // Modules vfio-pci must load before ("softdep MODULE pre: vfio-pci"), sorted.
    std::vector<std::string> softdeps;

    // "VVVV:DDDD" of every device, in device order, each once.
    std::vector<std::string> ids() const;
};

// "10de:2684"
std::string pci_id(std::uint16_t vendor, std::uint16_t device);

// The whole file, marker line first. Pure: the same configuration gives the same bytes.
std::string render_vfio_modprobe_conf(const VfioModprobeConf& conf);

// FNV-1a, 64 bits.
std::uint64_t fnv1a64(std::string_view text);

// Host drivers (module names) known to take a device of this vendor and class at boot: the
// GPU drivers of NVIDIA, AMD and Intel, snd_hda_intel for HD audio, and the USB-C functions of
// NVIDIA cards.
std::vector<std::string> known_host_drivers(std::uint16_t vendor, std::uint32_t class_code);

// The module a PCI driver comes from: the name `ROOT/sys/bus/pci/drivers/DRIVER/module` links
// to, else the driver's own name with '-' as '_' (sysfs spells some drivers differently from
// their module: "xhci_hcd" is in "xhci_pci").
std::string driver_module(const std::filesystem::path& root, const std::string& driver);

// The first of `names` found as an executable file in ROOT's sbin and bin directories, as a
// host path ("/usr/sbin/update-initramfs"); nullopt when none is.
std::optional<std::string> find_program(const std::filesystem::path& root, const std::vector<std::string>& names);

// "GenuineIntel", "AuthenticAMD" from ROOT/proc/cpuinfo; empty when unknown.
std::string cpu_vendor(const std::filesystem::path& root);

// What is at a path kvmgpu may write or remove.
enum class ManagedState {
    absent,       // nothing there
    intact,       // kvmgpu's file, unchanged since kvmgpu wrote it
    edited,       // kvmgpu's marker, but the content no longer matches its hash
    foreign,      // a regular file kvmgpu did not write
    symlink,      // a symbolic link: never followed, never replaced
    not_regular,  // a directory, a device, a fifo
};

struct ManagedFile {
    ManagedState state = ManagedState::absent;
    std::string vm;       // from the marker (intact or edited)
    std::string content;  // the bytes read (intact, edited, foreign)
};

// Looks at `file` without following a symbolic link at it.
ManagedFile inspect_managed_file(const std::filesystem::path& file);

// Why kvmgpu would not write or remove a file (exit 1): `code` is "foreign-file" (not kvmgpu's:
// another program's file, a symbolic link, a directory) or "file-edited".
struct ManagedFileRefused : util::RuntimeFailure {
    ManagedFileRefused(const std::string& message, std::string code) : util::RuntimeFailure(message, std::move(code)) {}
};

// Refuses (ManagedFileRefused) unless `file` is absent or kvmgpu's intact file for `vm`
// (nullopt: for any VM). What `write_managed_file` and `remove_managed_file` check first; the
// dry runs call it alone.
ManagedFile check_managed_file(const std::filesystem::path& file, const std::optional<std::string>& vm,
                               std::string_view doing);

enum class WriteOutcome { written, unchanged };

// Makes `content` (a rendered file, marker first) the whole of `file`, mode 0644: a temporary
// file in the same directory, fsynced, renamed over the target, the directory fsynced. The
// directory must exist. Refuses as check_managed_file(file, vm) does. A rename replaces a
// symbolic link swapped in after the check rather than following it.
WriteOutcome write_managed_file(const std::filesystem::path& file, const std::string& content, const std::string& vm);

// Removes `file` once check_managed_file(file, vm) allows it. False: there was nothing to remove.
bool remove_managed_file(const std::filesystem::path& file, const std::optional<std::string>& vm);

// Lines of other files in ROOT/etc/modprobe.d that set vfio-pci's ids (the kernel takes only
// the last ids= it is given, so two files fight): "FILE: LINE" with FILE a host path.
std::vector<std::string> other_vfio_ids_lines(const std::filesystem::path& root);

}  // namespace kvmgpu::host
