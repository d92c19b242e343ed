#pragma once
// How the CLI shows profile problems: compiler-style lines for people, objects for --json.
#include <nlohmann/json_fwd.hpp>

#include <iosfwd>

#include "profile/diagnostic.hpp"

namespace kvmgpu::cli {

nlohmann::json to_json(const profile::Diagnostic& d);
nlohmann::json to_json(const profile::Diagnostics& diagnostics);

// Prints an error the way every command ends on one: "kvmgpu: error: MESSAGE" on `err`, and
// with --json also {"error": MESSAGE, "exit": EXIT, "code": CODE} as the last line on `out`.
// Returns `exit`.
int print_error(std::ostream& out, std::ostream& err, bool json, const std::string& message, int exit,
                const std::string& code);

// Only the JSON error object, for an error already shown to people another way.
void print_json_error(std::ostream& out, const std::string& message, int exit, const std::string& code);

// Prints each diagnostic as "file:line:col: error: …"; when any is an error, throws
// util::BadInput that counts them (the CLI prints it as the closing "kvmgpu: error: …" line).
void print_diagnostics(std::ostream& err, const profile::Diagnostics& diagnostics, const std::string& file);

}  // namespace kvmgpu::cli
