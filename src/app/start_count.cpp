#include "app/start_count.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "app/launch.hpp"
#include "util/fd.hpp"

namespace kvmgpu::app {
namespace {

namespace fs = std::filesystem;

fs::path starts_file(const Context& ctx, const std::string& vm) { return host_state_dir(ctx) / "starts" / vm; }

constexpr unsigned kMaxStarts = 1'000'000'000;

}  // namespace

unsigned previous_starts(const Context& ctx, const std::string& vm) {
    util::Fd fd(::open(starts_file(ctx, vm).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!fd) return 0;
    char text[16] = {};
    const ssize_t n = ::read(fd.get(), text, sizeof text - 1);
    if (n <= 0) return 0;
    unsigned starts = 0;
    for (ssize_t i = 0; i < n && text[i] != '\n'; ++i) {
        if (text[i] < '0' || text[i] > '9') return 0;
        starts = starts * 10 + static_cast<unsigned>(text[i] - '0');
        if (starts > kMaxStarts) return 0;
    }
    return starts;
}

void record_starts(const Context& ctx, const std::string& vm, unsigned starts) {
    const fs::path file = starts_file(ctx, vm);
    const fs::path temp = file.string() + ".new";
    fs::create_directories(file.parent_path());
    ::unlink(temp.c_str());
    util::Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    const std::string text = std::to_string(starts) + "\n";
    if (!fd || ::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
        ::rename(temp.c_str(), file.c_str()) != 0)
        throw std::runtime_error("cannot record the VM's starts in " + file.string() + ": " + std::strerror(errno));
}

}  // namespace kvmgpu::app
