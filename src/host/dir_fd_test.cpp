#include "host/dir_fd.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace kvmgpu::host;

TEST_CASE("a directory read through its descriptor lists every entry, past one buffer", "[host]") {
    // 3000 names of 40 bytes need about 150 KiB of getdents records: several reads.
    kvmgpu::testing::TempDir dir;
    std::set<std::string> made;
    for (int i = 0; i < 3000; ++i) {
        std::string name = "entry-" + std::to_string(i) + std::string(30, 'x');
        std::ofstream(dir.path() / name).put('x');
        made.insert(name);
    }
    const OpenedDir opened = open_dir(dir.path().c_str());
    REQUIRE(opened.fd);
    std::set<std::string> seen;
    std::size_t visits = 0;
    CHECK(for_each_entry(opened.fd, [&](std::string_view name) {
              seen.insert(std::string(name));
              ++visits;
          }) == 0);
    CHECK(visits == made.size());  // neither "." nor ".." nor any name twice
    CHECK(seen == made);
}

TEST_CASE("a directory that cannot be opened says why, and link targets are read without following them",
          "[host]") {
    kvmgpu::testing::TempDir dir;
    CHECK(open_dir((dir.path() / "missing").c_str()).error == ENOENT);
    std::ofstream(dir.path() / "file").put('x');
    CHECK(open_dir((dir.path() / "file").c_str()).error == ENOTDIR);
    fs::create_symlink("/dev/dri/card0", dir.path() / "to-card");     // dangling here: not followed
    fs::create_symlink(std::string(4095, 'a'), dir.path() / "longest");  // PATH_MAX - 1
    const OpenedDir opened = open_dir(dir.path().c_str());
    REQUIRE(opened.fd);
    CHECK(link_target(opened.fd, "to-card") == "/dev/dri/card0");
    CHECK(link_target(opened.fd, "file").empty());
    CHECK(link_target(opened.fd, "missing").empty());
    CHECK(link_target(opened.fd, "longest") == std::string(4095, 'a'));
    // Relative to an open directory, as the process scan opens PID/fd under proc.
    fs::create_directory(dir.path() / "sub");
    CHECK(open_dir("sub", opened.fd.get()).fd);
}
