#include "cli/output.hpp"

#include <algorithm>
#include <ostream>

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

bool print_diagnostics(std::ostream& err, const profile::Diagnostics& diagnostics,
                       const std::string& file) {
    for (const auto& d : diagnostics) err << d.str() << "\n";
    const auto errors = std::count_if(diagnostics.begin(), diagnostics.end(), [](const auto& d) {
        return d.severity == profile::Severity::error;
    });
    if (errors == 0) return false;
    err << "kvmgpu: error: " << file << " has " << errors << (errors == 1 ? " error" : " errors")
        << "; fix " << (errors == 1 ? "it" : "them") << " and run again (nothing was changed)\n";
    return true;
}

}  // namespace kvmgpu::cli
