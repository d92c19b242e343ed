#include "host/sysfs.hpp"

#include <sys/stat.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "util/fd.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;

fs::path under(const fs::path& root, const fs::path& path) {
    return path.is_absolute() ? root / path.relative_path() : root / path;
}

namespace {

// open/read rather than an ifstream: a host scan reads hundreds of these small files, and
// the stream's machinery cost more than the reads themselves.
std::optional<std::string> read_small_file(int dir, const char* file) {
    util::Fd fd(::openat(dir, file, O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    std::string text;
    char chunk[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            return std::nullopt;
        }
        text.append(chunk, static_cast<std::size_t>(n));
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\t' ||
                             text.back() == '\r' || text.back() == '\0'))
        text.pop_back();
    return text;
}

// One readlink, not std::filesystem's lstat and readlink.
std::optional<std::string> read_link_basename(int dir, const char* link) {
    char target[PATH_MAX];
    const ssize_t n = ::readlinkat(dir, link, target, sizeof target);
    if (n <= 0 || static_cast<std::size_t>(n) == sizeof target) return std::nullopt;
    std::string_view text(target, static_cast<std::size_t>(n));
    while (text.size() > 1 && text.back() == '/') text.remove_suffix(1);  // a trailing "/"
    if (text == "/") return std::string();
    if (const auto slash = text.rfind('/'); slash != std::string_view::npos) text.remove_prefix(slash + 1);
    return std::string(text);
}

}  // namespace

std::optional<std::string> read_attr(const fs::path& file) { return read_small_file(AT_FDCWD, file.c_str()); }

std::optional<std::string> read_attr_at(int dir, const char* name) { return read_small_file(dir, name); }

std::optional<std::string> link_basename(const fs::path& link) { return read_link_basename(AT_FDCWD, link.c_str()); }

std::optional<std::string> link_basename_at(int dir, const char* name) { return read_link_basename(dir, name); }

std::optional<std::uint64_t> parse_hex(std::string_view text) {
    if (text.starts_with("0x") || text.starts_with("0X")) text.remove_prefix(2);
    if (text.empty() || text.size() > 16) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : text) {
        const auto d = util::hex_digit(c);
        if (!d) return std::nullopt;
        value = value * 16 + *d;
    }
    return value;
}

std::optional<unsigned> parse_dec(std::string_view text) {
    if (text.empty() || text.size() > 9) return std::nullopt;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    return value;
}

std::optional<std::vector<unsigned>> parse_cpu_list(std::string_view text) {
    std::set<unsigned> cpus;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    while (!text.empty()) {
        const auto comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        if (comma != std::string_view::npos && text.empty()) return std::nullopt;  // "0,"
        const auto dash = item.find('-');
        if (dash == std::string_view::npos) {
            auto cpu = parse_dec(item);
            if (!cpu) return std::nullopt;
            cpus.insert(*cpu);
        } else {
            auto first = parse_dec(item.substr(0, dash));
            auto last = parse_dec(item.substr(dash + 1));
            // A range longer than any machine has is malformed input, not a request to allocate.
            if (!first || !last || *first > *last || *last - *first > 65536) return std::nullopt;
            for (unsigned c = *first; c <= *last; ++c) cpus.insert(c);
        }
    }
    return std::vector<unsigned>(cpus.begin(), cpus.end());
}

std::string format_cpu_list(const std::vector<unsigned>& cpus) {
    std::string out;
    for (std::size_t i = 0; i < cpus.size();) {
        std::size_t j = i;
        while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
        if (!out.empty()) out += ',';
        out += std::to_string(cpus[i]);
        if (j > i) out += '-' + std::to_string(cpus[j]);
        i = j + 1;
    }
    return out;
}

std::string errno_text(int error) {
    return std::error_code(error, std::generic_category()).message();
}

RealSysfsWriter::~RealSysfsWriter() {
    helper_.end();
    reap_abandoned();
}

void RealSysfsWriter::rest() { helper_.end(); }

std::size_t RealSysfsWriter::reap_abandoned() {
    std::erase_if(abandoned_, [](const Abandoned& a) {
        int status = 0;
        pid_t r;
        do r = ::waitpid(a.pid, &status, WNOHANG);
        while (r < 0 && errno == EINTR);
        return r != 0;  // reaped, or no longer our child
    });
    return abandoned_.size();
}

bool RealSysfsWriter::has_unfinished_pid(pid_t pid) const {
    return std::any_of(abandoned_.begin(), abandoned_.end(), [&](const Abandoned& a) { return a.pid == pid; });
}

bool RealSysfsWriter::has_unfinished_write(std::string_view subject) {
    reap_abandoned();
    return std::any_of(abandoned_.begin(), abandoned_.end(), [&](const Abandoned& a) {
        return a.file.find(subject) != std::string::npos || a.data.find(subject) != std::string::npos;
    });
}

// The request queued with a running helper: a helper that ended while idle (killed by someone)
// read nothing, so one new helper is tried.
int RealSysfsWriter::send_request(const fs::path& file, std::string_view data) {
    for (int attempt = 0;; ++attempt) {
        if (!helper_.running())
            if (const int error = helper_.start(); error != 0) return error;
        const int error = helper_.request(file.c_str(), data);
        if (error != EPIPE || attempt == 1) return error;
        helper_.end();
    }
}

int RealSysfsWriter::write(const fs::path& file, std::string_view data) {
    using std::chrono::steady_clock;
    using util::WaitResult;
    reap_abandoned();
    const auto deadline = steady_clock::now() + options_.timeout;
    const util::Interrupt* interrupt = options_.interrupt;
    try {
        if (interrupt && util::wait_readable(-1, steady_clock::now(), interrupt) == WaitResult::interrupted)
            return EINTR;
    } catch (const std::system_error& e) {
        return e.code().value();
    }
    if (const int error = send_request(file, data); error != 0) return error;

    // Not waited for beyond a moment: see the class comment. A helper that was only waiting
    // interruptibly dies of the SIGKILL at once, and is then reaped here so that its write is
    // known to be over; one stuck uninterruptibly in the kernel stays in abandoned_.
    auto abandon = [&](int error) {
        const pid_t pid = helper_.abandon();
        abandoned_.push_back({pid, file.string(), std::string(data)});
        const auto settle = steady_clock::now() + std::chrono::milliseconds(100);
        while (reap_abandoned() > 0 && has_unfinished_pid(pid) && steady_clock::now() < settle)
            util::wait_readable(-1, std::min(settle, steady_clock::now() + std::chrono::milliseconds(1)), nullptr);
        return error;
    };
    try {
        const WaitResult r = util::wait_readable(helper_.socket(), deadline, interrupt);
        if (r == WaitResult::ready) return helper_.answer();
        return abandon(r == WaitResult::timed_out ? ETIMEDOUT : EINTR);
    } catch (const std::system_error& e) {
        return abandon(e.code().value());
    }
}

std::vector<std::string> entry_names(const std::filesystem::path& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        names.push_back(it->path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

bool numbered(std::string_view name, std::string_view prefix) {
    if (!name.starts_with(prefix) || name.size() == prefix.size()) return false;
    return std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), name.end(),
                       [](char c) { return c >= '0' && c <= '9'; });
}

int SysfsWriter::make_dir(const std::filesystem::path& dir) { return ::mkdir(dir.c_str(), 0755) == 0 ? 0 : errno; }

int SysfsWriter::remove_dir(const std::filesystem::path& dir) { return ::rmdir(dir.c_str()) == 0 ? 0 : errno; }

}  // namespace kvmgpu::host
