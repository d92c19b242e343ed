#include "host/host_change.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <functional>
#include <fstream>
#include <map>

#include "host/binder.hpp"
#include "host/journal.hpp"
#include "host_doubles.hpp"
#include "host_fixture.hpp"
#include "temp_dir.hpp"
#include "util/text.hpp"

namespace fs = std::filesystem;
using namespace kvmgpu;
using namespace kvmgpu::host;
using kvmgpu::test::FakeRunner;
using kvmgpu::test::HostFixture;
using kvmgpu::test::HostWriter;

namespace {

util::PciAddress addr(const char* text) { return *util::PciAddress::parse(text); }

BindOptions fast() {
    BindOptions o;
    o.timeout = std::chrono::milliseconds(50);
    o.poll_interval = std::chrono::milliseconds(1);
    return o;
}

// A fixture host with one writer and one runner sharing a log, and the journal of VM "vm".
struct Host {
    HostFixture fx;
    std::vector<std::string> events;
    HostWriter writer{fx, events};
    FakeRunner runner{events};

    RestoreReport restore() { return restore_changes(fx.root(), fx.runtime(), "vm", writer, &runner, fast()); }
    void record(const HostChange& change) { record_change(fx.runtime(), "vm", 4242, change); }
    std::vector<HostChange> journal() const {
        const auto j = read_changes(fx.runtime(), "vm");
        return j ? j->changes : std::vector<HostChange>{};
    }
    // A file under the root with the given owner and mode.
    void make_file(const std::string& rel, uid_t uid, gid_t gid, mode_t mode, const std::string& content = "") {
        fx.write(rel, content);
        REQUIRE(::chown(fx.path(rel).c_str(), uid, gid) == 0);
        REQUIRE(::chmod(fx.path(rel).c_str(), mode) == 0);
    }
    std::string owner(const std::string& rel) const {
        struct stat st {};
        if (::lstat(fx.path(rel).c_str(), &st) != 0) return "missing";
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + " " + mode;
    }
    std::string attr(const std::string& rel) const { return read_attr(fx.path(rel)).value_or("missing"); }
};

constexpr const char* kHugepages = "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
constexpr const char* kIrq = "proc/irq/24/smp_affinity_list";

}  // namespace

TEST_CASE("each kind of host change is undone from the journal and dropped from it", "[host][journal]") {
    struct Row {
        const char* kind;
        // Sets the host up, journals the change and makes it.
        std::function<void(Host&)> make;
        std::function<void(Host&)> check;  // the host is back
        std::vector<std::string> events;   // writes and runs of the restore
        std::string message;               // its message, after the root
    };
    const Row rows[] = {
        {"device-to-vfio",
         [](Host& h) {
             test::add_gpu_with_audio(h.fx);
             bind_devices(h.fx.root(), h.fx.runtime(), "vm", {addr("0000:01:00.0")}, h.writer, fast());
         },
         [](Host& h) {
             CHECK(h.fx.driver_of("0000:01:00.0") == "nouveau");
             CHECK(h.fx.override_of("0000:01:00.0") == "(null)");
         },
         {"write sys/bus/pci/devices/0000:01:00.0/driver_override <- \\n",
          "write sys/bus/pci/devices/0000:01:00.0/driver/unbind <- 0000:01:00.0",
          "write sys/bus/pci/drivers/nouveau/bind <- 0000:01:00.0"},
         "PCI device \"0000:01:00.0\" is back on \"nouveau\"."},
        {"file-owner-changed",
         [](Host& h) {
             h.make_file("dev/vfio/1", 0, 0, 0600);
             h.record(FileOwnerChanged{"/dev/vfio/1", 0, 0, 0600});
             // Handed to QEMU's user, as Debian's libvirt-qemu.
             REQUIRE(::chown(h.fx.path("dev/vfio/1").c_str(), 64055, 64055) == 0);
             REQUIRE(::chmod(h.fx.path("dev/vfio/1").c_str(), 0660) == 0);
             REQUIRE(h.owner("dev/vfio/1") == "64055:64055 0660");
         },
         [](Host& h) { CHECK(h.owner("dev/vfio/1") == "0:0 0600"); },
         {},
         "/dev/vfio/1\" is back to 0:0 with mode 0600."},
        {"sysfs-value-changed",
         [](Host& h) {
             h.record(SysfsValueChanged{std::string("/") + kHugepages, "0"});
             h.fx.write(kHugepages, "512\n");
         },
         [](Host& h) { CHECK(h.attr(kHugepages) == "0"); },
         {std::string("write ") + kHugepages + " <- 0"},
         "nr_hugepages\" is back to \"0\"."},
        {"service-stopped",
         [](Host& h) { h.record(ServiceStopped{"display-manager.service"}); },
         [](Host& h) {
             CHECK(h.runner.calls ==
                   std::vector<std::vector<std::string>>{{"systemctl", "start", "display-manager.service"}});
         },
         {"run systemctl start display-manager.service"},
         "The service \"display-manager.service\" was started again (`systemctl start display-manager.service`)."},
        {"module-unloaded",
         [](Host& h) { h.record(ModuleUnloaded{"nouveau"}); },
         [](Host& h) { CHECK(h.runner.calls == std::vector<std::vector<std::string>>{{"modprobe", "nouveau"}}); },
         {"run modprobe nouveau"},
         "The module \"nouveau\" was loaded again (`modprobe nouveau`)."},
        {"driver-unbound",
         [](Host& h) {
             h.fx.add_platform_device("efi-framebuffer", "efi-framebuffer.0");
             h.record(DriverUnbound{"/sys/bus/platform/drivers/efi-framebuffer", "efi-framebuffer.0"});
             REQUIRE(h.writer.write(h.fx.path("sys/bus/platform/drivers/efi-framebuffer/unbind"), "efi-framebuffer.0") == 0);
             REQUIRE_FALSE(fs::exists(h.fx.path("sys/bus/platform/drivers/efi-framebuffer/efi-framebuffer.0")));
         },
         [](Host& h) { CHECK(fs::is_symlink(h.fx.path("sys/bus/platform/drivers/efi-framebuffer/efi-framebuffer.0"))); },
         {"write sys/bus/platform/drivers/efi-framebuffer/bind <- efi-framebuffer.0"},
         "The device \"efi-framebuffer.0\" is bound to \"efi-framebuffer\" again."},
        {"hugepages-added",
         [](Host& h) {
             h.fx.set_hugepages(2048, 100, 100);
             h.record(HugepagesAdded{"/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", 54});
             h.fx.write("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "154\n");
         },
         [](Host& h) { CHECK(h.attr("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages") == "100"); },
         {"write sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages <- 100"},
         "nr_hugepages\" went from 154 to 100 pages (54 given back)."},
        {"file-created",
         [](Host& h) {
             h.record(FileCreated{"/dev/shm/looking-glass"});
             h.make_file("dev/shm/looking-glass", 1000, 995, 0660);
         },
         [](Host& h) { CHECK_FALSE(fs::exists(h.fx.path("dev/shm/looking-glass"))); },
         {},
         "/dev/shm/looking-glass\" was removed."},
        {"unit-cpus-set",
         [](Host& h) { h.record(UnitCpusSet{"user.slice", "0-7"}); },
         [](Host& h) {
             CHECK(h.runner.calls == std::vector<std::vector<std::string>>{
                                         {"systemctl", "set-property", "--runtime", "user.slice", "AllowedCPUs=0-7"}});
         },
         {"run systemctl set-property --runtime user.slice AllowedCPUs=0-7"},
         "The unit \"user.slice\" may use CPUs 0-7 again (`systemctl set-property --runtime user.slice AllowedCPUs=0-7`)."},
        {"cgroup-created",
         [](Host& h) {
             h.record(CgroupCreated{"/sys/fs/cgroup/kvmgpu-vm"});
             fs::create_directories(h.fx.path("sys/fs/cgroup/kvmgpu-vm"));
         },
         [](Host& h) { CHECK_FALSE(fs::exists(h.fx.path("sys/fs/cgroup/kvmgpu-vm"))); },
         {},
         "/sys/fs/cgroup/kvmgpu-vm\" was removed."},
    };
    for (const Row& row : rows) {
        DYNAMIC_SECTION(row.kind) {
            Host h;
            row.make(h);
            REQUIRE(h.journal().size() == 1);
            CHECK(kind_name(h.journal()[0]) == row.kind);
            h.events.clear();

            const RestoreReport report = h.restore();
            row.check(h);
            CHECK(h.events == row.events);
            CHECK(report.ok());
            REQUIRE(report.changes.size() == 1);
            CHECK(report.changes[0].kind == row.kind);
            CHECK(report.changes[0].ok);
            CHECK(report.changes[0].message.ends_with(row.message));
            CHECK(report.devices.size() == (std::string(row.kind) == "device-to-vfio" ? 1u : 0u));
            CHECK_FALSE(fs::exists(journal_path(h.fx.runtime(), "vm")));
        }
    }
}

TEST_CASE("changes of every kind are undone last made first", "[host][journal]") {
    Host h;
    test::add_gpu_with_audio(h.fx);
    h.fx.write(kIrq, "0-7\n");
    const auto before = h.fx.snapshot();

    // A launch: unload the host driver, stop the display manager, raise hugepages, bind the
    // GPU and its audio, hand the group's node to QEMU's user, move an IRQ off the VM's CPUs.
    h.record(ModuleUnloaded{"nouveau"});
    h.record(ServiceStopped{"display-manager.service"});
    h.record(SysfsValueChanged{std::string("/") + kHugepages, "0"});
    h.fx.write(kHugepages, "512\n");
    bind_devices(h.fx.root(), h.fx.runtime(), "vm", {addr("0000:01:00.0"), addr("0000:01:00.1")}, h.writer,
                 fast());
    const std::string node_owner = h.owner("dev/vfio/1");
    struct stat st {};
    REQUIRE(::stat(h.fx.path("dev/vfio/1").c_str(), &st) == 0);
    h.record(FileOwnerChanged{"/dev/vfio/1", st.st_uid, st.st_gid, st.st_mode & 07777});
    REQUIRE(::chown(h.fx.path("dev/vfio/1").c_str(), 64055, 64055) == 0);
    h.record(SysfsValueChanged{std::string("/") + kIrq, "0-7"});
    h.fx.write(kIrq, "0-1\n");
    REQUIRE(h.journal().size() == 7);
    h.events.clear();

    const RestoreReport report = h.restore();
    CHECK(report.ok());
    std::vector<std::string> order;
    for (const auto& o : report.changes) order.push_back(o.kind + " " + o.what);
    CHECK(order == std::vector<std::string>{
                       "sysfs-value-changed /proc/irq/24/smp_affinity_list",
                       "file-owner-changed /dev/vfio/1",
                       "device-to-vfio 0000:01:00.1",
                       "device-to-vfio 0000:01:00.0",
                       "sysfs-value-changed /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
                       "service-stopped display-manager.service",
                       "module-unloaded nouveau",
                   });
    // The node's owner went back while the node was still there, before the devices left vfio-pci.
    CHECK(report.changes[1].message.ends_with("/dev/vfio/1\" is back to " + node_owner.substr(0, 3) +
                                              " with mode " + node_owner.substr(4) + "."));
    CHECK(h.events == std::vector<std::string>{
                          std::string("write ") + kIrq + " <- 0-7",
                          "write sys/bus/pci/devices/0000:01:00.1/driver_override <- \\n",
                          "write sys/bus/pci/devices/0000:01:00.1/driver/unbind <- 0000:01:00.1",
                          "write sys/bus/pci/drivers/snd_hda_intel/bind <- 0000:01:00.1",
                          "write sys/bus/pci/devices/0000:01:00.0/driver_override <- \\n",
                          "write sys/bus/pci/devices/0000:01:00.0/driver/unbind <- 0000:01:00.0",
                          "write sys/bus/pci/drivers/nouveau/bind <- 0000:01:00.0",
                          std::string("write ") + kHugepages + " <- 0",
                          "run systemctl start display-manager.service",
                          "run modprobe nouveau",
                      });
    CHECK(report.devices.size() == 2);
    CHECK(report.devices[0].address == addr("0000:01:00.1"));
    CHECK(test::snapshot_diff(before, h.fx.snapshot()) == "");
    CHECK_FALSE(fs::exists(journal_path(h.fx.runtime(), "vm")));
}

TEST_CASE("a failing undo stays in the journal while the others are undone and dropped", "[host][journal]") {
    Host h;
    h.fx.write(kIrq, "0-7\n");
    h.record(ModuleUnloaded{"nouveau"});
    h.record(ServiceStopped{"display-manager.service"});
    h.record(SysfsValueChanged{std::string("/") + kHugepages, "0"});
    h.record(SysfsValueChanged{std::string("/") + kIrq, "0-7"});
    h.fx.write(kHugepages, "512\n");
    h.fx.write(kIrq, "0-1\n");
    h.runner.status["display-manager.service"] = 5;
    h.writer.fail[kIrq] = EINVAL;

    const RestoreReport report = h.restore();
    CHECK_FALSE(report.ok());
    REQUIRE(report.changes.size() == 4);
    CHECK_FALSE(report.changes[0].ok);
    CHECK(report.changes[0].message ==
          "restoring the value of \"/proc/irq/24/smp_affinity_list\" failed: writing \"0-7\" back to \"" +
              h.fx.path(kIrq).string() +
              "\" failed: Invalid argument; its journal entry was kept, so `kvmgpu restore vm` can retry.");
    CHECK(report.changes[1].ok);
    CHECK_FALSE(report.changes[2].ok);
    CHECK(report.changes[2].message ==
          "restoring the service \"display-manager.service\" failed: cannot start \"display-manager.service\": "
          "`systemctl start display-manager.service` exited with status 5; its journal entry was kept, so "
          "`kvmgpu restore vm` can retry.");
    CHECK(report.changes[3].ok);
    CHECK(h.attr(kHugepages) == "0");
    CHECK(h.journal() == std::vector<HostChange>{ServiceStopped{"display-manager.service"},
                                                 SysfsValueChanged{std::string("/") + kIrq, "0-7"}});

    // Once the causes are gone, a retry finishes the job and touches only what was left.
    h.runner.status.clear();
    h.writer.fail.clear();
    h.events.clear();
    CHECK(h.restore().ok());
    CHECK(h.events == std::vector<std::string>{std::string("write ") + kIrq + " <- 0-7",
                                               "run systemctl start display-manager.service"});
    CHECK(h.attr(kIrq) == "0-7");
    CHECK_FALSE(fs::exists(journal_path(h.fx.runtime(), "vm")));
}

TEST_CASE("without a command runner services and modules are kept, saying there is none", "[host][journal]") {
    Host h;
    h.record(ModuleUnloaded{"nouveau"});
    h.record(ServiceStopped{"display-manager.service"});
    test::SimulatedKernel kernel(h.fx);
    const RestoreReport report = restore_devices(h.fx.root(), h.fx.runtime(), "vm", kernel, fast());
    CHECK_FALSE(report.ok());
    REQUIRE(report.changes.size() == 2);
    CHECK(report.changes[0].message.find("cannot start \"display-manager.service\": no command runner") !=
          std::string::npos);
    CHECK(report.changes[1].message.find("cannot load \"nouveau\": no command runner") != std::string::npos);
    CHECK(report.devices.empty());
    CHECK(h.journal().size() == 2);
}

TEST_CASE("replaying a journal twice changes nothing the second time", "[host][journal]") {
    Host h;
    test::add_gpu_with_audio(h.fx);
    h.record(ModuleUnloaded{"nouveau"});
    h.record(SysfsValueChanged{std::string("/") + kHugepages, "0"});
    h.fx.write(kHugepages, "512\n");
    bind_devices(h.fx.root(), h.fx.runtime(), "vm", {addr("0000:01:00.0")}, h.writer, fast());
    h.make_file("dev/input/event3", 0, 0, 0640);
    h.record(FileOwnerChanged{"/dev/input/event3", 0, 0, 0640});
    REQUIRE(::chown(h.fx.path("dev/input/event3").c_str(), 64055, 0) == 0);
    h.record(ServiceStopped{"display-manager.service"});
    const ChangeJournal journal = *read_changes(h.fx.runtime(), "vm");

    REQUIRE(h.restore().ok());
    const auto after = h.fx.snapshot();
    h.events.clear();
    const RestoreReport second = h.restore();
    CHECK(second.ok());
    CHECK(second.changes.empty());
    CHECK(h.events.empty());

    // The journal is back, as if its drops had been lost: what the host shows to be undone
    // already is left alone; starting a unit and loading a module are idempotent and run again.
    write_changes(h.fx.runtime(), journal);
    const RestoreReport third = h.restore();
    CHECK(third.ok());
    CHECK(h.events == std::vector<std::string>{"run systemctl start display-manager.service", "run modprobe nouveau"});
    REQUIRE(third.changes.size() == 5);
    CHECK(third.changes[1].message.ends_with("/dev/input/event3\" was already 0:0 with mode 0640."));
    CHECK(third.changes[2].message == "PCI device \"0000:01:00.0\" was already on \"nouveau\".");
    CHECK(third.changes[3].message.ends_with("nr_hugepages\" was already \"0\"."));
    CHECK(test::snapshot_diff(after, h.fx.snapshot()) == "");
    CHECK_FALSE(fs::exists(journal_path(h.fx.runtime(), "vm")));
}

TEST_CASE("a symbolic link swapped in for a journaled file is not followed", "[host][journal]") {
    Host h;
    h.make_file("etc/shadow", 0, 42, 0640, "root:*:19000::::::\n");
    h.make_file("dev/vfio/1", 0, 0, 0600);
    h.record(FileOwnerChanged{"/dev/vfio/1", 0, 0, 0600});
    fs::remove(h.fx.path("dev/vfio/1"));
    fs::create_symlink(h.fx.path("etc/shadow"), h.fx.path("dev/vfio/1"));

    const RestoreReport report = h.restore();
    CHECK_FALSE(report.ok());
    REQUIRE(report.changes.size() == 1);
    CHECK(report.changes[0].message.find("dev/vfio/1\" is a symbolic link now, which kvmgpu does not follow") !=
          std::string::npos);
    CHECK(h.owner("etc/shadow") == "0:42 0640");
    CHECK(h.journal().size() == 1);
}

TEST_CASE("a created file replaced by a symbolic link is left alone and kept in the journal", "[host][journal]") {
    Host h;
    h.make_file("etc/shadow", 0, 42, 0640, "root:*:19000::::::\n");
    h.record(FileCreated{"/dev/shm/looking-glass"});
    fs::create_directories(h.fx.path("dev/shm"));
    fs::create_symlink(h.fx.path("etc/shadow"), h.fx.path("dev/shm/looking-glass"));
    const RestoreReport report = h.restore();
    CHECK_FALSE(report.ok());
    REQUIRE(report.changes.size() == 1);
    CHECK_THAT(report.changes[0].message, Catch::Contains("is no longer the regular file kvmgpu created"));
    CHECK(fs::is_symlink(h.fx.path("dev/shm/looking-glass")));
    CHECK(h.owner("etc/shadow") == "0:42 0640");
    CHECK(h.journal().size() == 1);
}

TEST_CASE("a file or attribute that is gone is nothing to restore", "[host][journal]") {
    Host h;
    h.record(FileOwnerChanged{"/dev/vfio/7", 0, 0, 0600});
    h.record(SysfsValueChanged{"/proc/irq/99/smp_affinity_list", "0-7"});
    const RestoreReport report = h.restore();
    CHECK(report.ok());
    REQUIRE(report.changes.size() == 2);
    CHECK(report.changes[0].message.ends_with("/proc/irq/99/smp_affinity_list\" is no longer present; nothing to restore."));
    CHECK(report.changes[1].message.ends_with("/dev/vfio/7\" is no longer present; nothing to restore."));
    CHECK(h.events.empty());
    CHECK_FALSE(fs::exists(journal_path(h.fx.runtime(), "vm")));
}

TEST_CASE("restore outcomes render to JSON with their kind, and devices with their address", "[host][journal]") {
    Host h;
    test::add_gpu_with_audio(h.fx);
    h.record(ServiceStopped{"display-manager.service"});
    bind_devices(h.fx.root(), h.fx.runtime(), "vm", {addr("0000:01:00.0")}, h.writer, fast());
    const nlohmann::json report = h.restore();
    CHECK(report["ok"] == true);
    REQUIRE(report["changes"].size() == 2);
    CHECK(report["changes"][0]["kind"] == "device-to-vfio");
    CHECK(report["changes"][0]["address"] == "0000:01:00.0");
    CHECK(report["changes"][0]["ok"] == true);
    CHECK(report["changes"][1] == nlohmann::json{{"kind", "service-stopped"},
                                                 {"what", "display-manager.service"},
                                                 {"ok", true},
                                                 {"message", "The service \"display-manager.service\" was started "
                                                             "again (`systemctl start display-manager.service`)."}});
    CHECK(report["devices"] == nlohmann::json::array({report["changes"][0]}));
}

TEST_CASE("the production command runner execs the argv without a shell and reports its exit", "[host][journal]") {
    testing::TempDir dir;
    const auto log = dir.path() / "runner.log";
    host::ExecRunner runner(log, std::chrono::seconds(2));
    CHECK(runner.run({"true"}) == 0);
    CHECK(runner.run({"false"}) == 1);
    // A word a shell would expand reaches the program as it is.
    const auto pwned = dir.path() / "pwned";
    const std::string word = "$(touch " + pwned.string() + "); *";
    CHECK(runner.run({"/bin/echo", word}) == 0);
    CHECK_FALSE(std::filesystem::exists(pwned));
    std::ifstream in(log);
    const std::string text{std::istreambuf_iterator<char>(in), {}};
    CHECK(text == word + "\n");
    CHECK_THROWS(runner.run({"kvmgpu-no-such-program"}));
    // A program that does not end in time is killed and counts as a failure.
    const auto started = std::chrono::steady_clock::now();
    CHECK(runner.run({"sleep", "600"}) == 1);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(30));
}

TEST_CASE("a cgroup's emptied cpuset is given back, as every CPU when the kernel refuses an empty one", "[host][journal][isolate]") {
    test::HostFixture fx;
    fx.add_cgroups({"system.slice", "busy"});
    test::SimulatedKernel kernel(fx);
    const auto journal = fx.runtime() / ".host";
    // "busy" holds a live process (this one), as a host's service cgroup does.
    fx.write("sys/fs/cgroup/busy/cgroup.procs", std::to_string(::getpid()) + "\n");
    for (const char* cgroup : {"system.slice", "busy"}) {
        record_change(journal, "vm", 4242, CgroupCpusSet{std::string("/sys/fs/cgroup/") + cgroup, ""});
        REQUIRE(kernel.write(fx.path(std::string("sys/fs/cgroup/") + cgroup + "/cpuset.cpus"), "0-1") == 0);
    }
    const auto report = restore_changes(fx.root(), journal, "vm", kernel, nullptr, fast());
    INFO(nlohmann::json(report.changes).dump(1));
    CHECK(report.ok());
    CHECK(read_attr(fx.path("sys/fs/cgroup/system.slice/cpuset.cpus")) == "");
    CHECK(read_attr(fx.path("sys/fs/cgroup/busy/cpuset.cpus")) == "0-7");
    CHECK(read_attr(fx.path("sys/fs/cgroup/busy/cpuset.cpus.effective")) == "0-7");
    REQUIRE(report.changes.size() == 2);
    CHECK_THAT(report.changes[0].message, Catch::EndsWith("busy\" may use every CPU (0-7) again."));
    CHECK_FALSE(read_changes(journal, "vm"));
}
