#include "cli/cli.hpp"

#include <signal.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "cli/command.hpp"
#include "cli/output.hpp"
#include "cli/quick_args.hpp"
#include "util/text.hpp"

namespace kvmgpu::cli {
namespace {

constexpr std::array commands{
    Command{"run", "NAME|PROFILE", "start a VM from a profile and supervise it (--dry-run: print the QEMU command)",
            "", run_options, run_command},
    Command{"check", "NAME|PROFILE", "check the host for a profile: IOMMU, groups, drivers, hugepages", "", nullptr, check_command},
    Command{"list", "", "list IOMMU groups and their PCI devices", "", nullptr, list_command},
    Command{"init", "", "list the GPUs and write a starter profile for one", "", init_options, init_command},
    Command{"ps", "", "list running VMs (--all: and the profiles defined by name)", "", ps_options, ps_command},
    Command{"status", "NAME", "show a VM's state", "", nullptr, status_command},
    Command{"pause", "NAME", "pause a VM's vCPUs", "", nullptr, pause_command},
    Command{"resume", "NAME", "resume a paused VM", "", nullptr, resume_command},
    Command{"stop", "NAME", "shut a VM down (ACPI power button, then quit)", "", stop_options, stop_command},
    Command{"reset", "NAME", "hard-reset a VM", "", nullptr, reset_command},
    Command{"qmp", "NAME JSON", "send one raw QMP command to a VM and print the reply", "", nullptr, qmp_command},
    Command{"events", "NAME", "stream a VM's QMP events", "", nullptr, events_command},
    Command{"console", "NAME", "serve a VM's screen in the browser (noVNC on loopback) and print the URL", "",
            console_options, console_command},
    Command{"bind", "ADDRESS...", "bind PCI devices to vfio-pci (with a restore journal)", "", bind_options, bind_command},
    Command{"restore", "[NAME | --all]", "give devices back to their host drivers", "", restore_options, restore_command},
    Command{"isolate", "PROFILE | --undo", "hand a dedicated card to vfio-pci from boot on (/etc/modprobe.d)", "",
            isolate_options, isolate_command},
};

const Command* find_command(std::string_view name) {
    for (const auto& c : commands)
        if (c.name == name) return &c;
    return nullptr;
}

struct Globals {
    std::string runtime_dir, host_root, state_dir;
    bool json = false;
};

// Options that every command takes, before or after the command word. Each has an
// environment twin; the option wins over the variable, the variable over the default.
po::options_description global_options(Globals& g) {
    po::options_description desc("Global options");
    desc.add_options()
        ("runtime-dir", po::value(&g.runtime_dir)->value_name("DIR"),
         "runtime state of running VMs (env KVMGPU_RUNTIME_DIR; default /run/kvmgpu, or "
         "$XDG_RUNTIME_DIR/kvmgpu when not root)")
        ("state-dir", po::value(&g.state_dir)->value_name("DIR"),
         "per-VM files that outlive a run, e.g. OVMF variables (env KVMGPU_STATE_DIR; default "
         "/var/lib/kvmgpu, or ~/.local/share/kvmgpu when not root)")
        ("host-root", po::value(&g.host_root)->value_name("DIR"),
         "read and write the host's sys, proc and dev under DIR (env KVMGPU_HOST_ROOT; default /)")
        ("json", po::bool_switch(&g.json), "machine-readable output")
        ("help,h", "show help")
        ("version", "show the version");
    return desc;
}

std::string env_or(Getenv getenv_fn, const char* name, const std::string& fallback) {
    const char* v = getenv_fn(name);
    return v && *v ? std::string(v) : fallback;
}

// Where `kvmgpu run NAME` looks for NAME.toml (app/profile_lookup.hpp): KVMGPU_PROFILE_PATH, a
// ':'-separated list, when set (tests, and users who keep profiles elsewhere); else the user's
// configuration directory (not root's: root's profiles are the system's, in /etc/kvmgpu), then
// /etc/kvmgpu.
std::vector<std::filesystem::path> profile_dirs(Getenv getenv_fn, bool root) {
    std::vector<std::filesystem::path> dirs;
    if (const char* path = getenv_fn("KVMGPU_PROFILE_PATH")) {
        std::string_view rest = path;
        while (!rest.empty()) {
            const auto colon = rest.find(':');
            if (const auto d = rest.substr(0, colon); !d.empty()) dirs.emplace_back(d);
            rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
        }
        return dirs;
    }
    if (!root) {
        const char* config = getenv_fn("XDG_CONFIG_HOME");
        const char* home = getenv_fn("HOME");
        if (config && *config == '/') dirs.push_back(std::filesystem::path(config) / "kvmgpu");
        else if (home && *home) dirs.push_back(std::filesystem::path(home) / ".config" / "kvmgpu");
    }
    dirs.emplace_back("/etc/kvmgpu");
    return dirs;
}

app::Context make_context(const Globals& g, Getenv getenv_fn) {
    app::Context ctx;
    const bool root = ::geteuid() == 0;
    std::string runtime_default = "/run/kvmgpu";
    std::string state_default = "/var/lib/kvmgpu";
    if (!root) {
        const char* xdg = getenv_fn("XDG_RUNTIME_DIR");
        runtime_default = xdg && *xdg ? std::string(xdg) + "/kvmgpu"
                                      : "/tmp/kvmgpu-" + std::to_string(::geteuid());
        const char* data = getenv_fn("XDG_DATA_HOME");
        const char* home = getenv_fn("HOME");
        state_default = data && *data ? std::string(data) + "/kvmgpu"
                        : home && *home ? std::string(home) + "/.local/share/kvmgpu"
                                        : runtime_default + "/state";
    }
    ctx.runtime_dir = !g.runtime_dir.empty() ? g.runtime_dir
                                             : env_or(getenv_fn, "KVMGPU_RUNTIME_DIR", runtime_default);
    ctx.state_dir = !g.state_dir.empty() ? g.state_dir
                                         : env_or(getenv_fn, "KVMGPU_STATE_DIR", state_default);
    ctx.host_root = !g.host_root.empty() ? g.host_root : env_or(getenv_fn, "KVMGPU_HOST_ROOT", "/");
    if (const char* sudo_user = getenv_fn("SUDO_USER"); root && sudo_user && *sudo_user && std::string(sudo_user) != "root")
        ctx.invoking_user = sudo_user;
    ctx.profile_dirs = profile_dirs(getenv_fn, root);
    return ctx;
}

void print_overview(std::ostream& out, const po::options_description& globals) {
    out << "kvmgpu " KVMGPU_VERSION " — a direct QEMU/KVM launcher for GPU passthrough\n\n"
           "Usage: kvmgpu [global options] <command> [options] [args]\n\nCommands:\n";
    for (const auto& c : commands) {
        std::string head = std::string(c.name) + (c.usage.empty() ? "" : " " + std::string(c.usage));
        head.resize(std::max<std::size_t>(head.size() + 2, 26), ' ');
        out << "  " << head << c.summary;
        if (!c.arrives.empty()) out << " [not available yet]";
        out << "\n";
    }
    out << "\n" << globals << "\n`kvmgpu help COMMAND` shows a command's options.\n"
        << "Exit codes: 0 success, 1 runtime failure or not ready, 2 bad input.\n";
}

void print_command_help(std::ostream& out, const Command& c, const po::options_description& globals) {
    out << "Usage: kvmgpu " << c.name << (c.usage.empty() ? "" : " ") << c.usage << " [options]\n\n"
        << c.summary << "\n";
    if (!c.arrives.empty())
        out << "\nNot available in this version yet; it arrives with the " << c.arrives << " work.\n";
    if (c.add_options) {
        po::options_description desc(std::string(c.name) + " options");
        c.add_options(desc);
        out << "\n" << desc;
    }
    out << "\n" << globals;
}

// The command word: the first word that is neither an option nor an option's value.
std::optional<std::size_t> command_index(const std::vector<std::string>& args,
                                         const po::options_description& globals) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        if (a == "--") return i + 1 < args.size() ? std::optional(i + 1) : std::nullopt;
        if (a.size() > 1 && a[0] == '-') {
            if (a.find('=') != std::string::npos) continue;
            const auto name = a.substr(a.find_first_not_of('-'));
            const auto* opt = globals.find_nothrow(name, false);
            if (opt && opt->semantic()->max_tokens() > 0) ++i;  // skip its value
            continue;
        }
        return i;
    }
    return std::nullopt;
}

// The words around the command word: the options (global and the command's) and its arguments.
std::vector<std::string> without(const std::vector<std::string>& args, std::size_t command) {
    std::vector<std::string> rest;
    for (std::size_t i = 0; i < args.size(); ++i)
        if (i != command) rest.push_back(args[i]);
    return rest;
}

// Whether --json is among the global options (before a "--" that ends them).
bool wants_json(const std::vector<std::string>& args) {
    for (const auto& a : args) {
        if (a == "--") return false;
        if (a == "--json") return true;
    }
    return false;
}

// The global options and the command's own, and its words, as the full parser reads them.
void read_options(const Command& cmd, const po::options_description& globals, const std::vector<std::string>& rest,
                  po::variables_map& options) {
    po::options_description all;
    all.add(globals);
    if (cmd.add_options) {
        po::options_description own(std::string(cmd.name) + " options");
        cmd.add_options(own);
        all.add(own);
    }
    all.add_options()("args", po::value<std::vector<std::string>>());
    po::positional_options_description pos;
    pos.add("args", -1);
    po::store(po::command_line_parser(rest).options(all).positional(pos).run(), options);
    po::notify(options);
}

int run_handler(const Command& cmd, const Globals& g, Invocation& inv, Getenv getenv_fn) {
    inv.ctx = make_context(g, getenv_fn);
    inv.json = g.json;
    inv.getenv = getenv_fn;
    if (!cmd.handler)
        throw util::RuntimeFailure("`kvmgpu " + std::string(cmd.name) +
                                       "` is not available in this version yet; it arrives with the " +
                                       std::string(cmd.arrives) + " work (`kvmgpu --help` shows what is available)",
                                   "not-available");
    return cmd.handler(inv);
}

// The quick path (quick_args.hpp): the same Invocation the full parser would make.
Invocation quick_invocation(const QuickCommand& q, Globals& g, std::ostream& out, std::ostream& err) {
    g.runtime_dir = q.runtime_dir.value_or("");
    g.state_dir = q.state_dir.value_or("");
    g.host_root = q.host_root.value_or("");
    g.json = q.json;
    Invocation inv{{}, false, {}, {q.name}, out, err, nullptr};
    if (q.command == "stop") {
        inv.options.insert({"timeout", po::variable_value(q.timeout.value_or(kDefaultStopTimeout), !q.timeout)});
        if (q.force) inv.options.insert({"force", po::variable_value(boost::any(std::string()), false)});
    }
    return inv;
}

int dispatch(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
             Getenv getenv_fn) {
    if (auto q = parse_quick(args)) {
        Globals g;
        auto inv = quick_invocation(*q, g, out, err);
        return run_handler(*find_command(q->command), g, inv, getenv_fn);
    }
    Globals g;
    auto globals = global_options(g);
    const auto ci = command_index(args, globals);
    if (!ci) {
        po::variables_map vm;
        po::store(po::command_line_parser(args).options(globals).run(), vm);
        po::notify(vm);
        if (vm.count("version")) {
            out << "kvmgpu " KVMGPU_VERSION "\n";
            return ok;
        }
        print_overview(vm.count("help") ? out : err, globals);
        return vm.count("help") ? ok : bad_input;
    }
    std::string name = args[*ci];
    const auto rest = without(args, *ci);

    if (name == "help") {
        po::variables_map vm;
        po::options_description all;
        all.add(globals);
        po::positional_options_description pos;
        pos.add("topic", -1);
        all.add_options()("topic", po::value<std::vector<std::string>>());
        po::store(po::command_line_parser(rest).options(all).positional(pos).run(), vm);
        if (!vm.count("topic")) {
            print_overview(out, globals);
            return ok;
        }
        const auto topic = vm["topic"].as<std::vector<std::string>>().front();
        const auto* c = find_command(topic);
        if (!c) throw UsageError("there is no command " + util::quoted(topic) + "; `kvmgpu --help` lists them");
        print_command_help(out, *c, global_options(g));
        return ok;
    }

    const Command* cmd = find_command(name);
    if (!cmd) {
        std::vector<std::string_view> names;
        for (const auto& c : commands) names.push_back(c.name);
        std::string msg = "there is no command " + util::quoted(name);
        if (auto s = util::closest_match(name, names)) msg += "; did you mean " + util::quoted(*s) + "?";
        else msg += "; `kvmgpu --help` lists them";
        throw UsageError(msg);
    }

    Invocation inv{{}, false, {}, {}, out, err, nullptr};
    read_options(*cmd, globals, rest, inv.options);
    if (inv.options.count("help")) {
        print_command_help(out, *cmd, global_options(g));
        return ok;
    }
    if (inv.options.count("args")) inv.args = inv.options["args"].as<std::vector<std::string>>();
    return run_handler(*cmd, g, inv, getenv_fn);
}


}  // namespace

std::optional<ReadCommandLine> read_command_line(const std::vector<std::string>& args, bool quick) {
    std::ostringstream sink;
    Globals g;
    std::string name;
    po::variables_map options;
    std::vector<std::string> words;
    if (quick) {
        auto q = parse_quick(args);
        if (!q) return std::nullopt;
        name = q->command;
        auto inv = quick_invocation(*q, g, sink, sink);
        options = inv.options;
        words = inv.args;
    } else {
        auto globals = global_options(g);
        const auto ci = command_index(args, globals);
        if (!ci) return std::nullopt;
        name = args[*ci];
        const auto* cmd = find_command(name);
        if (!cmd) return std::nullopt;
        read_options(*cmd, globals, without(args, *ci), options);
        if (options.count("args")) words = options["args"].as<std::vector<std::string>>();
    }
    ReadCommandLine r{name, words, g.runtime_dir, g.state_dir, g.host_root, g.json, options.count("force") > 0,
                      std::nullopt};
    if (options.count("timeout")) r.timeout = options["timeout"].as<unsigned>();
    return r;
}

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        Getenv getenv_fn) {
    // Known before the options are parsed, so that an error in the options is JSON too.
    const bool json = wants_json(args);
    try {
        return dispatch(args, out, err, getenv_fn);
    } catch (const util::Error& e) {
        return print_error(out, err, json, e.what(), e.exit_code(), e.code());
    } catch (const po::error& e) {
        return print_error(out, err, json, std::string(e.what()) + " (see `kvmgpu --help`)", bad_input, "usage");
    } catch (const std::exception& e) {
        return print_error(out, err, json, e.what(), failure, "failed");
    }
}

int main(int argc, char** argv) {
    // A closed pipe on stdout/stderr (`kvmgpu run | head`, a tee ended by Ctrl-C) must be an
    // error on that write, not the death of a supervisor that holds devices.
    ::signal(SIGPIPE, SIG_IGN);
    const int code = [&] {
        std::vector<std::string> args(argv + 1, argv + argc);
        return run(args, std::cout, std::cerr, [](const char* name) -> const char* { return std::getenv(name); });
    }();
    // Everything run() owned is gone by now (children reaped, devices back, files closed); what
    // is left are static destructors of libraries, a measurable part of a short command's time
    // that owns nothing of ours. Sanitizer builds exit normally, so that LeakSanitizer runs.
    std::cout.flush();
    std::cerr.flush();
#if !defined(__SANITIZE_ADDRESS__)
    ::_exit(code);
#endif
    return code;
}

}  // namespace kvmgpu::cli
