#pragma once
// `kvmgpu run --detach`: what the launcher needs before it goes to the background
// (util/detach.hpp does the going): the log its output goes to.
#include <string>

#include "util/fd.hpp"
#include "util/layout.hpp"

namespace kvmgpu::app {

// Opens STATE/NAME/launcher.log for appending (0600; the state directories made and checked as a
// launch checks them, ensure_vm_state_dir) and writes a line that marks the start of this run.
// Throws util::RuntimeFailure naming the file when it cannot.
util::Fd open_launcher_log(const util::VmLayout& layout, const std::string& name);

}  // namespace kvmgpu::app
