#include "host/boot_config.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "temp_dir.hpp"
#include "util/text.hpp"

using namespace kvmgpu;
using namespace kvmgpu::host;
namespace fs = std::filesystem;

namespace {

VfioModprobeConf gpu_and_audio() {
    VfioModprobeConf conf;
    conf.vm = "win11";
    conf.devices = {{*util::PciAddress::parse("0000:01:00.0"), 0x10de, 0x2684, "nvidia"},
                    {*util::PciAddress::parse("0000:01:00.1"), 0x10de, 0x22ba, "snd_hda_intel"}};
    conf.softdeps = {"nouveau", "nvidia", "snd_hda_intel"};
    return conf;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void put(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

}  // namespace

TEST_CASE("the vfio-pci file lists ids once each and a softdep per driver under a marker line", "[boot_config]") {
    auto conf = gpu_and_audio();
    // A second identical card's function would repeat an id; ids= lists it once.
    conf.devices.push_back({*util::PciAddress::parse("0000:02:00.1"), 0x10de, 0x22ba, ""});
    const auto text = render_vfio_modprobe_conf(conf);
    const auto eol = text.find('\n');
    const auto first = text.substr(0, eol);
    CHECK(first.rfind("# kvmgpu-managed: vm=win11 fnv1a64=", 0) == 0);
    char hash[17];
    std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a64(text.substr(eol + 1))));
    CHECK(first.substr(first.size() - 16) == hash);
    CHECK(text.find("\noptions vfio-pci ids=10de:2684,10de:22ba\n") != std::string::npos);
    CHECK(text.find("softdep nouveau pre: vfio-pci\nsoftdep nvidia pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n") !=
          std::string::npos);
    CHECK(text.find("#   0000:01:00.0  10de:2684  driver then: nvidia\n") != std::string::npos);
    CHECK(text.find("#   0000:02:00.1  10de:22ba  driver then: none\n") != std::string::npos);
    CHECK(render_vfio_modprobe_conf(conf) == text);
}

TEST_CASE("fnv1a64 matches the published test vectors", "[boot_config]") {
    CHECK(fnv1a64("") == 0xcbf29ce484222325ULL);
    CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
    CHECK(fnv1a64("foobar") == 0x85944171f73967e8ULL);
}

TEST_CASE("known host drivers follow the vendor and the class", "[boot_config]") {
    using V = std::vector<std::string>;
    CHECK(known_host_drivers(0x10de, 0x030000) == V{"nouveau", "nvidia"});
    CHECK(known_host_drivers(0x10de, 0x030200) == V{"nouveau", "nvidia"});
    CHECK(known_host_drivers(0x1002, 0x030000) == V{"amdgpu", "radeon"});
    CHECK(known_host_drivers(0x8086, 0x030000) == V{"i915", "xe"});
    CHECK(known_host_drivers(0x1002, 0x040300) == V{"snd_hda_intel"});
    CHECK(known_host_drivers(0x10de, 0x0c0330) == V{"xhci_pci"});
    CHECK(known_host_drivers(0x10de, 0x0c8000) == V{"i2c_nvidia_gpu"});
    CHECK(known_host_drivers(0x8086, 0x020000).empty());
}

TEST_CASE("a driver's module comes from its module link or else its own name", "[boot_config]") {
    testing::TempDir root;
    fs::create_directories(root.path() / "sys/module/xhci_pci");
    fs::create_directories(root.path() / "sys/bus/pci/drivers/xhci_hcd");
    fs::create_symlink("../../../../module/xhci_pci", root.path() / "sys/bus/pci/drivers/xhci_hcd/module");
    CHECK(driver_module(root.path(), "xhci_hcd") == "xhci_pci");
    CHECK(driver_module(root.path(), "snd-hda-intel") == "snd_hda_intel");
}

TEST_CASE("programs and the CPU vendor are read under the root", "[boot_config]") {
    testing::TempDir root;
    CHECK_FALSE(find_program(root.path(), {"dracut"}));
    put(root.path() / "usr/bin/dracut", "#!/bin/sh\n");
    CHECK_FALSE(find_program(root.path(), {"dracut"}));  // not executable
    fs::permissions(root.path() / "usr/bin/dracut", fs::perms::owner_all);
    CHECK(find_program(root.path(), {"update-initramfs", "dracut"}) == "/usr/bin/dracut");
    CHECK(cpu_vendor(root.path()).empty());
    put(root.path() / "proc/cpuinfo", "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n");
    CHECK(cpu_vendor(root.path()) == "AuthenticAMD");
}

TEST_CASE("inspect tells kvmgpu's intact file from an edited one and from others", "[boot_config]") {
    testing::TempDir dir;
    const auto file = dir.path() / "kvmgpu-vfio.conf";
    CHECK(inspect_managed_file(file).state == ManagedState::absent);

    const auto text = render_vfio_modprobe_conf(gpu_and_audio());
    put(file, text);
    auto f = inspect_managed_file(file);
    CHECK(f.state == ManagedState::intact);
    CHECK(f.vm == "win11");

    struct Case {
        const char* what;
        std::string content;
        ManagedState state;
    };
    const std::vector<Case> cases{
        {"a line added", text + "softdep i915 pre: vfio-pci\n", ManagedState::edited},
        {"an id changed", [&] {
             auto t = text;
             t.replace(t.find("10de:2684,"), 9, "10de:2685");
             return t;
         }(), ManagedState::edited},
        {"the marker's hash changed", [&] {
             auto t = text;
             t[t.find('\n') - 1] = t[t.find('\n') - 1] == '0' ? '1' : '0';
             return t;
         }(), ManagedState::edited},
        {"a marker without fields", "# kvmgpu-managed: hello\noptions vfio-pci ids=1:2\n", ManagedState::edited},
        {"another program's file", "options vfio-pci ids=10de:2684\n", ManagedState::foreign},
        {"an empty file", "", ManagedState::foreign},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        put(file, c.content);
        CHECK(inspect_managed_file(file).state == c.state);
    }

    fs::remove(file);
    fs::create_symlink("elsewhere.conf", file);
    CHECK(inspect_managed_file(file).state == ManagedState::symlink);
    fs::remove(file);
    fs::create_directory(file);
    CHECK(inspect_managed_file(file).state == ManagedState::not_regular);
}

TEST_CASE("write makes the file whole with mode 0644 and leaves no temporary file", "[boot_config]") {
    testing::TempDir dir;
    const auto file = dir.path() / "kvmgpu-vfio.conf";
    const auto text = render_vfio_modprobe_conf(gpu_and_audio());
    const auto old_mask = ::umask(077);
    CHECK(write_managed_file(file, text, "win11") == WriteOutcome::written);
    ::umask(old_mask);
    CHECK(slurp(file) == text);
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0644);
    CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);

    SECTION("the same content again is left as it is") {
        CHECK(write_managed_file(file, text, "win11") == WriteOutcome::unchanged);
    }
    SECTION("new content replaces kvmgpu's intact file of the same VM") {
        auto conf = gpu_and_audio();
        conf.softdeps.push_back("xhci_pci");
        const auto newer = render_vfio_modprobe_conf(conf);
        CHECK(write_managed_file(file, newer, "win11") == WriteOutcome::written);
        CHECK(slurp(file) == newer);
    }
    SECTION("another VM's file is refused") {
        auto conf = gpu_and_audio();
        conf.vm = "linux";
        CHECK_THROWS_WITH(write_managed_file(file, render_vfio_modprobe_conf(conf), "linux"),
                          Catch::Contains("for the VM \"win11\", not \"linux\"") && Catch::Contains("--undo"));
        CHECK(slurp(file) == text);
    }
}

TEST_CASE("write refuses a symbolic link at the target and leaves what it points at alone", "[boot_config]") {
    testing::TempDir dir;
    const auto file = dir.path() / "kvmgpu-vfio.conf";
    const auto target = dir.path() / "target.conf";
    put(target, "# someone's\n");
    fs::create_symlink(target, file);
    try {
        write_managed_file(file, render_vfio_modprobe_conf(gpu_and_audio()), "win11");
        FAIL("no refusal");
    } catch (const ManagedFileRefused& e) {
        CHECK(e.code() == "foreign-file");
        CHECK(e.exit_code() == 1);
        CHECK(std::string(e.what()).find("is a symbolic link") != std::string::npos);
    }
    CHECK(fs::is_symlink(file));
    CHECK(slurp(target) == "# someone's\n");
    // A dangling link too: following it would create a file wherever it points.
    fs::remove(target);
    CHECK_THROWS_AS(write_managed_file(file, "x", "win11"), ManagedFileRefused);
    CHECK_FALSE(fs::exists(target));
}

TEST_CASE("write and remove refuse a file kvmgpu did not write or that was edited", "[boot_config]") {
    testing::TempDir dir;
    const auto file = dir.path() / "kvmgpu-vfio.conf";
    const auto text = render_vfio_modprobe_conf(gpu_and_audio());
    SECTION("another program's file") {
        put(file, "options vfio-pci ids=10de:2684\n");
        CHECK_THROWS_WITH(write_managed_file(file, text, "win11"), Catch::Contains("was not written by kvmgpu"));
        CHECK_THROWS_WITH(remove_managed_file(file, std::nullopt), Catch::Contains("was not written by kvmgpu"));
        CHECK(slurp(file) == "options vfio-pci ids=10de:2684\n");
    }
    SECTION("kvmgpu's file, edited") {
        put(file, text + "# my note\n");
        try {
            remove_managed_file(file, std::nullopt);
            FAIL("no refusal");
        } catch (const ManagedFileRefused& e) {
            CHECK(e.code() == "file-edited");
            CHECK(std::string(e.what()).find("was edited since kvmgpu wrote it") != std::string::npos);
            CHECK(std::string(e.what()).find(util::quoted(file.string())) != std::string::npos);
        }
        CHECK_THROWS_AS(write_managed_file(file, text, "win11"), ManagedFileRefused);
        CHECK(slurp(file) == text + "# my note\n");
    }
}

TEST_CASE("remove takes kvmgpu's intact file and says when there was none", "[boot_config]") {
    testing::TempDir dir;
    const auto file = dir.path() / "kvmgpu-vfio.conf";
    CHECK_FALSE(remove_managed_file(file, std::nullopt));
    write_managed_file(file, render_vfio_modprobe_conf(gpu_and_audio()), "win11");
    CHECK_THROWS_WITH(remove_managed_file(file, std::string("linux")), Catch::Contains("not \"linux\""));
    CHECK(remove_managed_file(file, std::string("win11")));
    CHECK_FALSE(fs::exists(fs::symlink_status(file)));
}

TEST_CASE("other modprobe files that set vfio-pci ids are found", "[boot_config]") {
    testing::TempDir root;
    const auto d = root.path() / "etc/modprobe.d";
    put(d / "vfio.conf", "# old guide\noptions vfio_pci ids=10de:1b80 disable_vga=1\n");
    put(d / "blacklist.conf", "blacklist nouveau\noptions vfio-pci disable_idle_d3=1\n");
    put(d / "kvmgpu-vfio.conf", "options vfio-pci ids=10de:2684\n");  // ours: not "another"
    put(d / "notes.txt", "options vfio-pci ids=1:2\n");                // modprobe reads only *.conf
    const auto lines = other_vfio_ids_lines(root.path());
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == "/etc/modprobe.d/vfio.conf: options vfio_pci ids=10de:1b80 disable_vga=1");
}
