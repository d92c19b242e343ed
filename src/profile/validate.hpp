#pragma once
// The validator: the meaning of a loaded profile (ranges, formats, counts that must agree,
// duplicates, combinations that cannot work). It reports every problem, never stops early.
#include "profile/diagnostic.hpp"
#include "profile/loader.hpp"
#include "profile/profile.hpp"

namespace kvmgpu::profile {

// Appends every problem of `profile` to `out`, errors and warnings, each with file:line:column.
void validate(const Profile& profile, Diagnostics& out);

}  // namespace kvmgpu::profile

namespace kvmgpu::profile {

// Parse, then validate: the loader's diagnostics and the validator's, in file order. The
// validator runs even after loader errors so that one run reports every problem.
struct LoadResult;
LoadResult load_and_validate(const std::filesystem::path& file);

}  // namespace kvmgpu::profile
