#include "host/console.hpp"

#include <fcntl.h>
#include <linux/fb.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <string>
#include <system_error>
#include <vector>

#include "host/sysfs.hpp"
#include "util/fd.hpp"

namespace kvmgpu::host {

namespace fs = std::filesystem;

bool is_console_bind(const fs::path& path) {
    return path.parent_path().parent_path() == "/sys/class/vtconsole" && path.filename() == "bind" &&
           path.parent_path().filename().string().rfind("vtcon", 0) == 0;
}

bool take_over_console(const fs::path& root) {
    std::vector<fs::path> fbs;
    std::error_code ec;
    for (fs::directory_iterator it(under(root, "/dev"), ec), end; !ec && it != end; it.increment(ec)) {
        const auto name = it->path().filename().string();
        if (name.size() > 2 && name.rfind("fb", 0) == 0 &&
            std::all_of(name.begin() + 2, name.end(), [](char c) { return c >= '0' && c <= '9'; }))
            fbs.push_back(it->path());
    }
    std::sort(fbs.begin(), fbs.end());
    for (const auto& node : fbs) {
        util::Fd fd(::open(node.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
        if (!fd) continue;
        fb_con2fbmap map{};
        map.console = 1;
        map.framebuffer = static_cast<__u32>(std::stoul(node.filename().string().substr(2)));
        if (::ioctl(fd.get(), FBIOPUT_CON2FBMAP, &map) == 0) return true;
    }
    return false;
}

}  // namespace kvmgpu::host
