#include "preflight/release_plan.hpp"

#include <algorithm>
#include <set>

#include "preflight/check.hpp"
#include "util/text.hpp"

namespace kvmgpu::preflight {

namespace {

using util::PciAddress;

class Planner {
public:
    Planner(const profile::Profile& p, const host::HostModel& h, const std::vector<PciAddress>& devices,
            std::vector<Finding>& findings)
        : p_(p), host_(h), devices_(devices.begin(), devices.end()), findings_(findings) {}

    std::vector<PlannedRelease> run() {
        const auto& rel = p_.release;
        if (rel.display_manager) services({host::ServiceStopped{kDisplayManagerUnit}}, "the display manager");
        std::vector<host::ServiceStopped> named;
        for (const auto& unit : rel.services) named.push_back({unit});
        services(named, "");
        if (rel.console) consoles();
        modules();
        return std::move(steps_);
    }

private:
    void add(Severity s, std::string code, std::string what, std::string why = {}, std::string fix = {}) {
        findings_.push_back(Finding{s, std::move(code), std::move(what), std::move(why), std::move(fix), std::nullopt});
    }

    void services(const std::vector<host::ServiceStopped>& units, const std::string& label) {
        if (units.empty()) return;
        for (const auto& u : units) {
            const std::string shown = label.empty() ? "the service " + util::quoted(u.unit)
                                                    : label + " (" + util::quoted(u.unit) + ")";
            if (!host_.release.systemd) {
                add(Severity::error, "release-no-systemd",
                    "[release] asks kvmgpu to stop " + shown + ", but systemd does not run this host (no " +
                        util::quoted(host::under(host_.root, "/run/systemd/system").string()) + ").",
                    "kvmgpu stops and starts services only through systemctl.",
                    "Stop it yourself before `kvmgpu run` (and start it after), and remove it from [release].");
                continue;
            }
            add(Severity::ok, "release-service", "kvmgpu will stop " + shown + " before binding, if it runs, and start it again after.");
            steps_.push_back({u, "", "stopping " + shown});
        }
    }

    bool card_draws_console() const {
        for (const auto& fb : host_.framebuffers)
            if (fb.device && devices_.count(*fb.device)) return true;
        return boot_vga();
    }
    bool boot_vga() const {
        return std::any_of(devices_.begin(), devices_.end(), [&](const PciAddress& a) {
            const auto* d = host_.find(a);
            return d && d->boot_vga;
        });
    }

    void consoles() {
        std::vector<std::string> released;
        std::set<std::string> seen;
        for (const auto& [bind, name] : consoles_to_release()) {
            if (!seen.insert(bind.string()).second) continue;
            steps_.push_back({host::SysfsValueChanged{bind, "1"}, "0", "unbinding the framebuffer console (" + name + ")"});
            released.push_back(name);
        }
        // The firmware's framebuffer lies in the boot GPU's memory until its device is unbound.
        for (const auto& fb : firmware_framebuffers_to_release()) {
            if (!seen.insert(fb.device).second) continue;
            steps_.push_back({fb, "", "releasing the firmware framebuffer " + util::quoted(fb.device)});
            released.push_back(fb.device);
        }
        if (released.empty())
            add(Severity::ok, "release-console", "[release] console: no console or firmware framebuffer uses the card; nothing to release.");
        else
            add(Severity::ok, "release-console",
                "kvmgpu will release " + util::join(released, ", ") + " before binding and bind them again after.",
                "The host's text console goes away while the VM runs (on every screen: the framebuffer console is one).");
    }

    // What holds the card, when the host scan could tell (holders.hpp); else the rule of thumb:
    // fbcon when a framebuffer of the card or the boot VGA is among the devices.
    bool holders_known() const { return host_.holders.scanned && !host_.holders.iomem_hidden; }

    std::vector<std::pair<std::filesystem::path, std::string>> consoles_to_release() const {
        std::vector<std::pair<std::filesystem::path, std::string>> out;
        if (holders_known()) {
            for (const auto& h : host_.holders.holders)
                if (h.kind == host::HolderKind::console && devices_.count(h.address))
                    out.emplace_back(std::filesystem::path(h.node) / "bind", std::filesystem::path(h.node).filename().string());
            return out;
        }
        if (!card_draws_console()) return out;
        for (const auto& c : host_.release.consoles)
            if (c.bound && c.framebuffer()) out.emplace_back(c.bind, c.bind.parent_path().filename().string());
        return out;
    }

    std::vector<host::DriverUnbound> firmware_framebuffers_to_release() const {
        std::vector<host::DriverUnbound> out;
        if (holders_known()) {
            const std::string platform = "/sys/bus/platform/drivers/";
            for (const auto& h : host_.holders.holders) {
                if (h.kind != host::HolderKind::firmware_framebuffer || !devices_.count(h.address)) continue;
                if (h.node.rfind(platform, 0) != 0) continue;  // BOOTFB: no driver to unbind
                const std::filesystem::path node = h.node;
                out.push_back({node.parent_path(), node.filename().string()});
            }
            return out;
        }
        if (boot_vga()) out = host_.release.firmware_framebuffers;
        return out;
    }

    void modules() {
        const auto& facts = host_.release.modules;
        std::set<std::string> listed;
        for (const auto& m : facts) listed.insert(m.name);
        std::vector<host::ModuleState> loaded;
        for (const auto& m : facts) {
            if (!m.loaded) {
                add(Severity::ok, "release-module", "The module " + util::quoted(m.name) + " is not loaded; nothing to unload.");
                continue;
            }
            bool ok = true;
            for (const auto& d : m.devices) {
                if (devices_.count(d)) continue;
                add(Severity::error, "module-in-use",
                    "The module " + util::quoted(m.name) + " also drives PCI device " + util::quoted(d.str()) +
                        ", which this VM does not take.",
                    "Unloading it would take that device from the host too.",
                    "Remove " + util::quoted(m.name) + " from [release] modules, or pass that device as well.");
                ok = false;
            }
            for (const auto& h : m.holders) {
                if (listed.count(h)) continue;
                add(Severity::error, "module-held",
                    "The module " + util::quoted(m.name) + " is used by the module " + util::quoted(h) +
                        ", which [release] modules does not list.",
                    "`modprobe -r` refuses a module another module uses.",
                    "Add " + util::quoted(h) + " to [release] modules (kvmgpu unloads users first).");
                ok = false;
            }
            if (ok) loaded.push_back(m);
        }
        const auto order = host::unload_order(loaded);
        for (const auto& name : order) steps_.push_back({host::ModuleUnloaded{name}, "", "unloading the module " + util::quoted(name)});
        if (!order.empty())
            add(Severity::ok, "release-module",
                "kvmgpu will unload " + util::join(order, ", ") + " before binding, in that order, and load them again after.");
    }

    const profile::Profile& p_;
    const host::HostModel& host_;
    std::set<PciAddress> devices_;
    std::vector<Finding>& findings_;
    std::vector<PlannedRelease> steps_;
};

}  // namespace

std::optional<std::string> released_by(const host::Holder& h, const profile::Profile& p, const host::ReleaseFacts& facts) {
    const auto& rel = p.release;
    using K = host::HolderKind;
    switch (h.kind) {
        case K::console:
            if (rel.console) return "[release] console unbinds it before the bind.";
            break;
        case K::firmware_framebuffer:
            if (rel.console && h.node.rfind("/sys/bus/platform/drivers/", 0) == 0)
                return "[release] console unbinds it before the bind.";
            break;
        case K::module:
            if (std::find(rel.modules.begin(), rel.modules.end(), h.command) != rel.modules.end())
                return "[release] modules unloads it before the bind.";
            break;
        case K::process:
        case K::service_process:
            if (!h.unit.empty() && std::find(rel.services.begin(), rel.services.end(), h.unit) != rel.services.end())
                return "[release] services stops " + util::quoted(h.unit) + " before the bind.";
            if (rel.display_manager && !h.user_unit &&
                (h.unit == kDisplayManagerUnit || (!facts.display_manager_unit.empty() && h.unit == facts.display_manager_unit)))
                return "[release] display_manager stops it before the bind.";
            if (rel.display_manager && h.unit.rfind("session-", 0) == 0 && h.unit.ends_with(".scope"))
                return "It runs in a desktop session, which ends with the display manager ([release] display_manager); "
                       "kvmgpu checks again before the bind and stops if it still holds the card.";
            break;
    }
    return std::nullopt;
}

std::vector<PlannedRelease> plan_release(const profile::Profile& profile, const host::HostModel& host,
                                         const std::vector<PciAddress>& devices, std::vector<Finding>& findings) {
    if (devices.empty()) return {};
    return Planner(profile, host, devices, findings).run();
}

}  // namespace kvmgpu::preflight
