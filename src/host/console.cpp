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
    for (const auto& name : entry_names(under(root, "/dev")))
        if (numbered(name, "fb")) fbs.push_back(under(root, "/dev") / name);
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
