#include "cli/report.hpp"

#include <ostream>

namespace kvmgpu::cli {

app::Report make_reporter(std::ostream& out, std::ostream& err, bool json) {
    if (json) {
        return [&out](const nlohmann::json& e) { out << e.dump() << std::endl; };
    }
    return [&err](const nlohmann::json& e) {
        const std::string event = e.value("event", "");
        if (event == "step") {
            err << e.value("message", "") << " … ";
            if (e.value("ok", false)) {
                err << "ok";
                if (e.contains("detail") && !e["detail"].get<std::string>().empty())
                    err << " (" << e["detail"].get<std::string>() << ")";
            } else {
                err << "failed";
                if (e.contains("error")) err << "\nkvmgpu: error: " << e["error"].get<std::string>();
                if (e.contains("detail")) err << ": " << e["detail"].get<std::string>();
            }
            err << std::endl;
        } else if (event == "finding") {
            err << "kvmgpu: " << e.value("severity", "") << ": " << e.value("message", "") << std::endl;
        } else if (event == "running") {
            const std::string name = e.value("name", "");
            err << "running: " << name << " (QEMU pid " << e.value("qemu_pid", 0)
                << "); `kvmgpu status|pause|resume|stop " << name << "` from another shell, Ctrl-C here stops it"
                << std::endl;
        } else if (event == "paused" || event == "resumed") {
            err << event << ": " << e.value("name", "") << std::endl;
        } else if (event == "stopping") {
            err << "stopping" << (e.value("force", false) ? " now (forced)" : " (Ctrl-C again to force)") << std::endl;
        } else if (event == "log") {
            const std::string tail = e.value("tail", "");
            if (tail.empty()) err << "QEMU's log is empty" << std::endl;
            else {
                err << "QEMU's log ends with:\n";
                std::size_t start = 0;
                while (start < tail.size()) {
                    const auto nl = tail.find('\n', start);
                    err << "  | " << tail.substr(start, nl - start) << "\n";
                    if (nl == std::string::npos) break;
                    start = nl + 1;
                }
            }
        } else if (event == "stopped") {
            err << "stopped: " << e.value("name", "") << " (" << e.value("reason", "");
            if (e.contains("detail")) err << ": " << e["detail"].get<std::string>();
            err << ")" << std::endl;
            if (e.contains("hint")) err << "kvmgpu: error: " << e["hint"].get<std::string>() << std::endl;
        } else if (event == "unsupervised") {
            err << "kvmgpu: error: " << e.value("message", "") << std::endl;
        } else {
            err << e.dump() << std::endl;
        }
    };
}

}  // namespace kvmgpu::cli
