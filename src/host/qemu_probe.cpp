#include "host/qemu_probe.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "util/process.hpp"

namespace kvmgpu::host {
namespace {

// A file in /tmp for a child's output, removed with this object.
class ScratchFile {
public:
    ScratchFile() {
        char name[] = "/tmp/kvmgpu-probe-XXXXXX";
        const int fd = ::mkstemp(name);
        if (fd < 0) return;
        ::close(fd);
        path_ = name;
    }
    ~ScratchFile() {
        if (!path_.empty()) ::unlink(path_.c_str());
    }
    ScratchFile(const ScratchFile&) = delete;
    ScratchFile& operator=(const ScratchFile&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

bool is_driver_word(const std::string& line) {
    if (line.empty() || line.size() > 32) return false;
    for (char c : line)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
    return true;
}

}  // namespace

std::vector<std::string> parse_audio_drivers(const std::string& help_text) {
    std::vector<std::string> drivers;
    std::istringstream in(help_text);
    // A missing module shows as a "qemu: module … not found" line instead of its name.
    for (std::string line; std::getline(in, line);)
        if (is_driver_word(line)) drivers.push_back(line);
    return drivers;
}

std::optional<std::vector<std::string>> qemu_audio_drivers(const std::string& qemu, std::chrono::milliseconds timeout) {
    ScratchFile output;
    if (output.path().empty()) return std::nullopt;
    try {
        util::SpawnOptions options;
        options.log_file = output.path();
        auto child = util::spawn({qemu, "-nodefaults", "-audiodev", "help"}, options);
        const auto status = child.wait_for(timeout);
        if (!status || !util::exited_successfully(*status)) return std::nullopt;
    } catch (const std::exception&) {
        return std::nullopt;
    }
    std::ifstream in(output.path());
    std::ostringstream text;
    text << in.rdbuf();
    return parse_audio_drivers(text.str());
}

}  // namespace kvmgpu::host
