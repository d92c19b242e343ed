// The reader's limits before TOML (profile/source.hpp): what a profile file may be, how long
// its lines may be, and that it is UTF-8. The CLI cases run the real kvmgpu binary in a child
// with a deadline: before these guards it grew without bound on /dev/zero, waited forever on a
// FIFO and died of a stack overflow on a deep dotted key.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <fstream>

#include "kvmgpu_process.hpp"
#include "profile/loader.hpp"
#include "profile/source.hpp"
#include "profile/toml_guard.hpp"
#include "profile/validate.hpp"
#include "temp_dir.hpp"
#include "util/stack_thread.hpp"

using namespace kvmgpu::profile;
using kvmgpu::testing::TempDir;

namespace {

const std::string minimal = "name = \"vm\"\n[machine]\nmemory = \"1G\"\naccel = \"tcg\"\n";

std::string dump(const Diagnostics& ds) {
    std::string out;
    for (const auto& d : ds) out += d.str() + "\n";
    return out;
}

// A key of `parts` dotted parts: "a.a.a … = 1".
std::string dotted_key(std::size_t parts) {
    std::string key = "a";
    for (std::size_t i = 1; i < parts; ++i) key += ".a";
    return key + " = 1\n";
}

void write(const std::filesystem::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("a profile that is not a regular file is refused at once, saying what it is", "[profile][source]") {
    TempDir dir;
    const auto fifo = dir.path() / "fifo.toml";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const auto socket_path = dir.path() / "socket.toml";
    const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
    REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    struct Case {
        const char* label;  // the section's name: stable, unlike the temporary directory's
        std::filesystem::path path;
        const char* what;
    };
    for (const auto& c : {Case{"directory", dir.path(), "is a directory"}, Case{"FIFO", fifo, "is a FIFO"},
                          Case{"/dev/zero", "/dev/zero", "is a character device"},
                          Case{"/dev/null", "/dev/null", "is a character device"},
                          Case{"socket", socket_path, "is a socket"}}) {
        DYNAMIC_SECTION(c.label) {
            const auto r = load_and_validate(c.path);
            INFO(dump(r.diagnostics));
            REQUIRE(r.diagnostics.size() == 1);  // not also "memory is required"
            CHECK(r.diagnostics[0].message.find(c.what) != std::string::npos);
            CHECK(r.diagnostics[0].message.find("not a regular file") != std::string::npos);
            CHECK(r.diagnostics[0].file == c.path.string());
        }
    }
    ::close(sock);
}

TEST_CASE("a profile file is read up to 1 MiB and refused above it", "[profile][source]") {
    TempDir dir;
    const auto path = dir.path() / "vm.toml";
    std::string text = minimal;
    const std::string comment = "# " + std::string(1021, 'x') + "\n";  // 1024 bytes
    while (text.size() + comment.size() <= kMaxProfileBytes) text += comment;
    text += std::string(kMaxProfileBytes - text.size() - 1, '#') + "\n";
    REQUIRE(text.size() == kMaxProfileBytes);
    write(path, text);
    const auto at_limit = load_and_validate(path);
    INFO(dump(at_limit.diagnostics));
    CHECK(at_limit.diagnostics.empty());
    CHECK(at_limit.profile.machine.memory == std::uint64_t{1} << 30);

    write(path, text + "\n");
    const auto above = load_and_validate(path);
    REQUIRE(above.diagnostics.size() == 1);
    CHECK(above.diagnostics[0].message.find("at most 1048576 bytes") != std::string::npos);
    // load_text has the same limit, for text that did not come from a file.
    const auto as_text = load_text(text + "\n", "/p/vm.toml");
    REQUIRE(as_text.diagnostics.size() == 1);
    CHECK(as_text.diagnostics[0].message.find("at most 1048576 bytes") != std::string::npos);
}

TEST_CASE("a line longer than 4096 bytes is an error at that line", "[profile][source]") {
    const std::string fits = "# " + std::string(kMaxLineBytes - 2, 'x') + "\n";
    REQUIRE(fits.size() == kMaxLineBytes + 1);
    CHECK(load_text(minimal + fits, "/p/vm.toml").diagnostics.empty());
    const auto r = load_text(minimal + "# " + std::string(kMaxLineBytes - 1, 'x') + "\n", "/p/vm.toml");
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.diagnostics[0].str() ==
          "/p/vm.toml:5:1: error: line 5 is longer than 4096 bytes; kvmgpu reads lines of at most that "
          "(split a long array over several lines)");
}

TEST_CASE("a dotted key as deep as a line allows parses on a small caller stack", "[profile][source]") {
    // 2048 parts fill a 4096-byte line. The parser runs on its own stack, so even a caller with
    // 128 KiB of stack (far less than this depth needs in toml++) gets an answer.
    const auto text = dotted_key((kMaxLineBytes - 4) / 2);
    REQUIRE(text.size() <= kMaxLineBytes + 1);
    LoadResult r;
    kvmgpu::util::run_on_stack(128 << 10, [&] { r = load_text(text, "/p/vm.toml"); });
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.diagnostics[0].key == "a");
    CHECK(r.diagnostics[0].message.find("unknown table or key \"a\"") != std::string::npos);
}

TEST_CASE("invalid UTF-8 is an error at its line and column before TOML sees it", "[profile][source]") {
    struct Case {
        const char* what;
        std::string bytes;
        const char* first_byte;
    };
    // clang-format off
    const std::vector<Case> cases = {
        {"a lone continuation byte", "\x80", "0x80"},
        {"a byte never used in UTF-8", "\xff", "0xff"},
        {"an overlong NUL", "\xc0\x80", "0xc0"},
        {"an overlong slash in three bytes", "\xe0\x80\xaf", "0xe0"},
        {"a UTF-16 surrogate", "\xed\xa0\x80", "0xed"},
        {"a code point above U+10FFFF", "\xf4\x90\x80\x80", "0xf4"},
        {"a lead byte above f4", "\xf5\x80\x80\x80", "0xf5"},
        {"a sequence cut short by a quote", "\xe2\x82\"", "0xe2"},
    };
    // clang-format on
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.what) {
            for (const auto& [text, line, column] : {std::tuple{minimal + "[cpu]\nmodel = \"h\xc3\xa9" + c.bytes + "\"\n", 6u, 12u},
                                                    std::tuple{minimal + "# \xe2\x9c\x93 " + c.bytes + "\n", 5u, 5u}}) {
                const auto r = load_text(text, "/p/vm.toml");
                INFO(dump(r.diagnostics));
                REQUIRE(r.diagnostics.size() == 1);
                CHECK(r.diagnostics[0].pos.line == line);
                CHECK(r.diagnostics[0].pos.column == column);
                CHECK(r.diagnostics[0].message == "byte " + std::string(c.first_byte) +
                                                      " is not valid UTF-8 (a profile is UTF-8 text); save the "
                                                      "file as UTF-8");
            }
        }
    }
    SECTION("a sequence cut short by the end of the file") {
        const auto r = load_text(minimal + "# \xf0\x9f\x98", "/p/vm.toml");
        REQUIRE(r.diagnostics.size() == 1);
        CHECK(r.diagnostics[0].pos.line == 5);
        CHECK(r.diagnostics[0].message.rfind("byte 0xf0 is not valid UTF-8", 0) == 0);
    }
    SECTION("valid UTF-8 of every length is read") {
        const auto r = load_text(minimal + "[cpu]\nmodel = \"h\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"\n", "/p/vm.toml");
        REQUIRE(r.diagnostics.empty());
        CHECK(r.profile.cpu.model == "h\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf");
    }
}

// toml++ 3.3 reaches __builtin_unreachable() when it tests U+00A1..U+0499 for whitespace: the
// fuzzer's findings ("\xd0\xb7" alone, "\xc2\xb8" inside a table header) were undefined behaviour,
// a crash under UBSan. Each place the parser tests a character is covered (profile/toml_guard).
TEST_CASE("a non-ASCII character where toml++ tests for whitespace is refused before it parses", "[profile][source]") {
    struct Case {
        const char* what;
        std::string text;
        std::uint32_t line, column;
        const char* says;
    };
    const char* outside = "a non-ASCII character outside a string or comment";
    // clang-format off
    const std::vector<Case> cases = {
        {"alone in the file (fuzz finding)", "\xd0\xb7", 1, 1, outside},
        {"inside a table header (fuzz finding)", "name = \"s\"\n[GG\xc2\xb8GG]\n", 2, 4, outside},
        {"a bare key", "\xc3\xa9 = 1\n", 1, 1, outside},
        {"after a value", "name = \"vm\" \xc2\xa1\n", 1, 13, outside},
        {"after the closing quote of a key", "\"k\"\xd0\xb7 = 1\n", 1, 4, outside},
        {"after a multi-line string", "a = \"\"\"x\"\"\"\xd0\xb7\n", 1, 12, outside},
        {"escaped in a multi-line string", "a = \"\"\"x\\\xd0\xb7\"\"\"\n", 1, 10,
         "right after a backslash in a \"\"\" string"},
        {"after a line-ending backslash", "a = \"\"\"x\\\n   \xd0\xb7\"\"\"\n", 2, 4,
         "right after a line-ending backslash"},
        {"in a bare value through a quote", "a = 1\"\xd0\xb7\"\n", 1, 7, outside},
        {"in a bare value after NULs (fuzz finding)", std::string("name = 5\0>\0\0li\"\xcf\xb8\"\na", 20), 1, 16, outside},
        {"in an array's bare value", "a = [1, true\"\xd0\xb7\"]\n", 1, 14, outside},
        {"after a date and time", "a = 1979-05-27 07:32:00\"\xd0\xb7\"\n", 1, 25, outside},
        {"after a line-ending backslash on its line", "a = \"\"\"x\\  \xd0\xb7\n\"\"\"\n", 1, 12,
         "right after a line-ending backslash"},
    };
    // clang-format on
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.what) {
            const auto r = load_text(c.text, "/p/vm.toml");
            INFO(dump(r.diagnostics));
            REQUIRE(r.diagnostics.size() == 1);
            CHECK(r.diagnostics[0].pos.line == c.line);
            CHECK(r.diagnostics[0].pos.column == c.column);
            CHECK(r.diagnostics[0].message.find(c.says) != std::string::npos);
        }
    }
}

TEST_CASE("non-ASCII text where TOML allows it reaches the parser", "[profile][source]") {
    const std::string text = minimal +
        "# caf\xc3\xa9 \xd0\xb7 comment \"\n"
        "[cpu]\n"
        "model = \"\xd0\xb7\\\"\xc2\xb8\"  # \xc2\xa1\n"
        "[qemu]\n"
        "extra = ['\xd0\xb7\"', '''\xc2\xb8\\\xd0\xb7''', \"\"\"\xd0\xb7\\\n  a\xc2\xb8\"\"\"\"\"]\n";
    const auto r = load_text(text, "/p/vm.toml");
    INFO(dump(r.diagnostics));
    REQUIRE(!has_errors(r.diagnostics));
    CHECK(r.profile.cpu.model == "\xd0\xb7\"\xc2\xb8");
    REQUIRE(r.profile.qemu.extra.size() == 3);
    CHECK(r.profile.qemu.extra[0] == "\xd0\xb7\"");
    CHECK(r.profile.qemu.extra[1] == "\xc2\xb8\\\xd0\xb7");
    CHECK(r.profile.qemu.extra[2] == "\xd0\xb7" "a\xc2\xb8\"\"");
}

TEST_CASE("the TOML lexer lets non-ASCII strings through wherever TOML allows a string", "[profile][source]") {
    for (const char* text : {
             "a=\"\xc3\xa9\"\n",
             "a = {c=\"\xc3\xa9\", d=['\xc3\xa9', \"\xc3\xa9\"], e={f='''\xc3\xa9'''}}\n",
             "[t.\"\xc3\xa9\"]\n[[u.'\xc3\xa9']]\nx = \"\"\"\n\xc3\xa9\"\"\"\n",
             "a = [\n  \"\xc3\xa9\", # \xc3\xa9\n  \"\xc3\xa9\",\n]\nb = 1 # \xc3\xa9\n\"\xc3\xa9\" = 2\n",
             "a.\"\xc3\xa9\".b = 'x'\n",
         }) {
        INFO(text);
        CHECK_FALSE(find_non_ascii_toml_hazard(text));
    }
}

TEST_CASE("kvmgpu check refuses hostile profile files quickly and with exit 2", "[profile][source][cli]") {
    TempDir dir;
    const auto fifo = dir.path() / "fifo.toml";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const auto deep = dir.path() / "deep.toml";
    write(deep, minimal + dotted_key(100000));
    const auto deep_header = dir.path() / "deep-header.toml";
    write(deep_header, minimal + "[" + dotted_key(100000).substr(0, 199999) + "]\n");
    const auto bad_utf8 = dir.path() / "utf8.toml";
    write(bad_utf8, minimal + "[cpu]\nmodel = \"\xed\xa0\x80\"\n");
    struct Case {
        std::filesystem::path file;
        const char* message;
    };
    // Section names must not contain the temporary directory, which is new on each pass.
    for (const auto& c : {Case{"/dev/zero", "is a character device, not a regular file"},
                          Case{fifo, "is a FIFO, not a regular file"},
                          Case{dir.path(), "is a directory, not a regular file"},
                          Case{deep, ":5:1: error: line 5 is longer than 4096 bytes"},
                          Case{deep_header, ":5:1: error: line 5 is longer than 4096 bytes"},
                          Case{bad_utf8, ":6:10: error: byte 0xed is not valid UTF-8"}}) {
        DYNAMIC_SECTION(c.message) {
            const auto o = kvmgpu::testing::kvmgpu_run_bounded({"check", "--host-root", dir.path().string(), c.file.string()},
                                                              dir.path(), std::chrono::seconds(20), rlim_t{1} << 30);
            INFO("stderr: " << o.err);
            CHECK(o.status == 2);
            CHECK(o.err.find(c.file.string() + (c.message[0] == ':' ? "" : ": error: the profile ") + c.message) !=
                  std::string::npos);
        }
    }
}

TEST_CASE("run_on_stack gives the function the stack asked for and passes its exception on", "[util][source]") {
    // Recursion that needs about 2 MiB works on a 4 MiB thread whatever the caller's stack.
    const std::function<std::size_t(std::size_t)> deep = [&](std::size_t n) -> std::size_t {
        volatile char frame[1024] = {};
        return n == 0 ? frame[0] : deep(n - 1) + 1 + frame[0];
    };
    std::size_t depth = 0;
    kvmgpu::util::run_on_stack(4 << 20, [&] { depth = deep(2000); });
    CHECK(depth == 2000);
    CHECK_THROWS_WITH(kvmgpu::util::run_on_stack(1 << 20, [] { throw std::runtime_error("from the thread"); }),
                      "from the thread");
}

TEST_CASE("a profile whose size the kernel reports as 0 is still read whole", "[profile][source]") {
    // procfs files say 0 bytes in stat: the read buffer starts at that size and grows.
    struct stat st {};
    REQUIRE(::stat("/proc/self/comm", &st) == 0);
    REQUIRE(st.st_size == 0);
    Diagnostics out;
    const auto text = read_profile_file("/proc/self/comm", out);
    REQUIRE(text);
    CHECK(out.empty());
    CHECK(text->size() > 1);
    CHECK(text->back() == '\n');
}
