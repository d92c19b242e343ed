#include "host/boot_config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "host/sysfs.hpp"
#include "util/fd.hpp"
#include "util/text.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMarker = "# kvmgpu-managed: ";

std::string hex(std::uint64_t value, int digits) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%0*llx", digits, static_cast<unsigned long long>(value));
    return buf;
}

[[noreturn]] void throw_errno(int error, const std::string& what, const fs::path& path) {
    throw std::system_error(error, std::generic_category(), what + " " + util::quoted(path.string()));
}

// The marker line's fields: "vm=NAME fnv1a64=HASH". Nullopt when malformed.
struct Marker {
    std::string vm;
    std::uint64_t hash = 0;
};

std::optional<Marker> parse_marker(std::string_view line) {
    line.remove_prefix(kMarker.size());
    std::istringstream in{std::string(line)};
    std::string vm_word, hash_word, extra;
    if (!(in >> vm_word >> hash_word) || (in >> extra)) return std::nullopt;
    if (vm_word.rfind("vm=", 0) != 0 || vm_word.size() == 3 || hash_word.rfind("fnv1a64=", 0) != 0)
        return std::nullopt;
    const auto digits = hash_word.substr(8);
    if (digits.size() != 16 || digits.find_first_not_of("0123456789abcdef") != std::string::npos) return std::nullopt;
    return Marker{vm_word.substr(3), std::stoull(digits, nullptr, 16)};
}

std::string read_fd(int fd, const fs::path& file) {
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno(errno, "cannot read", file);
        if (n == 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

void sync_dir(const fs::path& dir) {
    util::Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd && ::fsync(fd.get()) != 0 && errno != EINVAL) throw_errno(errno, "cannot fsync the directory", dir);
}

std::string state_words(const ManagedFile& f, const std::optional<std::string>& vm) {
    switch (f.state) {
        case ManagedState::symlink: return "is a symbolic link";
        case ManagedState::not_regular: return "is not a regular file";
        case ManagedState::foreign: return "was not written by kvmgpu (its first line is not kvmgpu's marker)";
        case ManagedState::edited: return "was edited since kvmgpu wrote it (its content no longer matches the hash in its first line)";
        case ManagedState::intact:
            return "was written by kvmgpu for the VM " + util::quoted(f.vm) + ", not " + util::quoted(vm.value_or(""));
        case ManagedState::absent: break;
    }
    return "is absent";
}

}  // namespace

std::vector<std::string> VfioModprobeConf::ids() const {
    std::vector<std::string> out;
    for (const auto& d : devices) {
        auto id = pci_id(d.vendor, d.device);
        if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(std::move(id));
    }
    return out;
}

std::string pci_id(std::uint16_t vendor, std::uint16_t device) { return hex(vendor, 4) + ":" + hex(device, 4); }

std::uint64_t fnv1a64(std::string_view text) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char c : text) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

std::string render_vfio_modprobe_conf(const VfioModprobeConf& conf) {
    std::ostringstream body;
    body << "# Written by `kvmgpu isolate` for the VM \"" << conf.vm << "\": vfio-pci takes these devices at boot,\n"
         << "# by identity, before their host drivers load. `kvmgpu isolate --undo` removes this file; it\n"
         << "# refuses once the file was edited (the first line holds a hash of the rest).\n";
    for (const auto& d : conf.devices)
        body << "#   " << d.address.str() << "  " << pci_id(d.vendor, d.device) << "  driver then: "
             << (d.driver.empty() ? "none" : d.driver) << "\n";
    body << "options vfio-pci ids=";
    const auto ids = conf.ids();
    for (std::size_t i = 0; i < ids.size(); ++i) body << (i ? "," : "") << ids[i];
    body << "\n";
    for (const auto& m : conf.softdeps) body << "softdep " << m << " pre: vfio-pci\n";
    const auto rest = body.str();
    return std::string(kMarker) + "vm=" + conf.vm + " fnv1a64=" + hex(fnv1a64(rest), 16) + "\n" + rest;
}

std::vector<std::string> known_host_drivers(std::uint16_t vendor, std::uint32_t class_code) {
    const auto base = class_code >> 16;
    const auto sub = class_code >> 8;
    if (base == 0x03) {
        switch (vendor) {
            case 0x10de: return {"nouveau", "nvidia"};
            case 0x1002: return {"amdgpu", "radeon"};
            case 0x8086: return {"i915", "xe"};
            default: return {};
        }
    }
    if (sub == 0x0403) return {"snd_hda_intel"};
    if (vendor == 0x10de && sub == 0x0c03) return {"xhci_pci"};        // USB-C of Turing cards
    if (vendor == 0x10de && sub == 0x0c80) return {"i2c_nvidia_gpu"};  // their UCSI controller
    return {};
}

std::string driver_module(const fs::path& root, const std::string& driver) {
    if (auto m = link_basename(under(root, "/sys/bus/pci/drivers") / driver / "module")) return *m;
    std::string name = driver;
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
}

std::optional<std::string> find_program(const fs::path& root, const std::vector<std::string>& names) {
    for (const auto& name : names)
        for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
            const auto host_path = std::string(dir) + "/" + name;
            if (::access(under(root, host_path).c_str(), X_OK) == 0) return host_path;
        }
    return std::nullopt;
}

std::string cpu_vendor(const fs::path& root) {
    std::ifstream in(under(root, "/proc/cpuinfo"));
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("vendor_id", 0) != 0) continue;
        const auto colon = line.find(':');
        if (colon == std::string::npos) return {};
        const auto start = line.find_first_not_of(" \t", colon + 1);
        return start == std::string::npos ? std::string() : line.substr(start);
    }
    return {};
}

ManagedFile inspect_managed_file(const fs::path& file) {
    ManagedFile out;
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0) {
        if (errno == ENOENT) return out;
        throw_errno(errno, "cannot look at", file);
    }
    if (S_ISLNK(st.st_mode)) {
        out.state = ManagedState::symlink;
        return out;
    }
    if (!S_ISREG(st.st_mode)) {
        out.state = ManagedState::not_regular;
        return out;
    }
    util::Fd fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!fd) {
        if (errno == ELOOP) {  // swapped for a link since the lstat
            out.state = ManagedState::symlink;
            return out;
        }
        throw_errno(errno, "cannot open", file);
    }
    out.content = read_fd(fd.get(), file);
    out.state = ManagedState::foreign;
    if (out.content.rfind(kMarker, 0) != 0) return out;
    out.state = ManagedState::edited;
    const auto eol = out.content.find('\n');
    if (eol == std::string::npos) return out;
    const auto marker = parse_marker(std::string_view(out.content).substr(0, eol));
    if (!marker) return out;
    out.vm = marker->vm;
    if (marker->hash == fnv1a64(std::string_view(out.content).substr(eol + 1))) out.state = ManagedState::intact;
    return out;
}

ManagedFile check_managed_file(const fs::path& file, const std::optional<std::string>& vm, std::string_view doing) {
    auto f = inspect_managed_file(file);
    if (f.state == ManagedState::absent || (f.state == ManagedState::intact && (!vm || f.vm == *vm))) return f;
    const auto path = util::quoted(file.string());
    std::string fix;
    switch (f.state) {
        case ManagedState::edited:
            fix = "look at it, and remove it yourself if it should go (`rm " + file.string() +
                  "`); kvmgpu never removes or overwrites a file someone changed";
            break;
        case ManagedState::intact:
            fix = "undo it first (`kvmgpu isolate --undo`), or list every card to isolate in one profile: "
                  "vfio-pci takes only one ids= list";
            break;
        default:
            fix = "kvmgpu writes only its own file there; move that one away if kvmgpu should write it";
            break;
    }
    throw ManagedFileRefused("not " + std::string(doing) + " " + path + ": it " + state_words(f, vm) + "; " + fix,
                             f.state == ManagedState::edited ? "file-edited" : "foreign-file");
}

WriteOutcome write_managed_file(const fs::path& file, const std::string& content, const std::string& vm) {
    const auto now = check_managed_file(file, vm, "writing");
    if (now.state == ManagedState::intact && now.content == content) return WriteOutcome::unchanged;
    const fs::path dir = file.parent_path();
    std::string temp = (dir / ("." + file.filename().string() + ".XXXXXX")).string();
    // mkostemp creates the name with O_EXCL: a link planted there is never followed.
    util::Fd fd(::mkostemp(temp.data(), O_CLOEXEC));
    if (!fd) throw_errno(errno, "cannot create a temporary file in", dir);
    auto fail = [&](const char* what, const fs::path& path) {
        const int error = errno;
        ::unlink(temp.c_str());
        throw_errno(error, what, path);
    };
    if (::fchmod(fd.get(), 0644) != 0) fail("cannot set the mode of", temp);
    std::size_t done = 0;
    while (done < content.size()) {
        const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("cannot write", temp);
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) fail("cannot fsync", temp);
    fd.reset();
    if (::rename(temp.c_str(), file.c_str()) != 0) fail("cannot rename a temporary file into place at", file);
    sync_dir(dir);
    return WriteOutcome::written;
}

bool remove_managed_file(const fs::path& file, const std::optional<std::string>& vm) {
    if (check_managed_file(file, vm, "removing").state == ManagedState::absent) return false;
    if (::unlink(file.c_str()) != 0) {
        if (errno == ENOENT) return false;
        throw_errno(errno, "cannot remove", file);
    }
    sync_dir(file.parent_path());
    return true;
}

std::vector<std::string> other_vfio_ids_lines(const fs::path& root) {
    std::vector<std::string> out;
    const auto dir = under(root, "/etc/modprobe.d");
    const auto ours = fs::path(kVfioModprobeConf).filename();
    std::error_code ec;
    std::set<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().extension() == ".conf" && e.path().filename() != ours && e.is_regular_file(ec))
            files.insert(e.path());
    for (const auto& file : files) {
        std::ifstream in(file);
        std::string line;
        while (std::getline(in, line)) {
            std::istringstream words(line);
            std::string keyword, module, option;
            if (!(words >> keyword >> module) || keyword != "options" || (module != "vfio-pci" && module != "vfio_pci"))
                continue;
            while (words >> option)
                if (option.rfind("ids=", 0) == 0) {
                    out.push_back("/etc/modprobe.d/" + file.filename().string() + ": " + line);
                    break;
                }
        }
    }
    return out;
}

}  // namespace kvmgpu::host
