// `kvmgpu init`: the host's GPUs, and a starter profile for one of them.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <ostream>

#include "app/init.hpp"
#include "cli/command.hpp"
#include "cli/output.hpp"
#include "util/pci_id.hpp"
#include "util/text.hpp"

namespace kvmgpu::cli {
namespace {

using nlohmann::json;

std::string id_text(const host::PciDeviceInfo& d) { return util::PciId{d.vendor, d.device}.str(); }

std::string describe(const host::PciDeviceInfo& d) {
    std::string out = d.address.str() + "  " + id_text(d) + (d.vendor_name.empty() ? "" : " " + d.name());
    out += "  driver: " + (d.driver.empty() ? std::string("none") : d.driver);
    return out;
}

void print_gpus(std::ostream& out, const app::InitResult& r) {
    if (r.gpus.empty()) out << "No GPU on this host.\n";
    else out << (r.gpus.size() == 1 ? "GPU" : "GPUs") << " on this host:\n";
    for (std::size_t i = 0; i < r.gpus.size(); ++i) {
        const auto& g = r.gpus[i];
        out << (r.chosen == i ? "* " : "  ") << describe(g.gpu);
        out << "  " << (g.gpu.iommu_group ? "IOMMU group " + std::to_string(*g.gpu.iommu_group) : "no IOMMU group");
        if (g.gpu.boot_vga) out << "  [boot VGA]";
        out << "\n";
        for (const auto& f : g.functions)
            if (f.address != g.gpu.address) out << "      " << describe(f) << "\n";
        if (!g.group_others.empty()) {
            out << "      its group also holds:";
            for (const auto& a : g.group_others) out << " " << a.str();
            out << "\n";
        }
    }
    if (!r.iommu)
        out << "The IOMMU is off, so there are no IOMMU groups; `kvmgpu check` on the profile explains how to "
               "turn it on.\n";
}

json to_json(const app::InitResult& r) {
    json gpus = json::array();
    for (const auto& g : r.gpus) {
        json others = json::array();
        for (const auto& a : g.group_others) others.push_back(a.str());
        gpus.push_back({{"address", g.gpu.address.str()},
                        {"id", id_text(g.gpu)},
                        {"name", g.gpu.name()},
                        {"driver", g.gpu.driver.empty() ? json(nullptr) : json(g.gpu.driver)},
                        {"boot_vga", g.gpu.boot_vga},
                        {"iommu_group", g.gpu.iommu_group ? json(*g.gpu.iommu_group) : json(nullptr)},
                        {"functions", g.functions},
                        {"group_others", others}});
    }
    return {{"iommu", r.iommu},
            {"gpus", gpus},
            {"chosen", r.chosen ? json(r.gpus[*r.chosen].gpu.address.str()) : json(nullptr)},
            {"name", r.name},
            {"profile", r.profile.empty() ? json(nullptr) : json(r.profile)},
            {"output", r.written.empty() ? json(nullptr) : json(r.written.string())}};
}

}  // namespace

void init_options(po::options_description& desc) {
    desc.add_options()
        ("gpu", po::value<std::string>()->value_name("ADDRESS"),
         "the GPU to write the profile for, as listed (needed when the host has several)")
        ("name", po::value<std::string>()->value_name("NAME"),
         "the VM's name (default: the output file's name without .toml, or \"vm\")")
        ("output,o", po::value<std::string>()->value_name("FILE"),
         "write the profile to FILE (default: print it on stdout)")
        ("force", "replace FILE when it exists");
}

int init_command(Invocation& inv) {
    if (!inv.args.empty())
        throw UsageError("usage: kvmgpu init [--gpu ADDRESS] [--name NAME] [--output FILE [--force]] [--json]");
    app::InitRequest request;
    if (inv.options.count("gpu")) {
        const auto text = inv.options["gpu"].as<std::string>();
        request.gpu = util::PciAddress::parse(text);
        if (!request.gpu)
            throw UsageError(util::quoted(text) + " is not a PCI address; write it as `kvmgpu init` lists it, e.g. 0000:01:00.0");
    }
    if (inv.options.count("name")) request.name = inv.options["name"].as<std::string>();
    if (inv.options.count("output")) request.output = inv.options["output"].as<std::string>();
    request.force = inv.options.count("force") > 0;
    if (request.force && request.output.empty()) throw UsageError("--force goes with --output FILE");

    const app::InitResult r = app::init(inv.ctx, request);
    if (inv.json) {
        inv.out << to_json(r).dump() << "\n";
    } else {
        // The list is for the person choosing; stdout carries only the profile, so that
        // `kvmgpu init > vm.toml` is a clean file.
        print_gpus(inv.err, r);
    }
    if (r.refused) throw *r.refused;
    if (inv.json) return ok;
    const auto& gpu = r.gpus[*r.chosen].gpu;
    if (r.written.empty()) {
        inv.out << r.profile;
        inv.err << "starter profile \"" << r.name << "\" for " << gpu.address.str() << " printed above\n";
    } else {
        inv.err << "wrote " << util::quoted(r.written.string()) << " for " << gpu.address.str()
                << "; next: kvmgpu check " << r.written.string() << "\n";
    }
    return ok;
}

}  // namespace kvmgpu::cli
