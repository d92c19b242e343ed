// swtpm's command line: its shape, the refusal of a path swtpm cannot read, and the real swtpm
// started from it.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>

#include "qemu/swtpm.hpp"
#include "temp_dir.hpp"
#include "util/process.hpp"

using namespace kvmgpu;
namespace fs = std::filesystem;

TEST_CASE("swtpm gets the VM's TPM state and socket as one value each, its log on stdout", "[qemu][swtpm]") {
    const auto layout = util::VmLayout::of("/run/kvmgpu", "/var/lib/kvmgpu", "win");
    CHECK(qemu::swtpm_argv(layout) ==
          std::vector<std::string>{"swtpm", "socket", "--tpm2", "--tpmstate", "dir=/var/lib/kvmgpu/win/tpm,mode=0600",
                                   "--ctrl", "type=unixio,path=/run/kvmgpu/win/qemu/swtpm.sock", "--terminate", "--log",
                                   "fd=1"});
}

TEST_CASE("a runtime or state directory with a comma is refused as bad input for swtpm", "[qemu][swtpm]") {
    // Before: "/tmp/a,mode=0777" reached swtpm as a second option of --tpmstate.
    for (const auto& [runtime, state, option] :
         {std::tuple{"/run/a,b", "/var/lib/kvmgpu", "--runtime-dir"},
          std::tuple{"/run/kvmgpu", "/var/lib/x,mode=0777", "--state-dir"}}) {
        DYNAMIC_SECTION(runtime << " " << state) {
            const auto layout = util::VmLayout::of(runtime, state, "win");
            try {
                qemu::swtpm_argv(layout);
                FAIL("no error");
            } catch (const qemu::SwtpmPathError& e) {
                CHECK(e.exit_code() == 2);
                CHECK(std::string(e.what()).find("contains a ','") != std::string::npos);
                CHECK(std::string(e.what()).find(std::string("choose a ") + option + " without commas") !=
                      std::string::npos);
            }
        }
    }
}

TEST_CASE("the real swtpm serves the socket its argv names, even under a path with '=' and spaces",
          "[qemu][swtpm][real]") {
    testing::TempDir dir;
    const auto layout = util::VmLayout::of(dir.path() / "run =x", dir.path() / "state =y", "vm");
    fs::create_directories(layout.qemu_dir());
    fs::create_directories(layout.tpm_state());
    fs::create_directories(layout.logs_dir());
    util::SpawnOptions options;
    options.log_file = layout.swtpm_log();
    auto swtpm = util::spawn(qemu::swtpm_argv(layout), options);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    // swtpm has no readiness signal but its socket; poll for it with a deadline.
    while (!fs::exists(layout.swtpm_socket()) && std::chrono::steady_clock::now() < deadline && !swtpm.try_wait())
        swtpm.wait_for(std::chrono::milliseconds(5));
    CHECK(fs::exists(layout.swtpm_socket()));
    CHECK(fs::exists(layout.swtpm_log()));
}
