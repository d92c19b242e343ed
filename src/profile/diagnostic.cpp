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

}  // namespace kvmgpu::profile
