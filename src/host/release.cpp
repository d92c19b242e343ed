#include "host/release.hpp"

#include <algorithm>
#include <set>
#include <system_error>

#include "util/text.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;

namespace {

// `why` is what failed ("stopping the service X failed"); `hint`, if any, follows the cause.
void run_or_throw(CommandRunner& runner, const std::vector<std::string>& argv, const std::string& why,
                  const std::string& hint = {}) {
    const std::string shown = "`" + util::shell_join(argv) + "`";
    int status = 0;
    try {
        status = runner.run(argv);
    } catch (const std::exception& e) {
        throw ReleaseError(why + ": " + shown + " could not be run (" + e.what() + ")");
    }
    if (status != 0)
        throw ReleaseError(why + ": " + shown + " failed (exit status " + std::to_string(status) + ")" +
                           (hint.empty() ? "" : "; " + hint));
}

}  // namespace

std::vector<VtConsole> read_vtconsoles(const fs::path& root) {
    std::vector<VtConsole> consoles;
    const fs::path host_dir = "/sys/class/vtconsole";
    for (const auto& name : entry_names(under(root, host_dir))) {
        if (name.rfind("vtcon", 0) != 0) continue;
        VtConsole c;
        c.bind = host_dir / name / "bind";
        c.name = read_attr(under(root, host_dir / name / "name")).value_or("");
        c.bound = read_attr(under(root, c.bind)) == "1";
        consoles.push_back(std::move(c));
    }
    return consoles;
}

std::vector<DriverUnbound> bound_firmware_framebuffers(const fs::path& root) {
    std::vector<DriverUnbound> bound;
    for (const char* driver : kFirmwareFramebufferDrivers) {
        const fs::path host_dir = fs::path("/sys/bus/platform/drivers") / driver;
        for (const auto& name : entry_names(under(root, host_dir)))
            if (name.rfind(driver, 0) == 0) bound.push_back(DriverUnbound{host_dir, name});
    }
    return bound;
}

ModuleState read_module(const fs::path& root, const std::string& name) {
    ModuleState m;
    m.name = name;
    const fs::path dir = under(root, fs::path("/sys/module") / name);
    std::error_code ec;
    // A built-in module has a directory too, without `refcnt`: it cannot be unloaded, so it is
    // not "loaded" in the sense that matters here.
    m.loaded = fs::exists(dir / "refcnt", ec);
    if (!m.loaded) return m;
    m.refcnt = parse_dec(read_attr(dir / "refcnt").value_or("0")).value_or(0);
    m.holders = entry_names(dir / "holders");
    for (const auto& driver : entry_names(dir / "drivers")) {
        if (driver.rfind("pci:", 0) != 0) continue;
        for (const auto& entry : entry_names(dir / "drivers" / driver))
            if (auto address = util::PciAddress::parse(entry)) m.devices.push_back(*address);
    }
    std::sort(m.devices.begin(), m.devices.end());
    return m;
}

std::vector<std::string> unload_order(const std::vector<ModuleState>& modules) {
    std::set<std::string> listed;
    for (const auto& m : modules) listed.insert(m.name);
    std::vector<std::string> order;
    std::set<std::string> done;
    // Each round takes the first module whose listed holders are all gone; a cycle (which the
    // kernel does not allow) ends the loop with the rest in the order given.
    while (order.size() < modules.size()) {
        const ModuleState* next = nullptr;
        for (const auto& m : modules) {
            if (done.count(m.name)) continue;
            const bool free = std::all_of(m.holders.begin(), m.holders.end(), [&](const std::string& h) {
                return !listed.count(h) || done.count(h);
            });
            if (free) {
                next = &m;
                break;
            }
        }
        if (!next) {
            for (const auto& m : modules)
                if (!done.count(m.name)) next = &m;
        }
        done.insert(next->name);
        order.push_back(next->name);
    }
    return order;
}

ReleaseFacts scan_release(const fs::path& root, const std::vector<std::string>& modules) {
    ReleaseFacts facts;
    facts.systemd = systemd_runs(root);
    facts.consoles = read_vtconsoles(root);
    facts.firmware_framebuffers = bound_firmware_framebuffers(root);
    for (const auto& m : modules) facts.modules.push_back(read_module(root, m));
    for (const char* dir : {"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}) {
        std::error_code ec;
        const auto target = fs::read_symlink(under(root, fs::path(dir) / "display-manager.service"), ec);
        if (!ec) {
            facts.display_manager_unit = target.filename().string();
            break;
        }
    }
    return facts;
}

bool systemd_runs(const fs::path& root) {
    std::error_code ec;
    return fs::is_directory(under(root, "/run/systemd/system"), ec);
}

bool service_active(const std::string& unit, CommandRunner& runner) {
    try {
        return runner.run({"systemctl", "is-active", "--quiet", unit}) == 0;
    } catch (const std::exception& e) {
        throw ReleaseError("cannot ask systemd whether " + util::quoted(unit) + " runs: `systemctl` could not be run (" +
                           e.what() + ")");
    }
}

void stop_service(const std::string& unit, CommandRunner& runner) {
    run_or_throw(runner, {"systemctl", "stop", unit}, "stopping the service " + util::quoted(unit) + " failed");
}

void unload_module(const std::string& name, CommandRunner& runner) {
    run_or_throw(runner, {"modprobe", "-r", name}, "unloading the module " + util::quoted(name) + " failed",
                 "something still uses it: `lsmod` shows the modules that do, `fuser -v /dev/dri/* /dev/nvidia*` "
                 "the processes");
}

void write_value(const fs::path& root, const fs::path& path, const std::string& value, SysfsWriter& writer) {
    const fs::path file = under(root, path);
    if (const int error = writer.write(file, value); error != 0)
        throw ReleaseError("writing " + util::quoted(value) + " to " + util::quoted(file.string()) +
                           " failed: " + errno_text(error));
}

void unbind_driver(const fs::path& root, const DriverUnbound& change, SysfsWriter& writer) {
    const fs::path file = under(root, change.driver) / "unbind";
    if (const int error = writer.write(file, change.device); error != 0)
        throw ReleaseError("unbinding " + util::quoted(change.device) + " through " + util::quoted(file.string()) +
                           " failed: " + errno_text(error));
}

}  // namespace kvmgpu::host
