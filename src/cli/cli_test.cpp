#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cli/cli.hpp"
#include "temp_dir.hpp"
#include "util/user.hpp"
#include "util/text.hpp"

using namespace kvmgpu;
namespace fs = std::filesystem;

namespace {

const fs::path source_dir = KVMGPU_SOURCE_DIR;

struct Result {
    int code;
    std::string out, err;
};

// The environment the CLI sees in these tests: only what a case sets.
thread_local std::map<std::string, std::string> fake_env;
const char* fake_getenv(const char* name) {
    auto it = fake_env.find(name);
    return it == fake_env.end() ? nullptr : it->second.c_str();
}

Result invoke(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    fake_env = std::move(env);
    std::ostringstream out, err;
    const int code = kvmgpu::cli::run(args, out, err, fake_getenv);
    return {code, out.str(), err.str()};
}

using testing::TempDir;

fs::path write_file(const TempDir& dir, const std::string& name, const std::string& text) {
    std::ofstream(dir.path() / name) << text;
    return dir.path() / name;
}

// Every line of `out` as a JSON value.
std::vector<nlohmann::json> json_lines(const std::string& out) {
    std::vector<nlohmann::json> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
    return lines;
}

std::string demo() { return (source_dir / "profiles" / "demo.toml").string(); }

}  // namespace

TEST_CASE("run --dry-run prints one copy-pasteable line and exits 0", "[cli]") {
    // A host root with /dev/kvm, so that the line is all there is whether or not this machine
    // has KVM (without it the dry run rightly warns on stderr).
    TempDir host;
    fs::create_directories(host.path() / "dev");
    write_file(host, "dev/kvm", "");
    const auto r = invoke({"run", "--dry-run", demo(), "--runtime-dir", "/tmp/rt", "--host-root", host.path().string()});
    CHECK(r.code == 0);
    // As root on a machine without the package's user "kvmgpu", the one warning says so.
    if (::geteuid() == 0 && !util::find_user("kvmgpu")) {
        CHECK(r.err.find("the user \"kvmgpu\" ([security] user), and there is no such user") != std::string::npos);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    } else {
        CHECK(r.err.empty());
    }
    CHECK(r.out.rfind("qemu-system-x86_64 -name guest=demo,debug-threads=on -nodefaults ", 0) == 0);
    CHECK(r.out.find("path=/tmp/rt/demo/qemu/qmp.sock") != std::string::npos);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
}

TEST_CASE("global options are accepted before or after the command, with env twins", "[cli]") {
    const auto before = invoke({"--runtime-dir", "/tmp/a", "--json", "run", "-n", demo()});
    const auto after = invoke({"run", "-n", demo(), "--json", "--runtime-dir=/tmp/a"});
    const auto env = invoke({"run", "-n", demo(), "--json"}, {{"KVMGPU_RUNTIME_DIR", "/tmp/a"}});
    const auto both = invoke({"run", "-n", demo(), "--json", "--runtime-dir", "/tmp/b"},
                          {{"KVMGPU_RUNTIME_DIR", "/tmp/a"}});
    for (const auto* r : {&before, &after, &env}) {
        REQUIRE(r->code == 0);
        CHECK(nlohmann::json::parse(r->out)["runtime_dir"] == "/tmp/a/demo");
    }
    CHECK(nlohmann::json::parse(both.out)["runtime_dir"] == "/tmp/b/demo");  // the option wins
}

TEST_CASE("run --dry-run --json gives the argv as an array", "[cli]") {
    const auto r = invoke({"run", "--dry-run", "--json", demo(), "--runtime-dir", "/rt", "--state-dir", "/st"});
    REQUIRE(r.code == 0);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j["name"] == "demo");
    CHECK(j["argv"][0] == "qemu-system-x86_64");
    CHECK(j["argv"].size() > 20);
    CHECK(j["state_dir"] == "/st/demo");
}

TEST_CASE("every example profile dry-runs with --json, absent devices being warnings", "[cli]") {
    TempDir host;  // an empty host root: no PCI devices at all
    for (const char* name : {"demo", "windows-gaming-nvidia", "linux-workstation-novnc", "windows-single-gpu"}) {
        INFO(name);
        const auto file = (source_dir / "profiles" / (std::string(name) + ".toml")).string();
        const auto r = invoke({"run", "--dry-run", "--json", file, "--host-root", host.path().string()});
        REQUIRE(r.code == 0);
        const auto j = nlohmann::json::parse(r.out);
        CHECK(j["argv"].size() > 20);
        if (std::string(name) == "windows-gaming-nvidia") {
            const auto warnings = j["warnings"].dump();
            CHECK(warnings.find("PCI device \\\"0000:01:00.0\\\" (pci[0]) does not exist") != std::string::npos);
            CHECK(warnings.find("a real run would refuse to start") != std::string::npos);
        }
    }
}

TEST_CASE("a dry run writes nothing", "[cli]") {
    TempDir dir;
    const auto runtime = dir.path() / "runtime";
    const auto state = dir.path() / "state";
    const auto r = invoke({"run", "-n", (source_dir / "profiles" / "windows-gaming-nvidia.toml").string(),
                        "--runtime-dir", runtime.string(), "--state-dir", state.string(),
                        "--host-root", dir.path().string()});
    CHECK(r.code == 0);
    CHECK_FALSE(fs::exists(runtime));
    CHECK_FALSE(fs::exists(state));
    CHECK(fs::is_empty(dir.path()));
}

TEST_CASE("a bad profile lists every problem with file:line:col and exits 2", "[cli]") {
    TempDir dir;
    const auto file = write_file(dir, "bad.toml", "[machine]\nmemory = \"16Q\"\n[cpu]\nhide_kmv = true\n");
    const auto r = invoke({"run", "--dry-run", file.string()});
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find(file.string() + ":2:10: error: [machine] memory \"16Q\" is not a size") != std::string::npos);
    CHECK(r.err.find(file.string() + ":4:1: error: [cpu] has no key \"hide_kmv\"; did you mean \"hide_kvm\"?") !=
          std::string::npos);
    CHECK(r.err.find("kvmgpu: error: " + file.string() + " has 2 errors") != std::string::npos);

    const auto j = invoke({"run", "--dry-run", "--json", file.string()});
    CHECK(j.code == 2);
    const auto lines = json_lines(j.out);
    REQUIRE(lines.size() == 2);
    const auto& parsed = lines[0];
    REQUIRE(parsed["diagnostics"].size() == 2);
    CHECK(parsed["diagnostics"][1]["key"] == "cpu.hide_kmv");
    CHECK(parsed["diagnostics"][1]["line"] == 4);
    CHECK_FALSE(parsed.contains("argv"));
    // Under --json the error that ends the command is JSON too, as the last line.
    CHECK(lines[1]["exit"] == 2);
    CHECK(lines[1]["code"] == "invalid-profile");
    CHECK(lines[1]["error"].get<std::string>().find(" has 2 errors") != std::string::npos);
}

TEST_CASE("under --json every failing command ends with one JSON error object carrying its exit code", "[cli]") {
    TempDir dir;
    struct Case { std::vector<std::string> args; int exit; const char* code; const char* fragment; };
    for (const auto& c : {
             Case{{"--json", "rnu"}, 2, "usage", "did you mean \"run\"?"},
             Case{{"status", "--json", "--bogus"}, 2, "usage", "bogus"},
             Case{{"--json", "bind", "not-an-address"}, 2, "usage", "is not a PCI address"},
             Case{{"--json", "status", "nosuchvm", "--runtime-dir", dir.path().string()}, 1, "not-running",
                  "no VM named \"nosuchvm\""},
             Case{{"--json", "run", "-n", "/nonexistent/vm.toml"}, 2, "invalid-profile", "/nonexistent/vm.toml has 1 error"},
         }) {
        INFO(util::shell_join(c.args));
        const auto r = invoke(c.args);
        CHECK(r.code == c.exit);
        const auto lines = json_lines(r.out);
        REQUIRE_FALSE(lines.empty());
        CHECK(lines.back()["exit"] == c.exit);
        CHECK(lines.back()["code"] == c.code);
        CHECK(lines.back()["error"].get<std::string>().find(c.fragment) != std::string::npos);
        // People still get the same error on stderr.
        CHECK(r.err.find(std::string("kvmgpu: error: ")) != std::string::npos);
    }
}

TEST_CASE("a missing profile file is bad input naming the file", "[cli]") {
    const auto r = invoke({"run", "-n", "/nonexistent/vm.toml"});
    CHECK(r.code == 2);
    CHECK(r.err.find("/nonexistent/vm.toml: error: cannot read the profile: No such file or directory") !=
          std::string::npos);
}

TEST_CASE("usage errors exit 2 with a hint", "[cli]") {
    struct Case { std::vector<std::string> args; const char* fragment; };
    for (const auto& c : {Case{{"rnu"}, "did you mean \"run\"?"},
                          Case{{"frobnicate"}, "there is no command \"frobnicate\""},
                          Case{{"run", "-n"}, "run needs a profile"},
                          Case{{"run", "-n", "a.toml", "b.toml"}, "run takes one profile"},
                          Case{{"run", "--bogus", "a.toml"}, "unrecognised option '--bogus'"},
                          Case{{"run", "-n", "a.toml", "--runtime-dir"}, "--runtime-dir"},
                          Case{{}, "Usage: kvmgpu"},
                          Case{{"help", "nope"}, "there is no command \"nope\""}}) {
        const auto r = invoke(c.args);
        INFO(util::shell_join(c.args) << "\n" << r.err);
        CHECK(r.code == 2);
        CHECK(r.err.find(c.fragment) != std::string::npos);
    }
}

TEST_CASE("help and version go to stdout and exit 0", "[cli]") {
    const auto help = invoke({"--help"});
    CHECK(help.code == 0);
    for (const char* word : {"run", "check", "list", "ps", "status", "pause", "resume", "stop", "reset",
                             "qmp", "events", "bind", "restore", "isolate", "--runtime-dir", "--host-root", "--json"})
        CHECK(help.out.find(word) != std::string::npos);
    const auto run_help = invoke({"help", "run"});
    CHECK(run_help.code == 0);
    CHECK(run_help.out.find("--dry-run") != std::string::npos);
    CHECK(invoke({"run", "--help"}).out == run_help.out);
    const auto version = invoke({"--version"});
    CHECK(version.code == 0);
    CHECK(version.out == "kvmgpu " KVMGPU_VERSION "\n");
}

TEST_CASE("the installed binary gives the same exit codes as the library", "[cli]") {
    // Through the real executable and a real process exit status.
    auto status = [](const std::string& args) {
        const std::string cmd = std::string(KVMGPU_BINARY) + " " + args + " >/dev/null 2>&1";
        const int raw = std::system(cmd.c_str());
        return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    };
    CHECK(status("run --dry-run " + util::shell_quote(demo())) == 0);
    CHECK(status("run --dry-run /nonexistent.toml") == 2);
    TempDir runtime;
    CHECK(status("pause demo --runtime-dir " + runtime.path().string()) == 1);  // no such VM
    CHECK(status("--version") == 0);
}

TEST_CASE("the quick path reads every command line it takes exactly as the full parser does", "[cli][quick]") {
    using Args = std::vector<std::string>;
    // Taken by the quick path.
    for (const Args& args : {
             Args{"status", "win11"},
             Args{"--json", "status", "win11"},
             Args{"status", "win11", "--json"},
             Args{"--runtime-dir", "/r", "pause", "vm", "--state-dir=/s", "--host-root", "/h"},
             Args{"resume", "--runtime-dir=/x y", "vm"},
             Args{"reset", "vm"},
             Args{"stop", "vm"},
             Args{"stop", "vm", "--force"},
             Args{"stop", "--timeout", "5", "vm"},
             Args{"stop", "vm", "--timeout=0", "--force", "--json"},
             Args{"--json", "--runtime-dir", "/r", "stop", "vm", "--timeout", "4294967295"},
         }) {
        INFO(util::shell_join(args));
        const auto quick = cli::read_command_line(args, true);
        REQUIRE(quick);
        const auto full = cli::read_command_line(args, false);
        REQUIRE(full);
        CHECK(*quick == *full);
    }
    // Left to the full parser (which reads them, or refuses them with its own message).
    for (const Args& args : {
             Args{"status"}, Args{"status", "a", "b"}, Args{"run", "vm.toml"}, Args{"status", "vm", "--help"},
             Args{"--json", "--json", "status", "vm"}, Args{"status", "vm", "--force"}, Args{"pause", "vm", "--timeout", "3"},
             Args{"--timeout", "5", "stop", "vm"}, Args{"stop", "vm", "--timeout", "-1"}, Args{"stop", "vm", "--timeout", "5s"},
             Args{"stop", "vm", "--timeout", "99999999999"}, Args{"stop", "vm", "--timeout"}, Args{"--runtime-dir", "status", "vm"},
             Args{"--runtime-dir=", "status", "vm"}, Args{"--runtime", "/r", "status", "vm"}, Args{"status", "--", "vm"},
             Args{"status", "-vm"}, Args{"--runtime-dir", "/a", "--runtime-dir", "/b", "status", "vm"},
         }) {
        INFO(util::shell_join(args));
        CHECK_FALSE(cli::read_command_line(args, true));
    }
}

TEST_CASE("a command the quick path takes behaves as before, errors included", "[cli][quick]") {
    TempDir dir;
    const auto r = invoke({"status", "ghost", "--runtime-dir", dir.path().string()});
    CHECK(r.code == 1);
    CHECK(r.err.find("no VM named \"ghost\" is running") != std::string::npos);
    const auto j = invoke({"--json", "stop", "ghost", "--force", "--runtime-dir", dir.path().string()});
    CHECK(j.code == 1);
    CHECK(json_lines(j.out).back()["code"] == "not-running");
}
