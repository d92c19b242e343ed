// The hooks of a launch ([hooks] prepare, prestart, poststop): see run_hook in launch_steps.hpp.
#include <chrono>

#include "app/child_env.hpp"
#include "app/launch_steps.hpp"
#include "app/run_logs.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {
namespace {

using Clock = std::chrono::steady_clock;

enum class HookEnd { exited, timed_out, interrupted };

// Waits for `child` to exit until `deadline`, or until a stop signal is pending.
HookEnd wait_child(util::ChildProcess& child, util::Interrupt& interrupt, Clock::time_point deadline,
                   std::optional<int>& status) {
    while (true) {
        if ((status = child.try_wait())) return HookEnd::exited;
        const auto now = Clock::now();
        if (now >= deadline) return HookEnd::timed_out;
        // Without a pidfd (kernel < 5.3) the wait is a 20 ms poll of the child.
        const auto until = child.pidfd() >= 0 ? deadline : std::min(deadline, now + std::chrono::milliseconds(20));
        if (util::wait_readable(child.pidfd(), until, &interrupt) == util::WaitResult::interrupted)
            return HookEnd::interrupted;
    }
}

// A hook abandoned: SIGTERM, 5 s to exit, then SIGKILL.
void end_child(util::ChildProcess& child) {
    try {
        child.kill(SIGTERM);
        if (!child.wait_for(std::chrono::seconds(5))) child.kill(SIGKILL);
    } catch (const std::exception&) {
    }
}

std::vector<std::string> hook_environment(const LaunchRun& run, std::string_view phase,
                                          const std::vector<std::string>& extra_env) {
    std::vector<std::string> devices;
    for (const auto& d : run.devices) devices.push_back(d.str());
    const auto& layout = run.facts.layout;
    std::vector<std::string> vars{
        "KVMGPU_VM_NAME=" + run.profile.name,
        "KVMGPU_HOOK=" + std::string(phase),
        "KVMGPU_DEVICES=" + util::join(devices, " "),
        "KVMGPU_PROFILE=" + std::filesystem::absolute(run.profile.file).string(),
        "KVMGPU_VM_STATE_DIR=" + layout.state_dir.string(),
        "KVMGPU_VM_LOG_DIR=" + layout.logs_dir().string(),
    };
    vars.insert(vars.end(), extra_env.begin(), extra_env.end());
    return child_environment(own_home(), vars);
}

}  // namespace

void run_hook(LaunchRun& run, std::string_view phase, const std::vector<std::string>& argv,
              const std::vector<std::string>& extra_env) {
    if (argv.empty()) return;
    const std::string name(phase);
    const std::string message = "running " + name + " hook " + util::shell_join(argv);
    const auto log = run.facts.layout.hooks_log();
    append_log_line(log, name + " hook: " + util::shell_join(argv));
    util::ChildProcess child;
    try {
        util::SpawnOptions options;
        options.log_file = log;
        options.environment = hook_environment(run, phase, extra_env);
        child = util::spawn(argv, options);
    } catch (const util::SpawnError& e) {
        append_log_line(log, name + " hook could not start: " + e.what());
        run.fail(name, message, e.what());
    }
    const auto timeout = std::chrono::seconds(run.profile.hooks.timeout_seconds);
    std::optional<int> status;
    const auto end = wait_child(child, run.interrupt, Clock::now() + timeout, status);
    if (end != HookEnd::exited) end_child(child);
    const std::string outcome = end == HookEnd::timed_out ? "was still running after " + std::to_string(timeout.count()) +
                                                                " s ([hooks] timeout) and was ended"
                                : end == HookEnd::interrupted ? std::string("was stopped")
                                                              : util::describe_wait_status(*status);
    append_log_line(log, name + " hook " + outcome);
    if (end == HookEnd::interrupted) run.check_interrupt(name);
    if (end != HookEnd::exited || !util::exited_successfully(*status))
        run.fail(name, message, "the hook " + outcome + " (its output is in " + log.string() + ")");
    run.step(name, message);
}

}  // namespace kvmgpu::app
