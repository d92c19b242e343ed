#include "util/user.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "util/text.hpp"

namespace kvmgpu::util {
namespace {

std::size_t buffer_size(int name) {
    const long size = ::sysconf(name);
    return size > 0 ? static_cast<std::size_t>(size) : 16384;
}

std::vector<gid_t> groups_of(const char* name, gid_t primary) {
    int count = 32;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    while (::getgrouplist(name, primary, groups.data(), &count) < 0) groups.resize(static_cast<std::size_t>(count));
    groups.resize(static_cast<std::size_t>(count));
    return groups;
}

}  // namespace

bool SystemUser::in_group(gid_t group) const {
    return group == gid || std::find(groups.begin(), groups.end(), group) != groups.end();
}

Credentials SystemUser::credentials() const { return {uid, gid, groups}; }

std::optional<SystemUser> find_user(const std::string& name) {
    std::vector<char> buffer(buffer_size(_SC_GETPW_R_SIZE_MAX));
    passwd entry{};
    passwd* found = nullptr;
    int error;
    while ((error = ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found)) == ERANGE)
        buffer.resize(buffer.size() * 2);
    // getpwnam_r reports "no such user" as 0 with no result, but some name services as ENOENT.
    if (error == ENOENT || error == ESRCH || (error == 0 && found == nullptr)) return std::nullopt;
    if (error != 0)
        throw std::runtime_error("looking up the user " + util::quoted(name) + " failed: " +
                                 std::error_code(error, std::generic_category()).message());
    SystemUser user{found->pw_name, found->pw_uid, found->pw_gid, found->pw_dir ? found->pw_dir : "/", {}};
    user.groups = groups_of(found->pw_name, found->pw_gid);
    return user;
}

std::optional<gid_t> find_group(const std::string& name) {
    std::vector<char> buffer(buffer_size(_SC_GETGR_R_SIZE_MAX));
    group entry{};
    group* found = nullptr;
    int error;
    while ((error = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found)) == ERANGE)
        buffer.resize(buffer.size() * 2);
    if (error != 0 || found == nullptr) return std::nullopt;
    return found->gr_gid;
}

std::string user_name(uid_t uid) {
    std::vector<char> buffer(buffer_size(_SC_GETPW_R_SIZE_MAX));
    passwd entry{};
    passwd* found = nullptr;
    while (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == ERANGE) buffer.resize(buffer.size() * 2);
    return found ? std::string(found->pw_name) : std::to_string(uid);
}

std::string group_name(gid_t gid) {
    std::vector<char> buffer(buffer_size(_SC_GETGR_R_SIZE_MAX));
    group entry{};
    group* found = nullptr;
    while (::getgrgid_r(gid, &entry, buffer.data(), buffer.size(), &found) == ERANGE) buffer.resize(buffer.size() * 2);
    return found ? std::string(found->gr_name) : std::to_string(gid);
}

}  // namespace kvmgpu::util
