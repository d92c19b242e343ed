#include "profile/diagnostic.hpp"

#include <algorithm>

namespace kvmgpu::profile {

std::string Diagnostic::str() const {
    std::string out = file;
    if (pos.line) out += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
    out += severity == Severity::error ? ": error: " : ": warning: ";
    out += message;
    return out;
}

bool has_errors(const Diagnostics& diagnostics) {
    return std::any_of(diagnostics.begin(), diagnostics.end(),
                       [](const Diagnostic& d) { return d.severity == Severity::error; });
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
