#pragma once
// The framebuffer console (fbcon) as the kernel lets a program bind it again.
#include <filesystem>

namespace kvmgpu::host {

// Whether `path` (as on the host) is a vtconsole's bind attribute: /sys/class/vtconsole/vtconN/bind.
bool is_console_bind(const std::filesystem::path& path);

// Makes fbcon take the consoles over again, through the FBIOPUT_CON2FBMAP ioctl on the first
// framebuffer node under ROOT/dev (console 1 onto it): what the kernel does itself when a
// framebuffer is registered. Needed after fbcon was unbound from every console while its
// framebuffer stayed (a launch undone before the card was unbound): writing 1 to its vtconsole's
// bind then does nothing. False when there is no framebuffer node or the ioctl fails.
bool take_over_console(const std::filesystem::path& root);

}  // namespace kvmgpu::host
