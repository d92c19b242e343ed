#include "preflight/check.hpp"

#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "host/bridge_tap.hpp"
#include "host/file_access.hpp"
#include "host/pci_ids.hpp"
#include "host/sysfs.hpp"
#include "preflight/audio.hpp"
#include "preflight/looking_glass.hpp"
#include "preflight/isolation.hpp"
#include "preflight/memlock.hpp"
#include "preflight/reset_quirks.hpp"
#include "util/text.hpp"

namespace kvmgpu::preflight {

using namespace kvmgpu::host;  // the host facts a profile is weighed against

namespace fs = std::filesystem;
using util::PciAddress;

std::string_view severity_name(Severity severity) {
    switch (severity) {
        case Severity::ok: return "ok";
        case Severity::warning: return "warning";
        case Severity::error: return "error";
    }
    return "?";
}

std::string Finding::text() const {
    std::string out = what;
    for (const std::string* part : {&why, &fix})
        if (!part->empty()) out += " " + *part;
    return out;
}

bool CheckResult::ok() const { return count(Severity::error) == 0; }

std::size_t CheckResult::count(Severity severity) const {
    return static_cast<std::size_t>(std::count_if(
        findings.begin(), findings.end(), [&](const Finding& f) { return f.severity == severity; }));
}

const Finding* CheckResult::find(std::string_view code) const {
    for (const Finding& f : findings)
        if (f.code == code) return &f;
    return nullptr;
}

fs::path resolve_host_path(const profile::Profile& profile, const fs::path& root,
                           const fs::path& path) {
    if (path.is_absolute()) return under(root, path);
    const fs::path joined = profile.file.parent_path() / path;
    return joined.is_absolute() ? under(root, joined) : joined;
}

BindPlan plan_binding(const profile::Profile& profile, const HostModel& host) {
    BindPlan plan;
    std::set<PciAddress> listed;
    for (const auto& d : profile.pci)
        if (listed.insert(d.address).second) plan.devices.push_back(d.address);
    std::set<PciAddress> added;
    for (const auto& d : profile.pci) {
        const PciDeviceInfo* info = host.find(d.address);
        if (!info || !info->iommu_group) continue;
        const IommuGroup* group = host.group(*info->iommu_group);
        if (!group) continue;
        for (const PciAddress& member : group->devices) {
            if (listed.count(member) || !member.same_slot(d.address)) continue;
            const PciDeviceInfo* m = host.find(member);
            // Another function of the same card goes along (a GPU's HDMI audio, its USB-C
            // controller); a chipset function never does, even when it shares the slot.
            if (m && !m->is_bridge() && !m->is_chipset()) added.insert(member);
        }
    }
    plan.auto_added.assign(added.begin(), added.end());
    plan.devices.insert(plan.devices.end(), plan.auto_added.begin(), plan.auto_added.end());
    return plan;
}

namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

std::uint64_t next_pow2(std::uint64_t v) {
    std::uint64_t p = 1;
    while (p < v) p <<= 1;
    return p;
}

// `PCI device "0000:01:00.1" (NVIDIA Corporation ..., driver "snd_hda_intel")`
std::string describe(const PciAddress& address, const HostModel& host) {
    std::string out = "PCI device " + util::quoted(address.str());
    if (const PciDeviceInfo* d = host.find(address)) {
        out += " (" + d->name() + ", ";
        out += d->driver.empty() ? std::string("no driver") : "driver " + util::quoted(d->driver);
        out += ")";
    }
    return out;
}

class Checker {
public:
    Checker(const profile::Profile& profile, const HostModel& host, const CheckOptions& options)
        : p_(profile), host_(host), o_(options) {}

    CheckResult run() {
        r_.plan = plan_binding(p_, host_);
        check_kvm();
        if (!p_.pci.empty()) {
            check_iommu();
            check_vfio_driver();
            check_devices();
            r_.release = plan_release(p_, host_, r_.plan.devices, r_.findings);
            check_groups();
            check_holders();
            check_locks();
            check_mmio();
        }
        check_hugepages();
        check_cpus();
        check_files();
        check_network();
        check_confinement();
        for (auto& f : looking_glass_findings(p_.looking_glass, host_.root, o_.looking_glass_owner, o_.looking_glass_user))
            r_.findings.push_back(std::move(f));
        for (auto& f : audio_findings(p_, host_.root, o_)) r_.findings.push_back(std::move(f));
        for (auto& f : isolation_findings(p_, host_.root, host_.online_cpus)) r_.findings.push_back(std::move(f));
        if (o_.memlock_raisable)
            for (auto& f : memlock_findings(p_, *o_.memlock_raisable, o_.memlock_hard)) r_.findings.push_back(std::move(f));
        return std::move(r_);
    }

private:
    void add(Severity s, std::string code, std::string what, std::string why = {},
             std::string fix = {}, std::optional<PciAddress> address = std::nullopt) {
        r_.findings.push_back(Finding{s, std::move(code), std::move(what), std::move(why),
                                      std::move(fix), address});
    }
    std::string path_text(const fs::path& rel) const { return util::quoted(under(host_.root, rel).string()); }

    void check_kvm() {
        const bool tcg = p_.machine.accel == profile::Accel::tcg;
        const Severity s = tcg ? Severity::warning : Severity::error;
        const std::string consequence =
            tcg ? "This profile uses accel = \"tcg\", so the VM runs without it, slowly."
                : "QEMU needs it for accel = \"kvm\".";
        if (!host_.kvm_exists) {
            add(s, "kvm-missing", path_text("/dev/kvm") + " does not exist.", consequence,
                "Enable virtualization (VT-x/AMD-V) in the firmware setup and load the module "
                "(`modprobe kvm_intel` or `modprobe kvm_amd`).");
        } else if (!host_.kvm_usable) {
            add(s, "kvm-unusable",
                path_text("/dev/kvm") + " cannot be opened read-write: " +
                    errno_text(host_.kvm_errno) + ".",
                consequence,
                "Run kvmgpu as root or add the user to the \"kvm\" group.");
        } else {
            add(Severity::ok, "kvm", path_text("/dev/kvm") + " is present and usable.");
        }
    }

    void check_iommu() {
        if (host_.iommu_present()) {
            std::string what = "The IOMMU is on (" + util::quoted(host_.iommu_units.front()) + " in " +
                               path_text("/sys/class/iommu") + ").";
            if (std::find(host_.iommu_cmdline.begin(), host_.iommu_cmdline.end(), "iommu=pt") !=
                host_.iommu_cmdline.end())
                what += " iommu=pt is set: host devices skip translation, passed devices keep it.";
            add(Severity::ok, "iommu", what);
            return;
        }
        const bool asked = std::any_of(
            host_.iommu_cmdline.begin(), host_.iommu_cmdline.end(), [](const std::string& w) {
                return w == "intel_iommu=on" || w == "amd_iommu=on";
            });
        std::string why = "PCI passthrough needs the IOMMU (Intel VT-d or AMD-Vi) to isolate the "
                          "device's DMA; without it the devices have no IOMMU groups.";
        std::string fix;
        if (asked) {
            why += " The kernel command line asks for it, so the firmware has it disabled or "
                   "the platform lacks it.";
            fix = "Enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup and reboot.";
        } else {
            fix = "Add intel_iommu=on (Intel) or amd_iommu=on (AMD) to the kernel command line "
                  "(" + path_text("/proc/cmdline") + " has neither), enable VT-d/AMD-Vi in the "
                  "firmware setup, and reboot.";
        }
        add(Severity::error, "iommu-off",
            "The IOMMU is off: " + path_text("/sys/class/iommu") + " is empty.", why, fix);
    }

    void check_vfio_driver() {
        if (host_.vfio_pci_driver) {
            add(Severity::ok, "vfio-pci", "The vfio-pci driver is loaded.");
            return;
        }
        add(Severity::error, "vfio-pci-missing",
            "The vfio-pci driver is not loaded: " + path_text("/sys/bus/pci/drivers/vfio-pci") +
                " does not exist.",
            "kvmgpu binds the passed devices to vfio-pci.", "Run `modprobe vfio-pci`.");
    }

    void check_devices() {
        for (std::size_t i = 0; i < p_.pci.size(); ++i) {
            const PciAddress& a = p_.pci[i].address;
            const PciDeviceInfo* d = host_.find(a);
            if (!d) {
                add(Severity::error, "pci-missing",
                    "PCI device " + util::quoted(a.str()) + " (pci[" + std::to_string(i) +
                        "]) does not exist on this host (no " +
                        path_text("/sys/bus/pci/devices/" + a.str()) + ").",
                    {},
                    "Check the address with `kvmgpu list` or `lspci -D` and fix the profile." +
                        moved_hint(p_.pci[i]),
                    a);
                continue;
            }
            check_identity(i, *d);
            if (host_.iommu_present() && !d->iommu_group) {
                add(Severity::error, "no-iommu-group",
                    describe(a, host_) + " has no IOMMU group.",
                    "vfio-pci can only take devices that the IOMMU isolates.",
                    "Check `dmesg` for IOMMU errors about the device.", a);
            }
        }
        for (const PciAddress& a : r_.plan.auto_added) {
            add(Severity::ok, "auto-added",
                describe(a, host_) + " is added to the devices to bind.",
                "It is another function of the same card, in the same IOMMU group, and vfio "
                "needs every device of a group.",
                "List it in a [[pci]] table to pass it to the guest too.", a);
        }
        for (const PciAddress& a : r_.plan.devices) {
            const PciDeviceInfo* d = host_.find(a);
            if (!d) continue;
            check_display(*d);
            check_vendor_reset(*d);
            if (d->reset_method && !d->reset_method->empty()) {
                add(Severity::ok, "reset-method",
                    describe(a, host_) + " resets by " + util::quoted(*d->reset_method) + " (" +
                        path_text("/sys/bus/pci/devices/" + a.str() + "/reset_method") + ").",
                    {}, {}, a);
            } else {
                add(Severity::warning, "no-reset",
                    describe(a, host_) + " has no reset method (" +
                        path_text("/sys/bus/pci/devices/" + a.str() + "/reset_method") +
                        (d->reset_method ? " is empty)." : " is missing)."),
                    "Without a reset the device may keep its state across VM restarts or fail "
                    "to start again.",
                    "Expect to reboot the host between VM runs, or use a vendor-reset module if "
                    "one exists for this card.",
                    a);
            }
        }
    }

    // "10de:2684 (NVIDIA Corporation AD102 [GeForce RTX 4090])", names from pci.ids when it
    // knows them. The expected identity is not in the host model, so this reads pci.ids itself;
    // only findings that name an identity need it. A model scanned without names (a launch)
    // gets ids only: the launch must not pay for reading pci.ids.
    std::string identity_text(const util::PciId& id) {
        if (!host_.names) return id.str();
        if (!ids_) ids_.emplace(PciIds::for_root(host_.root));
        const auto vendor = ids_->vendor(id.vendor);
        const auto device = ids_->device(id.vendor, id.device);
        std::string out = id.str();
        if (vendor && device) out += " (" + *vendor + " " + *device + ")";
        else if (vendor) out += " (" + *vendor + " device " + id.str().substr(5) + ")";
        return out;
    }
    std::string subsystem_text(const util::PciId& id) {
        if (!host_.names) return id.str();
        if (!ids_) ids_.emplace(PciIds::for_root(host_.root));
        const auto vendor = ids_->vendor(id.vendor);
        return id.str() + (vendor ? " (made by " + *vendor + ")" : "");
    }

    // " `kvmgpu list` shows 10de:2684 at "0000:02:00.0"." when the entry's id is elsewhere now.
    std::string moved_hint(const profile::PciDevice& entry) {
        const auto want = entry.expected_id();
        if (!want) return {};
        std::vector<std::string> at;
        for (const PciDeviceInfo& d : host_.devices)
            if (d.vendor == want->vendor && d.device == want->device && d.address != entry.address)
                at.push_back(util::quoted(d.address.str()));
        if (at.empty()) return {};
        std::string list;
        for (std::size_t i = 0; i < at.size(); ++i) list += (i ? ", " : "") + at[i];
        return " A device with id " + util::quoted(want->str()) + " is at " + list + " now.";
    }

    // The address must hold the device the profile names: a card added or a firmware update
    // can renumber the buses, and binding whatever sits there now (a disk controller, a NIC)
    // takes it from the host.
    void check_identity(std::size_t i, const PciDeviceInfo& d) {
        const profile::PciDevice& entry = p_.pci[i];
        const std::string entry_name = "[[pci]] #" + std::to_string(i + 1);
        const util::PciId found{d.vendor, d.device};
        const util::PciId found_sub{d.subsystem_vendor, d.subsystem_device};
        const auto want = entry.expected_id();
        if (!want) {
            if (entry.id) return;  // malformed: the validator said so
            add(Severity::warning, "no-identity",
                entry_name + " (PCI device " + util::quoted(d.address.str()) +
                    ") has no id, so kvmgpu cannot tell whether the address still holds the "
                    "device the profile means.",
                "A PCI address can change when a card is added or the firmware is updated; with "
                "an id, check and run refuse an address that holds another device.",
                "Add id = " + util::quoted(found.str()) + " to " + entry_name +
                    " (the device there now: " + d.name() + ").",
                d.address);
            return;
        }
        const auto want_sub = entry.expected_subsystem();
        const bool id_differs = *want != found;
        const bool sub_differs = want_sub && *want_sub != found_sub;
        if (!id_differs && !sub_differs) {
            add(Severity::ok, "identity",
                "PCI device " + util::quoted(d.address.str()) + " is " + found.str() +
                    (d.vendor_name.empty() ? std::string() : " (" + d.name() + ")") +
                    (want_sub ? ", subsystem " + found_sub.str() : std::string()) +
                    ", as " + entry_name + " expects.",
                {}, {}, d.address);
            return;
        }
        std::string what = "PCI device " + util::quoted(d.address.str()) + " is not the device " +
                           entry_name + " means: ";
        std::string fix;
        if (id_differs) {
            what += "the profile expects id " + identity_text(*want) + ", the host has " +
                    identity_text(found) + " there.";
            fix = "If the card moved, find its new address with `kvmgpu list` and update "
                  "address in " + entry_name + "." + moved_hint(entry) +
                  " If this is the device you mean, set id = " + util::quoted(found.str()) + ".";
        } else {
            what += "the profile expects subsystem " + subsystem_text(*want_sub) +
                    ", the host has " + identity_text(found) + " with subsystem " +
                    subsystem_text(found_sub) + " there.";
            fix = "If another board of the same model is meant now, set subsystem = " +
                  util::quoted(found_sub.str()) + " in " + entry_name +
                  "; otherwise find the card with `kvmgpu list` and update its address.";
        }
        add(Severity::error, "identity-mismatch", what,
            "Binding the wrong device to vfio-pci takes it away from the host (a disk "
            "controller or a network card, for instance); kvmgpu changes nothing until the "
            "profile and the host agree.",
            fix, d.address);
    }

    // A card of a family whose reset does not work needs vendor-reset, or it does not come
    // back after the VM until the host reboots.
    void check_vendor_reset(const PciDeviceInfo& d) {
        const auto family = vendor_reset_family(d.vendor, d.device);
        if (!family) return;
        const std::string file = "/sys/bus/pci/devices/" + d.address.str() + "/reset_method";
        const std::string use = "`echo device_specific > " + under(host_.root, file).string() + "`";
        const std::string card = describe(d.address, host_) + " is an AMD " + std::string(*family) + " GPU";
        const std::string why =
            "Cards of this family do not reset properly with the kernel's own methods: after the "
            "VM they stay unusable, for the host and for the next VM, until the host reboots.";
        if (!host_.vendor_reset_loaded) {
            add(Severity::warning, "vendor-reset-missing",
                card + " and the vendor_reset module is not loaded (no " +
                    path_text("/sys/module/vendor_reset") + ").",
                why,
                "Install vendor-reset (https://github.com/gnif/vendor-reset, e.g. through DKMS), "
                "load it with `modprobe vendor-reset`, and make the kernel use it with " + use +
                    " before the VM starts.",
                d.address);
            return;
        }
        if (d.reset_method && d.reset_method->rfind("device_specific", 0) != 0) {
            add(Severity::warning, "vendor-reset-unused",
                card + "; the vendor_reset module is loaded, but the kernel resets the card by " +
                    util::quoted(*d.reset_method) + " first.",
                why, "Make the kernel use vendor-reset with " + use + " before the VM starts.",
                d.address);
        }
    }

    void check_display(const PciDeviceInfo& d) {
        const std::string release = "[release] console = true (and display_manager = true when a desktop runs on it)";
        for (const Framebuffer& fb : host_.framebuffers) {
            if (fb.device != d.address || p_.release.console) continue;
            add(Severity::warning, "framebuffer",
                describe(d.address, host_) + " holds the host framebuffer fb" +
                    std::to_string(fb.index) + " (" + util::quoted(fb.driver) + ").",
                "The host console uses this GPU; unbinding it takes the console away and may "
                "fail while a display server holds it.",
                "Pass a GPU the host does not use, or let kvmgpu release it: " + release +
                    " in the profile (docs/profile.md).",
                d.address);
        }
        if (!d.boot_vga) return;
        std::string why = "The firmware initialised this GPU as the primary display";
        std::vector<std::string> generic;
        for (const Framebuffer& fb : host_.framebuffers)
            if (!fb.device) generic.push_back("fb" + std::to_string(fb.index) + " " + util::quoted(fb.driver));
        if (!generic.empty()) {
            why += " and a firmware framebuffer (";
            for (std::size_t i = 0; i < generic.size(); ++i) why += (i ? ", " : "") + generic[i];
            why += ") probably still holds its memory";
        }
        why += "; the guest may see a garbled or missing VBIOS image.";
        add(Severity::warning, "boot-vga", describe(d.address, host_) + " is the boot VGA device.",
            why,
            "Set another GPU as primary in the firmware setup, supply a clean ROM with "
            "rom = \"...\", or for a single-GPU host let kvmgpu release it: " + release + ".",
            d.address);
    }

    void check_groups() {
        std::set<PciAddress> binding(r_.plan.devices.begin(), r_.plan.devices.end());
        std::set<unsigned> seen;
        for (const PciAddress& a : r_.plan.devices) {
            const PciDeviceInfo* d = host_.find(a);
            if (!d || !d->iommu_group || !seen.insert(*d->iommu_group).second) continue;
            const unsigned id = *d->iommu_group;
            const IommuGroup* group = host_.group(id);
            if (!group) continue;
            bool viable = true;
            for (const PciAddress& m : group->devices) {
                if (binding.count(m)) continue;
                const PciDeviceInfo* member = host_.find(m);
                if (member && member->is_chipset()) {
                    // Even driverless, the host's chipset is not for a VM: vfio would own it.
                    viable = false;
                    add(Severity::error, "chipset-group",
                        "IOMMU group " + std::to_string(id) + " of PCI device " + util::quoted(a.str()) +
                            " also contains " + describe(m, host_) + ", a chipset function the host needs.",
                        "Passing " + util::quoted(a.str()) + " would hand its whole IOMMU group, the "
                            "host's chipset included, to vfio-pci.",
                        "Pass a device that has an IOMMU group without chipset functions (see `kvmgpu "
                            "list`); for storage, pass the disk with [[disk]] instead.",
                        m);
                    continue;
                }
                if (!member || member->is_bridge()) continue;
                const std::string& drv = member->driver;
                if (drv.empty() || drv == "vfio-pci" || drv == "pci-stub") continue;
                viable = false;
                add(Severity::error, "group-not-viable",
                    "IOMMU group " + std::to_string(id) + " of PCI device " + util::quoted(a.str()) +
                        " also contains " + describe(m, host_) +
                        ", which the profile does not list.",
                    "vfio can pass a device only when every non-bridge device of its group is "
                    "bound to vfio-pci or pci-stub or to no driver; the platform puts these "
                    "devices in one group because the PCIe path between them lacks ACS "
                    "isolation, so they could reach each other's memory.",
                    "Add " + util::quoted(m.str()) + " to the profile as a [[pci]] device, move the card "
                        "to a slot with its own group, or unbind " + util::quoted(m.str()) +
                        " from " + util::quoted(drv) + " if the host can do without it.",
                    m);
            }
            if (viable) {
                std::string members;
                for (const PciAddress& m : group->devices)
                    members += (members.empty() ? "" : ", ") + util::quoted(m.str());
                add(Severity::ok, "group",
                    "IOMMU group " + std::to_string(id) + " (" + members + ") can be passed whole.",
                    {}, {}, a);
            }
        }
    }

    // Each holder of a device in the plan is an error: the host's driver cannot let go of a
    // device in use, and an unbind would wait in the kernel for it, maybe until a reboot. The
    // launch refuses before it changes anything. A process that has several of a device's
    // nodes open is one finding.
    // A holder that the plan releases first ([release]) is said as ok with how; any other is an
    // error the launch stops at.
    void held(const Holder& h, std::string what, std::string why, std::string fix, std::optional<PciAddress> address) {
        if (auto by = released_by(h, p_, host_.release)) {
            add(Severity::ok, "held-released", std::move(what), *by, {}, address);
            return;
        }
        add(Severity::error, "device-held", std::move(what), std::move(why), std::move(fix), address);
    }

    void check_holders() {
        const HolderScan& scan = host_.holders;
        if (!scan.scanned) return;
        const std::set<PciAddress> binding(r_.plan.devices.begin(), r_.plan.devices.end());
        const std::string why =
            "The host's driver cannot let go of a device while it is in use, and an unbind would "
            "wait in the kernel until it is free, maybe until a reboot; kvmgpu does not unbind a "
            "device that is held.";
        const std::string release = "or let kvmgpu release it: see docs/profile.md [release].";
        std::size_t held_count = 0;
        for (std::size_t i = 0; i < scan.holders.size(); ++i) {
            const Holder& h = scan.holders[i];
            if (!binding.count(h.address)) continue;
            ++held_count;
            const std::string device = describe(h.address, host_) + " is in use: ";
            switch (h.kind) {
                case HolderKind::process: {
                    std::vector<std::string> nodes{h.node};
                    while (i + 1 < scan.holders.size() && scan.holders[i + 1].kind == h.kind &&
                           scan.holders[i + 1].address == h.address && scan.holders[i + 1].pid == h.pid)
                        nodes.push_back(scan.holders[++i].node);
                    std::string what = device + "process " + std::to_string(h.pid) + " " +
                                       util::quoted(h.command) + process_unit(h) + " has ";
                    for (std::size_t n = 0; n < nodes.size(); ++n)
                        what += (n == 0 ? "" : n + 1 == nodes.size() ? " and " : ", ") + util::quoted(nodes[n]);
                    held(h, what + " open.", why, stop_process(h) + ", " + release,
                        h.address);
                    break;
                }
                case HolderKind::service_process:
                    held(h,
                        device + util::quoted(h.command) + " (pid " + std::to_string(h.pid) +
                            (h.unit.empty() ? "" : ", unit " + util::quoted(h.unit)) + ") keeps the " + util::quoted("nvidia") +
                            " driver holding it" + (h.node.empty() ? "" : ", with " + util::quoted(h.node) + " open") + ".",
                        why, stop_process(h) + ", " + release, h.address);
                    break;
                case HolderKind::console:
                    held(h,
                        device + "the framebuffer console " + path_text(h.node) + " (" + util::quoted(h.command) +
                            ") is bound to its framebuffer " + util::quoted(h.detail) + ".",
                        why,
                        "Unbind the console: `echo 0 > " + under(host_.root, h.node + "/bind").string() + "`, " +
                            release,
                        h.address);
                    break;
                case HolderKind::firmware_framebuffer:
                    held(h,
                        device + "the firmware framebuffer " + util::quoted(h.command) + " has its " + h.detail +
                            " (" + path_text("/proc/iomem") + ").",
                        "While a firmware framebuffer claims that memory, vfio-pci cannot reserve the BAR "
                        "for the guest.",
                        release_firmware_framebuffer(h, release), h.address);
                    break;
                case HolderKind::module:
                    held(h,
                        device + "the kernel module " + util::quoted(h.command) + " (" + path_text(h.node) +
                            ") has " + h.detail + ".",
                        "The " + util::quoted("nvidia") + " driver cannot let go of a GPU while its "
                        "modules are in use; an unbind would wait until they are free.",
                        "End the programs that use it (the processes named above; as root, `fuser -v "
                        "/dev/nvidia* /dev/dri/*` lists them all), then unload it with `modprobe -r " +
                            h.command + "`, " + release,
                        h.address);
                    break;
            }
        }
        if (scan.processes_unknown()) {
            add(Severity::warning, "holders-unknown",
                "No process under " + path_text("/proc") + " could be read (" + std::to_string(scan.processes) +
                    " processes), so kvmgpu cannot tell which programs hold the devices.",
                "An unbind of a device that a program holds waits in the kernel until it is free.",
                "Run kvmgpu as root.");
        } else if (held_count == 0) {
            std::string what = "No process, console, firmware framebuffer or driver module holds the devices (read " +
                               std::to_string(scan.readable) + " of " + std::to_string(scan.processes) +
                               " processes";
            if (scan.readable < scan.processes) what += "; the others belong to other users, run as root to see them";
            what += ").";
            if (scan.iomem_hidden)
                what += " " + path_text("/proc/iomem") + " hides its addresses from this user, so firmware "
                        "framebuffers were not looked for.";
            add(Severity::ok, "not-held", what);
        }
    }

    // " (unit "sddm.service")" for a process in a unit; "" otherwise.
    static std::string process_unit(const Holder& h) {
        return h.unit.empty() ? std::string() : " (unit " + util::quoted(h.unit) + ")";
    }

    // A process in a system service is stopped through systemd (which would restart it after a
    // kill); anything else is ended by its pid.
    static std::string stop_process(const Holder& h) {
        if (h.unit.ends_with(".service") && !h.user_unit)
            return "Stop its service: `systemctl stop " + h.unit + "`";
        return "End it: `kill " + std::to_string(h.pid) + "`";
    }

    std::string release_firmware_framebuffer(const Holder& h, const std::string& release) const {
        const fs::path node(h.node);
        if (h.node.starts_with("/sys/bus/platform/drivers/"))
            return "Release it: `echo " + node.filename().string() + " > " +
                   under(host_.root, node.parent_path() / "unbind").string() + "`, " + release;
        // No driver to unbind (sysfb's own BOOTFB region): only the kernel command line helps.
        const std::string param = h.command == "efifb"    ? "video=efifb:off"
                                  : h.command == "vesafb" ? "video=vesafb:off"
                                                          : "initcall_blacklist=sysfb_init";
        return "Boot with " + param + " on the kernel command line (the kernel then sets up no firmware "
               "framebuffer) and reboot.";
    }

    void check_locks() {
        const std::string vm = o_.vm.empty() ? p_.name : o_.vm;
        const pid_t self = o_.self_pid ? o_.self_pid : ::getpid();
        std::set<PciAddress> binding(r_.plan.devices.begin(), r_.plan.devices.end());
        for (const DeviceLock& lock : o_.locks) {
            if (!binding.count(lock.address)) continue;
            // Ours only while its owner is alive: a dead owner with our pid was an earlier process
            // whose pid we reuse, and its lock is as stale as any other.
            if (lock.owner.vm == vm && lock.owner.pid == self && lock.alive) continue;
            const std::string who = "VM " + util::quoted(lock.owner.vm) + " (pid " +
                                    std::to_string(lock.owner.pid) + ")";
            if (lock.alive) {
                add(Severity::error, "reserved",
                    "PCI device " + util::quoted(lock.address.str()) + " is reserved by the running " +
                        who + ".",
                    lock.owner.vm == vm ? "Another instance of this VM is running."
                                        : "A device can be passed to one VM at a time.",
                    "Stop " + util::quoted(lock.owner.vm) + " (`kvmgpu stop " + lock.owner.vm +
                        "`) or remove the device from this profile.",
                    lock.address);
            } else {
                add(Severity::warning, "stale-lock",
                    "PCI device " + util::quoted(lock.address.str()) + " has a stale reservation by " +
                        who + ", which is no longer running.",
                    "That launcher ended without cleaning up; the reservation will be taken over.",
                    "Run `kvmgpu restore " + lock.owner.vm +
                        "` to put its devices back on their drivers.",
                    lock.address);
            }
        }
    }

    void check_mmio() {
        if (p_.firmware.type != profile::FirmwareType::ovmf) return;
        std::uint64_t sum = 0;
        for (const PciAddress& a : r_.plan.devices)
            if (const PciDeviceInfo* d = host_.find(a)) sum += d->mem64_bytes();
        r_.mmio64_bytes = sum;
        if (sum == 0) return;
        // Headroom: BARs are naturally aligned and OVMF places other devices in the same
        // window, so ask for twice the sum, rounded up to a power of two.
        const std::uint64_t want = next_pow2(2 * sum);
        if (want <= o_.ovmf_default_mmio64) return;
        r_.mmio64_mb = want / kMiB;
        add(Severity::ok, "mmio-window",
            "The passed devices have " + util::format_size(sum) + " of 64-bit BARs, more than "
                "OVMF's default " + util::format_size(o_.ovmf_default_mmio64) +
                " MMIO window fits with headroom.",
            "Without a larger window OVMF cannot map the BARs and the guest driver fails.",
            "kvmgpu sets X-PciMmio64Mb=" + std::to_string(*r_.mmio64_mb) +
                " (`-fw_cfg name=opt/ovmf/X-PciMmio64Mb,string=" +
                std::to_string(*r_.mmio64_mb) + "`).");
    }

    void check_hugepages() {
        const std::uint64_t page = p_.machine.hugepage_bytes();
        if (page == 0) return;
        const std::uint64_t needed = (p_.machine.memory + page - 1) / page;
        const std::string dir_rel =
            "/sys/kernel/mm/hugepages/hugepages-" + std::to_string(page / 1024) + "kB";
        const std::string size = util::format_size(page);
        const std::string cmdline = page == kGiB ? "default_hugepagesz=1G hugepagesz=1G hugepages="
                                                 : "hugepages=";
        const HugepagePool* pool = host_.hugepage_pool(page);
        if (!pool) {
            add(Severity::error, "hugepages-missing",
                "The host has no " + size + " hugepage pool (" + path_text(dir_rel) +
                    " does not exist).",
                "machine.hugepages asks for " + size + " pages; the CPU or kernel lacks them.",
                "Add " + cmdline + std::to_string(needed) +
                    " to the kernel command line, or use hugepages = \"2M\" or \"none\".");
            return;
        }
        if (pool->free < needed) {
            const std::uint64_t target = pool->total + (needed - pool->free);
            // The launch raises the pool itself (hugepages_step); the kernel may fall short
            // once memory is fragmented, 1G pages above all.
            add(page == kGiB ? Severity::warning : Severity::ok, "hugepages-raised",
                "The VM needs " + std::to_string(needed) + " free " + size + " hugepages for " +
                    util::format_size(p_.machine.memory) + " of memory and " +
                    path_text(dir_rel + "/free_hugepages") + " says " + std::to_string(pool->free) + " of " +
                    std::to_string(pool->total) + ": the launch raises the pool to " + std::to_string(target) +
                    (p_.machine.keep_hugepages ? " and keeps it (keep_hugepages)." : " and gives the pages back after."),
                page == kGiB ? "1G pages are seldom free once a host has run a while." : "",
                page == kGiB ? "Reserve them at boot: " + cmdline + std::to_string(target) + " on the kernel command line."
                             : "");
            return;
        }
        add(Severity::ok, "hugepages",
            std::to_string(pool->free) + " free " + size + " hugepages cover the " +
                std::to_string(needed) + " the VM needs.");
    }

    void check_cpus() {
        std::set<unsigned> reported;
        auto check_list = [&](const std::vector<unsigned>& cpus, const char* key) {
            for (unsigned cpu : cpus) {
                if (host_.cpu_online(cpu) || !reported.insert(cpu).second) continue;
                add(Severity::error, "cpu-offline",
                    std::string(key) + " names host CPU " + std::to_string(cpu) +
                        ", which is not online (" + path_text("/sys/devices/system/cpu/online") +
                        " lists " + util::quoted(format_cpu_list(host_.online_cpus)) + ").",
                    {}, "Pin to online CPUs only.");
            }
        };
        check_list(p_.cpu.pin, "cpu.pin");
        check_list(p_.cpu.emulator_pin, "cpu.emulator_pin");

        if (p_.cpu.threads != 2) return;
        std::set<std::vector<unsigned>> pairs;
        for (const auto& [cpu, siblings] : host_.thread_siblings)
            if (siblings.size() > 1) pairs.insert(siblings);
        if (pairs.empty()) {
            add(Severity::warning, "smt-none",
                "cpu.threads = 2, but the host CPUs have no SMT siblings.",
                "The guest will schedule as if vCPU pairs shared a core, which they do not.",
                "Set cpu.threads = 1.");
            return;
        }
        std::string host_pairs;
        for (const auto& p : pairs)
            host_pairs += (host_pairs.empty() ? "" : ", ") + util::quoted(format_cpu_list(p));
        for (std::size_t i = 0; i + 1 < p_.cpu.pin.size(); i += 2) {
            const unsigned a = p_.cpu.pin[i], b = p_.cpu.pin[i + 1];
            auto it = host_.thread_siblings.find(a);
            if (it != host_.thread_siblings.end() &&
                std::binary_search(it->second.begin(), it->second.end(), b) && a != b)
                continue;
            add(Severity::warning, "smt-pairs",
                "cpu.pin puts vCPUs " + std::to_string(i) + " and " + std::to_string(i + 1) +
                    " (one guest core, cpu.threads = 2) on host CPUs " + std::to_string(a) +
                    " and " + std::to_string(b) + ", which are not SMT siblings.",
                "The guest believes they share a core's caches; on different host cores they "
                "do not, which misleads its scheduler.",
                "Pin each pair of vCPUs to a pair of siblings; the host's pairs are " +
                    host_pairs + ".");
        }
    }

    void check_file(const fs::path& path, const std::string& key, const std::string& code,
                    const std::string& fix) {
        const fs::path resolved = resolve_host_path(p_, host_.root, path);
        std::error_code ec;
        if (fs::exists(resolved, ec)) return;
        add(Severity::error, code,
            key + " names " + util::quoted(path.string()) + ", which does not exist" +
                (resolved != path ? " (looked for " + util::quoted(resolved.string()) + ")" : "") + ".",
            {}, fix);
    }

    void check_files() {
        if (p_.firmware.type == profile::FirmwareType::ovmf) {
            const bool secure = p_.firmware.secure_boot;
            const fs::path code = !p_.firmware.code.empty() ? p_.firmware.code
                                  : o_.ovmf.code_for(secure);
            const fs::path vars = !p_.firmware.vars.empty() ? p_.firmware.vars
                                  : o_.ovmf.vars_for(secure);
            const std::string fix = "Install OVMF (`apt install ovmf`) or fix the path.";
            check_file(code, p_.firmware.code.empty() ? "The default firmware.code" : "firmware.code",
                       "firmware-missing", fix);
            check_file(vars, p_.firmware.vars.empty() ? "The default firmware.vars" : "firmware.vars",
                       "firmware-missing", fix);
        }
        for (std::size_t i = 0; i < p_.pci.size(); ++i)
            if (!p_.pci[i].rom.empty())
                check_file(p_.pci[i].rom, "pci[" + std::to_string(i) + "].rom", "rom-missing",
                           "Dump the card's ROM or fix the path.");
        for (std::size_t i = 0; i < p_.inputs.size(); ++i)
            check_file(p_.inputs[i].evdev, "input[" + std::to_string(i) + "].evdev",
                       "evdev-missing",
                       "Pick a device from /dev/input/by-id/ (plugged in, ending in -event-kbd "
                       "or -event-mouse).");
    }

    // [network] mode = "bridge": kvmgpu runs qemu-bridge-helper to open the tap (it checks
    // /etc/qemu/bridge.conf itself, and its refusal reaches the launch's error); here, that it
    // is installed and that the bridge exists.
    void check_network() {
        if (p_.network.mode != profile::NetworkMode::bridge) return;
        const fs::path helper = under(host_.root, host::kDefaultBridgeHelper);
        struct stat st {};
        if (::stat(helper.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & S_IXUSR) == 0)
            add(Severity::error, "bridge-helper-missing",
                "[network] mode = \"bridge\" needs " + util::quoted(helper.string()) + ", which is not installed.",
                "kvmgpu runs it to open a tap in the bridge and hands the tap to QEMU.",
                "Install QEMU's helper (`apt install qemu-system-common`), or use mode = \"tap\" or \"user\".");
        const std::string bridge = p_.network.bridge;
        std::error_code ec;
        if (!fs::is_directory(under(host_.root, "/sys/class/net/" + bridge + "/bridge"), ec))
            add(Severity::error, "bridge-missing",
                "[network] bridge = " + util::quoted(bridge) + " is not a bridge on this host" +
                    (fs::exists(under(host_.root, "/sys/class/net/" + bridge), ec) ? " (it is another kind of interface)."
                                                                                  : " (there is no such interface)."),
                {},
                "Create the bridge with the host's network configuration (`ip link add " + bridge +
                    " type bridge` lasts until a reboot), or name an existing one (`ip -br link show type bridge`).");
    }

    // Who QEMU runs as and whether it is sandboxed (docs/security.md).
    void check_confinement() {
        const auto& sec = p_.security;
        if (!sec.sandbox)
            add(Severity::warning, "sandbox-off", "QEMU runs without its seccomp filter ([security] sandbox = false).",
                "A guest that breaks out of QEMU may then make any system call QEMU's user may make.",
                "Remove sandbox = false from [security].");
        if (!o_.as_root) return;
        if (sec.runs_as_root()) {
            add(Severity::warning, "qemu-runs-as-root", "QEMU and swtpm run as root ([security] user = \"root\").",
                "A guest that breaks out of QEMU then owns the host.",
                "Create the user kvmgpu (see docs/security.md) and remove user = \"root\" from [security].");
            return;
        }
        const std::string name = util::quoted(sec.user);
        if (!o_.qemu_user) {
            const std::string groups = o_.kvm_group ? " --groups kvm" : "";
            add(Severity::error, "qemu-user-missing",
                "QEMU and swtpm run as the user " + name + " ([security] user), and there is no such user.",
                "kvmgpu runs as root, and does not run a VM's QEMU as root unless the profile says so.",
                "Create it as the package does: `useradd --system --user-group" + groups +
                    " --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin " + sec.user +
                    "`; or write user = \"root\" in [security] to opt out.");
            return;
        }
        const auto& user = *o_.qemu_user;
        if (user.uid == 0)
            add(Severity::warning, "qemu-runs-as-root",
                "QEMU and swtpm run as " + name + ", whose uid is 0: that is root.",
                "A guest that breaks out of QEMU then owns the host.", "Name an unprivileged system user in [security] user.");
        else
            add(Severity::ok, "qemu-user",
                "QEMU and swtpm run as " + name + " (uid " + std::to_string(user.uid) + ", gid " + std::to_string(user.gid) + ").");
        if (p_.machine.accel == profile::Accel::kvm && host_.kvm_usable) {
            struct stat st {};
            if (::stat(under(host_.root, "/dev/kvm").c_str(), &st) == 0 && !host::allows(st, user, host::Access::read_write))
                add(Severity::error, "qemu-user-no-kvm",
                    "The user " + name + " cannot open " + path_text("/dev/kvm") + " read-write.",
                    "QEMU runs as that user and needs it for accel = \"kvm\".",
                    "Add it to the group of /dev/kvm: `usermod --append --groups " + util::group_name(st.st_gid) + " " +
                        sec.user + "`.");
        }
    }

    const profile::Profile& p_;
    const HostModel& host_;
    const CheckOptions& o_;
    CheckResult r_;
    std::optional<PciIds> ids_;  // read on first use
};

}  // namespace

CheckResult check(const profile::Profile& profile, const HostModel& host,
                  const CheckOptions& options) {
    return Checker(profile, host, options).run();
}

void to_json(nlohmann::json& j, const Finding& f) {
    j = {{"severity", severity_name(f.severity)},
         {"code", f.code},
         {"what", f.what},
         {"why", f.why},
         {"fix", f.fix},
         {"address", f.address ? nlohmann::json(f.address->str()) : nlohmann::json(nullptr)}};
}

void to_json(nlohmann::json& j, const BindPlan& plan) {
    std::vector<std::string> devices, added;
    for (const auto& a : plan.devices) devices.push_back(a.str());
    for (const auto& a : plan.auto_added) added.push_back(a.str());
    j = {{"devices", devices}, {"auto_added", added}};
}

void to_json(nlohmann::json& j, const CheckResult& r) {
    // Each change as the journal will hold it, with what it is for.
    auto release = nlohmann::json::array();
    for (const auto& step : r.release) {
        nlohmann::json entry = step.change;
        entry["what"] = step.what;
        release.push_back(std::move(entry));
    }
    j = {{"ok", r.ok()},
         {"errors", r.count(Severity::error)},
         {"warnings", r.count(Severity::warning)},
         {"findings", r.findings},
         {"bind", r.plan},
         {"release", release},
         {"mmio64_bytes", r.mmio64_bytes},
         {"mmio64_mb", r.mmio64_mb ? nlohmann::json(*r.mmio64_mb) : nlohmann::json(nullptr)}};
}

}  // namespace kvmgpu::preflight
