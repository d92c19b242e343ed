#pragma once
#include <string>
#include <vector>

#include "profile/profile.hpp"

namespace kvmgpu::profile {

enum class Severity { error, warning };

// One problem found in a profile: "profile.toml:12:9: error: …".
struct Diagnostic {
    Severity severity = Severity::error;
    std::string file;
    SourcePos pos;
    std::string key;  // the key path named, e.g. "cpu.hv_vendor_id"; empty for syntax errors
    std::string message;

    std::string str() const;
};

using Diagnostics = std::vector<Diagnostic>;

bool has_errors(const Diagnostics& diagnostics);

}  // namespace kvmgpu::profile
