#include "app/profile_lookup.hpp"

#include <algorithm>
#include <map>
#include <system_error>

#include "util/error.hpp"
#include "util/text.hpp"
#include "util/vm_name.hpp"

namespace kvmgpu::app {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSuffix = ".toml";

std::string where_looked(const Context& ctx) {
    std::string dirs;
    for (const auto& d : ctx.profile_dirs) dirs += (dirs.empty() ? "" : ", ") + d.string();
    return dirs.empty() ? "no profile directories (KVMGPU_PROFILE_PATH is set but empty)" : dirs;
}

}  // namespace

bool is_profile_path(std::string_view word) {
    return word.find('/') != std::string_view::npos ||
           (word.size() >= kSuffix.size() && word.substr(word.size() - kSuffix.size()) == kSuffix);
}

FoundProfile find_profile(const Context& ctx, const std::string& word) {
    if (is_profile_path(word)) return {word, std::nullopt};
    if (!util::valid_vm_name(word))
        throw util::BadInput(util::quoted(word) +
                                 " is neither a profile file (a path, or a name ending in .toml) nor a VM name "
                                 "(1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit)",
                             "no-profile");
    for (const auto& dir : ctx.profile_dirs) {
        const auto file = dir / (word + std::string(kSuffix));
        std::error_code ec;
        if (fs::exists(file, ec)) return {file, word};
    }
    const auto first = ctx.profile_dirs.empty() ? fs::path("/etc/kvmgpu") : ctx.profile_dirs.front();
    throw util::BadInput("there is no profile named " + util::quoted(word) + ": no " + word +
                             ".toml in " + where_looked(ctx) + ". Write one with `kvmgpu init --output " +
                             (first / (word + ".toml")).string() + "` (or copy an example from " +
                             "/usr/share/kvmgpu/profiles), or give the profile's path",
                         "no-profile");
}

void check_found_name(const FoundProfile& found, const std::string& vm_name) {
    if (!found.name || *found.name == vm_name) return;
    throw util::BadInput(found.file.string() + " defines the VM " + util::quoted(vm_name) + ", not " +
                             util::quoted(*found.name) + ": a profile found by name must carry that name " +
                             "(write name = \"" + *found.name + "\" or leave name out), so that `kvmgpu stop " +
                             *found.name + "` reaches it",
                         "invalid-profile");
}

std::vector<DefinedVm> defined_vms(const Context& ctx, std::vector<std::string>& warnings) {
    std::map<std::string, fs::path> found;
    for (const auto& dir : ctx.profile_dirs) {
        std::error_code ec;
        if (!fs::exists(dir, ec)) continue;
        fs::directory_iterator it(dir, ec), end;
        if (ec) {
            warnings.push_back("cannot list the profiles in " + dir.string() + ": " + ec.message());
            continue;
        }
        for (; it != end; it.increment(ec)) {
            if (ec) break;
            const auto file = it->path();
            const auto base = file.filename().string();
            if (base.size() <= kSuffix.size() || !base.ends_with(kSuffix)) continue;
            const auto name = base.substr(0, base.size() - kSuffix.size());
            std::error_code type_ec;
            if (!util::valid_vm_name(name) || !fs::is_regular_file(file, type_ec)) continue;
            found.emplace(name, file);  // the first directory's stays
        }
    }
    std::vector<DefinedVm> out;
    for (auto& [name, file] : found) out.push_back({name, std::move(file)});
    return out;
}

}  // namespace kvmgpu::app
