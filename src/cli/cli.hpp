#pragma once
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace kvmgpu::cli {

// The whole command line tool: parses `args` (without argv[0]), runs the command, prints to
// `out`/`err`, and returns the exit code: 0 success, 1 runtime failure or not ready, 2 bad input.
// `env` looks up environment variables (the option twins), so tests can pass their own.
using Getenv = const char* (*)(const char*);
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        Getenv getenv_fn);

int main(int argc, char** argv);

// How a command line is read, for tests that hold the quick path (quick_args.hpp) to the full
// parser: the command, its words, the global options and stop's options. Nullopt when the
// chosen parser does not read it as a command (or, quick, does not take it at all).
struct ReadCommandLine {
    std::string command;
    std::vector<std::string> args;
    std::string runtime_dir, state_dir, host_root;
    bool json = false;
    bool force = false;
    std::optional<unsigned> timeout;
    bool operator==(const ReadCommandLine&) const = default;
};
std::optional<ReadCommandLine> read_command_line(const std::vector<std::string>& args, bool quick);

}  // namespace kvmgpu::cli
