#include "app/child_env.hpp"

#include <unistd.h>

#include <cstdlib>

#include "util/user.hpp"

namespace kvmgpu::app {

std::vector<std::string> child_environment(const std::filesystem::path& home, const std::vector<std::string>& extra) {
    std::vector<std::string> env{std::string("PATH=") + kChildPath, "HOME=" + (home.empty() ? std::string("/") : home.string())};
    if (const char* tz = std::getenv("TZ")) env.push_back(std::string("TZ=") + tz);
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

std::filesystem::path own_home() {
    try {
        if (const auto me = util::find_user(util::user_name(::geteuid()))) return me->home;
    } catch (const std::exception&) {
    }
    return "/";
}

}  // namespace kvmgpu::app
