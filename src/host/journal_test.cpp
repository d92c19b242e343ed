#include "host/journal.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "host/binder.hpp"
#include "host_fixture.hpp"

namespace fs = std::filesystem;
using namespace kvmgpu;
using namespace kvmgpu::host;

namespace {
util::PciAddress addr(const char* text) { return *util::PciAddress::parse(text); }

std::string read_file(const fs::path& file) {
    std::ifstream in(file);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// The message of the exception `f` throws; "" when it throws none.
template <typename F>
std::string error_of(F f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

BindOptions fast() {
    BindOptions o;
    o.timeout = std::chrono::milliseconds(50);
    o.poll_interval = std::chrono::milliseconds(1);
    return o;
}

// One change of each kind (an unknown one too), in the order a launch might make them.
std::vector<HostChange> one_of_each() {
    return {
        ModuleUnloaded{"nouveau"},
        ServiceStopped{"display-manager.service"},
        SysfsValueChanged{"/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "0"},
        DeviceToVfio{addr("0000:01:00.0"), std::string("nouveau"), std::nullopt, {}},
        DeviceToVfio{addr("0000:01:00.1"), std::nullopt, std::string("snd_hda_intel"), {}},
        FileOwnerChanged{"/dev/vfio/1", 0, 0, 0600},
        UnknownChange{"irq-moved", {{"kind", "irq-moved"}, {"irq", 24}, {"cpus", "0-7"}}},
    };
}
}  // namespace

TEST_CASE("a journal written to disk reads back the same and leaves no temporary file", "[host]") {
    test::HostFixture fx;
    Journal j{"win11", 4242,
              {{addr("0000:01:00.0"), std::string("nouveau"), std::nullopt, {}},
               {addr("0000:01:00.1"), std::nullopt, std::string("snd_hda_intel"), {}}}};
    write_journal(fx.runtime(), j);
    CHECK(fs::exists(fx.runtime() / "journal/win11.json"));
    CHECK_FALSE(fs::exists(fx.runtime() / "journal/.win11.json.tmp"));
    const auto back = read_journal(fx.runtime(), "win11");
    REQUIRE(back);
    CHECK(back->vm == "win11");
    CHECK(back->pid == 4242);
    CHECK(back->devices == j.devices);
    CHECK(list_journals(fx.runtime()) == std::vector<std::string>{"win11"});

    const auto json = nlohmann::json::parse(std::ifstream(fx.runtime() / "journal/win11.json"));
    CHECK(json["changes"][0]["driver"] == "nouveau");
    CHECK(json["changes"][1]["driver"].is_null());

    j.devices.clear();
    write_journal(fx.runtime(), j);
    CHECK_FALSE(fs::exists(fx.runtime() / "journal/win11.json"));
    CHECK(read_journal(fx.runtime(), "win11") == std::nullopt);
    CHECK(list_journals(fx.runtime()).empty());
}

TEST_CASE("a damaged journal is an error naming the file, not an empty journal", "[host]") {
    test::HostFixture fx;
    fs::create_directories(fx.runtime() / "journal");
    std::ofstream(fx.runtime() / "journal/vm.json") << "{\"vm\": \"vm\", \"pid\": 1, \"devi";
    try {
        read_journal(fx.runtime(), "vm");
        FAIL("no exception");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("journal/vm.json\" is damaged") != std::string::npos);
    }
}

TEST_CASE("a VM name that is not a plain file name cannot name a journal", "[host]") {
    for (const char* name : {"", ".", "..", "a/b"}) {
        INFO(name);
        CHECK_THROWS_AS(journal_path("/run/kvmgpu", name), std::invalid_argument);
    }
    CHECK(journal_path("/run/kvmgpu", "win11") == "/run/kvmgpu/journal/win11.json");
}

TEST_CASE("every kind of host change is written to JSON with its kind and reads back the same",
          "[host][journal]") {
    struct Row {
        HostChange change;
        const char* json;
    };
    const Row rows[] = {
        {DeviceToVfio{addr("0000:01:00.0"), std::string("nouveau"), std::nullopt, {}},
         R"({"kind": "device-to-vfio", "address": "0000:01:00.0", "driver": "nouveau", "driver_override": null})"},
        {DeviceToVfio{addr("0000:05:00.0"), std::nullopt, std::string("pci-stub"), {}},
         R"({"kind": "device-to-vfio", "address": "0000:05:00.0", "driver": null, "driver_override": "pci-stub"})"},
        {FileOwnerChanged{"/dev/vfio/1", 0, 0, 0600},
         R"({"kind": "file-owner-changed", "path": "/dev/vfio/1", "uid": 0, "gid": 0, "mode": "0600"})"},
        {FileOwnerChanged{"/dev/input/event3", 1000, 995, 02775},
         R"({"kind": "file-owner-changed", "path": "/dev/input/event3", "uid": 1000, "gid": 995, "mode": "2775"})"},
        {SysfsValueChanged{"/proc/irq/24/smp_affinity_list", "0-7"},
         R"({"kind": "sysfs-value-changed", "path": "/proc/irq/24/smp_affinity_list", "old_value": "0-7"})"},
        {SysfsValueChanged{"/sys/fs/cgroup/user.slice/cpuset.cpus", ""},
         R"({"kind": "sysfs-value-changed", "path": "/sys/fs/cgroup/user.slice/cpuset.cpus", "old_value": ""})"},
        {ServiceStopped{"display-manager.service"},
         R"({"kind": "service-stopped", "unit": "display-manager.service"})"},
        {ModuleUnloaded{"nouveau"}, R"({"kind": "module-unloaded", "name": "nouveau"})"},
        {DeviceToVfio{addr("0000:01:00.0"), std::string("bochs-drm"), std::nullopt, {"drm/card0", "graphics/fb0"}},
         R"({"kind": "device-to-vfio", "address": "0000:01:00.0", "driver": "bochs-drm", "driver_override": null,
             "nodes": ["drm/card0", "graphics/fb0"]})"},
        {DriverUnbound{"/sys/bus/platform/drivers/efi-framebuffer", "efi-framebuffer.0"},
         R"({"kind": "driver-unbound", "driver": "/sys/bus/platform/drivers/efi-framebuffer", "device": "efi-framebuffer.0"})"},
        {HugepagesAdded{"/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", 54},
         R"({"kind": "hugepages-added", "path": "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "pages": 54})"},
        {FileCreated{"/dev/shm/looking-glass"}, R"({"kind": "file-created", "path": "/dev/shm/looking-glass"})"},
        {UnknownChange{"irq-moved", {{"kind", "irq-moved"}, {"irq", 24}}},
         R"({"kind": "irq-moved", "irq": 24})"},
    };
    for (const Row& row : rows) {
        INFO(row.json);
        const nlohmann::json expected = nlohmann::json::parse(row.json);
        const nlohmann::json written = row.change;
        CHECK(written == expected);
        CHECK(written["kind"] == kind_name(row.change));
        CHECK(expected.get<HostChange>() == row.change);
    }
}

TEST_CASE("a journal of every kind is written as version 2 and reads back in order", "[host][journal]") {
    test::HostFixture fx;
    const ChangeJournal journal{"win11", 4242, one_of_each()};
    write_changes(fx.runtime(), journal);
    CHECK_FALSE(fs::exists(fx.runtime() / "journal/.win11.json.tmp"));

    const auto json = nlohmann::json::parse(read_file(fx.runtime() / "journal/win11.json"));
    CHECK(json["version"] == 2);
    CHECK(json["vm"] == "win11");
    CHECK(json["pid"] == 4242);
    REQUIRE(json["changes"].size() == 7);
    CHECK(json["changes"][0]["kind"] == "module-unloaded");
    CHECK(json["changes"][5]["mode"] == "0600");
    CHECK(json["changes"][6] == nlohmann::json{{"kind", "irq-moved"}, {"irq", 24}, {"cpus", "0-7"}});

    CHECK(read_changes(fx.runtime(), "win11") == journal);
    // The device-only view keeps the devices, in order.
    const auto devices = read_journal(fx.runtime(), "win11");
    REQUIRE(devices);
    CHECK(devices->pid == 4242);
    CHECK(devices->devices == std::vector<JournalEntry>{
                                  {addr("0000:01:00.0"), std::string("nouveau"), std::nullopt, {}},
                                  {addr("0000:01:00.1"), std::nullopt, std::string("snd_hda_intel"), {}}});
    CHECK(list_journals(fx.runtime()) == std::vector<std::string>{"win11"});
}

TEST_CASE("record_change puts each change on disk in order, and drop_change removes the newest equal one",
          "[host][journal]") {
    test::HostFixture fx;
    const auto changes = one_of_each();
    for (std::size_t i = 0; i < 3; ++i) {
        record_change(fx.runtime(), "vm", static_cast<pid_t>(100 + i), changes[i]);
        const auto back = read_changes(fx.runtime(), "vm");
        REQUIRE(back);
        CHECK(back->pid == static_cast<pid_t>(100 + i));  // the launcher that wrote last
        CHECK(back->changes == std::vector<HostChange>(changes.begin(), changes.begin() + i + 1));
    }
    // The same change recorded twice (a second launch after a crash): the newer record goes first.
    record_change(fx.runtime(), "vm", 200, changes[0]);
    record_change(fx.runtime(), "vm", 200, changes[3]);
    CHECK(drop_change(fx.runtime(), "vm", changes[0]));
    CHECK(read_changes(fx.runtime(), "vm")->changes ==
          std::vector<HostChange>{changes[0], changes[1], changes[2], changes[3]});
    CHECK(read_changes(fx.runtime(), "vm")->pid == 200);

    CHECK_FALSE(drop_change(fx.runtime(), "vm", changes[6]));  // not in the journal
    for (const std::size_t i : {3, 0, 2, 1}) CHECK(drop_change(fx.runtime(), "vm", changes[i]));
    CHECK_FALSE(fs::exists(journal_path(fx.runtime(), "vm")));
    CHECK_FALSE(drop_change(fx.runtime(), "vm", changes[0]));  // no journal at all
}

// What a kvmgpu from before host changes wrote for a GPU and its audio function bound for "win11".
constexpr const char* kOldFormatJournal = R"({
  "devices": [
    {"address": "0000:01:00.0", "driver": "nouveau", "driver_override": null},
    {"address": "0000:01:00.1", "driver": "snd_hda_intel", "driver_override": null}
  ],
  "pid": 4242,
  "vm": "win11"
})";

TEST_CASE("a journal in the format from before host changes reads as device changes in order",
          "[host][journal]") {
    test::HostFixture fx;
    fx.write("run/kvmgpu/journal/win11.json", kOldFormatJournal);
    const auto journal = read_changes(fx.runtime(), "win11");
    REQUIRE(journal);
    CHECK(journal->vm == "win11");
    CHECK(journal->pid == 4242);
    CHECK(journal->changes ==
          std::vector<HostChange>{DeviceToVfio{addr("0000:01:00.0"), std::string("nouveau"), std::nullopt, {}},
                                  DeviceToVfio{addr("0000:01:00.1"), std::string("snd_hda_intel"), std::nullopt, {}}});
    CHECK(read_journal(fx.runtime(), "win11")->devices.size() == 2);
    CHECK(list_journals(fx.runtime()) == std::vector<std::string>{"win11"});
}

TEST_CASE("a journal in the format from before host changes is restored by the binder", "[host][journal]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    const auto before = fx.snapshot();
    test::SimulatedKernel kernel(fx);
    bind_devices(fx.root(), fx.runtime(), "win11", {addr("0000:01:00.0"), addr("0000:01:00.1")}, kernel, fast());
    // What the kvmgpu before host changes wrote for the same bind.
    fx.write("run/kvmgpu/journal/win11.json", kOldFormatJournal);

    test::SimulatedKernel restorer(fx);
    const RestoreReport report = restore_devices(fx.root(), fx.runtime(), "win11", restorer, fast());
    CHECK(report.ok());
    REQUIRE(report.changes.size() == 2);
    CHECK(report.changes[0].address == addr("0000:01:00.1"));  // last bound, first restored
    CHECK(report.changes[1].message == "PCI device \"0000:01:00.0\" is back on \"nouveau\".");
    CHECK(report.devices.size() == 2);
    CHECK(test::snapshot_diff(before, fx.snapshot()) == "");
    CHECK_FALSE(fs::exists(journal_path(fx.runtime(), "win11")));
}

TEST_CASE("a change of an unknown kind is refused by restore, naming the file and the kind, and kept",
          "[host][journal]") {
    test::HostFixture fx;
    test::add_gpu_with_audio(fx);
    test::SimulatedKernel kernel(fx);
    bind_devices(fx.root(), fx.runtime(), "win11", {addr("0000:01:00.0")}, kernel, fast());
    const char* unknown = R"({"kind": "cpuset-narrowed", "path": "/sys/fs/cgroup/user.slice", "cpus": "0-7"})";
    fx.write("run/kvmgpu/journal/win11.json",
             std::string(R"({"version": 2, "vm": "win11", "pid": 4242, "changes": [)") +
                 R"({"kind": "device-to-vfio", "address": "0000:01:00.0", "driver": "nouveau", "driver_override": null},)" +
                 unknown + "]}");
    const std::string file = journal_path(fx.runtime(), "win11").string();

    for (int attempt = 1; attempt <= 2; ++attempt) {
        INFO("attempt " << attempt);
        const RestoreReport report = restore_devices(fx.root(), fx.runtime(), "win11", kernel, fast());
        CHECK_FALSE(report.ok());
        REQUIRE_FALSE(report.changes.empty());
        const RestoreOutcome& refused = report.changes[0];  // the last change, replayed first
        CHECK_FALSE(refused.ok);
        CHECK(refused.kind == "cpuset-narrowed");
        CHECK(refused.message.find("the journal \"" + file + "\" holds a change of kind \"cpuset-narrowed\"") == 0);
        CHECK(refused.message.find("it was kept") != std::string::npos);
        if (attempt == 1) {
            // The device made before it is restored all the same.
            REQUIRE(report.changes.size() == 2);
            CHECK(report.changes[1].ok);
            CHECK(fx.driver_of("0000:01:00.0") == "nouveau");
        } else {
            CHECK(report.changes.size() == 1);
        }
        // The entry stays exactly as it was written.
        const auto json = nlohmann::json::parse(read_file(file));
        REQUIRE(json["changes"].size() == 1);
        CHECK(json["changes"][0] == nlohmann::json::parse(unknown));
    }
}

TEST_CASE("a journal of a newer version is refused, naming the file and the version", "[host][journal]") {
    test::HostFixture fx;
    fx.write("run/kvmgpu/journal/vm.json", R"({"version": 3, "vm": "vm", "pid": 1, "journal": []})");
    const std::string message = error_of([&] { read_changes(fx.runtime(), "vm"); });
    CHECK(message.find("journal/vm.json\" has version 3, newer than this kvmgpu reads (2); restore "
                       "with the kvmgpu that wrote it") != std::string::npos);
    CHECK(error_of([&] { read_journal(fx.runtime(), "vm"); }) == message);
    test::SimulatedKernel kernel(fx);
    CHECK(error_of([&] { restore_devices(fx.root(), fx.runtime(), "vm", kernel, fast()); }) == message);
    CHECK(fs::exists(fx.runtime() / "journal/vm.json"));
}

TEST_CASE("a change with a bad field makes the journal damaged, naming the file and the field",
          "[host][journal]") {
    struct Row {
        const char* change;
        const char* error;
    };
    const Row rows[] = {
        {R"({"address": "0000:01:00.0", "driver": null, "driver_override": null})", "a change has no \"kind\""},
        {R"({"kind": "device-to-vfio", "address": "1:2:3", "driver": null, "driver_override": null})",
         "bad PCI address \"1:2:3\""},
        {R"({"kind": "file-owner-changed", "path": "/dev/vfio/1", "uid": 0, "gid": 0, "mode": "0999"})",
         "a \"file-owner-changed\" change has a bad \"mode\": \"0999\" is not an octal mode"},
        {R"({"kind": "file-owner-changed", "path": "/dev/vfio/1", "uid": -1, "gid": 0, "mode": "0600"})",
         "has a bad \"uid\": -1 is not a user or group id"},
        {R"({"kind": "file-owner-changed", "path": "dev/vfio/1", "uid": 0, "gid": 0, "mode": "0600"})",
         "has a bad \"path\": the path \"dev/vfio/1\" is not absolute"},
        {R"({"kind": "sysfs-value-changed", "path": "/sys/../etc/passwd", "old_value": ""})",
         "climbs out of its directory"},
        {R"({"kind": "sysfs-value-changed", "path": "/proc/irq/24/smp_affinity_list"})", "old_value"},
        {R"({"kind": "service-stopped", "unit": "--now"})",
         "a \"service-stopped\" change has a bad \"unit\": the unit name \"--now\" is not a unit name"},
        {R"({"kind": "module-unloaded", "name": ""})", "the module name is empty"},
        {R"({"kind": "driver-unbound", "driver": "sys/bus/platform/drivers/efifb", "device": "efifb.0"})",
         "a \"driver-unbound\" change has a bad \"driver\": the path \"sys/bus/platform/drivers/efifb\" is not absolute"},
        {R"({"kind": "driver-unbound", "driver": "/sys/bus/platform/drivers/efifb", "device": "../../x"})",
         "a \"driver-unbound\" change has a bad \"device\""},
        {R"({"kind": "device-to-vfio", "address": "0000:01:00.0", "driver": null, "driver_override": null,
             "nodes": ["../../../etc"]})",
         "bad device node \"../../../etc\""},
    };
    for (const Row& row : rows) {
        INFO(row.change);
        test::HostFixture fx;
        fx.write("run/kvmgpu/journal/vm.json",
                 std::string(R"({"version": 2, "vm": "vm", "pid": 1, "changes": [)") + row.change + "]}");
        const std::string message = error_of([&] { read_changes(fx.runtime(), "vm"); });
        CHECK(message.find("journal/vm.json\" is damaged (") != std::string::npos);
        CHECK(message.find(row.error) != std::string::npos);
    }
}

TEST_CASE("the device-only view does not overwrite a journal holding other kinds", "[host][journal]") {
    test::HostFixture fx;
    record_change(fx.runtime(), "vm", 1, ServiceStopped{"display-manager.service"});
    CHECK_THROWS_AS(write_journal(fx.runtime(), Journal{"vm", 1, {}}), std::logic_error);
    CHECK(read_changes(fx.runtime(), "vm")->changes ==
          std::vector<HostChange>{ServiceStopped{"display-manager.service"}});
    CHECK(read_journal(fx.runtime(), "vm")->devices.empty());
}
