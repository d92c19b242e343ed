#include "host/pci_ids.hpp"

#include <fstream>
#include <sstream>

#include "host/sysfs.hpp"

namespace kvmgpu::host {

namespace {

// "10de  NVIDIA Corporation" -> (0x10de, "NVIDIA Corporation"); the id is 4 hex digits and two
// spaces separate it from the name.
std::optional<std::pair<std::uint16_t, std::string_view>> parse_id_line(std::string_view line) {
    if (line.size() < 7 || line[4] != ' ' || line[5] != ' ') return std::nullopt;
    auto id = parse_hex(line.substr(0, 4));
    if (!id) return std::nullopt;
    return std::pair{static_cast<std::uint16_t>(*id), line.substr(6)};
}

}  // namespace

PciIds PciIds::for_root(const std::filesystem::path& root) {
    return PciIds(under(root, "usr/share/misc/pci.ids"));
}

void PciIds::load() {
    if (loaded_) return;
    loaded_ = true;
    std::ifstream in(file_, std::ios::binary);
    if (!in) return;
    std::ostringstream content;
    content << in.rdbuf();
    text_ = content.str();
    const std::string_view text = text_;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        const std::string_view line = text.substr(pos, end - pos);
        // Vendor lines start in column 0 with a hex id; the class section ("C 03  ...") ends
        // the vendor list.
        if (line.starts_with("C ")) break;
        if (!line.empty() && line[0] != '\t' && line[0] != '#') {
            if (auto parsed = parse_id_line(line))
                vendors_.try_emplace(parsed->first,
                                     VendorEntry{static_cast<std::size_t>(parsed->second.data() - text.data()),
                                                 parsed->second.size(), end + 1});
        }
        pos = end + 1;
    }
}

std::optional<std::string> PciIds::vendor(std::uint16_t vendor) {
    load();
    auto it = vendors_.find(vendor);
    if (it == vendors_.end()) return std::nullopt;
    return text_.substr(it->second.name, it->second.name_size);
}

std::optional<std::string> PciIds::device(std::uint16_t vendor, std::uint16_t device) {
    load();
    auto it = vendors_.find(vendor);
    if (it == vendors_.end()) return std::nullopt;
    const std::string_view text = text_;
    std::size_t pos = it->second.block;
    while (pos < text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        const std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        if (line.empty() || line[0] == '#') continue;
        if (line[0] != '\t') break;                   // the next vendor
        if (line.size() > 1 && line[1] == '\t') continue;  // a subsystem line
        if (auto parsed = parse_id_line(line.substr(1)); parsed && parsed->first == device)
            return std::string(parsed->second);
    }
    return std::nullopt;
}

}  // namespace kvmgpu::host
