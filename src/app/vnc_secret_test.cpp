#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>

#include "app/vnc_secret.hpp"
#include "temp_dir.hpp"

using namespace kvmgpu;

namespace {

mode_t mode_of(const std::filesystem::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("the VNC password is made once as 8 letters and digits in a 0600 file and read back", "[console]") {
    testing::TempDir t;
    const auto layout = util::VmLayout::of(t.path() / "run", t.path(), "vm");
    std::filesystem::create_directory(layout.state_dir);
    const auto made = app::ensure_vnc_secret(layout);
    CHECK(made.size() == 8);
    CHECK(made.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == std::string::npos);
    CHECK(mode_of(layout.vnc_password()) == 0600);
    CHECK(app::ensure_vnc_secret(layout) == made);
    CHECK(app::read_vnc_secret(layout) == made);
}

TEST_CASE("a VNC password file others may read or that is not a file of 8 characters is refused", "[console]") {
    testing::TempDir t;
    const auto layout = util::VmLayout::of(t.path() / "run", t.path(), "vm");
    std::filesystem::create_directory(layout.state_dir);
    CHECK_THROWS_WITH(app::read_vnc_secret(layout), Catch::Contains("vnc-password"));
    std::ofstream(layout.vnc_password()) << "abcdefgh\n";
    ::chmod(layout.vnc_password().c_str(), 0644);
    CHECK_THROWS_WITH(app::ensure_vnc_secret(layout), Catch::Contains("mode 0600"));
    ::chmod(layout.vnc_password().c_str(), 0600);
    CHECK(app::read_vnc_secret(layout) == "abcdefgh");
    std::ofstream(layout.vnc_password()) << "short\n";
    CHECK_THROWS_WITH(app::read_vnc_secret(layout), Catch::Contains("8 letters and digits"));
    std::filesystem::remove(layout.vnc_password());
    std::filesystem::create_symlink("/etc/passwd", layout.vnc_password());
    CHECK_THROWS(app::ensure_vnc_secret(layout));
}

TEST_CASE("random passwords differ", "[console]") {
    CHECK(app::random_alphanumeric(16) != app::random_alphanumeric(16));
    CHECK(app::random_alphanumeric(3).size() == 3);
}

TEST_CASE("the VNC password file is 0600 whatever the umask and is read back on the next run", "[console]") {
    testing::TempDir t;
    const auto layout = util::VmLayout::of(t.path() / "run", t.path(), "vm");
    std::filesystem::create_directory(layout.state_dir);
    const mode_t before = ::umask(0277);  // would leave 0400
    std::string made;
    try {
        made = app::ensure_vnc_secret(layout);
    } catch (...) {
        ::umask(before);
        throw;
    }
    ::umask(before);
    CHECK(mode_of(layout.vnc_password()) == 0600);
    CHECK(app::ensure_vnc_secret(layout) == made);
}
