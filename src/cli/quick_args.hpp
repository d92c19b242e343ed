#pragma once
// The command lines scripts and people type most — `kvmgpu [globals] status|pause|resume|reset|
// stop NAME [--force] [--timeout S]` — read without Boost.Program_options, whose setup is a
// measurable part of a control command's time. Anything else, or anything unusual (a repeated
// option, a value that looks like an option, `--help`, `--`), is not accepted here and goes
// through the full parser, which also owns every error message. For what it accepts, the result
// is the full parser's (cli_test checks the two side by side).
#include <optional>
#include <string>
#include <vector>

namespace kvmgpu::cli {

struct QuickCommand {
    std::string command;  // status, pause, resume, reset or stop
    std::string name;     // the VM
    std::optional<std::string> runtime_dir, state_dir, host_root;
    bool json = false;
    bool force = false;              // stop only
    std::optional<unsigned> timeout;  // stop only
};

std::optional<QuickCommand> parse_quick(const std::vector<std::string>& args);

}  // namespace kvmgpu::cli
