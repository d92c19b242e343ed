#include "cli/report.hpp"

#include <nlohmann/json.hpp>

#include <ostream>
#include <sstream>

namespace kvmgpu::cli {
namespace {

// One text rendering per event; stdout stays free for what a script asked for.
struct TextRenderer {
    std::ostream& err;

    void operator()(const app::StepEvent& e) const {
        err << e.message << " … ";
        if (e.ok) {
            err << "ok";
            if (!e.detail.empty()) err << " (" << e.detail << ")";
        } else {
            err << "failed";
            if (!e.error.empty()) err << "\nkvmgpu: error: " << e.error;
            if (!e.detail.empty()) err << ": " << e.detail;
        }
        err << "\n";
    }
    void operator()(const app::FindingEvent& e) const {
        err << "kvmgpu: " << e.severity << ": " << e.message << "\n";
    }
    void operator()(const app::RunningEvent& e) const {
        err << "running: " << e.name << " (QEMU pid " << e.qemu_pid << "); `kvmgpu status|pause|resume|stop " << e.name
            << "` from another shell, Ctrl-C here stops it" << "\n";
    }
    void operator()(const app::PausedEvent& e) const { err << "paused: " << e.name << "\n"; }
    void operator()(const app::ResumedEvent& e) const { err << "resumed: " << e.name << "\n"; }
    void operator()(const app::StoppingEvent& e) const {
        if (e.reason == "qemu-exited") err << "QEMU has exited; giving everything back\n";
        else if (e.reason == "stop-requested") err << "stopping (`kvmgpu stop`" << (e.force ? ", forced" : "") << ")\n";
        else err << "stopping" << (e.force ? " now (forced)" : " (Ctrl-C again to force)") << "\n";
    }
    void operator()(const app::LogEvent& e) const {
        if (e.tail.empty()) {
            err << "QEMU's log is empty" << "\n";
            return;
        }
        err << "QEMU's log ends with:\n";
        std::size_t start = 0;
        while (start < e.tail.size()) {
            const auto nl = e.tail.find('\n', start);
            err << "  | " << e.tail.substr(start, nl - start) << "\n";
            if (nl == std::string::npos) break;
            start = nl + 1;
        }
    }
    void operator()(const app::StoppedEvent& e) const {
        err << "stopped: " << e.name << " (" << e.reason;
        if (!e.detail.empty()) err << ": " << e.detail;
        err << ")" << "\n";
        if (!e.hint.empty()) err << "kvmgpu: error: " << e.hint << "\n";
    }
    void operator()(const app::UnsupervisedEvent& e) const { err << "kvmgpu: error: " << e.message << "\n"; }
};

}  // namespace

app::Report make_reporter(std::ostream& out, std::ostream& err, bool json) {
    // One line per event, flushed: scripts act on each as it comes.
    if (json) return [&out](const app::Event& e) { out << nlohmann::json(e).dump() + "\n" << std::flush; };
    // Each event is composed first and written at once: stderr is unbuffered, and one write
    // keeps a line whole when other processes write to the same terminal.
    return [&err](const app::Event& e) {
        std::ostringstream text;
        std::visit(TextRenderer{text}, e);
        err << text.str() << std::flush;
    };
}

}  // namespace kvmgpu::cli
