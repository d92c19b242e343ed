#include "host/device_health.hpp"

#include <algorithm>
#include <fstream>
#include <system_error>
#include <thread>

#include "host/sysfs.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;

namespace {

fs::path device_dir(const fs::path& root, const util::PciAddress& address) {
    return under(root, "sys/bus/pci/devices") / address.str();
}

// "drm/card0" → "drm/card": what must exist again, whatever number the kernel gives it now.
std::string node_kind(const std::string& node) {
    auto end = node.size();
    while (end > 0 && node[end - 1] >= '0' && node[end - 1] <= '9') --end;
    return node.substr(0, end);
}

// The vendor id from config space: 0xffff when the device does not answer (it fell off the bus
// or is stuck in a state only a reset it lacks would clear); nullopt when unreadable.
std::optional<unsigned> config_vendor(const fs::path& dir) {
    std::ifstream in(dir / "config", std::ios::binary);
    unsigned char bytes[2];
    if (!in.read(reinterpret_cast<char*>(bytes), 2)) return std::nullopt;
    return static_cast<unsigned>(bytes[0] | (bytes[1] << 8));
}

std::vector<std::string> problems(const fs::path& root, const DeviceToVfio& entry) {
    std::vector<std::string> out;
    const auto addr = entry.address.str();
    const fs::path dir = device_dir(root, entry.address);
    std::error_code ec;
    if (!fs::exists(dir, ec)) {
        out.push_back("the device is gone from the bus (no " + util::quoted(dir.string()) +
                      "); `echo 1 > /sys/bus/pci/rescan` may find it again, else reboot");
        return out;
    }
    if (config_vendor(dir) == 0xffffu)
        out.push_back("the card did not come back from the VM: its config space reads 0xffff. It needs a reset "
                      "the kernel cannot do: try `echo 1 > /sys/bus/pci/devices/" + addr +
                      "/remove && echo 1 > /sys/bus/pci/rescan`, the vendor-reset module for AMD cards, or reboot");
    const auto driver = link_basename(dir / "driver");
    if (entry.driver && driver != entry.driver)
        out.push_back("it is on " + (driver ? util::quoted(*driver) : std::string("no driver")) + ", not on " +
                      util::quoted(*entry.driver) + " as before: `modprobe " + *entry.driver +
                      "`, or `echo " + addr + " > /sys/bus/pci/drivers/" + *entry.driver + "/bind`");
    const auto now = device_nodes(root, entry.address);
    for (const auto& before : entry.nodes) {
        const auto kind = node_kind(before);
        const auto found = std::find_if(now.begin(), now.end(), [&](const std::string& n) { return node_kind(n) == kind; });
        if (found == now.end()) {
            out.push_back("its " + kind + "* node is missing (it had " + util::quoted(before) +
                          "): the driver did not set the device up again; see `dmesg`");
            continue;
        }
        const auto node = dev_node(*found);
        if (!node.empty() && !fs::exists(under(root, node), ec))
            out.push_back(util::quoted(node.string()) + " is missing although the kernel has " + util::quoted(*found) +
                          ": udev has not created it; `udevadm trigger` creates it");
    }
    return out;
}

}  // namespace

std::vector<std::string> device_nodes(const fs::path& root, const util::PciAddress& address) {
    std::vector<std::string> nodes;
    const fs::path dir = device_dir(root, address);
    const std::pair<const char*, std::vector<const char*>> kinds[] = {
        {"drm", {"card", "renderD"}}, {"graphics", {"fb"}}, {"sound", {"card"}}};
    for (const auto& [sub, prefixes] : kinds)
        for (const auto& name : entry_names(dir / sub))
            for (const char* prefix : prefixes)
                if (numbered(name, prefix)) nodes.push_back(std::string(sub) + "/" + name);
    std::sort(nodes.begin(), nodes.end());
    return nodes;
}

fs::path dev_node(const std::string& class_node) {
    const auto slash = class_node.find('/');
    if (slash == std::string::npos) return {};
    const auto sub = class_node.substr(0, slash);
    const auto name = class_node.substr(slash + 1);
    if (sub == "drm") return fs::path("/dev/dri") / name;
    if (sub == "graphics") return fs::path("/dev") / name;
    if (sub == "sound" && name.rfind("card", 0) == 0) return fs::path("/dev/snd") / ("controlC" + name.substr(4));
    return {};
}

DeviceHealth check_device_back(const fs::path& root, const DeviceToVfio& entry, std::chrono::milliseconds wait) {
    DeviceHealth health;
    health.address = entry.address;
    const auto deadline = std::chrono::steady_clock::now() + wait;
    health.missing = problems(root, entry);
    // Nothing to wait on but the files: the kernel and udev give no event kvmgpu could block on.
    while (!health.missing.empty() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        health.missing = problems(root, entry);
    }
    health.working = health.missing.empty();
    const auto addr = util::quoted(entry.address.str());
    if (health.working) {
        health.message = "PCI device " + addr + " is back and working";
        if (entry.driver) health.message += " on " + util::quoted(*entry.driver);
        if (!entry.nodes.empty()) health.message += " (" + util::join(entry.nodes, ", ") + ")";
        health.message += ".";
    } else {
        health.message = "PCI device " + addr + " is not back in working order: " + util::join(health.missing, "; ") + ".";
    }
    return health;
}

}  // namespace kvmgpu::host
