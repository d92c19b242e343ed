#include "host/sysfs.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "host/binder.hpp"
#include "host_fixture.hpp"
#include "temp_dir.hpp"
#include "util/fd.hpp"
#include "util/interrupt.hpp"
#include "util/proc.hpp"

namespace fs = std::filesystem;
using namespace kvmgpu::host;
using namespace std::chrono_literals;
using kvmgpu::testing::TempDir;
using kvmgpu::test::HostFixture;
using std::chrono::steady_clock;

TEST_CASE("CPU lists in the kernel's format parse to sorted CPU numbers", "[host]") {
    struct Row {
        const char* text;
        std::optional<std::vector<unsigned>> cpus;
    };
    const Row rows[] = {
        {"0-3,8", std::vector<unsigned>{0, 1, 2, 3, 8}},
        {"0", std::vector<unsigned>{0}},
        {"0,4\n", std::vector<unsigned>{0, 4}},
        {"10-11,2", std::vector<unsigned>{2, 10, 11}},
        {"", std::vector<unsigned>{}},
        {"3-1", std::nullopt},
        {"0,", std::nullopt},
        {"a", std::nullopt},
        {"1--2", std::nullopt},
    };
    for (const Row& row : rows) {
        INFO(row.text);
        CHECK(parse_cpu_list(row.text) == row.cpus);
    }
}

TEST_CASE("CPU lists format back to ranges", "[host]") {
    CHECK(format_cpu_list({0, 1, 2, 3, 8}) == "0-3,8");
    CHECK(format_cpu_list({1, 5}) == "1,5");
    CHECK(format_cpu_list({}) == "");
}

TEST_CASE("hex attributes parse with and without the 0x prefix", "[host]") {
    CHECK(parse_hex("0x10de") == 0x10de);
    CHECK(parse_hex("030000") == 0x030000);
    CHECK(parse_hex("0x") == std::nullopt);
    CHECK(parse_hex("zz") == std::nullopt);
}

TEST_CASE("paths are built under the root, absolute or not", "[host]") {
    CHECK(under("/tmp/x", "/sys/bus/pci") == fs::path("/tmp/x/sys/bus/pci"));
    CHECK(under("/tmp/x", "proc/cmdline") == fs::path("/tmp/x/proc/cmdline"));
    CHECK(under("/", "/sys") == fs::path("/sys"));
}

// The real writer against real files: a regular file stands for an attribute that takes the
// write, and a FIFO for one whose write the kernel does not return from (opening a FIFO for
// writing blocks in the kernel until a reader comes, as an unbind of a device in use does).

namespace {

// A FIFO "attribute". The destructor opens it for reading, which releases a child still
// blocked in opening it, so no test leaves one behind.
struct StuckAttribute {
    fs::path path;
    explicit StuckAttribute(fs::path p) : path(std::move(p)) { REQUIRE(::mkfifo(path.c_str(), 0600) == 0); }
    ~StuckAttribute() { release(); }
    void release() const { kvmgpu::util::Fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)); }
};

// True once every child the writer abandoned has been reaped (each got SIGKILL, and opening a
// FIFO is an interruptible wait, so they die promptly).
bool all_reaped(RealSysfsWriter& writer) {
    const auto give_up = steady_clock::now() + 10s;
    while (writer.reap_abandoned() != 0) {
        if (steady_clock::now() > give_up) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// The pids of this process's children that have not exited.
std::vector<pid_t> live_children() {
    std::vector<pid_t> children;
    for (const auto& entry : fs::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        const std::string stat = read_attr(entry.path() / "stat").value_or("");
        const auto paren = stat.rfind(')');
        if (paren == std::string::npos) continue;
        std::istringstream fields(stat.substr(paren + 1));
        char state = 0;
        pid_t ppid = 0;
        fields >> state >> ppid;
        if (ppid == ::getpid() && state != 'Z') children.push_back(std::stoi(name));
    }
    return children;
}

std::size_t open_fds(pid_t pid) {
    std::error_code ec;
    std::size_t n = 0;
    for (fs::directory_iterator it(fs::path("/proc") / std::to_string(pid) / "fd", ec), end; !ec && it != end;
         it.increment(ec))
        ++n;
    return n;
}

}  // namespace

TEST_CASE("the real sysfs writer replaces an existing file's content and never creates one", "[host][sysfs]") {
    TempDir dir;
    std::ofstream(dir.path() / "attr") << "old and longer content";
    RealSysfsWriter writer;
    CHECK(writer.write(dir.path() / "attr", "vfio-pci") == 0);
    CHECK(read_attr(dir.path() / "attr") == "vfio-pci");
    CHECK(writer.write(dir.path() / "missing", "x") == ENOENT);
    CHECK_FALSE(fs::exists(dir.path() / "missing"));
    CHECK(writer.write(dir.path(), "x") == EISDIR);
    CHECK(writer.reap_abandoned() == 0);
}

TEST_CASE("a write the kernel does not return from times out at its deadline", "[host][sysfs]") {
    TempDir dir;
    StuckAttribute unbind(dir.path() / "unbind");
    std::ofstream(dir.path() / "attr") << "old";
    RealSysfsWriter writer(SysfsWriteOptions{200ms, nullptr});
    CHECK(writer.timeout() == 200ms);

    const auto start = steady_clock::now();
    CHECK(writer.write(unbind.path, "0000:01:00.0") == ETIMEDOUT);
    const auto took = steady_clock::now() - start;
    CHECK(took >= 200ms);
    CHECK(took < 2s);

    unbind.release();
    CHECK(all_reaped(writer));
    // The launcher carries on: the next write works.
    CHECK(writer.write(dir.path() / "attr", "new") == 0);
    CHECK(read_attr(dir.path() / "attr") == "new");
}

TEST_CASE("a stop signal abandons a stuck write long before its deadline", "[host][sysfs]") {
    TempDir dir;
    StuckAttribute unbind(dir.path() / "unbind");
    std::ofstream(dir.path() / "attr") << "old";
    kvmgpu::util::Interrupt interrupt;
    RealSysfsWriter writer(SysfsWriteOptions{10s, &interrupt});

    // Directed at this thread, where the write waits: another thread of the test process may
    // not block SIGINT, and a signal sent to the process could be delivered there.
    const pthread_t waiting = ::pthread_self();
    std::thread stopper([waiting] {
        std::this_thread::sleep_for(50ms);
        ::pthread_kill(waiting, SIGINT);
    });
    const auto start = steady_clock::now();
    const int result = writer.write(unbind.path, "0000:01:00.0");
    const auto took = steady_clock::now() - start;
    stopper.join();
    CHECK(result == EINTR);
    CHECK(took < 5s);
    CHECK(interrupt.pending() == SIGINT);  // left for the Interrupt's owner
    CHECK(interrupt.received() == SIGINT);

    unbind.release();
    CHECK(all_reaped(writer));
    CHECK(writer.write(dir.path() / "attr", "new") == 0);
    CHECK(read_attr(dir.path() / "attr") == "new");
}

TEST_CASE("no write starts while a stop signal is pending", "[host][sysfs]") {
    TempDir dir;
    std::ofstream(dir.path() / "attr") << "old";
    kvmgpu::util::Interrupt interrupt;
    RealSysfsWriter writer(SysfsWriteOptions{10s, &interrupt});

    REQUIRE(::raise(SIGTERM) == 0);
    CHECK(writer.write(dir.path() / "attr", "new") == EINTR);
    CHECK(writer.write(dir.path() / "attr", "new") == EINTR);  // until the owner takes it
    CHECK(read_attr(dir.path() / "attr") == "old");
    CHECK(interrupt.pending() == SIGTERM);
    CHECK(writer.write(dir.path() / "attr", "new") == 0);
    CHECK(read_attr(dir.path() / "attr") == "new");
}

TEST_CASE("the child of a stuck write holds none of the launcher's fds", "[host][sysfs]") {
    TempDir dir;
    StuckAttribute unbind(dir.path() / "unbind");
    RealSysfsWriter writer(SysfsWriteOptions{3s, nullptr});

    // Seen from a second thread while the write is stuck: the child is blocked in open(2), so
    // once it has closed what it inherited it has one fd, its end of the socket pair it answers on.
    bool child_seen = false, fds_closed = false;
    std::thread watcher([&] {
        const auto give_up = steady_clock::now() + 2s;
        while (steady_clock::now() < give_up && !fds_closed) {
            for (pid_t pid : live_children()) {
                child_seen = true;
                const auto channel = fs::path("/proc") / std::to_string(pid) / "fd" / "3";
                std::error_code ec;
                if (open_fds(pid) == 1 && fs::read_symlink(channel, ec).string().starts_with("socket:"))
                    fds_closed = true;
            }
            std::this_thread::sleep_for(5ms);
        }
        unbind.release();  // lets the write finish early
    });
    const int result = writer.write(unbind.path, "0000:01:00.0");
    watcher.join();
    CHECK(child_seen);
    CHECK(fds_closed);
    // Released by a reader that opens and closes at once: 0, EPIPE, or ETIMEDOUT if that
    // came too late; any of them, as long as the write returned.
    INFO("write returned " << result);
    CHECK(all_reaped(writer));
}

TEST_CASE("one child makes every write of a writer until it rests", "[host][sysfs]") {
    TempDir dir;
    std::ofstream(dir.path() / "a") << "old";
    std::ofstream(dir.path() / "b") << "old";
    RealSysfsWriter writer;
    CHECK_FALSE(writer.helper_pid());
    CHECK(writer.write(dir.path() / "a", "1") == 0);
    const auto child = writer.helper_pid();
    REQUIRE(child);
    CHECK(live_children() == std::vector<pid_t>{*child});
    CHECK(writer.write(dir.path() / "b", "2") == 0);
    CHECK(writer.write(dir.path() / "missing", "3") == ENOENT);
    CHECK(writer.helper_pid() == child);
    CHECK(read_attr(dir.path() / "a") == "1");
    CHECK(read_attr(dir.path() / "b") == "2");
    writer.rest();
    CHECK_FALSE(writer.helper_pid());
    CHECK(live_children().empty());  // ended and reaped
    CHECK(writer.write(dir.path() / "a", "4") == 0);  // a new child
    CHECK(read_attr(dir.path() / "a") == "4");
}

TEST_CASE("a child killed while it waits for a write is replaced and the write is made", "[host][sysfs]") {
    TempDir dir;
    std::ofstream(dir.path() / "attr") << "old";
    RealSysfsWriter writer;
    REQUIRE(writer.write(dir.path() / "attr", "1") == 0);
    const auto child = writer.helper_pid();
    REQUIRE(child);
    REQUIRE(::kill(*child, SIGKILL) == 0);
    // Dead (not yet reaped) before the next request, so that the request finds it gone.
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(*child), &info, WEXITED | WNOWAIT) == 0);
    CHECK(writer.write(dir.path() / "attr", "2") == 0);
    CHECK(read_attr(dir.path() / "attr") == "2");
    CHECK(writer.helper_pid() != child);
    writer.rest();
    CHECK(live_children().empty());
}

TEST_CASE("a write whose child is killed by someone else is EIO: its outcome is unknown", "[host][sysfs]") {
    TempDir dir;
    StuckAttribute unbind(dir.path() / "unbind");
    std::ofstream(dir.path() / "attr") << "old";
    RealSysfsWriter writer(SysfsWriteOptions{10s, nullptr});
    REQUIRE(writer.write(dir.path() / "attr", "1") == 0);
    const auto child = writer.helper_pid();
    REQUIRE(child);
    std::thread killer([pid = *child] {
        std::this_thread::sleep_for(50ms);  // the child is then blocked opening the FIFO
        ::kill(pid, SIGKILL);
    });
    const auto start = steady_clock::now();
    const int result = writer.write(unbind.path, "0000:01:00.0");
    killer.join();
    CHECK(result == EIO);
    CHECK(steady_clock::now() - start < 5s);
    CHECK_FALSE(writer.helper_pid());
    CHECK(live_children().empty());  // reaped
    CHECK(writer.write(dir.path() / "attr", "2") == 0);
}

TEST_CASE("a write larger than the child takes is refused before it is sent", "[host][sysfs]") {
    TempDir dir;
    std::ofstream(dir.path() / "attr") << "old";
    RealSysfsWriter writer;
    CHECK(writer.write(dir.path() / "attr", std::string(kMaxHelperWriteBytes + 1, '1')) == E2BIG);
    CHECK(writer.write(dir.path() / "attr", std::string(kMaxHelperWriteBytes, '1')) == 0);
    CHECK(read_attr(dir.path() / "attr")->size() == kMaxHelperWriteBytes);
}

TEST_CASE("a stuck unbind fails the bind at step unbind, naming the path, and rolls back", "[host][sysfs]") {
    HostFixture fx;
    kvmgpu::test::add_gpu_with_audio(fx);
    const fs::path unbind_rel = "sys/bus/pci/drivers/nouveau/unbind";
    fx.remove(unbind_rel);
    StuckAttribute unbind(fx.path(unbind_rel));
    RealSysfsWriter writer(SysfsWriteOptions{200ms, nullptr});

    BindOptions options;
    options.timeout = 50ms;
    options.poll_interval = 1ms;
    const auto gpu = *kvmgpu::util::PciAddress::parse("0000:01:00.0");
    try {
        bind_devices(fx.root(), fx.runtime(), "win11", {gpu}, writer, options);
        FAIL("bind_devices did not fail");
    } catch (const BindError& e) {
        CHECK(e.step == BindStep::unbind);
        CHECK(e.error == ETIMEDOUT);
        CHECK(e.rolled_back);
        const std::string message = e.what();
        INFO(message);
        CHECK_THAT(message, Catch::Contains("failed at step \"unbind\""));
        CHECK_THAT(message, Catch::Contains("timed out after 200 ms"));
        CHECK_THAT(message, Catch::Contains("/sys/bus/pci/devices/0000:01:00.0/driver/unbind"));
        CHECK_THAT(message, Catch::Contains("still in use"));
    }
    CHECK(fx.override_of("0000:01:00.0") != "vfio-pci");
    CHECK(fx.driver_of("0000:01:00.0") == "nouveau");
    unbind.release();
    CHECK(all_reaped(writer));
}

TEST_CASE("link_basename names the last part of a link's target and nothing for a file", "[host]") {
    TempDir dir;
    const auto d = dir.path();
    fs::create_symlink("../../bus/pci/drivers/e1000", d / "driver");
    fs::create_symlink("../../../kernel/iommu_groups/12/", d / "iommu_group");  // a trailing "/"
    fs::create_symlink("/", d / "root");
    std::ofstream(d / "vendor") << "0x8086\n";
    CHECK(link_basename(d / "driver") == "e1000");
    const kvmgpu::util::Fd opened(::open(d.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(opened);
    CHECK(link_basename_at(opened.get(), "driver") == "e1000");
    CHECK(link_basename_at(opened.get(), "iommu_group") == "12");
    CHECK(link_basename(d / "root") == "");
    CHECK(link_basename(d / "vendor") == std::nullopt);   // not a link
    CHECK(link_basename(d / "missing") == std::nullopt);
    CHECK(read_attr_at(opened.get(), "vendor") == "0x8086");
    CHECK(read_attr_at(opened.get(), "missing") == std::nullopt);
    CHECK(read_attr_at(-1, "vendor") == std::nullopt);  // a directory that did not open
}

TEST_CASE("a launcher killed with -9 leaves no writer child behind", "[host][sysfs]") {
    TempDir dir;
    std::ofstream(dir.path() / "attr") << "old";
    int report[2];
    REQUIRE(::pipe(report) == 0);
    const pid_t launcher = ::fork();
    REQUIRE(launcher >= 0);
    if (launcher == 0) {
        RealSysfsWriter writer;
        const int result = writer.write(dir.path() / "attr", "1");
        const pid_t helper = result == 0 && writer.helper_pid() ? *writer.helper_pid() : -1;
        (void)!::write(report[1], &helper, sizeof helper);
        ::pause();
        ::_exit(0);
    }
    ::close(report[1]);
    pid_t helper = -1;
    REQUIRE(::read(report[0], &helper, sizeof helper) == sizeof helper);
    ::close(report[0]);
    REQUIRE(helper > 0);
    CHECK(read_attr(dir.path() / "attr") == "1");
    REQUIRE(::kill(launcher, SIGKILL) == 0);
    REQUIRE(::waitpid(launcher, nullptr, 0) == launcher);
    // The idle child sees its socket's other end close and exits (init reaps it).
    const auto give_up = steady_clock::now() + 5s;
    while (kvmgpu::util::process_alive(helper) && steady_clock::now() < give_up) std::this_thread::sleep_for(5ms);
    CHECK_FALSE(kvmgpu::util::process_alive(helper));
}
