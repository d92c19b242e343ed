#include "app/profile_lookup.hpp"

#include <catch2/catch.hpp>

#include <fstream>

#include "temp_dir.hpp"
#include "util/error.hpp"

using namespace kvmgpu;
using kvmgpu::testing::TempDir;
namespace fs = std::filesystem;

namespace {

struct Dirs {
    TempDir tmp;
    fs::path user = tmp.path() / "user", system = tmp.path() / "etc";
    app::Context ctx;
    Dirs() {
        fs::create_directories(user);
        fs::create_directories(system);
        ctx.profile_dirs = {user, system};
    }
    fs::path put(const fs::path& dir, const std::string& file) const {
        std::ofstream(dir / file) << "[machine]\naccel = \"tcg\"\n";
        return dir / file;
    }
};

std::string error_of(const app::Context& ctx, const std::string& word) {
    try {
        app::find_profile(ctx, word);
    } catch (const util::BadInput& e) {
        CHECK(e.code() == "no-profile");
        return e.what();
    }
    FAIL("no error for " << word);
    return {};
}

}  // namespace

TEST_CASE("a PROFILE argument with a slash or a .toml suffix is a path as given", "[profile_lookup]") {
    Dirs d;
    d.put(d.user, "win11.toml");
    for (const std::string word : {"./win11", "profiles/win11", "win11.toml", "/nowhere/x.toml"}) {
        const auto found = app::find_profile(d.ctx, word);
        CHECK(found.file == word);
        CHECK_FALSE(found.name);
    }
}

TEST_CASE("a name is found as NAME.toml in the first profile directory that has it", "[profile_lookup]") {
    Dirs d;
    const auto system = d.put(d.system, "win11.toml");
    CHECK(app::find_profile(d.ctx, "win11").file == system);
    CHECK(app::find_profile(d.ctx, "win11").name == "win11");
    const auto user = d.put(d.user, "win11.toml");
    CHECK(app::find_profile(d.ctx, "win11").file == user);  // the user's comes first
}

TEST_CASE("a name no directory has is bad input naming where kvmgpu looked and how to write one", "[profile_lookup]") {
    Dirs d;
    const auto message = error_of(d.ctx, "win11");
    CHECK(message.find(d.user.string()) != std::string::npos);
    CHECK(message.find(d.system.string()) != std::string::npos);
    CHECK(message.find("kvmgpu init --output " + (d.user / "win11.toml").string()) != std::string::npos);
}

TEST_CASE("a word that is neither a path nor a VM name is refused", "[profile_lookup]") {
    Dirs d;
    for (const std::string& word : std::vector<std::string>{"", "..", ".hidden", "a b", "-x", std::string(65, 'a')})
        CHECK(error_of(d.ctx, word).find("is neither a profile file") != std::string::npos);
}

TEST_CASE("a profile found by name must define the VM of that name", "[profile_lookup]") {
    Dirs d;
    const auto found = app::find_profile(d.ctx, d.put(d.user, "win11.toml").string());
    CHECK_NOTHROW(app::check_found_name(found, "anything"));  // a path: any name
    const auto by_name = app::find_profile(d.ctx, "win11");
    CHECK_NOTHROW(app::check_found_name(by_name, "win11"));
    try {
        app::check_found_name(by_name, "gaming");
        FAIL("no error");
    } catch (const util::BadInput& e) {
        CHECK(std::string(e.what()).find("defines the VM \"gaming\", not \"win11\"") != std::string::npos);
        CHECK(e.code() == "invalid-profile");
    }
}

TEST_CASE("defined VMs are the NAME.toml files of the profile directories and the first of a name wins",
          "[profile_lookup]") {
    Dirs d;
    const auto mine = d.put(d.user, "win11.toml");
    d.put(d.system, "win11.toml");
    const auto linux_vm = d.put(d.system, "linux.toml");
    d.put(d.system, "notes.txt");
    d.put(d.system, ".hidden.toml");
    fs::create_directories(d.system / "dir.toml");
    d.ctx.profile_dirs.push_back(d.tmp.path() / "missing");
    std::vector<std::string> warnings;
    const auto vms = app::defined_vms(d.ctx, warnings);
    REQUIRE(vms.size() == 2);
    CHECK(vms[0].name == "linux");
    CHECK(vms[0].file == linux_vm);
    CHECK(vms[1].name == "win11");
    CHECK(vms[1].file == mine);
    CHECK(warnings.empty());
}
