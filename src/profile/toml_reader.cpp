#include "profile/toml_reader.hpp"

#include <algorithm>

#include "util/text.hpp"

namespace kvmgpu::profile {
namespace {

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

std::string join(const std::vector<std::string_view>& words) {
    std::string out;
    for (auto w : words) {
        if (!out.empty()) out += ", ";
        out += w;
    }
    return out;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& names) {
    const auto match = util::closest_match(word, names);
    return match ? "; did you mean " + util::quoted(*match) + "?" : "";
}

std::string unknown_key_message(const std::string& key, std::string_view shown,
                                 const std::vector<std::string_view>& names) {
    std::string msg = shown.empty() ? "unknown table or key " + util::quoted(key)
                                    : std::string(shown) + " has no key " + util::quoted(key);
    const std::string suggestion = did_you_mean(key, names);
    return msg + (suggestion.empty() ? "; known keys: " + join(names) : suggestion);
}

std::string element_path(const std::string& key, std::size_t i) {
    return key + "[" + std::to_string(i) + "]";
}

}  // namespace

SourcePos pos_of(const toml::source_region& region) {
    return {region.begin.line, region.begin.column};
}

TomlReader::TomlReader(Profile& profile, Diagnostics& diagnostics, std::string file_label,
                       std::filesystem::path base_dir)
    : profile_(profile), diagnostics_(diagnostics), label_(std::move(file_label)),
      base_(std::move(base_dir)) {}

void TomlReader::error(const std::string& key_path, SourcePos pos, std::string message) {
    diagnostics_.push_back({Severity::error, label_, pos, key_path, std::move(message)});
}

void TomlReader::read_keys(const toml::table& table, const std::string& path,
                           std::string_view shown, const std::vector<Field>& fields) {
    std::vector<std::string_view> names;
    for (const auto& f : fields) names.push_back(f.name);
    for (auto&& [k, v] : table) {
        const std::string key(k.str());
        const std::string key_path = path.empty() ? key : path + "." + key;
        profile_.positions[key_path] = pos_of(v.source());
        const auto field = std::find_if(fields.begin(), fields.end(),
                                        [&](const Field& f) { return f.name == key; });
        if (field == fields.end())
            error(key_path, pos_of(k.source()), unknown_key_message(key, shown, names));
        else
            field->handle(v, key_path);
    }
}

bool TomlReader::written(const std::string& key_path) const {
    return profile_.positions.count(key_path) > 0;
}

SourcePos TomlReader::where(const std::string& key_path) const {
    return profile_.where(key_path);
}

std::filesystem::path TomlReader::resolve(const std::string& text) const {
    std::filesystem::path path(text);
    if (path.is_absolute()) return path.lexically_normal();
    return (base_ / path).lexically_normal();
}

// ---- value readers ----

std::optional<std::string> TomlReader::read_string(const toml::node& n, const std::string& key) {
    const auto* s = n.as_string();
    if (!s) {
        wrong_type(n, key, "a string");
        return std::nullopt;
    }
    const std::string& value = s->get();
    if (auto c = util::find_control_char(value)) {
        error(key, pos_of(n.source()),
              shown_key(key) + " " + util::quoted(value) + " contains a control character (" +
                  util::quoted(std::string(1, *c)) + "); remove it");
        return std::nullopt;
    }
    return value;
}

std::optional<bool> TomlReader::read_bool(const toml::node& n, const std::string& key) {
    if (const auto* b = n.as_boolean()) return b->get();
    wrong_type(n, key, "true or false");
    return std::nullopt;
}

std::optional<std::int64_t> TomlReader::read_integer(const toml::node& n, const std::string& key,
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

std::optional<std::vector<std::string>> TomlReader::read_strings(const toml::node& n,
                                                                 const std::string& key) {
    const auto* arr = n.as_array();
    if (!arr) {
        wrong_type(n, key, "an array of strings");
        return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        if (auto s = read_string((*arr)[i], element_path(key, i))) out.push_back(*s);
        else ok = false;
    }
    if (!ok) return std::nullopt;
    return out;
}

std::optional<std::vector<unsigned>> TomlReader::read_integers(const toml::node& n,
                                                               const std::string& key,
                                                               std::int64_t max) {
    const auto* arr = n.as_array();
    if (!arr) {
        wrong_type(n, key, "an array of integers");
        return std::nullopt;
    }
    std::vector<unsigned> out;
    bool ok = true;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        auto v = read_integer((*arr)[i], element_path(key, i), 0, max);
        if (v) out.push_back(static_cast<unsigned>(*v));
        else ok = false;
    }
    if (!ok) return std::nullopt;
    return out;
}

std::optional<std::uint64_t> TomlReader::read_size(const toml::node& n, const std::string& key) {
    auto v = read_string(n, key);
    if (!v) return std::nullopt;
    const auto bytes = util::parse_size(*v);
    if (bytes && *bytes > 0) return bytes;
    const auto digits = v->find_first_not_of("0123456789");
    // Written like a size ("99999999999999999999G") but beyond 64 bits.
    const bool overflow = !bytes && !v->empty() && digits != 0 && util::parse_size("1" + v->substr(std::min(digits, v->size())));
    error(key, pos_of(n.source()),
          shown_key(key) + " " + util::quoted(*v) +
              (bytes ? " is zero; give a size such as \"16G\""
               : overflow ? " is too large to be a size; give a size such as \"16G\""
                          : " is not a size; write a number with K, M, G or T, e.g. \"16G\""));
    return std::nullopt;
}

// ---- field makers ----

TomlReader::Handler TomlReader::string(std::string& out) {
    return [this, &out](const toml::node& n, const std::string& key) {
        if (auto v = read_string(n, key)) out = *v;
    };
}

TomlReader::Handler TomlReader::string(std::optional<std::string>& out) {
    return [this, &out](const toml::node& n, const std::string& key) {
        if (auto v = read_string(n, key)) out = *v;
    };
}

TomlReader::Handler TomlReader::boolean(bool& out) {
    return [this, &out](const toml::node& n, const std::string& key) {
        if (auto v = read_bool(n, key)) out = *v;
    };
}

TomlReader::Handler TomlReader::boolean(std::optional<bool>& out) {
    return [this, &out](const toml::node& n, const std::string& key) {
        if (auto v = read_bool(n, key)) out = *v;
    };
}

TomlReader::Handler TomlReader::integer(std::optional<unsigned>& out, std::int64_t min,
                                        std::int64_t max) {
    return [this, &out, min, max](const toml::node& n, const std::string& key) {
        if (auto v = read_integer(n, key, min, max)) out = static_cast<unsigned>(*v);
    };
}

TomlReader::Handler TomlReader::size(std::uint64_t& out) {
    return [this, &out](const toml::node& n, const std::string& key) {
        if (auto v = read_size(n, key)) out = *v;
    };
}

TomlReader::Handler TomlReader::path(std::filesystem::path& out) {
    return [this, &out](const toml::node& n, const std::string& key) {
        auto v = read_string(n, key);
        if (!v) return;
        if (v->empty()) {
            error(key, pos_of(n.source()), shown_key(key) + " is empty; give a file path");
            return;
        }
        out = resolve(*v);
    };
}

TomlReader::Handler TomlReader::strings(std::vector<std::string>& out) {
    return [this, &out](const toml::node& n, const std::string& key) {
        if (auto v = read_strings(n, key)) out = *v;
    };
}

TomlReader::Handler TomlReader::integers(std::vector<unsigned>& out, std::int64_t max) {
    return [this, &out, max](const toml::node& n, const std::string& key) {
        if (auto v = read_integers(n, key, max)) out = *v;
    };
}

// ---- naming keys in messages ----

std::string TomlReader::shown_key(const std::string& key_path) {
    const auto dot = key_path.find('.');
    if (dot == std::string::npos) return key_path;
    return shown_table(key_path.substr(0, dot)) + " " + key_path.substr(dot + 1);
}

std::string TomlReader::shown_table(const std::string& table_path) {
    const auto bracket = table_path.find('[');
    if (bracket == std::string::npos) return "[" + table_path + "]";
    const auto index = std::stoul(table_path.substr(bracket + 1));
    return "[[" + table_path.substr(0, bracket) + "]] #" + std::to_string(index + 1);
}

// ---- problems and table shapes ----

void TomlReader::wrong_type(const toml::node& n, const std::string& key,
                            std::string_view expected) {
    error(key, pos_of(n.source()),
          shown_key(key) + " must be " + std::string(expected) + ", not " + type_name(n.type()));
}

void TomlReader::unknown_word(const toml::node& n, const std::string& key,
                              const std::string& value,
                              const std::vector<std::string_view>& words) {
    error(key, pos_of(n.source()),
          shown_key(key) + " " + util::quoted(value) + " is not one of " + join(words) +
              did_you_mean(value, words));
}

const toml::table* TomlReader::as_table(const toml::node& n, const std::string& key) {
    if (const auto* t = n.as_table()) return t;
    error(key, pos_of(n.source()),
          util::quoted(key) + " must be a table: write [" + key + "] on a line of its own");
    return nullptr;
}

void TomlReader::for_each_table(
    const toml::node& n, const std::string& key,
    const std::function<void(const toml::table&, const std::string&)>& each) {
    const auto* arr = n.as_array();
    if (!arr || !arr->is_array_of_tables()) {
        error(key, pos_of(n.source()),
              util::quoted(key) + " must be an array of tables: write [[" + key +
                  "]] before each entry");
        return;
    }
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const std::string path = element_path(key, i);
        profile_.positions[path] = pos_of((*arr)[i].source());
        each(*(*arr)[i].as_table(), path);
    }
}

}  // namespace kvmgpu::profile
