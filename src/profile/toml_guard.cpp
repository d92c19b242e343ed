#include "profile/toml_guard.hpp"

#include <vector>

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

// What the next token of code (outside strings and comments) is, as far as the parser goes.
enum class Expect { key, value, after_value, header };

// One pass over the text, one mode at a time. `i_` always points at the next unread byte.
//
// Outside strings the lexer follows keys and values as toml++ does, because where a quote opens
// a string depends on it: toml++ scans a bare value (a number, a date, `true`) up to a value
// terminator, through any quote, so `a = 1"з"` tests "з" for whitespace. A quote opens a string
// only where a key or a value may begin; elsewhere (invalid TOML) it is code.
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
    Expect expect_ = Expect::key;
    bool in_bare_value_ = false;
    std::vector<char> open_;  // '[' arrays and '{' inline tables, innermost last
    std::optional<UnsafeText> found_;

    char at(std::size_t k) const { return k < text_.size() ? text_[k] : '\0'; }
    bool starts_triple(char quote) const { return at(i_) == quote && at(i_ + 1) == quote && at(i_ + 2) == quote; }
    void report(std::size_t offset, const char* message) { found_ = UnsafeText{offset, message}; }
    char innermost() const { return open_.empty() ? '\0' : open_.back(); }

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

    static bool value_terminator(char c) {
        return ascii_whitespace(c) || c == ']' || c == '}' || c == ',' || c == '#';
    }

    void code() {
        const char c = text_[i_];
        if (non_ascii(c)) return report(i_, kOutside);
        if (in_bare_value_) {
            if (!value_terminator(c)) { ++i_; return; }
            in_bare_value_ = false;
            expect_ = Expect::after_value;
        }
        if ((c == '"' || c == '\'') && expect_ != Expect::after_value) return open_string(c);
        punctuation(c);
        ++i_;
    }

    void open_string(char quote) {
        const bool triple = starts_triple(quote);
        if (quote == '"') mode_ = triple ? Mode::multi_basic : Mode::basic;
        else mode_ = triple ? Mode::multi_literal : Mode::literal;
        i_ += triple ? 3 : 1;
        if (expect_ == Expect::value) expect_ = Expect::after_value;
    }

    void punctuation(char c) {
        switch (c) {
            case '#': mode_ = Mode::comment; return;
            case '\n':
                if (open_.empty()) expect_ = Expect::key;
                return;
            case '=':
                if (expect_ == Expect::key) expect_ = Expect::value;
                return;
            case '[':
                if (expect_ == Expect::value) open_.push_back('[');
                else if (expect_ == Expect::key && open_.empty()) expect_ = Expect::header;
                return;
            case '{':
                if (expect_ == Expect::value) {
                    open_.push_back('{');
                    expect_ = Expect::key;
                }
                return;
            case ']':
            case '}':
                if (innermost() == (c == ']' ? '[' : '{')) open_.pop_back();
                if (c == '}' || expect_ != Expect::header || at(i_ + 1) != ']') expect_ = Expect::after_value;
                return;
            case ',':
                if (innermost() == '[') expect_ = Expect::value;
                else if (innermost() == '{') expect_ = Expect::key;
                return;
            default:
                if (expect_ == Expect::value && !ascii_whitespace(c)) in_bare_value_ = true;
        }
    }

    // The newline that ends a comment or a single-line string is left for code(): it ends a
    // key-value pair.
    void until_newline() {
        if (text_[i_] == '\n') mode_ = Mode::code;
        else ++i_;
    }

    // A single-line string ends at its quote, or (invalid, left to the parser) at the line's end.
    void basic() {
        const char c = text_[i_];
        if (c == '\n') { mode_ = Mode::code; return; }
        ++i_;
        if (c == '\\' && at(i_) != '\n') ++i_;
        else if (c == '"') mode_ = Mode::code;
    }

    void literal() {
        const char c = text_[i_];
        if (c == '\n') { mode_ = Mode::code; return; }
        ++i_;
        if (c == '\'') mode_ = Mode::code;
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
