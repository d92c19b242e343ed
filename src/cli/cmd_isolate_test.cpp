// `kvmgpu isolate` through the real binary, on temporary host roots.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "host_fixture.hpp"
#include "kvmgpu_process.hpp"
#include "temp_dir.hpp"

using namespace kvmgpu;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A host with the NVIDIA card and its audio (test::add_gpu_with_audio), an Intel CPU, the
// modprobe.d directory with a file of its own, and Debian's boot tools.
struct IsolateHost {
    test::HostFixture fx;
    testing::TempDir scratch;  // the command's captured output and the profile, outside the root
    fs::path profile;

    IsolateHost() {
        test::add_gpu_with_audio(fx);
        fx.write("proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\n");
        fx.write("etc/modprobe.d/blacklist.conf", "blacklist pcspkr\n");
        fx.write("etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n");
        for (const char* tool : {"usr/sbin/update-initramfs", "usr/sbin/update-grub"}) {
            fx.write(tool, "#!/bin/sh\n");
            fs::permissions(fx.path(tool), fs::perms::owner_all);
        }
        profile = write_profile("win11", "[[pci]]\naddress = \"01:00.0\"\n");
    }

    fs::path write_profile(const std::string& name, const std::string& pci) {
        const auto file = scratch.path() / (name + ".toml");
        std::ofstream(file) << "name = \"" << name << "\"\n[machine]\nmemory = \"1G\"\n" << pci;
        return file;
    }

    testing::Output kvmgpu(std::vector<std::string> args) {
        for (const char* g : {"--host-root", fx.root().c_str()}) args.push_back(g);
        args.push_back("--runtime-dir");
        args.push_back(fx.runtime().string());
        return testing::kvmgpu_run(args, scratch.path());
    }

    fs::path conf() const { return fx.path("etc/modprobe.d/kvmgpu-vfio.conf"); }
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("isolate --dry-run prints the file and the steps and writes nothing", "[cli][isolate]") {
    IsolateHost h;
    const auto before = h.fx.snapshot();
    const auto r = h.kvmgpu({"isolate", "--dry-run", h.profile.string()});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(test::snapshot_diff(before, h.fx.snapshot()).empty());
    CHECK(has(r.out, "would write " + h.conf().string()));
    CHECK(has(r.out, "# kvmgpu-managed: vm=win11 fnv1a64="));
    // The GPU and the audio function the plan adds, nouveau and snd_hda_intel bound now, nvidia known.
    CHECK(has(r.out, "\noptions vfio-pci ids=10de:2484,10de:228b\n"));
    CHECK(has(r.out, "softdep nouveau pre: vfio-pci\nsoftdep nvidia pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n"));
    // The command line has intel_iommu=on already; iommu=pt is missing; GRUB and Debian's tools.
    CHECK(has(r.out, "add iommu=pt to the kernel command line: add them to GRUB_CMDLINE_LINUX_DEFAULT in "
                     "/etc/default/grub, then run `update-grub`"));
    CHECK_FALSE(has(r.out, "intel_iommu=on to"));
    CHECK(has(r.out, "`update-initramfs -u`"));
    CHECK_FALSE(has(r.out, "dracut"));
    CHECK(has(r.out, "reboot"));
}

TEST_CASE("isolate writes the file and isolate --undo leaves the root exactly as before", "[cli][isolate]") {
    IsolateHost h;
    const auto before = h.fx.snapshot();
    const auto w = h.kvmgpu({"isolate", h.profile.string()});
    INFO(w.out << w.err);
    REQUIRE(w.status == 0);
    CHECK(has(w.err, "writing " + h.conf().string() + " … ok"));
    CHECK(has(w.out, "Steps kvmgpu cannot take itself:"));
    const auto text = slurp(h.conf());
    CHECK(has(text, "options vfio-pci ids=10de:2484,10de:228b\n"));
    struct stat st {};
    REQUIRE(::lstat(h.conf().c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0644);

    const auto again = h.kvmgpu({"isolate", h.profile.string()});
    CHECK(again.status == 0);
    CHECK(has(again.err, "already up to date"));

    const auto dry = h.kvmgpu({"isolate", "--undo", "--dry-run"});
    CHECK(dry.status == 0);
    CHECK(has(dry.out, "would remove"));
    CHECK(slurp(h.conf()) == text);

    const auto u = h.kvmgpu({"isolate", "--undo", h.profile.string()});
    INFO(u.out << u.err);
    REQUIRE(u.status == 0);
    CHECK(has(u.err, "removing " + h.conf().string() + " … ok"));
    CHECK(has(u.out, "`update-initramfs -u`"));
    CHECK(test::snapshot_diff(before, h.fx.snapshot()).empty());

    const auto twice = h.kvmgpu({"isolate", "--undo"});
    CHECK(twice.status == 0);
    CHECK(has(twice.err, "nothing to undo"));
}

TEST_CASE("isolate --undo refuses an edited file and a file of another VM and keeps them", "[cli][isolate]") {
    IsolateHost h;
    REQUIRE(h.kvmgpu({"isolate", h.profile.string()}).status == 0);
    SECTION("of another VM") {
        const auto other = h.write_profile("linux", "[[pci]]\naddress = \"01:00.0\"\n");
        const auto r = h.kvmgpu({"isolate", "--undo", other.string()});
        CHECK(r.status == 1);
        CHECK(has(r.err, "for the VM \"win11\", not \"linux\""));
        const auto w = h.kvmgpu({"isolate", other.string()});
        CHECK(w.status == 1);
        CHECK(fs::exists(h.conf()));
    }
    SECTION("edited") {
        h.fx.write("etc/modprobe.d/kvmgpu-vfio.conf", slurp(h.conf()) + "softdep i915 pre: vfio-pci\n");
        const auto edited = slurp(h.conf());
        const auto r = h.kvmgpu({"isolate", "--undo"});
        INFO(r.err);
        CHECK(r.status == 1);
        CHECK(has(r.err, "kvmgpu: error: not removing \"" + h.conf().string() + "\": it was edited since kvmgpu wrote it"));
        CHECK(slurp(h.conf()) == edited);
        const auto j = h.kvmgpu({"--json", "isolate", "--undo", "--dry-run"});
        CHECK(j.status == 1);
        const auto error = json::parse(j.out);
        CHECK(error["code"] == "file-edited");
        CHECK(error["exit"] == 1);
        // Nor is it written over.
        CHECK(h.kvmgpu({"isolate", h.profile.string()}).status == 1);
        CHECK(slurp(h.conf()) == edited);
    }
}

TEST_CASE("isolate refuses a symbolic link at the target and follows it nowhere", "[cli][isolate]") {
    IsolateHost h;
    h.fx.write("etc/vfio-elsewhere.conf", "# the admin's\n");
    fs::create_symlink("../vfio-elsewhere.conf", h.conf());
    const auto before = h.fx.snapshot();
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"isolate", h.profile.string()}, {"isolate", "--dry-run", h.profile.string()}, {"isolate", "--undo"}}) {
        const auto r = h.kvmgpu(args);
        INFO(args.back() << "\n" << r.err);
        CHECK(r.status == 1);
        CHECK(has(r.err, "is a symbolic link"));
    }
    CHECK(test::snapshot_diff(before, h.fx.snapshot()).empty());
}

TEST_CASE("isolate warns when a device outside the plan shares an identity", "[cli][isolate]") {
    IsolateHost h;
    // A second card of the same model, the host's own.
    test::DeviceSpec twin;
    twin.address = "0000:02:00.0";
    twin.vendor = 0x10de;
    twin.device = 0x2484;
    twin.class_code = 0x030000;
    twin.driver = "nouveau";
    twin.group = 7;
    h.fx.add_device(twin);
    const auto r = h.kvmgpu({"isolate", "--dry-run", h.profile.string()});
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(has(r.err, "kvmgpu: warning: PCI device \"0000:02:00.0\""));
    CHECK(has(r.err, "has the identity 10de:2484 too but is not in"));
    CHECK(has(r.err, "driver_override"));
    CHECK_FALSE(has(r.err, "0000:02:00.0\" has the identity 10de:228b"));
}

TEST_CASE("isolate --json gives one object with the file the ids and the steps", "[cli][isolate]") {
    IsolateHost h;
    h.fx.write("etc/modprobe.d/vfio.conf", "options vfio-pci ids=10de:1b80\n");
    const auto r = h.kvmgpu({"--json", "isolate", h.profile.string()});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    const auto j = json::parse(r.out);
    CHECK(j["file"] == h.conf().string());
    CHECK(j["vm"] == "win11");
    CHECK(j["outcome"] == "written");
    CHECK(j["dry_run"] == false);
    CHECK(j["ids"] == json::array({"10de:2484", "10de:228b"}));
    CHECK(j["softdeps"] == json::array({"nouveau", "nvidia", "snd_hda_intel"}));
    REQUIRE(j["devices"].size() == 2);
    CHECK(j["devices"][1] == json{{"address", "0000:01:00.1"}, {"id", "10de:228b"}, {"driver", "snd_hda_intel"}});
    CHECK(j["content"] == slurp(h.conf()));
    REQUIRE(j["warnings"].size() == 1);
    CHECK(has(j["warnings"][0].get<std::string>(), "/etc/modprobe.d/vfio.conf: options vfio-pci ids=10de:1b80"));
    REQUIRE(j["steps"].size() == 3);
    CHECK(j["steps"][0]["step"] == "kernel-cmdline");
    CHECK(j["steps"][0]["needed"] == true);

    const auto u = h.kvmgpu({"--json", "isolate", "--undo"});
    REQUIRE(u.status == 0);
    const auto ju = json::parse(u.out);
    CHECK(ju["outcome"] == "removed");
    CHECK(ju["vm"] == "win11");
    CHECK_FALSE(fs::exists(h.conf()));
}

TEST_CASE("isolate names the bad input and exits 2 without writing", "[cli][isolate]") {
    IsolateHost h;
    const auto before = h.fx.snapshot();
    struct Case {
        std::string what, pci, message;
    };
    const std::vector<Case> cases{
        {"no such device", "[[pci]]\naddress = \"05:00.0\"\n",
         "[[pci]] address \"0000:05:00.0\" is not a PCI device of this host"},
        {"a bridge", "[[pci]]\naddress = \"00:01.0\"\n", "is a PCI bridge"},
        {"no devices", "", "has no [[pci]] devices"},
        {"a bad profile", "[[pci]]\naddress = \"not-an-address\"\n", "fix it and run again"},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        const auto file = h.write_profile("bad", c.pci);
        const auto r = h.kvmgpu({"isolate", file.string()});
        INFO(r.err);
        CHECK(r.status == 2);
        CHECK(has(r.err, c.message));
        const auto j = h.kvmgpu({"--json", "isolate", file.string()});
        CHECK(j.status == 2);
        std::string last = j.out.substr(j.out.rfind('\n', j.out.size() - 2) + 1);
        CHECK(json::parse(last)["exit"] == 2);
    }
    CHECK(h.kvmgpu({"isolate"}).status == 2);
    CHECK(test::snapshot_diff(before, h.fx.snapshot()).empty());
}

TEST_CASE("isolate prints both initramfs tools and the GRUB alternatives when it finds none", "[cli][isolate]") {
    IsolateHost h;
    h.fx.remove("usr/sbin/update-initramfs");
    h.fx.remove("usr/sbin/update-grub");
    h.fx.remove("etc/default/grub");
    h.fx.remove("proc/cpuinfo");
    h.fx.set_cmdline("root=/dev/sda1 ro");
    const auto r = h.kvmgpu({"isolate", "--dry-run", h.profile.string()});
    INFO(r.out);
    REQUIRE(r.status == 0);
    CHECK(has(r.out, "intel_iommu=on (Intel CPU) or amd_iommu=on (AMD CPU) iommu=pt"));
    CHECK(has(r.out, "with GRUB: add them"));
    CHECK(has(r.out, "`update-initramfs -u` (Debian, Ubuntu) or `dracut -f` (Fedora)"));
}
