// `kvmgpu init`'s pieces on temporary host roots: which GPUs it offers, how it sizes the VM, and
// that the starter profile it writes is one kvmgpu itself loads, validates and checks clean.
#include "app/init.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>

#include "host_fixture.hpp"
#include "preflight/check.hpp"
#include "profile/loader.hpp"
#include "profile/validate.hpp"

using namespace kvmgpu;
namespace fs = std::filesystem;

namespace {

std::string dump(const profile::Diagnostics& ds) {
    std::string out;
    for (const auto& d : ds) out += d.str() + "\n";
    return out;
}

test::DeviceSpec amd_gpu(const std::string& address, unsigned group) {
    test::DeviceSpec gpu;
    gpu.address = address;
    gpu.vendor = 0x1002;
    gpu.device = 0x744c;  // Navi 31 [Radeon RX 7900 XT/7900 XTX]
    gpu.class_code = 0x030000;
    gpu.group = group;
    return gpu;
}

app::Context context(const test::HostFixture& fx) {
    app::Context ctx;
    ctx.host_root = fx.root();
    ctx.runtime_dir = fx.runtime();
    ctx.state_dir = fx.root() / "state";
    return ctx;
}

}  // namespace

TEST_CASE("init offers each GPU once with every function of its slot and its group", "[app][init]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    fx.add_device(amd_gpu("0000:02:00.0", 2));
    test::DeviceSpec nic;  // shares the AMD card's group from another slot
    nic.address = "0000:02:01.0";
    nic.group = 2;
    fx.add_device(nic);
    const auto gpus = app::find_gpus(host::scan_host(fx.root()));
    REQUIRE(gpus.size() == 2);
    CHECK(gpus[0].gpu.address.str() == "0000:01:00.0");
    REQUIRE(gpus[0].functions.size() == 2);
    CHECK(gpus[0].functions[1].address.str() == "0000:01:00.1");
    CHECK(gpus[0].group_others.empty());  // the root port in the group is a bridge
    CHECK(gpus[1].gpu.address.str() == "0000:02:00.0");
    CHECK(gpus[1].functions.size() == 1);
    REQUIRE(gpus[1].group_others.size() == 1);
    CHECK(gpus[1].group_others[0].str() == "0000:02:01.0");
}

TEST_CASE("init sizes the VM to half of the host and pins it to whole cores", "[app][init]") {
    struct Row {
        const char* name;
        std::string online;
        std::map<unsigned, std::string> siblings;
        std::string meminfo;  // empty: no proc/meminfo
        unsigned cores, threads;
        std::vector<unsigned> pin, emulator_pin;
        std::string memory;
    };
    const Row rows[] = {
        {"8 CPUs in 4 SMT pairs and 32 GiB", "0-7", {{0, "0,4"}, {1, "1,5"}, {2, "2,6"}, {3, "3,7"}, {4, "0,4"}, {5, "1,5"}, {6, "2,6"}, {7, "3,7"}},
         "MemTotal:       32795164 kB\n", 2, 2, {2, 6, 3, 7}, {0, 4}, "15G"},
        {"16 CPUs with siblings side by side and 64 GiB", "0-15",
         {{0, "0-1"}, {1, "0-1"}, {2, "2-3"}, {3, "2-3"}, {4, "4-5"}, {5, "4-5"}, {6, "6-7"}, {7, "6-7"},
          {8, "8-9"}, {9, "8-9"}, {10, "10-11"}, {11, "10-11"}, {12, "12-13"}, {13, "12-13"}, {14, "14-15"}, {15, "14-15"}},
         "MemTotal:       65536000 kB\n", 4, 2, {8, 9, 10, 11, 12, 13, 14, 15}, {0, 1}, "31G"},
        {"4 CPUs without SMT and 3 GiB", "0-3", {{0, "0"}, {1, "1"}, {2, "2"}, {3, "3"}}, "MemTotal: 3145728 kB\n", 2, 1, {2, 3}, {0},
         "1536M"},
        {"one CPU and no meminfo", "0", {{0, "0"}}, "", 1, 1, {}, {}, "4G"},
    };
    for (const Row& row : rows) {
        SECTION(row.name) {
            test::HostFixture fx;
            fx.set_cpus(row.online, row.siblings);
            if (row.meminfo.empty()) fx.remove("proc/meminfo");
            else fx.write("proc/meminfo", row.meminfo);
            const auto s = app::size_for(host::scan_host(fx.root()));
            CHECK(s.cores == row.cores);
            CHECK(s.threads == row.threads);
            CHECK(s.pin == row.pin);
            CHECK(s.emulator_pin == row.emulator_pin);
            CHECK(s.memory == row.memory);
        }
    }
}

TEST_CASE("the starter profile for a GPU and its audio loads validates and passes check", "[app][init]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    fx.write("proc/meminfo", "MemTotal:       16318460 kB\n");
    const auto host = host::scan_host(fx.root());
    const auto gpus = app::find_gpus(host);
    REQUIRE(gpus.size() == 1);
    const std::string text = app::starter_profile(host, gpus[0], "gaming");
    INFO(text);

    const fs::path file = fx.root() / "gaming.toml";
    std::ofstream(file) << text;
    auto loaded = profile::load_and_validate(file);
    INFO(dump(loaded.diagnostics));
    CHECK(loaded.diagnostics.empty());  // no errors and no warnings
    const auto& p = loaded.profile;
    CHECK(p.name == "gaming");
    REQUIRE(p.pci.size() == 2);
    CHECK(p.pci[0].address.str() == "0000:01:00.0");
    CHECK(p.pci[0].id == "10de:2484");
    CHECK(p.pci[1].address.str() == "0000:01:00.1");
    CHECK(p.pci[1].id == "10de:228b");
    CHECK(p.machine.memory == 7ull << 30);
    CHECK(p.cpu.cores == 2);
    CHECK(p.cpu.threads == 2);
    CHECK(p.cpu.pin == std::vector<unsigned>{2, 6, 3, 7});
    CHECK(p.firmware.type == profile::FirmwareType::ovmf);
    CHECK(p.cpu.hide_kvm);  // NVIDIA
    CHECK(p.cpu.hv_vendor_id);

    const auto result = preflight::check(p, host);
    std::string findings;
    for (const auto& f : result.findings) findings += std::string(preflight::severity_name(f.severity)) + " " + f.code + ": " + f.text() + "\n";
    INFO(findings);
    CHECK(result.ok());
    CHECK(result.count(preflight::Severity::warning) == 0);
    CHECK(std::count_if(result.findings.begin(), result.findings.end(), [](const auto& f) { return f.code == "identity"; }) == 2);
    // Every section is explained.
    for (const char* comment : {"# The card:", "[machine]\ntype = \"q35\"", "# The guest's disk.", "# NVIDIA's driver"})
        CHECK(text.find(comment) != std::string::npos);
}

TEST_CASE("the starter profile of an AMD card does not hide the hypervisor", "[app][init]") {
    test::HostFixture fx;
    fx.add_device(amd_gpu("0000:02:00.0", 2));
    const auto host = host::scan_host(fx.root());
    const std::string text = app::starter_profile(host, app::find_gpus(host).at(0), "vm");
    auto loaded = profile::load_text(text, "/p/vm.toml");
    profile::validate(loaded.profile, loaded.diagnostics);
    INFO(text << dump(loaded.diagnostics));
    CHECK(loaded.diagnostics.empty());
    CHECK_FALSE(loaded.profile.cpu.hide_kvm);
    CHECK_FALSE(loaded.profile.cpu.hv_vendor_id);
    CHECK(loaded.profile.pci.at(0).id == "1002:744c");
}

TEST_CASE("init chooses the only GPU and refuses to guess among several", "[app][init]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto ctx = context(fx);
    SECTION("one GPU: chosen without asking") {
        const auto r = app::init(ctx, {});
        CHECK_FALSE(r.refused);
        CHECK(r.chosen == 0u);
        CHECK(r.name == "vm");
        CHECK(r.profile.find("address = \"0000:01:00.1\"") != std::string::npos);
        CHECK(r.written.empty());
    }
    SECTION("two GPUs and no choice: bad input naming both") {
        fx.add_device(amd_gpu("0000:02:00.0", 2));
        const auto r = app::init(ctx, {});
        REQUIRE(r.refused);
        CHECK(r.refused->exit_code() == 2);
        CHECK(r.refused->code() == "choose-gpu");
        CHECK(std::string(r.refused->what()).find("0000:01:00.0, 0000:02:00.0") != std::string::npos);
        CHECK(r.gpus.size() == 2);
        CHECK(r.profile.empty());
    }
    SECTION("two GPUs and --gpu: that one") {
        fx.add_device(amd_gpu("0000:02:00.0", 2));
        app::InitRequest req;
        req.gpu = util::PciAddress::parse("02:00.0");
        const auto r = app::init(ctx, req);
        CHECK_FALSE(r.refused);
        CHECK(r.chosen == 1u);
        CHECK(r.profile.find("id = \"1002:744c\"") != std::string::npos);
    }
    SECTION("--gpu naming the audio function: bad input") {
        app::InitRequest req;
        req.gpu = util::PciAddress::parse("01:00.1");
        const auto r = app::init(ctx, req);
        REQUIRE(r.refused);
        CHECK(r.refused->code() == "not-a-gpu");
        CHECK(std::string(r.refused->what()).find("is not a GPU (Audio device)") != std::string::npos);
    }
    SECTION("no GPU at all: a runtime failure") {
        test::HostFixture bare;
        const auto r = app::init(context(bare), {});
        REQUIRE(r.refused);
        CHECK(r.refused->exit_code() == 1);
        CHECK(r.refused->code() == "no-gpu");
    }
    SECTION("a name that cannot be a VM name is refused before the host is read") {
        app::InitRequest req;
        req.name = "my vm";
        CHECK_THROWS_AS(app::init(ctx, req), util::BadInput);
    }
}

TEST_CASE("init writes a new file and replaces one only with force", "[app][init]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto ctx = context(fx);
    app::InitRequest req;
    req.output = fx.root() / "desk.toml";
    const auto first = app::init(ctx, req);
    REQUIRE_FALSE(first.refused);
    CHECK(first.written == req.output);
    CHECK(first.name == "desk");  // from the file name
    std::ifstream in(req.output);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(content == first.profile);

    std::ofstream(req.output) << "# mine\n";
    const auto again = app::init(ctx, req);
    REQUIRE(again.refused);
    CHECK(again.refused->code() == "exists");
    CHECK(again.refused->exit_code() == 2);
    CHECK(again.written.empty());
    std::ifstream kept(req.output);
    CHECK(std::string((std::istreambuf_iterator<char>(kept)), std::istreambuf_iterator<char>()) == "# mine\n");

    req.force = true;
    const auto forced = app::init(ctx, req);
    CHECK_FALSE(forced.refused);
    std::ifstream replaced(req.output);
    CHECK(std::string((std::istreambuf_iterator<char>(replaced)), std::istreambuf_iterator<char>()) == forced.profile);
    CHECK_FALSE(fs::exists(req.output.string() + ".kvmgpu-tmp"));
}

TEST_CASE("init makes the missing directory of its output file", "[app][init]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    app::InitRequest req;
    req.output = fx.root() / "etc" / "kvmgpu" / "win11.toml";
    const auto r = app::init(context(fx), req);
    REQUIRE_FALSE(r.refused);
    CHECK(fs::is_regular_file(req.output));
    CHECK(r.name == "win11");
}
