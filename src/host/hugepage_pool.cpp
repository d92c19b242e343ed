#include "host/hugepage_pool.hpp"

#include <algorithm>
#include <string>

#include "host/sysfs.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;

HugepagePoolFiles hugepage_pool_files(std::uint64_t page_size, std::optional<unsigned> node) {
    const std::string name = "hugepages-" + std::to_string(page_size / 1024) + "kB";
    if (node) return {fs::path("/sys/devices/system/node") / ("node" + std::to_string(*node)) / "hugepages" / name};
    return {fs::path("/sys/kernel/mm/hugepages") / name};
}

std::optional<unsigned> numa_node_of(const fs::path& root, const std::vector<unsigned>& cpus) {
    if (cpus.empty()) return std::nullopt;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(under(root, "/sys/devices/system/node"), ec)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind("node", 0) != 0 || name.size() == 4 || name.size() > 8 ||
            name.find_first_not_of("0123456789", 4) != std::string::npos)
            continue;
        const auto text = read_attr(entry.path() / "cpulist");
        const auto node_cpus = text ? parse_cpu_list(*text) : std::nullopt;
        if (!node_cpus) continue;
        const bool all_here = std::all_of(cpus.begin(), cpus.end(), [&](unsigned cpu) {
            return std::find(node_cpus->begin(), node_cpus->end(), cpu) != node_cpus->end();
        });
        if (all_here) return static_cast<unsigned>(std::stoul(name.substr(4)));
    }
    return std::nullopt;
}

std::optional<std::uint64_t> read_page_count(const fs::path& root, const fs::path& file) {
    const auto text = read_attr(under(root, file));
    if (!text || text->empty() || text->size() > 18 || text->find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    return std::stoull(*text);
}

}  // namespace kvmgpu::host
