#pragma once
#include <iosfwd>
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

}  // namespace kvmgpu::cli
