#include "host/binder.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "host/journal.hpp"
#include "host_fixture.hpp"

namespace fs = std::filesystem;
using namespace kvmgpu;
using namespace kvmgpu::host;
using kvmgpu::test::HostFixture;
using kvmgpu::test::SimulatedKernel;

namespace {

util::PciAddress addr(const char* text) { return *util::PciAddress::parse(text); }

const std::vector<util::PciAddress> kGpuAndAudio = {addr("0000:01:00.0"), addr("0000:01:00.1")};

BindOptions fast() {
    BindOptions o;
    o.timeout = std::chrono::milliseconds(50);
    o.poll_interval = std::chrono::milliseconds(1);
    return o;
}

// A device with no driver whose native driver is e1000e, alone in group 5.
void add_unbound_nic(HostFixture& fx) {
    test::DeviceSpec nic;
    nic.address = "0000:05:00.0";
    nic.native_driver = "e1000e";
    nic.group = 5;
    fx.add_driver("e1000e");
    fx.add_device(nic);
}

}  // namespace

TEST_CASE("binding writes override, unbind and drivers_probe, and journals first", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    SimulatedKernel kernel(fx);
    const BindResult result = bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());

    CHECK(result.bound == kGpuAndAudio);
    CHECK(result.already_vfio.empty());
    CHECK(kernel.log == std::vector<std::string>{
                            "sys/bus/pci/devices/0000:01:00.0/driver_override <- vfio-pci",
                            "sys/bus/pci/devices/0000:01:00.0/driver/unbind <- 0000:01:00.0",
                            "sys/bus/pci/drivers_probe <- 0000:01:00.0",
                            "sys/bus/pci/devices/0000:01:00.1/driver_override <- vfio-pci",
                            "sys/bus/pci/devices/0000:01:00.1/driver/unbind <- 0000:01:00.1",
                            "sys/bus/pci/drivers_probe <- 0000:01:00.1",
                        });
    CHECK(fx.driver_of("0000:01:00.0") == "vfio-pci");
    CHECK(fx.driver_of("0000:01:00.1") == "vfio-pci");
    CHECK(fx.override_of("0000:01:00.0") == "vfio-pci");
    CHECK(fs::exists(fx.path("dev/vfio/1")));
    CHECK(fx.driver_of("0000:00:01.0") == "pcieport");  // the root port is never touched

    const auto journal = read_journal(fx.runtime(), "win11");
    REQUIRE(journal);
    CHECK(journal->pid == ::getpid());
    CHECK(journal->devices == std::vector<JournalEntry>{
                                  {addr("0000:01:00.0"), std::string("nouveau"), std::nullopt, {}},
                                  {addr("0000:01:00.1"), std::string("snd_hda_intel"), std::nullopt, {}}});
}

TEST_CASE("restoring puts every device back and leaves the tree as it was before binding", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto before = fx.snapshot();
    SimulatedKernel kernel(fx);
    bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());

    SimulatedKernel restorer(fx);
    const RestoreReport report = restore_devices(fx.root(), fx.runtime(), "win11", restorer, fast());
    CHECK(report.ok());
    REQUIRE(report.devices.size() == 2);
    CHECK(report.devices[0].address == addr("0000:01:00.1"));  // last bound, first restored
    CHECK(report.devices[0].message == "PCI device \"0000:01:00.1\" is back on \"snd_hda_intel\".");
    CHECK(restorer.log == std::vector<std::string>{
                              "sys/bus/pci/devices/0000:01:00.1/driver_override <- \\n",
                              "sys/bus/pci/devices/0000:01:00.1/driver/unbind <- 0000:01:00.1",
                              "sys/bus/pci/drivers/snd_hda_intel/bind <- 0000:01:00.1",
                              "sys/bus/pci/devices/0000:01:00.0/driver_override <- \\n",
                              "sys/bus/pci/devices/0000:01:00.0/driver/unbind <- 0000:01:00.0",
                              "sys/bus/pci/drivers/nouveau/bind <- 0000:01:00.0",
                          });
    CHECK(test::snapshot_diff(before, fx.snapshot()) == "");
    CHECK_FALSE(fs::exists(journal_path(fx.runtime(), "win11")));
}

TEST_CASE("restoring twice, or restoring devices already back, writes nothing", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    SimulatedKernel kernel(fx);
    bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());
    const auto journal = *read_journal(fx.runtime(), "win11");

    restore_devices(fx.root(), fx.runtime(), "win11", kernel, fast());
    SimulatedKernel again(fx);
    const RestoreReport second = restore_devices(fx.root(), fx.runtime(), "win11", again, fast());
    CHECK(second.ok());
    CHECK(second.devices.empty());
    CHECK(again.writes() == 0);

    // The journal is back (as if the drop had been lost) but the devices are already home.
    write_journal(fx.runtime(), journal);
    const RestoreReport third = restore_devices(fx.root(), fx.runtime(), "win11", again, fast());
    CHECK(third.ok());
    CHECK(again.writes() == 0);
    CHECK(third.devices[1].message == "PCI device \"0000:01:00.0\" was already on \"nouveau\".");
    CHECK_FALSE(fs::exists(journal_path(fx.runtime(), "win11")));
}

TEST_CASE("restore works from the journal alone after the launcher was killed with -9", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto before = fx.snapshot();
    const pid_t child = ::fork();
    if (child == 0) {
        // The launcher: bind, then die without any cleanup.
        SimulatedKernel kernel(fx);
        try {
            bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());
        } catch (...) {
            ::_exit(3);
        }
        ::raise(SIGKILL);
        ::_exit(4);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK(fx.driver_of("0000:01:00.0") == "vfio-pci");
    REQUIRE(read_journal(fx.runtime(), "win11"));
    CHECK(read_journal(fx.runtime(), "win11")->pid == child);

    SimulatedKernel kernel(fx);
    CHECK(restore_devices(fx.root(), fx.runtime(), "win11", kernel, fast()).ok());
    CHECK(test::snapshot_diff(before, fx.snapshot()) == "");
}

TEST_CASE("a failure at any sysfs write rolls back to a byte-identical tree", "[host]") {
    struct Row {
        int write;
        const char* device;
        BindStep step;
    };
    const Row rows[] = {
        {1, "0000:01:00.0", BindStep::driver_override},
        {2, "0000:01:00.0", BindStep::unbind},
        {3, "0000:01:00.0", BindStep::drivers_probe},
        {4, "0000:01:00.1", BindStep::driver_override},
        {5, "0000:01:00.1", BindStep::unbind},
        {6, "0000:01:00.1", BindStep::drivers_probe},
    };
    for (const Row& row : rows) {
        DYNAMIC_SECTION("failing write " << row.write << " (" << step_name(row.step) << " of "
                                         << row.device << ")") {
            HostFixture fx;
            test::add_gpu_with_audio(fx);
            const auto before = fx.snapshot();
            SimulatedKernel kernel(fx);
            kernel.fail_write(row.write, EBUSY);
            try {
                bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());
                FAIL("bind_devices did not fail");
            } catch (const BindError& e) {
                CHECK(e.address == addr(row.device));
                CHECK(e.step == row.step);
                CHECK(e.error == EBUSY);
                CHECK(e.rolled_back);
                const std::string what = e.what();
                CHECK(what.find("binding PCI device \"" + std::string(row.device) +
                                "\" to vfio-pci failed at step \"" +
                                std::string(step_name(row.step)) + "\": writing ") == 0);
                CHECK(what.find("Device or resource busy") != std::string::npos);
                CHECK(what.find("Every change was rolled back") != std::string::npos);
            }
            CHECK(test::snapshot_diff(before, fx.snapshot()) == "");
            CHECK_FALSE(fs::exists(journal_path(fx.runtime(), "win11")));
        }
    }
}

TEST_CASE("vfio-pci refusing a device times out at wait_driver and rolls back", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto before = fx.snapshot();
    SimulatedKernel kernel(fx);
    kernel.refuse_probe = {"vfio-pci"};
    try {
        bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());
        FAIL("bind_devices did not fail");
    } catch (const BindError& e) {
        CHECK(e.address == addr("0000:01:00.0"));
        CHECK(e.step == BindStep::wait_driver);
        CHECK(e.error == ETIMEDOUT);
        CHECK(std::string(e.what()).find("vfio-pci did not take the device within 50 ms (it is on no driver)") !=
              std::string::npos);
        CHECK(std::string(e.what()).find("modprobe vfio-pci") != std::string::npos);
    }
    CHECK(test::snapshot_diff(before, fx.snapshot()) == "");
}

TEST_CASE("a dev/vfio node that never appears times out and rolls back both devices", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto before = fx.snapshot();
    fx.create_vfio_nodes = false;
    SimulatedKernel kernel(fx);
    try {
        bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());
        FAIL("bind_devices did not fail");
    } catch (const BindError& e) {
        CHECK(e.address == addr("0000:01:00.0"));
        CHECK(e.step == BindStep::wait_vfio_group);
        CHECK(std::string(e.what()).find("dev/vfio/1\" did not appear within 50 ms") != std::string::npos);
    }
    CHECK(test::snapshot_diff(before, fx.snapshot()) == "");
}

TEST_CASE("a journal that cannot be written stops the bind before any sysfs write", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    fx.write("run/kvmgpu/journal", "a file where the journal directory should be");
    SimulatedKernel kernel(fx);
    try {
        bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());
        FAIL("bind_devices did not fail");
    } catch (const BindError& e) {
        CHECK(e.step == BindStep::journal);
        CHECK(e.rolled_back);
    }
    CHECK(kernel.writes() == 0);
    CHECK(fx.driver_of("0000:01:00.0") == "nouveau");
}

TEST_CASE("a missing device fails at inspect and rolls back the devices before it", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto before = fx.snapshot();
    SimulatedKernel kernel(fx);
    try {
        bind_devices(fx.root(), fx.runtime(), "win11", {addr("0000:01:00.0"), addr("0000:09:00.0")},
                     kernel, fast());
        FAIL("bind_devices did not fail");
    } catch (const BindError& e) {
        CHECK(e.address == addr("0000:09:00.0"));
        CHECK(e.step == BindStep::inspect);
        CHECK(e.error == ENODEV);
        CHECK(std::string(e.what()).find("the device does not exist") != std::string::npos);
    }
    CHECK(kernel.writes() == 3 + 3);  // bound 01:00.0, then undid it
    CHECK(test::snapshot_diff(before, fx.snapshot()) == "");
}

TEST_CASE("a failed rollback keeps the journal and says to run kvmgpu restore", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto before = fx.snapshot();
    SimulatedKernel kernel(fx);
    kernel.fail_write(3, EIO, 2);  // drivers_probe fails, then the rollback's first write
    try {
        bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());
        FAIL("bind_devices did not fail");
    } catch (const BindError& e) {
        CHECK(e.step == BindStep::drivers_probe);
        CHECK_FALSE(e.rolled_back);
        const std::string what = e.what();
        CHECK(what.find("The rollback failed too (PCI device \"0000:01:00.0\" at step \"driver_override\"") !=
              std::string::npos);
        CHECK(what.find("run `kvmgpu restore win11`") != std::string::npos);
    }
    const auto journal = read_journal(fx.runtime(), "win11");
    REQUIRE(journal);
    REQUIRE(journal->devices.size() == 1);

    SimulatedKernel healthy(fx);
    CHECK(restore_devices(fx.root(), fx.runtime(), "win11", healthy, fast()).ok());
    CHECK(test::snapshot_diff(before, fx.snapshot()) == "");
}

TEST_CASE("a device with no driver is bound without unbind and restored to no driver", "[host]") {
    HostFixture fx;
    add_unbound_nic(fx);
    const auto before = fx.snapshot();
    SimulatedKernel kernel(fx);
    bind_devices(fx.root(), fx.runtime(), "vm", {addr("0000:05:00.0")}, kernel, fast());
    CHECK(kernel.log == std::vector<std::string>{
                            "sys/bus/pci/devices/0000:05:00.0/driver_override <- vfio-pci",
                            "sys/bus/pci/drivers_probe <- 0000:05:00.0",
                        });
    CHECK(fx.driver_of("0000:05:00.0") == "vfio-pci");
    CHECK(read_journal(fx.runtime(), "vm")->devices[0].driver == std::nullopt);

    const RestoreReport report = restore_devices(fx.root(), fx.runtime(), "vm", kernel, fast());
    CHECK(report.ok());
    CHECK(report.devices[0].message == "PCI device \"0000:05:00.0\" is back on no driver.");
    CHECK(fx.driver_of("0000:05:00.0") == "");
    CHECK(fx.override_of("0000:05:00.0") == "(null)");
    CHECK(test::snapshot_diff(before, fx.snapshot()) == "");
}

TEST_CASE("a device already on vfio-pci is left alone and not journaled", "[host]") {
    HostFixture fx;
    test::DeviceSpec nic;
    nic.address = "0000:05:00.0";
    nic.driver = "vfio-pci";
    nic.native_driver = "e1000e";
    nic.group = 5;
    fx.add_device(nic);
    SimulatedKernel kernel(fx);
    const BindResult result = bind_devices(fx.root(), fx.runtime(), "vm", {addr("0000:05:00.0")}, kernel, fast());
    CHECK(result.bound.empty());
    CHECK(result.already_vfio == std::vector<util::PciAddress>{addr("0000:05:00.0")});
    CHECK(kernel.writes() == 0);
    CHECK_FALSE(read_journal(fx.runtime(), "vm"));
    CHECK(restore_devices(fx.root(), fx.runtime(), "vm", kernel, fast()).devices.empty());
    CHECK(fx.driver_of("0000:05:00.0") == "vfio-pci");
}

TEST_CASE("restore falls back to drivers_probe when the driver's bind is refused", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    SimulatedKernel kernel(fx);
    bind_devices(fx.root(), fx.runtime(), "win11", {addr("0000:01:00.0")}, kernel, fast());
    SimulatedKernel restorer(fx);
    restorer.fail_write(3, ENODEV);  // drivers/nouveau/bind
    CHECK(restore_devices(fx.root(), fx.runtime(), "win11", restorer, fast()).ok());
    CHECK(restorer.log == std::vector<std::string>{
                              "sys/bus/pci/devices/0000:01:00.0/driver_override <- \\n",
                              "sys/bus/pci/devices/0000:01:00.0/driver/unbind <- 0000:01:00.0",
                              "sys/bus/pci/drivers/nouveau/bind <- 0000:01:00.0",
                              "sys/bus/pci/drivers_probe <- 0000:01:00.0",
                          });
    CHECK(fx.driver_of("0000:01:00.0") == "nouveau");
}

TEST_CASE("restore keeps the entry of a device whose driver cannot be rebound", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    SimulatedKernel kernel(fx);
    bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());
    fx.remove_driver("nouveau");  // the module was unloaded meanwhile

    const RestoreReport report = restore_devices(fx.root(), fx.runtime(), "win11", kernel, fast());
    CHECK_FALSE(report.ok());
    REQUIRE(report.devices.size() == 2);
    CHECK(report.devices[0].ok);  // the audio function went home
    CHECK_FALSE(report.devices[1].ok);
    CHECK(report.devices[1].message.find("restoring PCI device \"0000:01:00.0\" to \"nouveau\" failed at step "
                                         "\"wait_driver\"") == 0);
    CHECK(report.devices[1].message.find("`kvmgpu restore win11` can retry") != std::string::npos);
    const auto journal = read_journal(fx.runtime(), "win11");
    REQUIRE(journal);
    CHECK(journal->devices.size() == 1);
    CHECK(journal->devices[0].address == addr("0000:01:00.0"));

    // Once the module is back, the retry finishes the job.
    fx.add_driver("nouveau");
    CHECK(restore_devices(fx.root(), fx.runtime(), "win11", kernel, fast()).ok());
    CHECK(fx.driver_of("0000:01:00.0") == "nouveau");
}

TEST_CASE("a failed bind renders to JSON, and so do results and reports", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    SimulatedKernel kernel(fx);
    const nlohmann::json bound = bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());
    CHECK(bound["bound"] == nlohmann::json{"0000:01:00.0", "0000:01:00.1"});
    const nlohmann::json report = restore_devices(fx.root(), fx.runtime(), "win11", kernel, fast());
    CHECK(report["ok"] == true);
    CHECK(report["devices"][0]["address"] == "0000:01:00.1");
}

TEST_CASE("a device named twice is bound and journaled once", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    SimulatedKernel kernel(fx);
    const BindResult result = bind_devices(
        fx.root(), fx.runtime(), "win11",
        {addr("0000:01:00.0"), addr("0000:01:00.1"), addr("0000:01:00.1")}, kernel, fast());
    CHECK(result.bound == kGpuAndAudio);
    CHECK(result.already_vfio.empty());
    CHECK(kernel.writes() == 6);
    CHECK(read_journal(fx.runtime(), "win11")->devices.size() == 2);
}

TEST_CASE("without an IOMMU group binding fails at inspect before any write", "[host]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    fx.set_iommu(false);
    SimulatedKernel kernel(fx);
    try {
        bind_devices(fx.root(), fx.runtime(), "win11", kGpuAndAudio, kernel, fast());
        FAIL("bind_devices did not fail");
    } catch (const BindError& e) {
        CHECK(e.step == BindStep::inspect);
        CHECK(std::string(e.what()).find("the device has no IOMMU group") != std::string::npos);
        CHECK(std::string(e.what()).find("turn the IOMMU on") != std::string::npos);
    }
    CHECK(kernel.writes() == 0);
    CHECK_FALSE(fs::exists(journal_path(fx.runtime(), "win11")));
}

namespace {

// A kernel whose unbinds never return in time: the writer abandons each one, which the kernel
// may still carry out later (a device in use, released after the deadline).
class StuckUnbindKernel final : public SysfsWriter {
public:
    explicit StuckUnbindKernel(SimulatedKernel& kernel) : kernel_(kernel) {}
    int write(const fs::path& file, std::string_view data) override {
        if (file.filename() == "unbind" && data.find("01:00.0") != std::string_view::npos) {
            abandoned_.emplace_back(data);
            return ETIMEDOUT;
        }
        return kernel_.write(file, data);
    }
    bool has_unfinished_write(std::string_view subject) override {
        for (const auto& a : abandoned_)
            if (a.find(subject) != std::string::npos) return true;
        return false;
    }

private:
    SimulatedKernel& kernel_;
    std::vector<std::string> abandoned_;
};

}  // namespace

TEST_CASE("a device whose unbind was abandoned keeps its journal entry until the write is over", "[host][binder]") {
    HostFixture fx;
    test::add_gpu_with_audio(fx);
    SimulatedKernel kernel(fx);
    StuckUnbindKernel stuck(kernel);
    BindOptions options;
    options.timeout = std::chrono::milliseconds(50);
    options.poll_interval = std::chrono::milliseconds(1);
    const auto gpu = *util::PciAddress::parse("0000:01:00.0");
    try {
        bind_devices(fx.root(), fx.runtime(), "win11", {gpu}, stuck, options);
        FAIL("bind_devices did not fail");
    } catch (const BindError& e) {
        CHECK(e.step == BindStep::unbind);
        CHECK_FALSE(e.rolled_back);  // the kernel may still unbind it: not back yet
        CHECK(std::string(e.what()).find("has not returned from the kernel yet") != std::string::npos);
    }
    // The entry stays for `kvmgpu restore`; this writer still refuses to call it back.
    const auto journal = read_journal(fx.runtime(), "win11");
    REQUIRE(journal);
    REQUIRE(journal->devices.size() == 1);
    CHECK_FALSE(restore_devices(fx.root(), fx.runtime(), "win11", stuck, options).ok());
    CHECK(read_journal(fx.runtime(), "win11"));
    // A later restore (a new process: no write of its own is pending) gives it back.
    const auto report = restore_devices(fx.root(), fx.runtime(), "win11", kernel, options);
    CHECK(report.ok());
    CHECK_FALSE(read_journal(fx.runtime(), "win11"));
    CHECK(fx.driver_of("0000:01:00.0") == "nouveau");
}
