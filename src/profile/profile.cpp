#include "profile/profile.hpp"

#include <bit>

namespace kvmgpu::profile {

bool is_loopback_address(const std::string& address) {
    return address == "localhost" || address == "::1" || address.rfind("127.", 0) == 0;
}

std::string Display::websocket_endpoint() const {
    if (type != DisplayType::vnc || !websocket) return "";
    std::string host = listen;
    if (host == "0.0.0.0" || host == "localhost") host = "127.0.0.1";
    else if (host == "::") host = "::1";
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    return host + ":" + std::to_string(*websocket);
}

bool Display::vnc_password() const {
    if (type != DisplayType::vnc) return false;
    return password == VncPassword::on || (password == VncPassword::automatic && !is_loopback_address(listen));
}

std::uint64_t LookingGlass::shared_memory_bytes() const {
    constexpr std::uint64_t MiB = std::uint64_t{1} << 20;
    if (!size_auto && size) return size;
    const std::uint64_t bytes_per_pixel = hdr ? 8 : 4;
    const std::uint64_t frames = std::uint64_t{width} * height * bytes_per_pixel * 2;
    return std::bit_ceil(frames + 10 * MiB);
}

std::filesystem::path LookingGlass::shared_memory_path() const {
    if (!path.empty()) return path;
    return backend == LookingGlassBackend::kvmfr ? "/dev/kvmfr0" : "/dev/shm/looking-glass";
}

std::uint64_t Machine::hugepage_bytes() const {
    switch (hugepages) {
        case Hugepages::none: return 0;
        case Hugepages::size_2m: return std::uint64_t{2} << 20;
        case Hugepages::size_1g: return std::uint64_t{1} << 30;
    }
    return 0;
}

std::optional<util::PciId> PciDevice::expected_id() const {
    return id ? util::PciId::parse(*id) : std::nullopt;
}

std::optional<util::PciId> PciDevice::expected_subsystem() const {
    return subsystem ? util::PciId::parse(*subsystem) : std::nullopt;
}

SourcePos Profile::where(const std::string& key_path) const {
    // A key not written in the file falls back to its table, then to the top of the file.
    std::string path = key_path;
    while (true) {
        if (auto it = positions.find(path); it != positions.end()) return it->second;
        const auto cut = path.find_last_of(".[");
        if (cut == std::string::npos) return {};
        path.resize(cut);
    }
}

}  // namespace kvmgpu::profile
