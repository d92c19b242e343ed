#pragma once
// The validator: the meaning of a loaded profile (ranges, formats, counts that must agree,
// duplicates, combinations that cannot work). It reports every problem, never stops early.
#include "profile/diagnostic.hpp"
#include "profile/loader.hpp"
#include "profile/profile.hpp"

namespace kvmgpu::profile {

// Appends every problem of `profile` to `out`, errors and warnings, each with file:line:column.
void validate(const Profile& profile, Diagnostics& out);

// Looking Glass shared memory for the profile: the configured size, or for "auto" the frame
// size (2 frames of WIDTHxHEIGHT at 4 bytes a pixel, 8 with HDR) + 10 MiB, rounded up to a power
// of two — the rule of the Looking Glass documentation.
std::uint64_t looking_glass_bytes(const LookingGlass& lg);

}  // namespace kvmgpu::profile

namespace kvmgpu::profile {

// Parse, then validate: the loader's diagnostics and the validator's, in file order. The
// validator runs even after loader errors so that one run reports every problem.
struct LoadResult;
LoadResult load_and_validate(const std::filesystem::path& file);

}  // namespace kvmgpu::profile
