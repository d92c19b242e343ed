// VM directories: the exclusion between launches of one name, what a failed start leaves, and
// the ownership checks of the runtime and state directories.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "app/control.hpp"
#include "app/vm_dir.hpp"
#include "temp_dir.hpp"
#include "util/proc.hpp"

using namespace kvmgpu;
using namespace kvmgpu::app;
namespace fs = std::filesystem;

namespace {

Context context_in(const fs::path& root) {
    Context ctx;
    ctx.runtime_dir = root / "run";
    ctx.state_dir = root / "state";
    return ctx;
}

VmState state_of_this_process(const std::string& name) {
    VmState s;
    s.name = name;
    s.supervisor_pid = ::getpid();
    s.supervisor_start = util::process_start_time(::getpid()).value_or(0);
    return s;
}

// Runs `body` in a forked child and returns its exit code (the child's checks decide it).
int in_child(const std::function<int()>& body) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        int code = 99;
        try {
            code = body();
        } catch (...) {
        }
        ::_exit(code);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("of launches of one name started at the same moment exactly one wins and keeps its directory", "[app][vmdir]") {
    testing::TempDir dir;
    const auto ctx = context_in(dir.path());
    constexpr int kLaunches = 6;
    for (int round = 0; round < 30; ++round) {
        INFO("round " << round);
        int go[2], results[2], done[2];
        REQUIRE(::pipe(go) == 0);
        REQUIRE(::pipe(results) == 0);
        REQUIRE(::pipe(done) == 0);
        std::vector<pid_t> children;
        for (int i = 0; i < kLaunches; ++i) {
            const pid_t pid = ::fork();
            if (pid == 0) {
                ::close(go[1]);
                ::close(done[1]);
                char c;
                [[maybe_unused]] auto r = ::read(go[0], &c, 1);  // all start together
                char won = 'n';
                try {
                    VmDir(ctx, "same").create(state_of_this_process("same"));
                    won = 'y';
                } catch (const std::exception&) {
                }
                [[maybe_unused]] auto w = ::write(results[1], &won, 1);
                // The winner must stay alive while the others look, or its directory is stale.
                r = ::read(done[0], &c, 1);
                ::_exit(0);
            }
            children.push_back(pid);
        }
        ::close(go[0]);
        ::close(go[1]);  // go
        int winners = 0;
        for (int i = 0; i < kLaunches; ++i) {
            char c = 0;
            REQUIRE(::read(results[0], &c, 1) == 1);
            winners += c == 'y';
        }
        const auto state = VmDir(ctx, "same").read_state();
        const bool winner_is_a_child =
            state && std::find(children.begin(), children.end(), state->supervisor_pid) != children.end();
        ::close(done[1]);  // let them end
        for (pid_t pid : children) ::waitpid(pid, nullptr, 0);
        ::close(done[0]);
        ::close(results[0]);
        ::close(results[1]);
        CHECK(winners == 1);
        CHECK(winner_is_a_child);
        VmDir(ctx, "same").remove();
    }
}

TEST_CASE("a start that cannot write its state file leaves no directory behind", "[app][vmdir]") {
    testing::TempDir dir;
    const auto ctx = context_in(dir.path());
    fs::create_directory(ctx.runtime_dir);
    ::chmod(ctx.runtime_dir.c_str(), 0700);
    // No file may grow: every write fails, as on a full filesystem (EFBIG here, ENOSPC there).
    const int code = in_child([&] {
        ::signal(SIGXFSZ, SIG_IGN);
        const rlimit none{0, 0};
        ::setrlimit(RLIMIT_FSIZE, &none);
        try {
            VmDir(ctx, "full").create(state_of_this_process("full"));
            return 1;
        } catch (const std::exception& e) {
            if (std::string(e.what()).find("state.json") == std::string::npos) return 2;
        }
        return 0;
    });
    CHECK(code == 0);
    CHECK_FALSE(fs::exists(ctx.runtime_dir / "full"));
    // And the name is free again.
    VmDir(ctx, "full").create(state_of_this_process("full"));
    CHECK(VmDir(ctx, "full").read_state());
}

TEST_CASE("a VM's state directory and the files written in it by name must be this user's and no symlinks", "[app][vmdir]") {
    testing::TempDir dir;
    const auto layout = util::VmLayout::of(dir.path() / "run", dir.path() / "state", "vm");
    const auto target = dir.path() / "precious";
    std::ofstream(target) << "keep";
    struct Case {
        const char* what;
        std::function<void()> plant;
        const char* fragment;
    };
    const std::vector<Case> cases{
        {"a symlinked OVMF_VARS.fd", [&] { fs::create_symlink(target, layout.ovmf_vars()); }, "OVMF_VARS.fd\" is not a regular file"},
        {"a dangling symlinked OVMF_VARS.fd", [&] { fs::create_symlink(dir.path() / "nowhere", layout.ovmf_vars()); }, "OVMF_VARS.fd\" is not a regular file"},
        {"a hard link to another file", [&] { fs::create_hard_link(target, layout.ovmf_vars()); }, "with one link"},
        {"a symlink for tpm/", [&] { fs::create_directory_symlink(dir.path(), layout.tpm_state()); }, "tpm\" is not a directory"},
        {"a state directory others may write", [&] { ::chmod(layout.state_dir.c_str(), 0777); }, "is not a directory owned by this user"},
        {"a STATE others may write", [&] { ::chmod(layout.state_dir.parent_path().c_str(), 0777); }, "--state-dir"},
        {"a state directory that is a symlink", [&] {
             fs::remove_all(layout.state_dir);
             fs::create_directory_symlink(dir.path(), layout.state_dir);
         }, "is not a directory owned by this user"},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.what) {
            ensure_vm_state_dir(layout);  // a fresh one passes
            CHECK((fs::status(layout.state_dir).permissions() & fs::perms::all) == fs::perms::owner_all);
            c.plant();
            try {
                ensure_vm_state_dir(layout);
                FAIL("accepted");
            } catch (const std::exception& e) {
                CHECK_THAT(e.what(), Catch::Contains(c.fragment));
            }
            std::ifstream in(target);
            std::string content;
            in >> content;
            CHECK(content == "keep");
        }
    }
    SECTION("its own regular files pass") {
        ensure_vm_state_dir(layout);
        std::ofstream(layout.ovmf_vars()) << "vars";
        fs::create_directory(layout.tpm_state());
        CHECK_NOTHROW(ensure_vm_state_dir(layout));
    }
}

TEST_CASE("each run starts with empty logs and keeps the last run's aside", "[app][vmdir]") {
    testing::TempDir dir;
    const auto layout = util::VmLayout::of(dir.path() / "run", dir.path() / "state", "vm");
    ensure_vm_state_dir(layout);
    const auto read = [](const fs::path& file) {
        std::ifstream in(file);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    start_run_logs(layout);
    std::ofstream(layout.qemu_log()) << "run 1";
    start_run_logs(layout);
    CHECK_FALSE(fs::exists(layout.qemu_log()));
    CHECK(read(layout.previous_logs_dir() / "qemu.log") == "run 1");
    std::ofstream(layout.qemu_log()) << "run 2";
    start_run_logs(layout);
    CHECK(read(layout.previous_logs_dir() / "qemu.log") == "run 2");
    CHECK((fs::status(layout.logs_dir()).permissions() & fs::perms::all) == fs::perms::owner_all);

    SECTION("a symlink planted for logs/ or logs.previous/ is moved or removed, never followed") {
        const auto elsewhere = dir.path() / "elsewhere";
        fs::create_directory(elsewhere);
        std::ofstream(elsewhere / "qemu.log") << "keep";
        fs::remove_all(layout.logs_dir());
        fs::remove_all(layout.previous_logs_dir());
        fs::create_directory_symlink(elsewhere, layout.logs_dir());
        start_run_logs(layout);  // the link goes to logs.previous
        CHECK(fs::is_symlink(layout.previous_logs_dir()));
        CHECK_FALSE(fs::is_symlink(layout.logs_dir()));
        start_run_logs(layout);  // and is removed, not what it points to
        CHECK(read(elsewhere / "qemu.log") == "keep");
        CHECK_FALSE(fs::is_symlink(layout.previous_logs_dir()));
        CHECK(fs::is_directory(layout.logs_dir()));
    }
}

TEST_CASE("ps by a user who cannot read the runtime directory says so instead of listing nothing", "[app][vmdir]") {
    if (::geteuid() != 0) {
        WARN("not run: acting as another user needs root");
        return;
    }
    testing::TempDir dir;
    const auto ctx = context_in(dir.path());
    ::chmod(dir.path().c_str(), 0711);
    VmDir(ctx, "theirs").create(state_of_this_process("theirs"));
    const int code = in_child([&] {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 3;
        try {
            list_vms(ctx);
            return 1;
        } catch (const std::exception& e) {
            const std::string what = e.what();
            return what.find("cannot list the runtime directory") != std::string::npos &&
                           what.find("run this as root") != std::string::npos
                       ? 0
                       : 2;
        }
    });
    CHECK(code == 0);
    // A runtime directory that does not exist is just no VMs.
    auto missing = ctx;
    missing.runtime_dir = dir.path() / "none";
    CHECK(list_vms(missing).rows.empty());
}
