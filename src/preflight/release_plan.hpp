#pragma once
// Freeing a card the host uses, as the profile's [release] table allows: the changes a launch
// makes before it binds the card, in order — the display manager, the services, the framebuffer
// consoles, the firmware framebuffers, the kernel modules — and the findings that say what will
// be done or why it cannot be. Pure: everything comes from the HostModel (its ReleaseFacts).
#include <optional>
#include <string>
#include <vector>

#include "host/host_change.hpp"
#include "host/holders.hpp"
#include "host/host_model.hpp"
#include "profile/profile.hpp"
#include "util/pci_address.hpp"

namespace kvmgpu::preflight {

struct Finding;

// One change, as the journal entry that undoes it, plus what the launch writes for it.
struct PlannedRelease {
    host::HostChange change;
    std::string value;  // sysfs-value-changed: the value written ("0" to a vtconsole's bind)
    std::string what;   // for people: "stopping the display manager (display-manager.service)"
};

// The display manager's unit as systemd names the alias every display manager installs.
inline constexpr const char* kDisplayManagerUnit = "display-manager.service";

// The changes, in the order a launch makes them (undone the other way), and findings: ok ones
// for what will be done, errors for what cannot (no systemd; a module another device or an
// unlisted module uses). `devices`: what the launch binds.
std::vector<PlannedRelease> plan_release(const profile::Profile& profile, const host::HostModel& host,
                                         const std::vector<util::PciAddress>& devices,
                                         std::vector<Finding>& findings);

// How the plan frees a device from `holder`, as a sentence ("[release] console unbinds it"), or
// nullopt when nothing in [release] does. A process in a desktop session (session-N.scope) is
// taken to end with the display manager; the launch checks again before it binds.
std::optional<std::string> released_by(const host::Holder& holder, const profile::Profile& profile,
                                       const host::ReleaseFacts& facts);

}  // namespace kvmgpu::preflight
