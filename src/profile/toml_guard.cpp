#include "profile/toml_guard.hpp"

namespace kvmgpu::profile {
namespace {

enum class Mode { code, comment, basic, literal, multi_basic, multi_literal };

bool non_ascii(char c) { return static_cast<unsigned char>(c) >= 0x80; }
bool ascii_whitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

const char* const kOutside =
    "a non-ASCII character outside a string or comment; TOML allows them only inside quoted "
    "strings and comments (quote the key or the value)";
const char* const kAfterBackslash =
    "a non-ASCII character right after a backslash in a \"\"\" string (kvmgpu's TOML parser, "
    "toml++ 3.3, mis-reads it); escapes are ASCII: write \\uXXXX, or drop the backslash";
const char* const kAfterLineEnd =
    "a non-ASCII character right after a line-ending backslash in a \"\"\" string (kvmgpu's "
    "TOML parser, toml++ 3.3, mis-reads it); drop the backslash or begin the continued text "
    "with an ASCII character";

// One pass over the text, one mode at a time. `i` always points at the next unread byte.
class Lexer {
public:
    explicit Lexer(std::string_view text) : text_(text) {}

    std::optional<UnsafeText> run() {
        while (i_ < text_.size() && !found_) step();
        return found_;
    }

private:
    std::string_view text_;
    std::size_t i_ = 0;
    Mode mode_ = Mode::code;
    std::optional<UnsafeText> found_;

    char at(std::size_t k) const { return k < text_.size() ? text_[k] : '\0'; }
    bool starts_triple(char quote) const { return at(i_) == quote && at(i_ + 1) == quote && at(i_ + 2) == quote; }
    void report(std::size_t offset, const char* message) { found_ = UnsafeText{offset, message}; }

    void step() {
        switch (mode_) {
            case Mode::code: return code();
            case Mode::comment: return until_newline();
            case Mode::basic: return basic();
            case Mode::literal: return literal();
            case Mode::multi_basic: return multi_basic();
            case Mode::multi_literal: return multi_literal();
        }
    }

    void code() {
        const char c = text_[i_];
        if (non_ascii(c)) return report(i_, kOutside);
        if (c == '#') mode_ = Mode::comment;
        else if (starts_triple('"')) { mode_ = Mode::multi_basic; i_ += 2; }
        else if (starts_triple('\'')) { mode_ = Mode::multi_literal; i_ += 2; }
        else if (c == '"') mode_ = Mode::basic;
        else if (c == '\'') mode_ = Mode::literal;
        ++i_;
    }

    void until_newline() {
        if (text_[i_++] == '\n') mode_ = Mode::code;
    }

    // A single-line string ends at its quote, or (invalid, left to the parser) at the line's end.
    void basic() {
        const char c = text_[i_++];
        if (c == '\\' && at(i_) != '\n') ++i_;
        else if (c == '"' || c == '\n') mode_ = Mode::code;
    }

    void literal() {
        const char c = text_[i_++];
        if (c == '\'' || c == '\n') mode_ = Mode::code;
    }

    // A run of three to five quotes closes a multi-line string (up to two belong to its text).
    void close_multi(char quote) {
        std::size_t run = 0;
        while (at(i_) == quote && run < 5) { ++i_; ++run; }
        mode_ = Mode::code;
    }

    void multi_basic() {
        if (starts_triple('"')) return close_multi('"');
        if (text_[i_] != '\\') { ++i_; return; }
        const std::size_t after = i_ + 1;
        if (after >= text_.size()) { ++i_; return; }
        if (non_ascii(text_[after])) return report(after, kAfterBackslash);
        if (!ascii_whitespace(text_[after])) { i_ = after + 1; return; }
        // A line-ending backslash: the parser skips the whitespace after it, testing each
        // character, up to the first one that is not whitespace.
        std::size_t k = after;
        while (k < text_.size() && ascii_whitespace(text_[k])) ++k;
        if (k < text_.size() && non_ascii(text_[k])) return report(k, kAfterLineEnd);
        i_ = k;
    }

    void multi_literal() {
        if (starts_triple('\'')) return close_multi('\'');
        ++i_;
    }
};

}  // namespace

std::optional<UnsafeText> find_non_ascii_toml_hazard(std::string_view text) { return Lexer(text).run(); }

}  // namespace kvmgpu::profile
