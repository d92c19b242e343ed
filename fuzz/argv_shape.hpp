#pragma once
// The shape every QEMU argv kvmgpu builds must have, whatever the profile said: after the
// binary, only options kvmgpu knows, each with its value where it takes one; no value that
// QEMU could read as an option (a leading '-'), none with a control character, and in every
// key=value list only keys kvmgpu writes, each once (a ',' from a profile value that escaped
// escaping would show as an extra or repeated key). The profile's own [qemu] extra words come
// last, verbatim, and are checked only for control characters. A violation aborts (a finding).
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kvmgpu::fuzz {

[[noreturn]] inline void shape_violation(const std::string& what, const std::string& word) {
    std::fprintf(stderr, "argv shape violation: %s: [%s]\n", what.c_str(), word.c_str());
    std::abort();
}

inline void check_no_control_chars(const std::vector<std::string>& words) {
    for (const auto& w : words)
        for (unsigned char c : w)
            if (c < 0x20 || c == 0x7f) shape_violation("control character", w);
}

// QEMU's split of "a,b=c,,d": at a ',' not doubled.
inline std::vector<std::string> split_option(std::string_view value) {
    std::vector<std::string> parts(1);
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value[i] == ',') {
            if (i + 1 < value.size() && value[i + 1] == ',') {
                parts.back() += ',';
                ++i;
                continue;
            }
            parts.emplace_back();
            continue;
        }
        parts.back() += value[i];
    }
    return parts;
}

inline void check_argv_shape(const std::vector<std::string>& argv, std::size_t extra) {
    static const std::set<std::string_view> with_value{
        "-name", "-display", "-msg", "-sandbox", "-machine", "-accel", "-cpu", "-smp", "-m", "-object", "-rtc",
        "-blockdev", "-global", "-chardev", "-mon", "-pidfile", "-device", "-fw_cfg", "-vnc", "-spice",
        "-netdev", "-audiodev", "-tpmdev"};
    static const std::set<std::string_view> without_value{"-nodefaults", "-no-user-config", "-S"};
    static const std::set<std::string_view> keys{
        "addr", "audiodev", "base", "bootindex", "br", "bus", "chardev", "chassis", "cores", "debug-threads",
        "disable-ticketing", "downscript", "drive", "driver", "evdev", "file", "filename", "grab-toggle",
        "grab_all", "guest", "host", "hugetlb", "hugetlbsize", "hv-vendor-id", "id", "ifname", "kvm", "mac",
        "mem-path", "memdev", "memory-backend", "mode", "multifunction", "name", "netdev", "node-name",
        "path", "pflash0", "pflash1", "port", "prealloc", "productid", "property", "read-only", "repeat",
        "rombar", "romfile", "script", "serial", "server", "share", "size", "smm", "sockets", "string",
        "threads", "timestamp", "tpmdev", "value", "vendorid", "vmport", "wait", "websocket", "x-vga",
        "hv-relaxed", "hv-vapic", "hv-spinlocks", "hv-time", "hv-reset", "hv-frequencies", "hv-runtime",
        "hv-vpindex", "hv-synic", "hv-stimer", "hv-tlbflush", "hv-ipi", "iothread", "password", "hostfwd",
        "obsolete", "elevateprivileges", "spawn", "resourcecontrol", "fd"};
    check_no_control_chars(argv);
    if (argv.empty() || argv[0].empty()) shape_violation("no binary", "");
    if (argv.size() < 1 + extra) shape_violation("fewer words than the extra ones", "");
    const std::size_t own_end = argv.size() - extra;
    for (std::size_t i = 1; i < own_end; ++i) {
        const std::string& flag = argv[i];
        if (without_value.count(flag)) continue;
        if (!with_value.count(flag)) shape_violation("unknown option", flag);
        if (++i >= own_end) shape_violation("option without its value", flag);
        const std::string& value = argv[i];
        if (value.empty() || value.front() == '-') shape_violation("value empty or starting with '-' after " + flag, value);
        if (flag == "-pidfile") continue;  // a path, not a key=value list
        const auto parts = split_option(value);
        std::set<std::string> seen;
        for (std::size_t k = 0; k < parts.size(); ++k) {
            const auto eq = parts[k].find('=');
            if (eq == std::string::npos) {
                // Only the head (the first part) may be a bare word: a driver, a size, host:port.
                if (k != 0 || parts[k].empty()) shape_violation("a part that is not key=value in " + flag, value);
                continue;
            }
            const std::string key = parts[k].substr(0, eq);
            if (!keys.count(key)) shape_violation("unknown key " + key + " in " + flag, value);
            if (!seen.insert(key).second) shape_violation("key " + key + " twice in " + flag, value);
        }
    }
}

}  // namespace kvmgpu::fuzz
