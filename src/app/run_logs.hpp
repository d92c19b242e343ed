#pragma once
// The logs a run keeps in STATE/NAME/logs (util/layout.hpp), beside QEMU's and swtpm's output,
// which their spawns write: every event of the run, and the lines kvmgpu adds to hooks.log.
#include <filesystem>
#include <string>
#include <vector>

#include "app/events.hpp"
#include "util/fd.hpp"

namespace kvmgpu::app {

// Every event of one run, one JSON object per line (docs/json.md), in events.log. Events
// recorded before the log directory exists (the check's) are held, up to kMaxHeld, and written
// when open() is called. Writing never fails the run: a log that cannot be written is a log
// with lines missing.
class EventLog {
public:
    static constexpr std::size_t kMaxHeld = 4096;

    void record(const Event& event);
    void open(const std::filesystem::path& file);

private:
    void write_line(const std::string& line) const;

    util::Fd fd_;
    std::vector<std::string> held_;
};

// Appends "[YYYY-MM-DD HH:MM:SS] text\n" to `file` (created 0600). Errors are ignored, as
// above.
void append_log_line(const std::filesystem::path& file, const std::string& text);

}  // namespace kvmgpu::app
