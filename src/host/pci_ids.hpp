#pragma once
// Vendor and device names from the pci.ids database (`usr/share/misc/pci.ids` under the root,
// from Debian's pciutils/pci.ids package). The file is optional: without it every lookup
// answers nullopt and callers show bare ids.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kvmgpu::host {

class PciIds {
public:
    // Nothing is read until the first lookup.
    explicit PciIds(std::filesystem::path file) : file_(std::move(file)) {}
    PciIds(PciIds&&) = default;
    PciIds& operator=(PciIds&&) = default;
    // The database of a host root: ROOT/usr/share/misc/pci.ids.
    static PciIds for_root(const std::filesystem::path& root);

    std::optional<std::string> vendor(std::uint16_t vendor);
    std::optional<std::string> device(std::uint16_t vendor, std::uint16_t device);

private:
    // The first lookup reads the file once (about 1.3 MB) and indexes only vendor lines; a
    // device lookup scans the few lines of its vendor's block.
    void load();

    // Offsets into text_, not views, so that moving a PciIds never leaves them dangling.
    struct VendorEntry {
        std::size_t name;
        std::size_t name_size;
        std::size_t block;  // offset of the line after the vendor line
    };
    std::filesystem::path file_;
    bool loaded_ = false;
    std::string text_;
    std::unordered_map<std::uint16_t, VendorEntry> vendors_;
};

}  // namespace kvmgpu::host
