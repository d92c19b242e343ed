// kvmgpu under systemd (Type=notify): the datagrams each event sends, and the real kvmgpu binary
// running a real QEMU (TCG) with NOTIFY_SOCKET set, this test playing systemd's side.
#include "app/service_notify.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <fcntl.h>
#include <sys/wait.h>

#include "notify_listener.hpp"
#include "qemu_world.hpp"
#include "util/proc.hpp"

using namespace kvmgpu;
using namespace kvmgpu::testing;
namespace fs = std::filesystem;
using nlohmann::json;

TEST_CASE("each launch event maps to its systemd notification", "[service_notify]") {
    using app::service_notification;
    CHECK(service_notification(app::StepEvent{"bind", "binding 0000:01:00.0 nouveau → vfio-pci", true, "", ""}) ==
          "STATUS=binding 0000:01:00.0 nouveau → vfio-pci");
    CHECK(service_notification(app::StepEvent{"check", "checking the host", false, "", "not ready\nREADY=1"}) ==
          "STATUS=checking the host failed: not ready READY=1");
    CHECK(service_notification(app::RunningEvent{"win11", 42, 41, "/run/kvmgpu/win11/control.sock"}) ==
          "READY=1\nSTATUS=running: win11 (QEMU pid 42)");
    CHECK(service_notification(app::StoppingEvent{"SIGTERM", false}) == "STOPPING=1\nSTATUS=stopping (SIGTERM)");
    CHECK(service_notification(app::StoppingEvent{"", true, "stop-requested"}) ==
          "STOPPING=1\nSTATUS=stopping (kvmgpu stop, forced)");
    CHECK(service_notification(app::StoppingEvent{"", false, "qemu-exited"}) == "STOPPING=1\nSTATUS=stopping (QEMU exited)");
    CHECK(service_notification(app::PausedEvent{"win11"}) == "STATUS=paused: win11");
    CHECK(service_notification(app::FindingEvent{"warning", "no-kvm", "no /dev/kvm"}).empty());
    app::StoppedEvent stopped;
    stopped.name = "win11";
    stopped.reason = "guest-shutdown";
    CHECK(service_notification(stopped) == "STATUS=stopped: win11 (guest-shutdown)");
}

TEST_CASE("a report without NOTIFY_SOCKET is the report it wraps", "[service_notify]") {
    util::SdNotifier none;
    int calls = 0;
    const auto report = app::notifying_systemd([&](const app::Event&) { ++calls; }, none);
    report(app::PausedEvent{"x"});
    CHECK(calls == 1);
}

namespace {

std::vector<std::string> lines_of(const std::string& datagram) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= datagram.size()) {
        const auto nl = datagram.find('\n', start);
        out.push_back(datagram.substr(start, nl - start));
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
    return out;
}

bool has_line(const Notification& n, const std::string& line) {
    const auto lines = lines_of(n.text);
    return std::find(lines.begin(), lines.end(), line) != lines.end();
}

std::string environ_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
    return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("kvmgpu run under NOTIFY_SOCKET sends STATUS per step and READY once running and STOPPING when stopping",
          "[service_notify][runtime][qemu]") {
    QemuWorld w;
    w.profile("svc", w.profiles);
    NotifyListener systemd((w.dir.path() / "notify").string());
    auto sup = w.run("svc", {"NOTIFY_SOCKET=" + systemd.address()});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);

    // Up to READY=1: a STATUS= line per step, all from the launcher itself (NotifyAccess=main).
    std::vector<std::string> statuses;
    std::optional<Notification> ready;
    while (auto n = systemd.next(deadline)) {
        INFO(n->text);
        CHECK(n->pid == sup->pid());
        if (has_line(*n, "READY=1")) {
            ready = n;
            break;
        }
        REQUIRE(n->text.rfind("STATUS=", 0) == 0);
        statuses.push_back(n->text);
    }
    INFO(w.supervisor_err());
    REQUIRE(ready);
    CHECK(std::find(statuses.begin(), statuses.end(), "STATUS=checking the host") != statuses.end());
    CHECK(std::any_of(statuses.begin(), statuses.end(), [](const std::string& s) { return s.rfind("STATUS=starting qemu", 0) == 0; }));
    CHECK(std::find(statuses.begin(), statuses.end(), "STATUS=connecting to QMP") != statuses.end());
    CHECK(has_line(*ready, "STATUS=running: svc (QEMU pid " + std::to_string(sup->wait_event("running")["qemu_pid"].get<int>()) + ")"));

    // READY=1 came once the VM runs: QEMU says so at once.
    const auto status = w.cli({"status", "svc", "--json"});
    REQUIRE(status.status == 0);
    CHECK(json::parse(status.out)["status"] == "running");
    // No child may notify in the launcher's name: QEMU's environment has no NOTIFY_SOCKET.
    const pid_t qemu = json::parse(status.out)["qemu_pid"].get<pid_t>();
    const auto env = environ_of(qemu);
    REQUIRE_FALSE(env.empty());
    CHECK(env.find("NOTIFY_SOCKET") == std::string::npos);

    // `kvmgpu stop`, as ExecStop runs it: STOPPING=1 while the stop is under way (the stop client
    // has not returned: the guest gets 1 s for the power button first), before the restore.
    const pid_t stopper = ::fork();
    if (stopper == 0) {
        const int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 1);
        ::dup2(null, 2);
        exec_kvmgpu(w.args({"stop", "svc", "--timeout", "1"}), w.env());
    }
    std::optional<Notification> stopping;
    while (auto n = systemd.next(deadline)) {
        if (has_line(*n, "STOPPING=1")) {
            stopping = n;
            break;
        }
    }
    REQUIRE(stopping);
    int raw = 0;
    CHECK(::waitpid(stopper, &raw, WNOHANG) == 0);  // still stopping
    CHECK(has_line(*stopping, "STATUS=stopping (kvmgpu stop)"));
    std::vector<std::string> after;
    while (auto n = systemd.next(std::chrono::steady_clock::now() + std::chrono::seconds(30))) {
        after.push_back(n->text);
        if (n->text.rfind("STATUS=stopped: svc", 0) == 0) break;
    }
    REQUIRE_FALSE(after.empty());
    CHECK(after.back() == "STATUS=stopped: svc (stop-requested)");
    CHECK(sup->wait() == 0);
    REQUIRE(::waitpid(stopper, &raw, 0) == stopper);
    CHECK(WIFEXITED(raw));
    CHECK(WEXITSTATUS(raw) == 0);
    // The JSON events tell the same.
    CHECK(std::any_of(sup->seen.begin(), sup->seen.end(), [](const json& e) {
        return e["event"] == "stopping" && e["reason"] == "stop-requested" && !e.contains("signal");
    }));
    CHECK_FALSE(fs::exists(w.runtime / "svc"));
}

TEST_CASE("a VM whose QEMU exits by itself reports that it is stopping", "[service_notify][runtime][qemu]") {
    QemuWorld w;
    auto sup = w.run(w.profile("quits", w.dir.path()).string());
    sup->wait_event("running");
    const auto quit = w.cli({"qmp", "quits", R"({"execute":"quit"})"});
    INFO(quit.err);
    CHECK(quit.status == 0);
    CHECK(sup->wait_event("stopping")["reason"] == "qemu-exited");
    CHECK(sup->wait() == 0);
}
