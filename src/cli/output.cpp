#include "cli/output.hpp"

#include <nlohmann/json.hpp>
#include <algorithm>
#include <ostream>

#include "util/error.hpp"

namespace kvmgpu::cli {

nlohmann::json to_json(const profile::Diagnostic& d) {
    return {{"severity", d.severity == profile::Severity::error ? "error" : "warning"},
            {"file", d.file},
            {"line", d.pos.line},
            {"column", d.pos.column},
            {"key", d.key},
            {"message", d.message}};
}

nlohmann::json to_json(const profile::Diagnostics& diagnostics) {
    auto out = nlohmann::json::array();
    for (const auto& d : diagnostics) out.push_back(to_json(d));
    return out;
}

void print_json_error(std::ostream& out, const std::string& message, int exit, const std::string& code) {
    nlohmann::json j = {{"error", message}, {"exit", exit}};
    if (!code.empty()) j["code"] = code;
    out << j.dump() << std::endl;
}

int print_error(std::ostream& out, std::ostream& err, bool json, const std::string& message, int exit,
                const std::string& code) {
    err << "kvmgpu: error: " << message << "\n";
    if (json) print_json_error(out, message, exit, code);
    return exit;
}

void print_diagnostics(std::ostream& err, const profile::Diagnostics& diagnostics, const std::string& file) {
    for (const auto& d : diagnostics) err << d.str() << "\n";
    const auto errors = std::count_if(diagnostics.begin(), diagnostics.end(), [](const auto& d) {
        return d.severity == profile::Severity::error;
    });
    if (errors == 0) return;
    throw util::BadInput(file + " has " + std::to_string(errors) + (errors == 1 ? " error" : " errors") + "; fix " +
                             (errors == 1 ? "it" : "them") + " and run again (nothing was changed)",
                         "invalid-profile");
}

}  // namespace kvmgpu::cli
