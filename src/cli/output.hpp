#pragma once
// How the CLI shows profile problems: compiler-style lines for people, objects for --json.
#include <nlohmann/json.hpp>

#include <iosfwd>

#include "profile/diagnostic.hpp"

namespace kvmgpu::cli {

nlohmann::json to_json(const profile::Diagnostic& d);
nlohmann::json to_json(const profile::Diagnostics& diagnostics);

// Prints each diagnostic as "file:line:col: error: …" and, when any is an error, a closing
// "kvmgpu: error: …" line that counts them. Returns true when there were errors.
bool print_diagnostics(std::ostream& err, const profile::Diagnostics& diagnostics,
                       const std::string& file);

}  // namespace kvmgpu::cli
