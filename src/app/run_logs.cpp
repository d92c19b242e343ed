#include "app/run_logs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>

#include <nlohmann/json.hpp>

namespace kvmgpu::app {
namespace {

util::Fd open_append(const std::filesystem::path& file) {
    return util::Fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
}

void write_all(int fd, const std::string& text) {
    std::size_t done = 0;
    while (fd >= 0 && done < text.size()) {
        const auto n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        done += static_cast<std::size_t>(n);
    }
}

std::string local_time_now() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    char text[32] = "?";
    if (::localtime_r(&now, &tm)) std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
    return text;
}

}  // namespace

void EventLog::record(const Event& event) {
    std::string line;
    try {
        line = nlohmann::json(event).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    } catch (const std::exception&) {
        return;
    }
    if (fd_) {
        write_line(line);
    } else if (held_.size() < kMaxHeld) {
        held_.push_back(std::move(line));
    }
}

void EventLog::open(const std::filesystem::path& file) {
    fd_ = open_append(file);
    for (const auto& line : held_) write_line(line);
    held_.clear();
}

void EventLog::write_line(const std::string& line) const { write_all(fd_.get(), line); }

void append_log_line(const std::filesystem::path& file, const std::string& text) {
    const auto fd = open_append(file);
    write_all(fd.get(), "[" + local_time_now() + "] " + text + "\n");
}

}  // namespace kvmgpu::app
