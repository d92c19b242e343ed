#include "profile/loader.hpp"

#include <toml++/toml.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "util/text.hpp"

namespace kvmgpu::profile {
namespace {

SourcePos pos_of(const toml::source_region& region) {
    return {region.begin.line, region.begin.column};
}

const char* type_name(toml::node_type t) {
    switch (t) {
        case toml::node_type::table: return "a table";
        case toml::node_type::array: return "an array";
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a float";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::date:
        case toml::node_type::time:
        case toml::node_type::date_time: return "a date/time";
        default: return "nothing";
    }
}

// Walks the parsed document into a Profile. Every problem becomes a diagnostic; reading goes
// on after a problem so that one run reports them all.
class Reader {
public:
    Reader(Profile& profile, Diagnostics& diagnostics, std::string file_label,
           std::filesystem::path base_dir)
        : p_(profile), diags_(diagnostics), label_(std::move(file_label)),
          base_(std::move(base_dir)) {}

    void error(const std::string& key, SourcePos pos, std::string message) {
        diags_.push_back({Severity::error, label_, pos, key, std::move(message)});
    }

    // One handler per known key of a table. Handlers get the value node and its key path.
    using Handler = std::function<void(const toml::node&, const std::string&)>;
    struct Field {
        std::string_view name;
        Handler handle;
    };

    // Applies `fields` to every key of `table`; unknown keys are errors with a suggestion.
    void table(const toml::table& tbl, const std::string& path, const std::string& shown,
               const std::vector<Field>& fields) {
        std::vector<std::string_view> names;
        for (const auto& f : fields) names.push_back(f.name);
        for (auto&& [k, v] : tbl) {
            const std::string key(k.str());
            const std::string key_path = path.empty() ? key : path + "." + key;
            p_.positions[key_path] = pos_of(v.source());
            auto it = std::find_if(fields.begin(), fields.end(),
                                   [&](const Field& f) { return f.name == key; });
            if (it == fields.end()) {
                std::string msg = shown.empty() ? "unknown table or key " + util::quoted(key)
                                                : shown + " has no key " + util::quoted(key);
                if (auto s = util::closest_match(key, names))
                    msg += "; did you mean " + util::quoted(*s) + "?";
                else
                    msg += "; known keys: " + join(names);
                error(key_path, pos_of(k.source()), msg);
                continue;
            }
            it->handle(v, key_path);
        }
    }

    static std::string join(const std::vector<std::string_view>& words) {
        std::string out;
        for (auto w : words) {
            if (!out.empty()) out += ", ";
            out += w;
        }
        return out;
    }

    // ---- typed getters: each reports a wrong type and returns nullopt ----

    std::optional<std::string> string(const toml::node& n, const std::string& key) {
        const auto* s = n.as_string();
        if (!s) {
            wrong_type(n, key, "a string");
            return std::nullopt;
        }
        const std::string& value = s->get();
        if (auto c = util::find_control_char(value)) {
            error(key, pos_of(n.source()),
                  shown_key(key) + " " + util::quoted(value) +
                      " contains a control character (" + util::quoted(std::string(1, *c)) +
                      "); remove it");
            return std::nullopt;
        }
        return value;
    }

    std::optional<bool> boolean(const toml::node& n, const std::string& key) {
        if (const auto* b = n.as_boolean()) return b->get();
        wrong_type(n, key, "true or false");
        return std::nullopt;
    }

    std::optional<std::int64_t> integer(const toml::node& n, const std::string& key,
                                        std::int64_t min, std::int64_t max) {
        const auto* i = n.as_integer();
        if (!i) {
            wrong_type(n, key, "an integer");
            return std::nullopt;
        }
        const auto v = i->get();
        if (v < min || v > max) {
            error(key, pos_of(n.source()),
                  shown_key(key) + " is " + std::to_string(v) + "; it must be between " +
                      std::to_string(min) + " and " + std::to_string(max));
            return std::nullopt;
        }
        return v;
    }

    template <typename T>
    void set_uint(const toml::node& n, const std::string& key, T& out, std::int64_t min,
                  std::int64_t max) {
        if (auto v = integer(n, key, min, max)) out = static_cast<T>(*v);
    }

    void set_bool(const toml::node& n, const std::string& key, bool& out) {
        if (auto v = boolean(n, key)) out = *v;
    }

    void set_string(const toml::node& n, const std::string& key, std::string& out) {
        if (auto v = string(n, key)) out = *v;
    }

    // A string that must be one of `words`; returns the index into `words`.
    template <typename E, std::size_t N>
    void set_enum(const toml::node& n, const std::string& key, E& out,
                  const std::array<std::pair<std::string_view, E>, N>& words) {
        auto v = string(n, key);
        if (!v) return;
        for (const auto& [word, value] : words) {
            if (word == *v) {
                out = value;
                return;
            }
        }
        std::vector<std::string_view> names;
        for (const auto& w : words) names.push_back(w.first);
        std::string msg = shown_key(key) + " " + util::quoted(*v) + " is not one of " +
                          join(names);
        if (auto s = util::closest_match(*v, names)) msg += "; did you mean " + util::quoted(*s) + "?";
        error(key, pos_of(n.source()), msg);
    }

    // A file path; relative paths are relative to the profile file's directory.
    void set_path(const toml::node& n, const std::string& key, std::filesystem::path& out) {
        auto v = string(n, key);
        if (!v) return;
        if (v->empty()) {
            error(key, pos_of(n.source()), shown_key(key) + " is empty; give a file path");
            return;
        }
        out = resolve(*v);
    }

    std::filesystem::path resolve(const std::string& text) const {
        std::filesystem::path path(text);
        if (path.is_absolute()) return path.lexically_normal();
        return (base_ / path).lexically_normal();
    }

    void set_size(const toml::node& n, const std::string& key, std::uint64_t& out) {
        auto v = string(n, key);
        if (!v) return;
        if (auto bytes = util::parse_size(*v)) {
            out = *bytes;
            return;
        }
        error(key, pos_of(n.source()),
              shown_key(key) + " " + util::quoted(*v) +
                  " is not a size; write a number with K, M, G or T, e.g. \"16G\"");
    }

    std::optional<std::vector<std::string>> string_array(const toml::node& n,
                                                         const std::string& key) {
        const auto* arr = n.as_array();
        if (!arr) {
            wrong_type(n, key, "an array of strings");
            return std::nullopt;
        }
        std::vector<std::string> out;
        bool ok = true;
        for (std::size_t i = 0; i < arr->size(); ++i) {
            auto s = string((*arr)[i], key + "[" + std::to_string(i) + "]");
            if (s) out.push_back(*s);
            else ok = false;
        }
        if (!ok) return std::nullopt;
        return out;
    }

    std::optional<std::vector<unsigned>> uint_array(const toml::node& n, const std::string& key,
                                                    std::int64_t max) {
        const auto* arr = n.as_array();
        if (!arr) {
            wrong_type(n, key, "an array of integers");
            return std::nullopt;
        }
        std::vector<unsigned> out;
        bool ok = true;
        for (std::size_t i = 0; i < arr->size(); ++i) {
            auto v = integer((*arr)[i], key + "[" + std::to_string(i) + "]", 0, max);
            if (v) out.push_back(static_cast<unsigned>(*v));
            else ok = false;
        }
        if (!ok) return std::nullopt;
        return out;
    }

    // "[cpu] hv_vendor_id", "[[pci]] #2 address", "name": how a key is named in messages.
    static std::string shown_key(const std::string& key_path) {
        const auto dot = key_path.find('.');
        if (dot == std::string::npos) return key_path;
        std::string table = key_path.substr(0, dot);
        std::string rest = key_path.substr(dot + 1);
        const auto bracket = table.find('[');
        if (bracket != std::string::npos) {
            const auto index = std::stoul(table.substr(bracket + 1));
            return "[[" + table.substr(0, bracket) + "]] #" + std::to_string(index + 1) + " " + rest;
        }
        return "[" + table + "] " + rest;
    }

    void wrong_type(const toml::node& n, const std::string& key, std::string_view expected) {
        error(key, pos_of(n.source()),
              shown_key(key) + " must be " + std::string(expected) + ", not " +
                  type_name(n.type()));
    }

    const toml::table* as_table(const toml::node& n, const std::string& key) {
        if (const auto* t = n.as_table()) return t;
        error(key, pos_of(n.source()),
              util::quoted(key) + " must be a table: write [" + key + "] on a line of its own");
        return nullptr;
    }

    // An array of tables such as [[pci]]; calls `each` with (table, "pci[i]").
    void table_array(const toml::node& n, const std::string& key,
                     const std::function<void(const toml::table&, const std::string&)>& each) {
        const auto* arr = n.as_array();
        if (!arr || !arr->is_array_of_tables()) {
            error(key, pos_of(n.source()),
                  util::quoted(key) + " must be an array of tables: write [[" + key +
                      "]] before each entry");
            return;
        }
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const std::string path = key + "[" + std::to_string(i) + "]";
            p_.positions[path] = pos_of((*arr)[i].source());
            each(*(*arr)[i].as_table(), path);
        }
    }

    Profile& p_;
    Diagnostics& diags_;
    std::string label_;
    std::filesystem::path base_;
};

template <typename E, std::size_t N>
using Words = std::array<std::pair<std::string_view, E>, N>;

constexpr Words<Accel, 2> accel_words{{{"kvm", Accel::kvm}, {"tcg", Accel::tcg}}};
constexpr Words<Hugepages, 3> hugepage_words{
    {{"none", Hugepages::none}, {"2M", Hugepages::size_2m}, {"1G", Hugepages::size_1g}}};
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
constexpr Words<LookingGlassBackend, 2> lg_words{
    {{"shm", LookingGlassBackend::shm}, {"kvmfr", LookingGlassBackend::kvmfr}}};
constexpr Words<AudioBackend, 3> audio_words{{{"none", AudioBackend::none},
                                              {"pipewire", AudioBackend::pipewire},
                                              {"pulseaudio", AudioBackend::pulseaudio}}};
constexpr Words<Rtc, 2> rtc_words{{{"utc", Rtc::utc}, {"localtime", Rtc::localtime}}};

void read_document(const toml::table& doc, Reader& r, Profile& p) {
    using F = Reader::Field;
    std::vector<F> top{
        {"name", [&](const toml::node& n, const std::string& k) { r.set_string(n, k, p.name); }},
        {"machine",
         [&](const toml::node& n, const std::string& k) {
             const auto* t = r.as_table(n, k);
             if (!t) return;
             r.table(*t, k, "[machine]",
                     {{"type", [&](auto& v, auto& kk) { r.set_string(v, kk, p.machine.type); }},
                      {"accel", [&](auto& v, auto& kk) { r.set_enum(v, kk, p.machine.accel, accel_words); }},
                      {"memory", [&](auto& v, auto& kk) { r.set_size(v, kk, p.machine.memory); }},
                      {"hugepages",
                       [&](auto& v, auto& kk) { r.set_enum(v, kk, p.machine.hugepages, hugepage_words); }},
                      {"rtc", [&](auto& v, auto& kk) { r.set_enum(v, kk, p.machine.rtc, rtc_words); }}});
         }},
        {"cpu",
         [&](const toml::node& n, const std::string& k) {
             const auto* t = r.as_table(n, k);
             if (!t) return;
             auto& c = p.cpu;
             r.table(*t, k, "[cpu]",
                     {{"model", [&](auto& v, auto& kk) { r.set_string(v, kk, c.model); }},
                      {"sockets", [&](auto& v, auto& kk) { r.set_uint(v, kk, c.sockets, 1, 16); }},
                      {"cores", [&](auto& v, auto& kk) { r.set_uint(v, kk, c.cores, 1, 255); }},
                      {"threads", [&](auto& v, auto& kk) { r.set_uint(v, kk, c.threads, 1, 8); }},
                      {"hide_kvm", [&](auto& v, auto& kk) { r.set_bool(v, kk, c.hide_kvm); }},
                      {"hv_vendor_id",
                       [&](auto& v, auto& kk) {
                           if (auto s = r.string(v, kk)) c.hv_vendor_id = *s;
                       }},
                      {"hyperv", [&](auto& v, auto& kk) { r.set_bool(v, kk, c.hyperv); }},
                      {"pin",
                       [&](auto& v, auto& kk) {
                           if (auto a = r.uint_array(v, kk, 4095)) c.pin = *a;
                       }},
                      {"emulator_pin", [&](auto& v, auto& kk) {
                           if (auto a = r.uint_array(v, kk, 4095)) c.emulator_pin = *a;
                       }}});
         }},
        {"firmware",
         [&](const toml::node& n, const std::string& k) {
             const auto* t = r.as_table(n, k);
             if (!t) return;
             auto& f = p.firmware;
             r.table(*t, k, "[firmware]",
                     {{"type", [&](auto& v, auto& kk) { r.set_enum(v, kk, f.type, firmware_words); }},
                      {"code", [&](auto& v, auto& kk) { r.set_path(v, kk, f.code); }},
                      {"vars", [&](auto& v, auto& kk) { r.set_path(v, kk, f.vars); }},
                      {"secure_boot", [&](auto& v, auto& kk) { r.set_bool(v, kk, f.secure_boot); }}});
         }},
        {"pci",
         [&](const toml::node& n, const std::string& k) {
             r.table_array(n, k, [&](const toml::table& t, const std::string& path) {
                 PciDevice d;
                 bool has_address = false;
                 r.table(t, path, "[[pci]]",
                         {{"address",
                           [&](auto& v, auto& kk) {
                               auto s = r.string(v, kk);
                               if (!s) return;
                               has_address = true;
                               if (auto a = util::PciAddress::parse(*s)) {
                                   d.address = *a;
                                   return;
                               }
                               r.error(kk, pos_of(v.source()),
                                       Reader::shown_key(kk) + " " + util::quoted(*s) +
                                           " is not a PCI address; write domain:bus:slot.function "
                                           "in hex as `lspci -D` shows it, e.g. \"0000:01:00.0\" "
                                           "(slot at most 1f, function at most 7)");
                               d.address = {0xffff, 0xff, 0x1f, 7};  // never valid in a profile
                           }},
                          {"rom", [&](auto& v, auto& kk) { r.set_path(v, kk, d.rom); }},
                          {"rombar",
                           [&](auto& v, auto& kk) {
                               if (auto b = r.boolean(v, kk)) d.rombar = *b;
                           }},
                          {"vga", [&](auto& v, auto& kk) { r.set_bool(v, kk, d.vga); }}});
                 if (!has_address && !p.positions.count(path + ".address"))
                     r.error(path + ".address", p.where(path),
                             "[[pci]] #" + std::to_string(p.pci.size() + 1) +
                                 " has no address; add address = \"0000:01:00.0\" (see `kvmgpu list`)");
                 p.pci.push_back(d);
             });
         }},
        {"disk",
         [&](const toml::node& n, const std::string& k) {
             r.table_array(n, k, [&](const toml::table& t, const std::string& path) {
                 Disk d;
                 bool format_given = false, bus_given = false, readonly_given = false;
                 r.table(t, path, "[[disk]]",
                         {{"path", [&](auto& v, auto& kk) { r.set_path(v, kk, d.path); }},
                          {"format",
                           [&](auto& v, auto& kk) {
                               format_given = true;
                               r.set_enum(v, kk, d.format, format_words);
                           }},
                          {"bus",
                           [&](auto& v, auto& kk) {
                               bus_given = true;
                               r.set_enum(v, kk, d.bus, bus_words);
                           }},
                          {"media", [&](auto& v, auto& kk) { r.set_enum(v, kk, d.media, media_words); }},
                          {"readonly", [&](auto& v, auto& kk) {
                               readonly_given = true;
                               r.set_bool(v, kk, d.readonly);
                           }}});
                 // Defaults that follow from other keys: a .qcow2 file is qcow2, a CD-ROM sits
                 // on SATA (no virtio CD-ROM exists) and is read-only.
                 if (!format_given && d.path.extension() == ".qcow2") d.format = DiskFormat::qcow2;
                 if (d.media == DiskMedia::cdrom) {
                     if (!bus_given) d.bus = DiskBus::sata;
                     if (!readonly_given) d.readonly = true;
                 }
                 p.disks.push_back(d);
             });
         }},
        {"network",
         [&](const toml::node& n, const std::string& k) {
             const auto* t = r.as_table(n, k);
             if (!t) return;
             auto& net = p.network;
             r.table(*t, k, "[network]",
                     {{"mode", [&](auto& v, auto& kk) { r.set_enum(v, kk, net.mode, network_words); }},
                      {"bridge", [&](auto& v, auto& kk) { r.set_string(v, kk, net.bridge); }},
                      {"tap", [&](auto& v, auto& kk) { r.set_string(v, kk, net.tap); }},
                      {"mac", [&](auto& v, auto& kk) { r.set_string(v, kk, net.mac); }},
                      {"model", [&](auto& v, auto& kk) { r.set_string(v, kk, net.model); }}});
         }},
        {"usb",
         [&](const toml::node& n, const std::string& k) {
             r.table_array(n, k, [&](const toml::table& t, const std::string& path) {
                 Usb u;
                 r.table(t, path, "[[usb]]",
                         {{"vendor", [&](auto& v, auto& kk) { r.set_uint(v, kk, u.vendor, 0, 0xffff); }},
                          {"product",
                           [&](auto& v, auto& kk) { r.set_uint(v, kk, u.product, 0, 0xffff); }}});
                 p.usb.push_back(u);
             });
         }},
        {"input",
         [&](const toml::node& n, const std::string& k) {
             r.table_array(n, k, [&](const toml::table& t, const std::string& path) {
                 Input in;
                 r.table(t, path, "[[input]]",
                         {{"evdev", [&](auto& v, auto& kk) { r.set_path(v, kk, in.evdev); }},
                          {"grab_all", [&](auto& v, auto& kk) { r.set_bool(v, kk, in.grab_all); }},
                          {"grab_toggle",
                           [&](auto& v, auto& kk) { r.set_string(v, kk, in.grab_toggle); }}});
                 p.inputs.push_back(in);
             });
         }},
        {"display",
         [&](const toml::node& n, const std::string& k) {
             const auto* t = r.as_table(n, k);
             if (!t) return;
             auto& d = p.display;
             r.table(*t, k, "[display]",
                     {{"type", [&](auto& v, auto& kk) { r.set_enum(v, kk, d.type, display_words); }},
                      {"listen", [&](auto& v, auto& kk) { r.set_string(v, kk, d.listen); }},
                      {"port", [&](auto& v, auto& kk) { r.set_uint(v, kk, d.port, 1, 65535); }},
                      {"websocket",
                       [&](auto& v, auto& kk) {
                           if (auto i = r.integer(v, kk, 1, 65535)) d.websocket = static_cast<unsigned>(*i);
                       }},
                      {"device", [&](auto& v, auto& kk) { r.set_string(v, kk, d.device); }}});
         }},
        {"looking_glass",
         [&](const toml::node& n, const std::string& k) {
             const auto* t = r.as_table(n, k);
             if (!t) return;
             auto& lg = p.looking_glass;
             lg.enabled = true;
             r.table(*t, k, "[looking_glass]",
                     {{"enabled", [&](auto& v, auto& kk) { r.set_bool(v, kk, lg.enabled); }},
                      {"size",
                       [&](auto& v, auto& kk) {
                           if (v.as_string() && v.as_string()->get() == "auto") {
                               lg.size_auto = true;
                               return;
                           }
                           lg.size_auto = false;
                           r.set_size(v, kk, lg.size);
                       }},
                      {"resolution",
                       [&](auto& v, auto& kk) {
                           auto s = r.string(v, kk);
                           if (!s) return;
                           unsigned w = 0, h = 0;
                           char x = 0, extra = 0;
                           std::istringstream in(*s);
                           if ((in >> w >> x >> h) && x == 'x' && !(in >> extra) && w > 0 && h > 0 &&
                               w <= 16384 && h <= 16384) {
                               lg.width = w;
                               lg.height = h;
                               return;
                           }
                           r.error(kk, pos_of(v.source()),
                                   "[looking_glass] resolution " + util::quoted(*s) +
                                       " is not WIDTHxHEIGHT; write e.g. \"2560x1440\"");
                       }},
                      {"hdr", [&](auto& v, auto& kk) { r.set_bool(v, kk, lg.hdr); }},
                      {"backend",
                       [&](auto& v, auto& kk) { r.set_enum(v, kk, lg.backend, lg_words); }},
                      {"path", [&](auto& v, auto& kk) { r.set_path(v, kk, lg.path); }}});
         }},
        {"audio",
         [&](const toml::node& n, const std::string& k) {
             const auto* t = r.as_table(n, k);
             if (!t) return;
             r.table(*t, k, "[audio]",
                     {{"backend",
                       [&](auto& v, auto& kk) { r.set_enum(v, kk, p.audio.backend, audio_words); }},
                      {"server", [&](auto& v, auto& kk) { r.set_string(v, kk, p.audio.server); }}});
         }},
        {"tpm",
         [&](const toml::node& n, const std::string& k) {
             const auto* t = r.as_table(n, k);
             if (!t) return;
             r.table(*t, k, "[tpm]",
                     {{"enabled", [&](auto& v, auto& kk) { r.set_bool(v, kk, p.tpm.enabled); }}});
         }},
        {"hooks",
         [&](const toml::node& n, const std::string& k) {
             const auto* t = r.as_table(n, k);
             if (!t) return;
             r.table(*t, k, "[hooks]",
                     {{"prestart",
                       [&](auto& v, auto& kk) {
                           if (auto a = r.string_array(v, kk)) p.hooks.prestart = *a;
                       }},
                      {"poststop", [&](auto& v, auto& kk) {
                           if (auto a = r.string_array(v, kk)) p.hooks.poststop = *a;
                       }}});
         }},
        {"qemu",
         [&](const toml::node& n, const std::string& k) {
             const auto* t = r.as_table(n, k);
             if (!t) return;
             r.table(*t, k, "[qemu]",
                     {{"binary", [&](auto& v, auto& kk) { r.set_string(v, kk, p.qemu.binary); }},
                      {"extra", [&](auto& v, auto& kk) {
                           if (auto a = r.string_array(v, kk)) p.qemu.extra = *a;
                       }}});
         }},
    };
    r.table(doc, "", "", top);
}

}  // namespace

LoadResult load_text(std::string_view text, const std::filesystem::path& file) {
    LoadResult result;
    Profile& p = result.profile;
    p.file = file;
    p.name = file.stem().string();
    const std::string label = file.string();
    toml::table doc;
    try {
        doc = toml::parse(text, std::string_view(label));
    } catch (const toml::parse_error& e) {
        result.diagnostics.push_back({Severity::error, label, pos_of(e.source()), "",
                                      "TOML syntax: " + std::string(e.description())});
        return result;
    }
    const auto base = std::filesystem::absolute(file).parent_path();
    Reader reader(p, result.diagnostics, label, base);
    read_document(doc, reader, p);
    // Hooks and the QEMU binary with a slash are paths relative to the profile; a bare word
    // is looked up in PATH when the VM starts, as a shell would.
    auto resolve_program = [&](std::string& word) {
        if (word.find('/') != std::string::npos && word.front() != '/')
            word = reader.resolve(word).string();
    };
    if (!p.hooks.prestart.empty()) resolve_program(p.hooks.prestart.front());
    if (!p.hooks.poststop.empty()) resolve_program(p.hooks.poststop.front());
    if (!p.qemu.binary.empty()) resolve_program(p.qemu.binary);
    return result;
}

LoadResult load_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        LoadResult result;
        result.profile.file = file;
        result.diagnostics.push_back(
            {Severity::error, file.string(), {}, "",
             "cannot read the profile: " + std::string(std::strerror(errno)) +
                 "; check the path (kvmgpu run PROFILE.toml)"});
        return result;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    return load_text(buf.str(), file);
}

}  // namespace kvmgpu::profile
