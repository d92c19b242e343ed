#pragma once
// Test helper for runs of the real kvmgpu binary against real QEMU (TCG): a scratch world with its
// own runtime, state and profile directories inside an empty host root, demo-like profiles, and
// kvmgpu commands run in it (KVMGPU_PROFILE_PATH points `kvmgpu run NAME` at `profiles`).
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "kvmgpu_process.hpp"
#include "temp_dir.hpp"

namespace kvmgpu::testing {

struct QemuWorld {
    TempDir dir;
    std::filesystem::path runtime = dir.path() / "run";
    std::filesystem::path state = dir.path() / "state";
    std::filesystem::path profiles = dir.path() / "profiles";
    std::filesystem::path host = dir.path();

    // mkdtemp made it 0700; QEMU's unprivileged user must reach the files inside.
    QemuWorld() {
        std::filesystem::permissions(host, std::filesystem::perms::others_exec | std::filesystem::perms::group_exec,
                                     std::filesystem::perm_options::add);
        std::filesystem::create_directories(profiles);
    }

    std::vector<std::string> args(std::vector<std::string> a) const {
        for (const auto& g : {"--runtime-dir", runtime.c_str(), "--state-dir", state.c_str(), "--host-root", host.c_str()})
            a.emplace_back(g);
        return a;
    }
    Env env(Env extra = {}) const {
        extra.push_back("KVMGPU_PROFILE_PATH=" + profiles.string());
        return extra;
    }
    Output cli(std::vector<std::string> a) const { return kvmgpu_run(args(std::move(a)), dir.path(), env()); }

    // A demo-like profile (TCG, no disk, QEMU as "nobody") in `where`; `name_line` false leaves
    // the VM's name to the file's.
    std::filesystem::path profile(const std::string& name, const std::filesystem::path& where, const std::string& extra = "",
                                  bool name_line = true) const {
        const auto file = where / (name + ".toml");
        std::ofstream(file) << (name_line ? "name = \"" + name + "\"\n" : "")
                            << "[machine]\naccel = \"tcg\"\nmemory = \"128M\"\n"
                            << "[cpu]\ncores = 1\n[firmware]\ntype = \"seabios\"\n[network]\nmode = \"none\"\n"
                            << "[security]\nuser = \"nobody\"\n"
                            << extra;
        return file;
    }
    std::unique_ptr<Supervisor> run(const std::string& name_or_file, Env extra_env = {}) const {
        return std::make_unique<Supervisor>(args({"run", "--json", name_or_file, "--stop-timeout", "2"}),
                                            dir.path() / "supervisor.err", env(std::move(extra_env)));
    }
    std::string supervisor_err() const {
        std::ifstream in(dir.path() / "supervisor.err");
        return {std::istreambuf_iterator<char>(in), {}};
    }
};

}  // namespace kvmgpu::testing
