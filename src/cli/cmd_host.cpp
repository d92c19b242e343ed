// The commands that read or change the host's PCI devices: list, check, bind, restore.
#include <cstdio>
#include <ostream>

#include "app/host_ops.hpp"
#include "app/profile_lookup.hpp"
#include "cli/command.hpp"
#include "cli/output.hpp"
#include "profile/validate.hpp"
#include "util/text.hpp"

namespace kvmgpu::cli {
namespace {

using nlohmann::json;

std::string hex(unsigned value, int width) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%0*x", width, value);
    return buf;
}

std::string marks(const host::PciDeviceInfo& d) {
    std::string m;
    auto add = [&](const char* word) { m += (m.empty() ? "  [" : ", ") + std::string(word); };
    if (d.is_display()) add("GPU");
    if (d.boot_vga) add("boot VGA");
    if (d.is_bridge()) add("bridge");
    if (d.driver == "vfio-pci") add("vfio-pci");
    if (!m.empty()) m += "]";
    return m;
}

const char* iommu_help =
    "the IOMMU is off, so there are no IOMMU groups and no device can be passed through. Turn it "
    "on: add intel_iommu=on (Intel) or amd_iommu=on (AMD) to the kernel command line, enable "
    "VT-d / AMD-Vi in the firmware setup, and reboot";

std::vector<util::PciAddress> parse_addresses(const std::vector<std::string>& words) {
    std::vector<util::PciAddress> out;
    for (const auto& w : words) {
        auto a = util::PciAddress::parse(w);
        if (!a)
            throw UsageError(util::quoted(w) + " is not a PCI address; write it as `kvmgpu list` shows it, e.g. 0000:01:00.0");
        out.push_back(*a);
    }
    return out;
}

}  // namespace

int list_command(Invocation& inv) {
    if (!inv.args.empty()) throw UsageError("usage: kvmgpu list [--json]");
    const auto model = app::scan(inv.ctx);
    if (inv.json) {
        // Who holds each device: one pass over /proc for all of them.
        const auto held = host::find_holders(inv.ctx.host_root, model.devices);
        json groups = json::array();
        for (const auto& g : model.groups) {
            json devices = json::array();
            for (const auto& a : g.devices) {
                const auto* d = model.find(a);
                if (!d) continue;
                json device = *d;
                device["holders"] = json::array();
                for (const auto& h : held.holders)
                    if (h.address == a) device["holders"].push_back(h);
                devices.push_back(std::move(device));
            }
            groups.push_back({{"group", g.id}, {"devices", devices}});
        }
        inv.out << json{{"iommu", model.iommu_present()},
                        {"groups", groups},
                        {"processes", held.processes},
                        {"processes_readable", held.readable}}.dump()
                << "\n";
    }
    if (!model.iommu_present()) return print_error(inv.out, inv.err, inv.json, iommu_help, failure, "iommu-off");
    if (inv.json) return ok;
    for (const auto& g : model.groups) {
        inv.out << "IOMMU group " << g.id << "\n";
        for (const auto& a : g.devices) {
            const auto* d = model.find(a);
            if (!d) continue;
            inv.out << "  " << a.str() << "  [" << hex(d->class_code >> 8, 4) << "] " << hex(d->vendor, 4) << ":"
                    << hex(d->device, 4) << (d->vendor_name.empty() ? "" : " " + d->name())
                    << "  driver: " << (d->driver.empty() ? "none" : d->driver)
                    << marks(*d) << "\n";
        }
    }
    return ok;
}

int check_command(Invocation& inv) {
    if (inv.args.size() != 1) throw UsageError("usage: kvmgpu check NAME|PROFILE [--json]");
    const auto found = app::find_profile(inv.ctx, inv.args.front());
    const auto file = found.file.string();
    auto loaded = profile::load_and_validate(file);
    if (profile::has_errors(loaded.diagnostics)) {
        if (inv.json) inv.out << json{{"ready", false}, {"diagnostics", to_json(loaded.diagnostics)}}.dump() << "\n";
        print_diagnostics(inv.err, loaded.diagnostics, file);
    }
    app::check_found_name(found, loaded.profile.name);
    const auto result = app::check_host(loaded.profile, inv.ctx);
    if (inv.json) {
        json j = result;
        j["ready"] = result.ok();
        j["diagnostics"] = to_json(loaded.diagnostics);
        inv.out << j.dump() << "\n";
        return result.ok() ? ok : failure;
    }
    print_diagnostics(inv.err, loaded.diagnostics, file);
    for (const auto& f : result.findings) {
        inv.out << preflight::severity_name(f.severity) << ": " << f.what << "\n";
        if (!f.why.empty()) inv.out << "    why: " << f.why << "\n";
        if (!f.fix.empty()) inv.out << "    fix: " << f.fix << "\n";
    }
    if (!result.plan.auto_added.empty()) {
        inv.out << "kvmgpu will also pass:";
        for (const auto& a : result.plan.auto_added) inv.out << " " << a.str();
        inv.out << " (other functions of the same card, in the same IOMMU group)\n";
    }
    const auto errors = result.count(preflight::Severity::error);
    const auto warnings = result.count(preflight::Severity::warning);
    inv.out << (result.ok() ? "ready" : "not ready") << ": " << errors << " error" << (errors == 1 ? "" : "s") << ", "
            << warnings << " warning" << (warnings == 1 ? "" : "s") << "\n";
    return result.ok() ? ok : failure;
}

void bind_options(po::options_description& desc) {
    desc.add_options()("name", po::value<std::string>()->default_value("manual")->value_name("NAME"),
                       "journal name to bind under; `kvmgpu restore NAME` gives the devices back");
}

int bind_command(Invocation& inv) {
    if (inv.args.empty()) throw UsageError("usage: kvmgpu bind ADDRESS... [--name NAME]");
    const auto devices = parse_addresses(inv.args);
    const auto name = inv.options["name"].as<std::string>();
    const host::BindResult result = app::bind_by_hand(inv.ctx, name, devices);
    if (inv.json) inv.out << json(result).dump() << "\n";
    for (const auto& a : result.bound) inv.err << "binding " << a.str() << " → vfio-pci … ok\n";
    for (const auto& a : result.already_vfio) inv.err << "binding " << a.str() << " … already on vfio-pci\n";
    inv.err << "`kvmgpu restore " << name << "` gives them back\n";
    return ok;
}

void restore_options(po::options_description& desc) {
    desc.add_options()("all", "restore every journal (every VM's devices)");
}

int restore_command(Invocation& inv) {
    const bool all = inv.options.count("all") > 0;
    if (all == (inv.args.size() == 1) || inv.args.size() > 1)
        throw UsageError("usage: kvmgpu restore NAME | kvmgpu restore --all");
    const auto names = all ? app::journal_names(inv.ctx) : std::vector<std::string>{inv.args.front()};
    bool all_ok = true;
    json reports = json::object();
    for (const auto& name : names) {
        const auto r = app::restore_vm(inv.ctx, name);
        for (const auto& w : r.warnings) inv.err << "kvmgpu: warning: " << w << "\n";
        if (!r.refused.empty()) {
            print_error(inv.out, inv.err, inv.json, r.refused, failure, "still-running");
        } else {
            for (const auto& o : r.report.changes)
                inv.err << "restoring " << o.what << " … " << (o.ok ? "ok" : "failed") << ": " << o.message << "\n";
            for (const auto& o : r.report.devices)
                if (o.working) inv.err << "checking " << o.what << " … " << (*o.working ? "ok" : "failed") << ": " << o.health << "\n";
            if (r.report.changes.empty()) inv.err << "\"" << name << "\" has no devices to restore\n";
            reports[name] = r.report;
        }
        all_ok = all_ok && r.ok();
    }
    if (inv.json) inv.out << reports.dump() << "\n";
    return all_ok ? ok : failure;
}

}  // namespace kvmgpu::cli
