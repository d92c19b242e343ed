// libFuzzer target: a profile's bytes through the whole reader (the guards of profile/source,
// toml++, the loader), the validator and, for a valid profile, the QEMU argv builder, whose
// result must keep its shape (argv_shape.hpp). Any crash, sanitizer report or shape violation is
// a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "argv_shape.hpp"
#include "profile/loader.hpp"
#include "profile/validate.hpp"
#include "qemu/argv.hpp"
#include "qemu/swtpm.hpp"

using namespace kvmgpu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto loaded = profile::load_text(text, "/fuzz/profiles/vm.toml");
    // As load_and_validate: a file that did not parse has nothing to validate.
    if (!loaded.profile.positions.empty() || !profile::has_errors(loaded.diagnostics))
        profile::validate(loaded.profile, loaded.diagnostics);
    for (const auto& d : loaded.diagnostics)
        if (d.severity == profile::Severity::error && d.str().empty()) __builtin_trap();
    if (profile::has_errors(loaded.diagnostics)) return 0;

    qemu::HostFacts facts;
    facts.layout = util::VmLayout::of("/run/kvmgpu", "/var/lib/kvmgpu", loaded.profile.name);
    facts.mmio64_mb = 65536;
    facts.bridge_tap_fd = 3;  // as the dry run shows it: a bridge needs the tap's descriptor
    const auto argv = qemu::build_argv(loaded.profile, facts);
    fuzz::check_argv_shape(argv, loaded.profile.qemu.extra.size());
    if (loaded.profile.tpm.enabled) fuzz::check_no_control_chars(qemu::swtpm_argv(facts.layout));
    return 0;
}
