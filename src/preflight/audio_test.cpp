// What `check` says about [audio]: QEMU's PulseAudio driver and the desktop user's sound server
// socket, a real socket in a temporary host root.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "preflight/audio.hpp"
#include "temp_dir.hpp"
#include "util/fd.hpp"
#include "util/user.hpp"

using namespace kvmgpu;
using namespace kvmgpu::preflight;
namespace fs = std::filesystem;

namespace {

std::string codes(const std::vector<Finding>& findings) {
    std::string out;
    for (const auto& f : findings) out += std::string(severity_name(f.severity)) + ":" + f.code + " ";
    return out;
}

util::Fd listen_on(const fs::path& path) {
    util::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    ::chmod(path.c_str(), 0666);
    return fd;
}

}  // namespace

TEST_CASE("audio needs QEMU's pa driver and a sound server QEMU's user can reach", "[preflight][audio]") {
    testing::TempDir dir;
    const auto root = dir.path();
    fs::permissions(root, fs::perms::others_exec, fs::perm_options::add);
    profile::Profile p;
    p.audio.backend = profile::AudioBackend::pipewire;
    CheckOptions o;
    o.qemu_audio_drivers = std::vector<std::string>{"none", "alsa", "pa"};
    fs::create_directories(root / "run/user/1000/pulse");
    o.audio_server = "unix:/run/user/1000/pulse/native";

    SECTION("backend none asks for nothing") {
        p.audio.backend = profile::AudioBackend::none;
        CHECK(audio_findings(p, root, o).empty());
    }
    SECTION("no pa driver") {
        o.qemu_audio_drivers = std::vector<std::string>{"none", "alsa"};
        const auto f = audio_findings(p, root, o);
        CHECK(codes(f) == "error:audio-driver-missing error:audio-server-missing ");
        CHECK_THAT(f[0].fix, Catch::Contains("apt install qemu-system-gui"));
        CHECK_THAT(f[0].what, Catch::Contains("it has: none, alsa"));
    }
    SECTION("QEMU could not be asked") {
        o.qemu_audio_drivers.reset();
        const auto sock = listen_on(root / "run/user/1000/pulse/native");
        CHECK(codes(audio_findings(p, root, o)) == "warning:audio-driver-unknown ");
    }
    SECTION("nobody's server is known") {
        o.audio_server.clear();
        CHECK(codes(audio_findings(p, root, o)) == "warning:audio-server-unknown ");
    }
    SECTION("a server that is there, for QEMU as the caller, then for an unprivileged QEMU") {
        const auto sock = listen_on(root / "run/user/1000/pulse/native");
        CHECK(codes(audio_findings(p, root, o)) == "ok:audio ");
        if (::geteuid() == 0) {
            o.qemu_user = util::find_user("nobody");
            REQUIRE(o.qemu_user);
            ::chmod((root / "run/user/1000").c_str(), 0700);  // a desktop user's runtime directory
            const auto f = audio_findings(p, root, o);
            CHECK(codes(f) == "error:audio-server-unreachable ");
            CHECK_THAT(f[0].fix, Catch::Contains("setfacl -m u:nobody:x /run/user/1000 /run/user/1000/pulse"));
            ::chmod((root / "run/user/1000").c_str(), 0755);
            CHECK(codes(audio_findings(p, root, o)) == "ok:audio ");
        }
    }
    SECTION("a plain file is no server") {
        std::ofstream(root / "run/user/1000/pulse/native") << "";
        CHECK(codes(audio_findings(p, root, o)) == "error:audio-server-missing ");
    }
}
