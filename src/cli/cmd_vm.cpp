// The commands that act on a running VM by name: ps, status, pause, resume, reset, stop, qmp, events.
#include <chrono>
#include <iomanip>
#include <ostream>

#include "app/control.hpp"
#include "app/control_client.hpp"
#include "cli/command.hpp"
#include "util/text.hpp"

namespace kvmgpu::cli {
namespace {

using nlohmann::json;
constexpr std::chrono::milliseconds kTimeout{10'000};

const std::string& one_name(const Invocation& inv, const char* usage) {
    if (inv.args.size() != 1) throw UsageError(std::string("usage: kvmgpu ") + usage);
    return inv.args.front();
}

// Prints a fallback the command took (a supervisor that did not answer) as a warning.
app::Warn warner(Invocation& inv) {
    return [&inv](const std::string& note) { inv.err << "kvmgpu: warning: " << note << "\n"; };
}

// A reply from QEMU: printed; exit 0 for {"return": ...}, 1 for {"error": ...}.
int print_reply(Invocation& inv, const json& reply, const std::string& done) {
    if (reply.contains("error")) {
        if (inv.json) inv.out << reply.dump() << "\n";
        throw util::RuntimeFailure("QEMU refused: " + reply["error"].value("desc", reply.dump()), "qemu-refused");
    }
    if (inv.json) inv.out << reply.dump() << "\n";
    else if (!done.empty()) inv.out << done << "\n";
    return ok;
}

// "3d4h", "4h12m", "12m5s", "5s".
std::string uptime(std::int64_t s) {
    const auto d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60, sec = s % 60;
    if (d) return std::to_string(d) + "d" + std::to_string(h) + "h";
    if (h) return std::to_string(h) + "h" + std::to_string(m) + "m";
    if (m) return std::to_string(m) + "m" + std::to_string(sec) + "s";
    return std::to_string(sec) + "s";
}

int simple_qmp(Invocation& inv, const char* usage, const char* command, const char* done) {
    const auto& name = one_name(inv, usage);
    const auto reply = app::qmp_by_name(inv.ctx, name, {{"execute", command}}, kTimeout, warner(inv));
    return print_reply(inv, reply, std::string(done) + ": " + name);
}

}  // namespace

void stop_options(po::options_description& desc) {
    desc.add_options()
        ("timeout", po::value<unsigned>()->default_value(kDefaultStopTimeout)->value_name("S"),
         "seconds the guest gets to power off after the ACPI power button, before QEMU quits")
        ("force", "skip the power button: quit QEMU at once");
}

int pause_command(Invocation& inv) { return simple_qmp(inv, "pause NAME", "stop", "paused"); }
int resume_command(Invocation& inv) { return simple_qmp(inv, "resume NAME", "cont", "resumed"); }
int reset_command(Invocation& inv) { return simple_qmp(inv, "reset NAME", "system_reset", "reset"); }

int status_command(Invocation& inv) {
    const auto& name = one_name(inv, "status NAME");
    const auto status = app::status_by_name(inv.ctx, name, kTimeout, warner(inv));
    // A run state nobody could tell (QEMU stopped or hung) is a failure, not a status.
    if (!status.error.empty())
        throw util::RuntimeFailure("the status of \"" + name + "\" is unknown: " + status.error, "no-answer");
    if (inv.json) {
        inv.out << json(status).dump() << "\n";
        return ok;
    }
    inv.out << name << ": " << (status.status.empty() ? "unknown" : status.status) << " (QEMU pid " << status.qemu_pid;
    if (status.supervised) inv.out << ", supervisor pid " << status.supervisor_pid;
    else if (!status.liveness.empty()) inv.out << ", " << status.liveness;
    else inv.out << ", unsupervised";
    inv.out << ")";
    for (const auto& d : status.devices) inv.out << " " << d;
    inv.out << "\n";
    return ok;
}

int stop_command(Invocation& inv) {
    const auto& name = one_name(inv, "stop NAME [--timeout S] [--force]");
    const auto timeout = std::chrono::seconds(inv.options["timeout"].as<unsigned>());
    if (timeout > app::kMaxStopTimeout)
        throw UsageError("--timeout " + std::to_string(timeout.count()) + " is more than a day (" +
                         std::to_string(app::kMaxStopTimeout.count()) + " s); give the guest at most that");
    const auto result = app::stop_by_name(inv.ctx, name, timeout, inv.options.count("force") > 0, warner(inv));
    if (inv.json) {
        inv.out << result.dump() << "\n";
    } else {
        inv.out << "stopped: " << name << " (" << result.value("reason", "") ;
        if (result.contains("detail")) inv.out << ": " << result["detail"].get<std::string>();
        inv.out << ")\n";
        if (result.contains("hint"))
            inv.err << "kvmgpu: " << (result.value("exit_code", 0) ? "error: " : "warning: ")
                    << result["hint"].get<std::string>() << "\n";
    }
    return result.value("exit_code", 0) == 0 ? ok : failure;
}

int qmp_command(Invocation& inv) {
    if (inv.args.size() != 2) throw UsageError("usage: kvmgpu qmp NAME '{\"execute\": \"query-status\"}'");
    json request;
    try {
        request = json::parse(inv.args[1]);
    } catch (const json::parse_error& e) {
        throw UsageError("the QMP command " + util::quoted(inv.args[1]) + " is not JSON (" + e.what() +
                         "); write e.g. '{\"execute\": \"query-status\"}'");
    }
    if (!request.is_object() || !request.contains("execute") || !request["execute"].is_string())
        throw UsageError("a QMP command is an object with \"execute\": e.g. '{\"execute\": \"query-pci\"}'");
    const auto reply = app::qmp_by_name(inv.ctx, inv.args[0], request, kTimeout, warner(inv));
    inv.out << reply.dump(inv.json ? -1 : 2) << "\n";
    return reply.contains("error") ? failure : ok;
}

int events_command(Invocation& inv) {
    const auto& name = one_name(inv, "events NAME");
    auto client = app::open_events(inv.ctx, name, kTimeout);
    while (auto event = client.next(std::nullopt)) {
        if (inv.json) inv.out << event->dump() << std::endl;
        else inv.out << event->value("event", "") << " " << (*event)["data"].dump() << std::endl;
    }
    return ok;
}

void ps_options(po::options_description& desc) {
    desc.add_options()("all,a", "also list the VMs defined by name (NAME.toml in ~/.config/kvmgpu, /etc/kvmgpu) "
                                "that do not run, and where each is defined");
}

int ps_command(Invocation& inv) {
    if (!inv.args.empty()) throw UsageError("usage: kvmgpu ps [--all]");
    const bool all = inv.options.count("all") > 0;
    const auto table = app::list_vms(inv.ctx, all);
    for (const auto& w : table.warnings) inv.err << "kvmgpu: warning: " << w << "\n";
    if (inv.json) {
        inv.out << json(table.rows).dump() << "\n";
        return ok;
    }
    inv.out << std::left << std::setw(20) << "NAME" << std::setw(10) << "STATUS" << std::setw(14) << "SUPERVISION"
            << std::setw(9) << "QEMU" << std::setw(10) << "UPTIME" << "DEVICES" << (all ? "  PROFILE" : "") << "\n";
    for (const auto& r : table.rows) {
        std::string devices;
        for (const auto& d : r.state.devices) devices += (devices.empty() ? "" : ",") + d;
        const bool stopped = r.status == "stopped" && r.state.qemu_pid == 0;
        inv.out << std::left << std::setw(20) << r.state.name << std::setw(10) << r.status << std::setw(14)
                << (stopped ? "-" : r.liveness) << std::setw(9) << (stopped ? std::string("-") : std::to_string(r.state.qemu_pid))
                << std::setw(10) << (r.state.started_at > 0 ? uptime(app::uptime_seconds(r.state.started_at)) : "-")
                << (devices.empty() ? "-" : devices);
        if (all) inv.out << "  " << (r.defined ? *r.defined : r.state.profile + " (not by name)");
        inv.out << "\n";
    }
    return ok;
}

}  // namespace kvmgpu::cli
