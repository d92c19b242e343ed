#include "app/vnc_secret.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include "util/fd.hpp"

namespace kvmgpu::app {
namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

bool well_formed(const std::string& s) {
    return s.size() == kVncPasswordLength &&
           std::all_of(s.begin(), s.end(), [](char c) { return kAlphabet.find(c) != std::string_view::npos; });
}

std::string read_checked(const std::filesystem::path& file, int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw std::system_error(errno, std::generic_category(), "cannot stat \"" + file.string() + "\"");
    if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 07777) != 0600)
        throw std::runtime_error("\"" + file.string() + "\" is not a regular file of this user with mode 0600; remove it "
                                 "and a new VNC password is made on the next run");
    char buf[64];
    const auto n = ::read(fd, buf, sizeof buf);
    if (n < 0) throw std::system_error(errno, std::generic_category(), "cannot read \"" + file.string() + "\"");
    std::string secret(buf, static_cast<std::size_t>(n));
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (!well_formed(secret))
        throw std::runtime_error("\"" + file.string() + "\" does not hold 8 letters and digits; remove it and a new "
                                 "VNC password is made on the next run");
    return secret;
}

util::Fd open_existing(const std::filesystem::path& file) {
    return util::Fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
}

}  // namespace

std::string random_alphanumeric(std::size_t length) {
    std::string out;
    while (out.size() < length) {
        unsigned char bytes[32];
        const auto n = ::getrandom(bytes, sizeof bytes, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "getrandom");
        }
        // 62 * 4 = 248: bytes at or above it are dropped, so every character is equally likely.
        for (ssize_t i = 0; i < n && out.size() < length; ++i)
            if (bytes[i] < 248) out += kAlphabet[bytes[i] % kAlphabet.size()];
    }
    return out;
}

std::string read_vnc_secret(const util::VmLayout& layout) {
    const auto file = layout.vnc_password();
    const auto fd = open_existing(file);
    if (!fd) throw std::system_error(errno, std::generic_category(), "cannot open the VNC password \"" + file.string() + "\"");
    return read_checked(file, fd.get());
}

std::string ensure_vnc_secret(const util::VmLayout& layout) {
    const auto file = layout.vnc_password();
    if (auto fd = open_existing(file)) return read_checked(file, fd.get());
    if (errno != ENOENT) throw std::system_error(errno, std::generic_category(), "cannot open \"" + file.string() + "\"");
    const auto secret = random_alphanumeric(kVncPasswordLength);
    // O_EXCL: never written through a file someone placed since the look above.
    util::Fd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) throw std::system_error(errno, std::generic_category(), "cannot create \"" + file.string() + "\"");
    const std::string line = secret + "\n";
    // 0600 whatever the umask took from it: read_checked() wants exactly that mode next time.
    if (::fchmod(fd.get(), 0600) != 0 || ::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
        ::fsync(fd.get()) != 0) {
        const int err = errno;
        ::unlink(file.c_str());
        throw std::system_error(err, std::generic_category(), "cannot write \"" + file.string() + "\"");
    }
    return secret;
}

}  // namespace kvmgpu::app
