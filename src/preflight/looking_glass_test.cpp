// What `check` says about Looking Glass's shared memory, on a temporary host root: the kvmfr
// module and its device, and the shm file kvmgpu makes for the desktop user.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <fstream>

#include "preflight/looking_glass.hpp"
#include "temp_dir.hpp"

using namespace kvmgpu;
using namespace kvmgpu::preflight;
namespace fs = std::filesystem;

namespace {

profile::LookingGlass kvmfr_glass() {
    profile::LookingGlass lg;
    lg.enabled = true;
    lg.backend = profile::LookingGlassBackend::kvmfr;
    lg.size_auto = false;
    lg.size = std::uint64_t{64} << 20;
    return lg;
}

std::string codes(const std::vector<Finding>& findings) {
    std::string out;
    for (const auto& f : findings) out += std::string(severity_name(f.severity)) + ":" + f.code + " ";
    return out;
}

}  // namespace

TEST_CASE("the kvmfr backend needs the module and its device of the profile's size", "[preflight][looking-glass]") {
    testing::TempDir dir;
    const auto root = dir.path();
    const auto lg = kvmfr_glass();
    const auto check = [&] { return looking_glass_findings(lg, root, "alice", std::nullopt); };
    const auto load_module = [&](const char* size_mb) {
        fs::create_directories(root / "sys/module/kvmfr/parameters");
        std::ofstream(root / "sys/module/kvmfr/parameters/static_size_mb") << size_mb << "\n";
        fs::create_directories(root / "dev");
    };

    SECTION("no module") {
        const auto f = check();
        CHECK(codes(f) == "error:kvmfr-missing ");
        CHECK_THAT(f[0].fix, Catch::Contains("modprobe kvmfr static_size_mb=64"));
    }
    SECTION("the module without its device") {
        load_module("64");
        CHECK(codes(check()) == "error:kvmfr-device-missing ");
    }
    SECTION("a plain file where the device should be") {
        load_module("64");
        std::ofstream(root / "dev/kvmfr0") << "";
        const auto f = check();
        CHECK(codes(f) == "error:kvmfr-plain-file ");
        CHECK_THAT(f[0].fix, Catch::Contains("rm /dev/kvmfr0"));
    }
    SECTION("a device smaller than the profile's size, then one large enough") {
        load_module("32,16");
        REQUIRE(::mknod((root / "dev/kvmfr0").c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0);
        const auto f = check();
        CHECK(codes(f) == "error:kvmfr-too-small ");
        CHECK_THAT(f[0].what, Catch::Contains("32 MiB; the profile needs 64 MiB"));
        std::ofstream(root / "sys/module/kvmfr/parameters/static_size_mb") << "128\n";
        CHECK(codes(check()) == "ok:kvmfr ");
    }
}

TEST_CASE("the shm backend needs the desktop user and a free or regular file", "[preflight][looking-glass]") {
    testing::TempDir dir;
    profile::LookingGlass lg;
    lg.enabled = true;
    lg.path = dir.path() / "looking-glass";
    const util::SystemUser alice{"alice", 1000, 1000, "/home/alice", {1000}};
    const auto check = [&](const std::optional<util::SystemUser>& owner) {
        return looking_glass_findings(lg, dir.path(), "alice", owner);
    };
    CHECK(codes(check(std::nullopt)) == "error:looking-glass-owner-missing ");
    const auto free = check(alice);
    CHECK(codes(free) == "ok:looking-glass-file ");
    CHECK_THAT(free[0].what, Catch::Contains("kvmgpu creates") && Catch::Contains("for \"alice\""));
    fs::create_directory(lg.path);
    CHECK(codes(check(alice)) == "error:looking-glass-file ");
    fs::remove(lg.path);
    std::ofstream(lg.path) << "";
    CHECK_THAT(check(alice)[0].what, Catch::Contains("uses the existing"));
    lg.path = dir.path() / "no-such-dir" / "looking-glass";
    CHECK(codes(check(alice)) == "error:looking-glass-file ");
}
