#pragma once
// A hugepage pool as the kernel shows it: the system-wide one of a page size
// (/sys/kernel/mm/hugepages/hugepages-2048kB) or a NUMA node's
// (/sys/devices/system/node/node0/hugepages/hugepages-2048kB), and the node a VM's pinned vCPUs
// live on. Paths are host paths; read them under the host root.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

namespace kvmgpu::host {

struct HugepagePoolFiles {
    std::filesystem::path dir;  // as on the host
    std::filesystem::path nr_hugepages() const { return dir / "nr_hugepages"; }
    std::filesystem::path free_hugepages() const { return dir / "free_hugepages"; }
};

// The pool of `page_size` bytes: a node's, or the system's when `node` is nullopt.
HugepagePoolFiles hugepage_pool_files(std::uint64_t page_size, std::optional<unsigned> node);

// The NUMA node that holds every CPU of `cpus` (/sys/devices/system/node/nodeN/cpulist), or
// nullopt when `cpus` is empty, spans nodes, or the host shows no nodes.
std::optional<unsigned> numa_node_of(const std::filesystem::path& root, const std::vector<unsigned>& cpus);

// A count file of a pool (nr_hugepages, free_hugepages) under `root`; nullopt if unreadable.
std::optional<std::uint64_t> read_page_count(const std::filesystem::path& root, const std::filesystem::path& file);

}  // namespace kvmgpu::host
