#include "app/isolate.hpp"

#include <algorithm>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "app/host_ops.hpp"
#include "host/sysfs.hpp"
#include "preflight/check.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {

namespace fs = std::filesystem;

namespace {

std::string describe(const host::PciDeviceInfo& d) {
    return "PCI device " + util::quoted(d.address.str()) + " (" + d.name() + ", " +
           (d.driver.empty() ? std::string("no driver") : "driver " + util::quoted(d.driver)) + ")";
}

std::string profile_label(const profile::Profile& p) {
    return p.file.empty() ? "the profile \"" + p.name + "\"" : util::quoted(p.file.string());
}

// Drivers that are vfio-pci itself or hold a device for it; no softdep orders them.
bool vfio_side(const std::string& driver) { return driver == "vfio-pci" || driver == "pci-stub"; }

std::string join(const std::vector<std::string>& words, std::string_view sep) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : std::string(sep)) + w;
    return out;
}

}  // namespace

host::VfioModprobeConf isolation_for(const profile::Profile& profile, const host::HostModel& host) {
    const auto label = profile_label(profile);
    if (profile.pci.empty())
        throw HostInputError(label + " has no [[pci]] devices, so there is nothing to isolate; add the card, e.g. "
                             "[[pci]] address = \"0000:01:00.0\" (`kvmgpu list` shows the devices)");
    host::VfioModprobeConf conf;
    conf.vm = profile.name;
    std::set<std::string> softdeps;
    for (const auto& address : preflight::plan_binding(profile, host).devices) {
        const auto* d = host.find(address);
        if (!d)
            throw HostInputError(label + ": [[pci]] address " + util::quoted(address.str()) +
                                 " is not a PCI device of this host; fix the address (`kvmgpu list` shows the devices)");
        if (d->is_bridge() || d->is_chipset())
            throw HostInputError(label + ": [[pci]] address " + util::quoted(address.str()) + " is a " +
                                 (d->is_bridge() ? "PCI bridge" : "chipset function") +
                                 ", which vfio-pci does not take; list the devices behind it instead");
        conf.devices.push_back({address, d->vendor, d->device, d->driver});
        if (!d->driver.empty() && !vfio_side(d->driver) && d->driver != "pcieport")
            softdeps.insert(host::driver_module(host.root, d->driver));
        for (auto& m : host::known_host_drivers(d->vendor, d->class_code)) softdeps.insert(std::move(m));
    }
    conf.softdeps.assign(softdeps.begin(), softdeps.end());
    return conf;
}

std::vector<std::string> isolation_warnings(const profile::Profile& profile, const host::HostModel& host,
                                            const host::VfioModprobeConf& conf) {
    std::vector<std::string> out;
    const auto ids = conf.ids();
    std::set<util::PciAddress> planned;
    for (const auto& d : conf.devices) planned.insert(d.address);
    for (const auto& d : host.devices) {
        if (planned.count(d.address)) continue;
        const auto id = host::pci_id(d.vendor, d.device);
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) continue;
        std::string ours;
        for (const auto& p : conf.devices)
            if (host::pci_id(p.vendor, p.device) == id) ours += (ours.empty() ? "" : ", ") + util::quoted(p.address.str());
        out.push_back(describe(d) + " has the identity " + id + " too but is not in " + profile_label(profile) +
                      ": vfio-pci takes every device whose identity is in ids=, so at boot the host loses it as "
                      "well. ids= cannot tell identical devices apart; to keep that one, do not isolate by "
                      "identity: `kvmgpu run` binds by address (driver_override) at launch, or write vfio-pci to "
                      "/sys/bus/pci/devices/ADDRESS/driver_override for " + ours +
                      " early in boot (an initramfs script) instead");
    }
    for (const auto& line : host::other_vfio_ids_lines(host.root))
        out.push_back("another file sets vfio-pci's ids too (" + line +
                      "); the kernel keeps only the last ids= it is given, so one list wins; merge them into one "
                      "file or remove the other");
    std::istringstream words(host.kernel_cmdline);
    for (std::string w; words >> w;)
        if (w.rfind("vfio-pci.ids=", 0) == 0 || w.rfind("vfio_pci.ids=", 0) == 0)
            out.push_back("the kernel command line sets " + w +
                          " already; the kernel keeps only one ids= list, so remove that word once this file is "
                          "in place");
    for (const auto& p : conf.devices)
        if (const auto* d = host.find(p.address); d && d->boot_vga)
            out.push_back(describe(*d) + " is the boot VGA, the screen the firmware and the console use: once "
                          "vfio-pci takes it at boot the host shows nothing on it; make sure the host has another "
                          "GPU or is reachable over the network");
    return out;
}

std::vector<IsolateStep> isolation_steps(const host::HostModel& host, bool undo) {
    const auto& root = host.root;
    std::vector<IsolateStep> steps;
    if (!undo) {
        const auto vendor = host::cpu_vendor(root);
        const std::string iommu_word = vendor == "GenuineIntel"  ? "intel_iommu=on"
                                       : vendor == "AuthenticAMD" ? "amd_iommu=on"
                                                                  : "";
        std::set<std::string> have;
        std::istringstream in(host.kernel_cmdline);
        for (std::string w; in >> w;) have.insert(w);
        std::vector<std::string> wanted;
        if (!iommu_word.empty()) wanted.push_back(iommu_word);
        wanted.push_back("iommu=pt");
        std::vector<std::string> missing;
        for (const auto& w : wanted)
            if (!have.count(w)) missing.push_back(w);
        if (iommu_word.empty() && !have.count("intel_iommu=on") && !have.count("amd_iommu=on"))
            missing.insert(missing.begin(), "intel_iommu=on (Intel CPU) or amd_iommu=on (AMD CPU)");
        IsolateStep cmdline{"kernel-cmdline", !missing.empty(), {}};
        if (missing.empty()) {
            cmdline.text = "the kernel command line already has " + join(wanted, " ");
        } else {
            const auto words = join(missing, " ");
            std::string how;
            if (auto grubby = host::find_program(root, {"grubby"})) {
                how = "`grubby --update-kernel=ALL --args=\"" + words + "\"`";
            } else {
                const bool grub_file = fs::exists(host::under(root, "/etc/default/grub"));
                const auto update_grub = host::find_program(root, {"update-grub"});
                const auto mkconfig = host::find_program(root, {"grub2-mkconfig"});
                const std::string regen = update_grub ? "`update-grub`"
                                          : mkconfig  ? "`grub2-mkconfig -o /boot/grub2/grub.cfg`"
                                                      : "`update-grub` (Debian, Ubuntu) or "
                                                        "`grub2-mkconfig -o /boot/grub2/grub.cfg` (Fedora)";
                how = std::string(grub_file ? "" : "with GRUB: ") +
                      "add them to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, then run " + regen +
                      (grub_file ? "" : "; with another boot loader, add them where it keeps the command line");
            }
            cmdline.text = "add " + words + " to the kernel command line: " + how;
        }
        steps.push_back(std::move(cmdline));
    }
    const auto debian = host::find_program(root, {"update-initramfs"});
    const auto dracut = host::find_program(root, {"dracut"});
    // A GPU driver that loads from the initramfs is ordered by the softdep only when vfio-pci is
    // in the initramfs too; neither tool is sure to put it there on its own.
    std::string initramfs, early;
    if (debian && !dracut) {
        initramfs = "`update-initramfs -u`";
        early = "list vfio_pci in /etc/initramfs-tools/modules";
    } else if (dracut && !debian) {
        initramfs = "`dracut -f`";
        early = "add force_drivers+=\" vfio_pci \" to a file in /etc/dracut.conf.d/";
    } else {
        initramfs = "`update-initramfs -u` (Debian, Ubuntu) or `dracut -f` (Fedora)";
        early = "list vfio_pci in /etc/initramfs-tools/modules (Debian, Ubuntu) or add force_drivers+=\" vfio_pci \" "
                "to a file in /etc/dracut.conf.d/ (Fedora)";
    }
    steps.push_back({"initramfs", true,
                     "rebuild the initramfs, which carries a copy of /etc/modprobe.d: " + initramfs +
                         (undo ? "" : " (when a GPU driver loads from the initramfs, first " + early +
                                          ", so that vfio-pci is there before it)")});
    steps.push_back({"reboot", true,
                     undo ? "reboot: the host's drivers take the devices again (the kernel command line words may stay)"
                          : "reboot; then `kvmgpu list` shows the devices on vfio-pci"});
    return steps;
}

namespace {

fs::path conf_path(const Context& ctx) {
    const auto file = ctx.host(std::string(host::kVfioModprobeConf));
    const auto dir = file.parent_path();
    if (!fs::is_directory(dir))
        throw util::RuntimeFailure(util::quoted(dir.string()) +
                                       " does not exist or is not a directory; modprobe (kmod) reads its "
                                       "configuration there, and kvmgpu does not create it",
                                   "failed");
    return file;
}

}  // namespace

IsolateReport isolate(const profile::Profile& profile, const Context& ctx, bool dry_run) {
    const auto model = scan(ctx);
    IsolateReport r;
    r.vm = profile.name;
    r.dry_run = dry_run;
    r.conf = isolation_for(profile, model);
    r.content = host::render_vfio_modprobe_conf(r.conf);
    r.warnings = isolation_warnings(profile, model, r.conf);
    r.steps = isolation_steps(model, false);
    r.file = conf_path(ctx);
    if (dry_run) {
        const auto now = host::check_managed_file(r.file, r.vm, "writing");
        r.outcome = now.state == host::ManagedState::intact && now.content == r.content ? "unchanged" : "would-write";
    } else {
        r.outcome = host::write_managed_file(r.file, r.content, r.vm) == host::WriteOutcome::written ? "written"
                                                                                                     : "unchanged";
    }
    return r;
}

IsolateReport isolate_undo(const Context& ctx, const std::optional<std::string>& vm, bool dry_run) {
    IsolateReport r;
    r.undo = true;
    r.dry_run = dry_run;
    r.file = conf_path(ctx);
    const auto now = host::check_managed_file(r.file, vm, "removing");
    r.vm = now.state == host::ManagedState::intact ? now.vm : vm.value_or("");
    if (now.state == host::ManagedState::absent) {
        r.outcome = "absent";
        return r;
    }
    if (dry_run) r.outcome = "would-remove";
    else r.outcome = host::remove_managed_file(r.file, vm) ? "removed" : "absent";
    if (r.outcome != "absent") r.steps = isolation_steps(scan(ctx, false, false), true);
    return r;
}

void to_json(nlohmann::json& j, const IsolateStep& step) {
    j = {{"step", step.id}, {"needed", step.needed}, {"text", step.text}};
}

void to_json(nlohmann::json& j, const IsolateReport& r) {
    j = {{"file", r.file.string()}, {"vm", r.vm},           {"undo", r.undo},          {"dry_run", r.dry_run},
         {"outcome", r.outcome},    {"steps", r.steps},     {"warnings", r.warnings}};
    if (r.undo) return;
    nlohmann::json devices = nlohmann::json::array();
    for (const auto& d : r.conf.devices)
        devices.push_back({{"address", d.address.str()},
                           {"id", host::pci_id(d.vendor, d.device)},
                           {"driver", d.driver.empty() ? nlohmann::json(nullptr) : nlohmann::json(d.driver)}});
    j["devices"] = devices;
    j["ids"] = r.conf.ids();
    j["softdeps"] = r.conf.softdeps;
    j["content"] = r.content;
}

}  // namespace kvmgpu::app
