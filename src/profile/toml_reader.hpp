#pragma once
// Private to the loader: include this only from src/profile/loader.cpp and toml_reader.cpp.
// It is the one header in which toml++ types appear; loader.hpp keeps them out of every other
// layer.
//
// TomlReader turns toml++ nodes into Profile fields. Every problem becomes a diagnostic and reading
// goes on after it, so that one run reports them all. A table is read by listing its known keys,
// each with a Handler made by one of the field makers below:
//
//     r.read_keys(table, "machine", "[machine]",
//                 {{"type", r.string(m.type)}, {"memory", r.size(m.memory)}});
//
// A key path names where a value sits: "name", "cpu.pin", "cpu.pin[1]", "pci[0]",
// "pci[0].address". Diagnostics carry it and Profile::positions is keyed by it.
#include <toml++/toml.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "profile/diagnostic.hpp"
#include "profile/profile.hpp"

namespace kvmgpu::profile {

// The spelling of each value of an enum in a profile, in the order error messages list them.
template <typename E, std::size_t N>
using Words = std::array<std::pair<std::string_view, E>, N>;

SourcePos pos_of(const toml::source_region& region);

class TomlReader {
public:
    // Reads one value: gets the value node and its key path.
    using Handler = std::function<void(const toml::node&, const std::string&)>;
    struct Field {
        std::string_view name;
        Handler handle;
    };
    // Reads one table (path "cpu", or "pci[0]" for an entry of an array of tables) into `out`.
    template <typename T>
    using TableReader = void (*)(TomlReader&, const toml::table&, const std::string& path, T& out);

    // Relative paths in the profile resolve against `base_dir`, the profile file's directory.
    TomlReader(Profile& profile, Diagnostics& diagnostics, std::string file_label,
           std::filesystem::path base_dir);

    void error(const std::string& key_path, SourcePos pos, std::string message);

    // Applies `fields` to every key of `table` (at `path`, "" for the document) and records
    // where each key was written in Profile::positions, known or not. An unknown key is an
    // error naming `shown` ("[cpu]"; "" for the document) with a did-you-mean suggestion, or
    // the list of known keys when no name is close.
    void read_keys(const toml::table& table, const std::string& path, std::string_view shown,
                   const std::vector<Field>& fields);

    // Whether the file wrote `key_path`, whatever its value: only read_keys records positions.
    bool written(const std::string& key_path) const;
    SourcePos where(const std::string& key_path) const;
    std::filesystem::path resolve(const std::string& text) const;

    // ---- value readers: each reports a problem under `key` and returns nullopt ----

    // A string without control characters.
    std::optional<std::string> read_string(const toml::node& n, const std::string& key);
    std::optional<bool> read_bool(const toml::node& n, const std::string& key);
    // An integer in [min, max].
    std::optional<std::int64_t> read_integer(const toml::node& n, const std::string& key,
                                             std::int64_t min, std::int64_t max);
    // Arrays: every element is checked (each bad one is a diagnostic keyed "key[i]"), and the
    // array is read only when all of them are good.
    std::optional<std::vector<std::string>> read_strings(const toml::node& n,
                                                         const std::string& key);
    std::optional<std::vector<unsigned>> read_integers(const toml::node& n, const std::string& key,
                                                       std::int64_t max);
    // "16G", "512M", …: util::parse_size. Zero is refused: every size key needs a size.
    std::optional<std::uint64_t> read_size(const toml::node& n, const std::string& key);

    // ---- field makers: a Handler that stores a good value in `out` and leaves it alone
    // otherwise. `out` must outlive the read_keys call the Handler is given to. ----

    Handler string(std::string& out);
    Handler string(std::optional<std::string>& out);
    Handler boolean(bool& out);
    Handler boolean(std::optional<bool>& out);
    Handler integer(std::optional<unsigned>& out, std::int64_t min, std::int64_t max);
    template <typename T>
    Handler integer(T& out, std::int64_t min, std::int64_t max) {
        return [this, &out, min, max](const toml::node& n, const std::string& key) {
            if (auto v = read_integer(n, key, min, max)) out = static_cast<T>(*v);
        };
    }
    Handler size(std::uint64_t& out);
    // A non-empty file path, resolved against the profile's directory.
    Handler path(std::filesystem::path& out);
    Handler strings(std::vector<std::string>& out);
    Handler integers(std::vector<unsigned>& out, std::int64_t max);
    // A string that must be one of `words`.
    template <typename E, std::size_t N>
    Handler word(E& out, const Words<E, N>& words) {
        return [this, &out, &words](const toml::node& n, const std::string& key) {
            auto v = read_string(n, key);
            if (!v) return;
            std::vector<std::string_view> names;
            for (const auto& [spelling, value] : words) {
                if (spelling == *v) {
                    out = value;
                    return;
                }
                names.push_back(spelling);
            }
            unknown_word(n, key, *v, names);
        };
    }

    // A table such as [cpu]; anything else is an error telling how to write one.
    template <typename T>
    Handler table(T& out, TableReader<T> read) {
        return [this, &out, read](const toml::node& n, const std::string& key) {
            if (const auto* t = as_table(n, key)) read(*this, *t, key, out);
        };
    }
    // An array of tables such as [[pci]]: one entry of `out` per table, read from a default T
    // at path "pci[i]"; anything else is an error telling how to write one.
    template <typename T>
    Handler tables(std::vector<T>& out, TableReader<T> read) {
        return [this, &out, read](const toml::node& n, const std::string& key) {
            for_each_table(n, key, [&](const toml::table& t, const std::string& path) {
                T entry;
                read(*this, t, path, entry);
                out.push_back(std::move(entry));
            });
        };
    }

    // How a key path is named in messages: "name", "[cpu] hv_vendor_id",
    // "[[pci]] #2 address" (entries count from 1).
    static std::string shown_key(const std::string& key_path);
    // How the table part of a key path is named: "[cpu]", "[[pci]] #2".
    static std::string shown_table(const std::string& table_path);

private:
    void wrong_type(const toml::node& n, const std::string& key, std::string_view expected);
    void unknown_word(const toml::node& n, const std::string& key, const std::string& value,
                      const std::vector<std::string_view>& words);
    const toml::table* as_table(const toml::node& n, const std::string& key);
    // Records where each entry starts (Profile::positions["pci[i]"]) and calls `each` with it.
    void for_each_table(const toml::node& n, const std::string& key,
                        const std::function<void(const toml::table&, const std::string&)>& each);

    Profile& profile_;
    Diagnostics& diagnostics_;
    std::string label_;
    std::filesystem::path base_;
};

}  // namespace kvmgpu::profile
