#pragma once
// How often a VM was started since the host booted, for a fleet monitor (`ps --json`,
// `status --json`: "restarts"): RUNTIME/.host/starts/NAME holds the number of starts, on the
// runtime directory's tmpfs, which a boot empties. A VM that systemd's Restart= brings back, or
// that a user starts again, counts up.
#include <string>

#include "app/context.hpp"

namespace kvmgpu::app {

// The starts recorded so far; 0 when there is no record, or one that is not a number (it is
// then written anew).
unsigned previous_starts(const Context& ctx, const std::string& vm);

// Records `starts` (written to a new file renamed over the old one, never through a link).
// Throws std::runtime_error naming the file when it cannot.
void record_starts(const Context& ctx, const std::string& vm, unsigned starts);

}  // namespace kvmgpu::app
