#pragma once
// Test doubles for the host layer's seams, working on a HostFixture: a SysfsWriter for every
// attribute of the host and a CommandRunner standing in for systemctl and modprobe, both
// logging into one event list so a test can check the order of writes and runs.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "host/host_change.hpp"
#include "host/sysfs.hpp"
#include "host_fixture.hpp"
#include "util/text.hpp"

namespace kvmgpu::test {

namespace fs = std::filesystem;
using host::CommandRunner;
using host::SysfsWriter;

// The SysfsWriter of a whole fixture host: bus and console attributes go to the simulated kernel; any other
// attribute (hugepages, IRQ affinity, cpusets) is a file the kernel shows with a newline, written
// in place. Every write is logged as an event, in one log with the runner's.
class HostWriter final : public SysfsWriter {
public:
    HostWriter(HostFixture& fx, std::vector<std::string>& events) : kernel(fx), fx_(fx), events_(events) {}

    int write(const fs::path& file, std::string_view data) override {
        const fs::path rel = file.lexically_relative(fx_.root());
        std::string shown;
        for (char c : data) shown += c == '\n' ? std::string("\\n") : std::string(1, c);
        events_.push_back("write " + rel.string() + " <- " + shown);
        if (rel.string().starts_with("sys/bus/") || rel.string().starts_with("sys/class/vtconsole/"))
            return kernel.write(file, data);
        if (const auto it = fail.find(rel.string()); it != fail.end()) return it->second;
        const int fd = ::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0) return errno;
        std::string value(data);
        if (!value.empty() && value.back() == '\n') value.pop_back();
        value += '\n';
        const bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
        ::close(fd);
        return ok ? 0 : EIO;
    }

    test::SimulatedKernel kernel;
    std::map<std::string, int> fail;  // path under the root → the errno its writes fail with

private:
    HostFixture& fx_;
    std::vector<std::string>& events_;
};

// Records every argv and answers with the exit status set for its last word (0 by default).
class FakeRunner final : public CommandRunner {
public:
    explicit FakeRunner(std::vector<std::string>& events) : events_(events) {}

    int run(const std::vector<std::string>& argv) override {
        calls.push_back(argv);
        events_.push_back("run " + util::shell_join(argv));
        if (on_run) on_run(argv);
        const auto it = status.find(argv.back());
        return it == status.end() ? 0 : it->second;
    }

    std::vector<std::vector<std::string>> calls;
    std::map<std::string, int> status;
    // What the program does to the host, when the test needs it to (modprobe loading a driver).
    std::function<void(const std::vector<std::string>&)> on_run;

private:
    std::vector<std::string>& events_;
};

}  // namespace kvmgpu::test
