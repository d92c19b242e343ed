// `kvmgpu init` through the real binary, on temporary host roots.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "host_fixture.hpp"
#include "kvmgpu_process.hpp"

using namespace kvmgpu;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

testing::Output kvmgpu_on(const test::HostFixture& fx, std::vector<std::string> args) {
    for (const char* g : {"--host-root", fx.root().c_str()}) args.push_back(g);
    args.push_back("--runtime-dir");
    args.push_back(fx.runtime().string());
    return testing::kvmgpu_run(args, fx.root());
}

void add_second_gpu(test::HostFixture& fx) {
    test::DeviceSpec gpu;
    gpu.address = "0000:02:00.0";
    gpu.vendor = 0x1002;
    gpu.device = 0x744c;
    gpu.class_code = 0x030000;
    gpu.group = 2;
    fx.add_device(gpu);
}

}  // namespace

TEST_CASE("init prints the GPU list on stderr and a profile that check accepts on stdout", "[cli][init]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto r = kvmgpu_on(fx, {"init", "--name", "desk"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.err.find("* 0000:01:00.0  10de:2484") != std::string::npos);
    CHECK(r.err.find("IOMMU group 1") != std::string::npos);
    CHECK(r.err.find("      0000:01:00.1  10de:228b") != std::string::npos);
    CHECK(r.out.rfind("# desk.toml", 0) == 0);
    CHECK(r.out.find("name = \"desk\"") != std::string::npos);

    const auto file = fx.root() / "desk.toml";
    // "nobody" stands in for the package's user "kvmgpu", which a development machine need not have.
    std::ofstream(file) << r.out << "\n[security]\nuser = \"nobody\"\n";
    fs::permissions(fx.root() / "dev/kvm", fs::perms::others_read | fs::perms::others_write, fs::perm_options::add);
    const auto checked = kvmgpu_on(fx, {"check", "--json", file.string()});
    INFO(checked.out << checked.err);
    CHECK(checked.status == 0);
    const auto j = json::parse(checked.out);
    CHECK(j["ready"] == true);
    CHECK(j["diagnostics"].empty());
}

TEST_CASE("init with several GPUs and no choice lists them and exits 2", "[cli][init]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    add_second_gpu(fx);
    const auto r = kvmgpu_on(fx, {"init"});
    CHECK(r.status == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("  0000:01:00.0  10de:2484") != std::string::npos);
    CHECK(r.err.find("  0000:02:00.0  1002:744c") != std::string::npos);
    CHECK(r.err.find("kvmgpu: error: this host has 2 GPUs (0000:01:00.0, 0000:02:00.0); choose the one to pass with --gpu ADDRESS") != std::string::npos);

    const auto j = kvmgpu_on(fx, {"init", "--json"});
    CHECK(j.status == 2);
    std::istringstream lines(j.out);
    std::string list, error;
    std::getline(lines, list);
    std::getline(lines, error);
    const auto parsed = json::parse(list);
    CHECK(parsed["gpus"].size() == 2);
    CHECK(parsed["chosen"].is_null());
    CHECK(parsed["gpus"][0]["functions"].size() == 2);
    CHECK(json::parse(error)["code"] == "choose-gpu");
}

TEST_CASE("init --gpu --output writes the file and refuses to overwrite it without --force", "[cli][init]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    add_second_gpu(fx);
    const auto file = (fx.root() / "radeon.toml").string();
    const auto r = kvmgpu_on(fx, {"init", "--gpu", "02:00.0", "--output", file});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.empty());
    CHECK(r.err.find("* 0000:02:00.0") != std::string::npos);
    CHECK(r.err.find("wrote \"" + file + "\"") != std::string::npos);
    std::ifstream in(file);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(content.find("name = \"radeon\"") != std::string::npos);
    CHECK(content.find("id = \"1002:744c\"") != std::string::npos);

    const auto again = kvmgpu_on(fx, {"init", "--gpu", "02:00.0", "--output", file});
    CHECK(again.status == 2);
    CHECK(again.err.find("exists; choose another --output or add --force") != std::string::npos);
    CHECK(kvmgpu_on(fx, {"init", "--gpu", "02:00.0", "--output", file, "--force"}).status == 0);
    CHECK(kvmgpu_on(fx, {"init", "--gpu", "0000:01:00.1"}).status == 2);
    CHECK(kvmgpu_on(fx, {"init", "--gpu", "nope"}).status == 2);
}
