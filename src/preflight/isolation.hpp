#pragma once
// What [cpu] isolate, irq_affinity and realtime need from the host, checked before a launch: a
// cgroup2 hierarchy with the cpuset controller (systemd enables it itself), at least one CPU
// left to the host, and the cgroups that will be confined.
#include <filesystem>
#include <vector>

#include "preflight/check.hpp"
#include "profile/profile.hpp"

namespace kvmgpu::preflight {

// The findings (none when the profile asks for none of these). `online` is the host's online
// CPUs; the cgroups are read under `root`.
std::vector<Finding> isolation_findings(const profile::Profile& p, const std::filesystem::path& root,
                                        const std::vector<unsigned>& online);

}  // namespace kvmgpu::preflight
