#pragma once
// Facts about processes from /proc, for telling a live process from a reused pid.
#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace kvmgpu::util {

// The process's start time (field 22 of /proc/PID/stat, in clock ticks since boot), or nullopt
// when there is no such process. A pid plus its start time names one process for ever.
std::optional<std::uint64_t> process_start_time(pid_t pid);

// True when `pid` runs and, if `start_time` is given, is the process that started then.
// A zombie counts as gone.
bool process_alive(pid_t pid, std::optional<std::uint64_t> start_time = std::nullopt);

}  // namespace kvmgpu::util
