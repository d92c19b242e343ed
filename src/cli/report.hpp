#pragma once
#include <iosfwd>

#include "app/events.hpp"

namespace kvmgpu::cli {

// Renders launch progress and lifecycle events: one JSON object per line on `out` with --json,
// else one line of text per step on `err` (stdout stays free for what a script asked for).
app::Report make_reporter(std::ostream& out, std::ostream& err, bool json);

}  // namespace kvmgpu::cli
