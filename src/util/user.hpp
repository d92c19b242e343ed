#pragma once
// System users and groups as the C library's name service sees them (passwd, group: files,
// LDAP, systemd's dynamic users), for running a child as an unprivileged user.
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "util/process.hpp"

namespace kvmgpu::util {

struct SystemUser {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;                 // the primary group
    std::filesystem::path home;    // the passwd entry's home directory ("/nonexistent" for some)
    std::vector<gid_t> groups;     // every group it belongs to, the primary one included

    bool in_group(gid_t group) const;
    // What spawn() needs to run a child as this user.
    Credentials credentials() const;
};

// The user named `name`, or nullopt when there is none. Throws std::runtime_error when the
// lookup itself fails (the name service broke), naming the user and the cause.
std::optional<SystemUser> find_user(const std::string& name);

// The group named `name`, or nullopt.
std::optional<gid_t> find_group(const std::string& name);

// The name of the user or group with this id, or the number as text when it has none.
std::string user_name(uid_t uid);
std::string group_name(gid_t gid);

}  // namespace kvmgpu::util
