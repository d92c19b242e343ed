#pragma once
// The shape every CLI command shares: its options, its words, and where it prints.
#include <boost/program_options.hpp>

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "app/context.hpp"
#include "cli/cli.hpp"
#include "util/error.hpp"

namespace kvmgpu::cli {

namespace po = boost::program_options;

enum Exit : int { ok = 0, failure = 1, bad_input = 2 };

// `kvmgpu stop`'s --timeout when not given: seconds the guest gets after the power button.
inline constexpr unsigned kDefaultStopTimeout = 60;

// Bad input found by the CLI itself: printed as "kvmgpu: error: …", exit 2.
struct UsageError : util::BadInput {
    explicit UsageError(const std::string& message) : util::BadInput(message, "usage") {}
};

struct Invocation {
    app::Context ctx;
    bool json = false;
    po::variables_map options;
    std::vector<std::string> args;  // positional words after the command
    std::ostream& out;
    std::ostream& err;
    Getenv getenv = nullptr;  // the process's environment (tests pass their own)
};

struct Command {
    std::string_view name;
    std::string_view usage;    // "PROFILE" — the words after the command
    std::string_view summary;  // one line for `kvmgpu --help`
    std::string_view arrives;  // empty when implemented; else the issue area it arrives with
    void (*add_options)(po::options_description&) = nullptr;
    int (*handler)(Invocation&) = nullptr;
};

// Commands implemented in cmd_*.cpp.
int run_command(Invocation& inv);
void run_options(po::options_description& desc);
int ps_command(Invocation& inv);
void ps_options(po::options_description& desc);
int status_command(Invocation& inv);
int pause_command(Invocation& inv);
int resume_command(Invocation& inv);
int reset_command(Invocation& inv);
int stop_command(Invocation& inv);
void stop_options(po::options_description& desc);
int qmp_command(Invocation& inv);
int events_command(Invocation& inv);
int list_command(Invocation& inv);
int check_command(Invocation& inv);
int bind_command(Invocation& inv);
void bind_options(po::options_description& desc);
int restore_command(Invocation& inv);
int init_command(Invocation& inv);
void init_options(po::options_description& desc);
void restore_options(po::options_description& desc);
int isolate_command(Invocation& inv);
int console_command(Invocation& inv);
void console_options(po::options_description& desc);
void isolate_options(po::options_description& desc);

}  // namespace kvmgpu::cli
