// The profile's shape: one reader per TOML table, each listing the table's known keys in the
// order "known keys: …" messages name them. Generic value reading is in toml_reader.cpp.
#include <algorithm>
#include "profile/loader.hpp"

#include <optional>
#include <tuple>
#include <utility>

#include "profile/source.hpp"
#include "profile/toml_reader.hpp"
#include "util/stack_thread.hpp"
#include "util/text.hpp"

namespace kvmgpu::profile {
namespace {

constexpr Words<Accel, 2> accel_words{{{"kvm", Accel::kvm}, {"tcg", Accel::tcg}}};
constexpr Words<Hugepages, 3> hugepage_words{
    {{"none", Hugepages::none}, {"2M", Hugepages::size_2m}, {"1G", Hugepages::size_1g}}};
constexpr Words<Rtc, 2> rtc_words{{{"utc", Rtc::utc}, {"localtime", Rtc::localtime}}};
constexpr Words<IrqAffinity, 3> irq_affinity_words{
    {{"leave", IrqAffinity::leave}, {"vm", IrqAffinity::vm}, {"host", IrqAffinity::host}}};
constexpr Words<FirmwareType, 2> firmware_words{
    {{"ovmf", FirmwareType::ovmf}, {"seabios", FirmwareType::seabios}}};
constexpr Words<DiskFormat, 2> format_words{{{"raw", DiskFormat::raw}, {"qcow2", DiskFormat::qcow2}}};
constexpr Words<DiskBus, 4> bus_words{{{"virtio", DiskBus::virtio},
                                       {"nvme", DiskBus::nvme},
                                       {"sata", DiskBus::sata},
                                       {"scsi", DiskBus::scsi}}};
constexpr Words<DiskMedia, 2> media_words{{{"disk", DiskMedia::disk}, {"cdrom", DiskMedia::cdrom}}};
constexpr Words<NetworkMode, 4> network_words{{{"user", NetworkMode::user},
                                               {"bridge", NetworkMode::bridge},
                                               {"tap", NetworkMode::tap},
                                               {"none", NetworkMode::none}}};
constexpr Words<DisplayType, 3> display_words{
    {{"none", DisplayType::none}, {"vnc", DisplayType::vnc}, {"spice", DisplayType::spice}}};
constexpr Words<VncPassword, 3> vnc_password_words{
    {{"auto", VncPassword::automatic}, {"on", VncPassword::on}, {"off", VncPassword::off}}};
constexpr Words<LookingGlassBackend, 2> lg_words{
    {{"shm", LookingGlassBackend::shm}, {"kvmfr", LookingGlassBackend::kvmfr}}};
constexpr Words<AudioBackend, 3> audio_words{{{"none", AudioBackend::none},
                                              {"pipewire", AudioBackend::pipewire},
                                              {"pulseaudio", AudioBackend::pulseaudio}}};

using Handler = TomlReader::Handler;

// ---- [machine], [cpu], [firmware] ----

void read_machine(TomlReader& r, const toml::table& t, const std::string& path, Machine& m) {
    r.read_keys(t, path, "[machine]",
                {{"type", r.string(m.type)},
                 {"accel", r.word(m.accel, accel_words)},
                 {"memory", r.size(m.memory)},
                 {"hugepages", r.word(m.hugepages, hugepage_words)},
                 {"keep_hugepages", r.boolean(m.keep_hugepages)},
                 {"rtc", r.word(m.rtc, rtc_words)}});
}

void read_cpu(TomlReader& r, const toml::table& t, const std::string& path, Cpu& c) {
    r.read_keys(t, path, "[cpu]",
                {{"model", r.string(c.model)},
                 {"sockets", r.integer(c.sockets, 1, 16)},
                 {"cores", r.integer(c.cores, 1, 255)},
                 {"threads", r.integer(c.threads, 1, 8)},
                 {"hide_kvm", r.boolean(c.hide_kvm)},
                 {"hv_vendor_id", r.string(c.hv_vendor_id)},
                 {"hyperv", r.boolean(c.hyperv)},
                 {"pin", r.integers(c.pin, 4095)},
                 {"emulator_pin", r.integers(c.emulator_pin, 4095)},
                 {"iothread_pin", r.integers(c.iothread_pin, 4095)},
                 {"isolate", r.boolean(c.isolate)},
                 {"irq_affinity", r.word(c.irq_affinity, irq_affinity_words)},
                 {"realtime", r.boolean(c.realtime)},
                 {"realtime_priority", r.integer(c.realtime_priority, 1, 99)}});
}

void read_firmware(TomlReader& r, const toml::table& t, const std::string& path, Firmware& f) {
    r.read_keys(t, path, "[firmware]",
                {{"type", r.word(f.type, firmware_words)},
                 {"code", r.path(f.code)},
                 {"vars", r.path(f.vars)},
                 {"secure_boot", r.boolean(f.secure_boot)}});
}

// ---- [[pci]], [[disk]] ----

// A malformed address leaves ffff:ff:1f.7, the placeholder validate.cpp skips, so that two
// malformed addresses are not reported again as one device listed twice.
Handler pci_address(TomlReader& r, util::PciAddress& out) {
    return [&r, &out](const toml::node& n, const std::string& key) {
        auto s = r.read_string(n, key);
        if (!s) return;
        if (auto a = util::PciAddress::parse(*s)) {
            out = *a;
            return;
        }
        r.error(key, pos_of(n.source()),
                TomlReader::shown_key(key) + " " + util::quoted(*s) +
                    " is not a PCI address; write domain:bus:slot.function in hex as `lspci -D` "
                    "shows it, e.g. \"0000:01:00.0\" (slot at most 1f, function at most 7)");
        out = {0xffff, 0xff, 0x1f, 7};
    };
}

// The missing address is reported here, at the [[pci]] header, because PciDevice has no way
// to say "no address" to the validator. An address of the wrong type was reported already.
void read_pci(TomlReader& r, const toml::table& t, const std::string& path, PciDevice& d) {
    r.read_keys(t, path, "[[pci]]",
                {{"address", pci_address(r, d.address)},
                 {"id", r.string(d.id)},
                 {"subsystem", r.string(d.subsystem)},
                 {"rom", r.path(d.rom)},
                 {"rombar", r.boolean(d.rombar)},
                 {"vga", r.boolean(d.vga)}});
    if (!r.written(path + ".address"))
        r.error(path + ".address", r.where(path),
                TomlReader::shown_table(path) +
                    " has no address; add address = \"0000:01:00.0\" (see `kvmgpu list`)");
}

// Defaults that follow from other keys: a .qcow2 file is qcow2, a CD-ROM sits on SATA (no
// virtio CD-ROM exists) and is read-only. A key written with a bad value counts as written:
// its derived default is not applied either.
void apply_disk_defaults(const TomlReader& r, const std::string& path, Disk& d) {
    if (!r.written(path + ".format") && d.path.extension() == ".qcow2")
        d.format = DiskFormat::qcow2;
    if (d.media == DiskMedia::cdrom) {
        if (!r.written(path + ".bus")) d.bus = DiskBus::sata;
        if (!r.written(path + ".readonly")) d.readonly = true;
    }
}

void read_disk(TomlReader& r, const toml::table& t, const std::string& path, Disk& d) {
    r.read_keys(t, path, "[[disk]]",
                {{"path", r.path(d.path)},
                 {"format", r.word(d.format, format_words)},
                 {"bus", r.word(d.bus, bus_words)},
                 {"media", r.word(d.media, media_words)},
                 {"readonly", r.boolean(d.readonly)}});
    apply_disk_defaults(r, path, d);
}

// ---- [network], [[usb]], [[input]] ----

void read_network(TomlReader& r, const toml::table& t, const std::string& path, Network& net) {
    r.read_keys(t, path, "[network]",
                {{"mode", r.word(net.mode, network_words)},
                 {"bridge", r.string(net.bridge)},
                 {"tap", r.string(net.tap)},
                 {"mac", r.string(net.mac)},
                 {"model", r.string(net.model)}});
}

void read_usb(TomlReader& r, const toml::table& t, const std::string& path, Usb& u) {
    r.read_keys(t, path, "[[usb]]",
                {{"vendor", r.integer(u.vendor, 1, 0xffff)},
                 {"product", r.integer(u.product, 1, 0xffff)}});
}

void read_input(TomlReader& r, const toml::table& t, const std::string& path, Input& in) {
    r.read_keys(t, path, "[[input]]",
                {{"evdev", r.path(in.evdev)},
                 {"grab_all", r.boolean(in.grab_all)},
                 {"grab_toggle", r.string(in.grab_toggle)}});
}

// ---- [display], [looking_glass] ----

void read_display(TomlReader& r, const toml::table& t, const std::string& path, Display& d) {
    r.read_keys(t, path, "[display]",
                {{"type", r.word(d.type, display_words)},
                 {"listen", r.string(d.listen)},
                 {"port", r.integer(d.port, 1, 65535)},
                 {"websocket", r.integer(d.websocket, 1, 65535)},
                 {"password", r.word(d.password, vnc_password_words)},
                 {"guest_websocket", r.integer(d.guest_websocket, 1, 65535)},
                 {"device", r.string(d.device)}});
}

// "auto" (the default) or a size. Any other value turns "auto" off, even a bad one.
Handler looking_glass_size(TomlReader& r, LookingGlass& lg) {
    return [&r, &lg](const toml::node& n, const std::string& key) {
        if (n.as_string() && n.as_string()->get() == "auto") {
            lg.size_auto = true;
            return;
        }
        lg.size_auto = false;
        if (auto bytes = r.read_size(n, key)) lg.size = *bytes;
    };
}

// "WIDTHxHEIGHT", each side 1 to 16384 written as plain decimal digits.
std::optional<std::pair<unsigned, unsigned>> parse_resolution(const std::string& text) {
    const auto x = text.find('x');
    if (x == std::string::npos) return std::nullopt;
    const auto side = [](std::string_view digits) -> std::optional<unsigned> {
        if (digits.empty() || digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string_view::npos)
            return std::nullopt;
        const auto value = static_cast<unsigned>(std::stoul(std::string(digits)));
        if (value < 1 || value > 16384) return std::nullopt;
        return value;
    };
    const auto w = side(std::string_view(text).substr(0, x));
    const auto h = side(std::string_view(text).substr(x + 1));
    if (!w || !h) return std::nullopt;
    return std::pair{*w, *h};
}

Handler looking_glass_resolution(TomlReader& r, LookingGlass& lg) {
    return [&r, &lg](const toml::node& n, const std::string& key) {
        auto s = r.read_string(n, key);
        if (!s) return;
        if (auto wh = parse_resolution(*s)) {
            std::tie(lg.width, lg.height) = *wh;
            return;
        }
        r.error(key, pos_of(n.source()),
                "[looking_glass] resolution " + util::quoted(*s) +
                    " is not WIDTHxHEIGHT with each side from 1 to 16384; write e.g. \"2560x1440\"");
    };
}

// Writing the table turns Looking Glass on; enabled = false turns it off again.
void read_looking_glass(TomlReader& r, const toml::table& t, const std::string& path,
                        LookingGlass& lg) {
    lg.enabled = true;
    r.read_keys(t, path, "[looking_glass]",
                {{"enabled", r.boolean(lg.enabled)},
                 {"size", looking_glass_size(r, lg)},
                 {"resolution", looking_glass_resolution(r, lg)},
                 {"hdr", r.boolean(lg.hdr)},
                 {"backend", r.word(lg.backend, lg_words)},
                 {"path", r.path(lg.path)},
                 {"owner", r.string(lg.owner)}});
}

// ---- [audio], [tpm], [hooks], [qemu] ----

void read_audio(TomlReader& r, const toml::table& t, const std::string& path, Audio& a) {
    r.read_keys(t, path, "[audio]",
                {{"backend", r.word(a.backend, audio_words)}, {"server", r.string(a.server)}});
}

void read_tpm(TomlReader& r, const toml::table& t, const std::string& path, Tpm& tpm) {
    r.read_keys(t, path, "[tpm]", {{"enabled", r.boolean(tpm.enabled)}});
}

void read_hooks(TomlReader& r, const toml::table& t, const std::string& path, Hooks& h) {
    r.read_keys(t, path, "[hooks]",
                {{"prepare", r.strings(h.prepare)},
                 {"prestart", r.strings(h.prestart)},
                 {"poststop", r.strings(h.poststop)},
                 {"timeout", r.integer(h.timeout_seconds, 1, 3600)}});
}

void read_release(TomlReader& r, const toml::table& t, const std::string& path, Release& rel) {
    r.read_keys(t, path, "[release]",
                {{"display_manager", r.boolean(rel.display_manager)},
                 {"console", r.boolean(rel.console)},
                 {"modules", r.strings(rel.modules)},
                 {"services", r.strings(rel.services)}});
}

void read_security(TomlReader& r, const toml::table& t, const std::string& path, Security& s) {
    r.read_keys(t, path, "[security]", {{"user", r.string(s.user)}, {"sandbox", r.boolean(s.sandbox)}});
}

void read_qemu(TomlReader& r, const toml::table& t, const std::string& path, Qemu& q) {
    r.read_keys(t, path, "[qemu]", {{"binary", r.string(q.binary)}, {"extra", r.strings(q.extra)}});
}

// ---- the document ----

void read_document(TomlReader& r, const toml::table& doc, Profile& p) {
    r.read_keys(doc, "", "",
                {{"name", r.string(p.name)},
                 {"machine", r.table(p.machine, read_machine)},
                 {"cpu", r.table(p.cpu, read_cpu)},
                 {"firmware", r.table(p.firmware, read_firmware)},
                 {"pci", r.tables(p.pci, read_pci)},
                 {"disk", r.tables(p.disks, read_disk)},
                 {"network", r.table(p.network, read_network)},
                 {"usb", r.tables(p.usb, read_usb)},
                 {"input", r.tables(p.inputs, read_input)},
                 {"display", r.table(p.display, read_display)},
                 {"looking_glass", r.table(p.looking_glass, read_looking_glass)},
                 {"audio", r.table(p.audio, read_audio)},
                 {"tpm", r.table(p.tpm, read_tpm)},
                 {"hooks", r.table(p.hooks, read_hooks)},
                 {"release", r.table(p.release, read_release)},
                 {"security", r.table(p.security, read_security)},
                 {"qemu", r.table(p.qemu, read_qemu)}});
}

// Hooks and a QEMU binary with a slash are paths relative to the profile; a bare word is
// looked up in PATH when the VM starts, as a shell would.
void resolve_programs(const TomlReader& r, Profile& p) {
    auto resolve_program = [&](std::string& word) {
        if (word.find('/') != std::string::npos && word.front() != '/')
            word = r.resolve(word).string();
    };
    if (!p.hooks.prepare.empty()) resolve_program(p.hooks.prepare.front());
    if (!p.hooks.prestart.empty()) resolve_program(p.hooks.prestart.front());
    if (!p.hooks.poststop.empty()) resolve_program(p.hooks.poststop.front());
    if (!p.qemu.binary.empty()) resolve_program(p.qemu.binary);
}

// Module names as the kernel shows them (in /sys/module, '-' reads as '_') and units with their
// type ("nvidia-persistenced" is "nvidia-persistenced.service"), so that later steps compare
// like with like. The validator checks the results.
void normalize_release(Release& rel) {
    for (auto& m : rel.modules) std::replace(m.begin(), m.end(), '-', '_');
    for (auto& s : rel.services)
        if (!s.empty() && s.find('.') == std::string::npos) s += ".service";
}

// The document, or nullopt after a diagnostic for the first syntax error.
std::optional<toml::table> parse(std::string_view text, const std::string& label,
                                 Diagnostics& diagnostics) {
    try {
        return toml::parse(text, std::string_view(label));
    } catch (const toml::parse_error& e) {
        diagnostics.push_back({Severity::error, label, pos_of(e.source()), "",
                               "TOML syntax: " + std::string(e.description())});
        return std::nullopt;
    }
}

}  // namespace

LoadResult load_text(std::string_view text, const std::filesystem::path& file) {
    LoadResult result;
    Profile& p = result.profile;
    p.file = file;
    p.name = file.stem().string();
    const std::string label = file.string();
    if (!check_profile_text(text, label, result.diagnostics)) return result;
    // The parse, the reading and the document's destruction all recurse as deep as the file
    // nests: they run on a stack of known size (profile/source.hpp).
    util::run_on_stack(kParserStackBytes, [&] {
        const auto doc = parse(text, label, result.diagnostics);
        if (!doc) return;
        TomlReader reader(p, result.diagnostics, label, std::filesystem::absolute(file).parent_path());
        read_document(reader, *doc, p);
        resolve_programs(reader, p);
        normalize_release(p.release);
    });
    return result;
}

LoadResult load_file(const std::filesystem::path& file) {
    LoadResult result;
    auto text = read_profile_file(file, result.diagnostics);
    if (!text) {
        result.profile.file = file;
        result.profile.name = file.stem().string();
        return result;
    }
    return load_text(*text, file);
}

}  // namespace kvmgpu::profile
