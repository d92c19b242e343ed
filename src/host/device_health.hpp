#pragma once
// Whether a device given back after a VM is usable again: its config space answers, its
// original driver has it, and the nodes the host used it through (DRM card and render node,
// framebuffer, sound card) exist again. The nodes a device had are recorded before kvmgpu takes
// it (the device-to-vfio journal entry keeps them), so the check works after a crash too.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "host/host_change.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::host {

// The class nodes of a device as its sysfs directory lists them, sorted: "drm/card0",
// "drm/renderD128", "graphics/fb0", "sound/card0". Read under `root`.
std::vector<std::string> device_nodes(const std::filesystem::path& root, const util::PciAddress& address);

// The /dev node a class node is used through ("drm/card0" → "/dev/dri/card0", "graphics/fb0" →
// "/dev/fb0", "sound/card0" → "/dev/snd/controlC0"); empty for other names.
std::filesystem::path dev_node(const std::string& class_node);

struct DeviceHealth {
    util::PciAddress address;
    bool working = false;
    std::vector<std::string> missing;  // one sentence per problem, each with its fix
    std::string message;               // "back and working: …" or the problems joined
};

// Checks `entry`'s device now. Drivers probe and udev creates nodes a little after a bind or a
// module load, so a missing driver or node is polled for up to `wait` before it counts.
DeviceHealth check_device_back(const std::filesystem::path& root, const DeviceToVfio& entry,
                               std::chrono::milliseconds wait = std::chrono::milliseconds(3000));

}  // namespace kvmgpu::host
