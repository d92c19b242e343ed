// A stand-in for qemu-bridge-helper in unit tests (host/bridge_tap_test.cpp): the same command
// line (--use-vnet --br=BRIDGE --fd=N) and the same answer, one descriptor sent over the unix
// socket N with SCM_RIGHTS. Instead of a tap it sends a memfd holding "tap of BRIDGE".
// Bridges with special names behave like the failures the launcher must report:
//   denied  prints the helper's ACL refusal and exits 1
//   silent  exits 0 without sending anything
//   hang    never answers
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
    std::string bridge;
    int fd = -1;
    bool vnet = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--use-vnet") vnet = true;
        else if (arg.rfind("--br=", 0) == 0) bridge = arg.substr(5);
        else if (arg.rfind("--fd=", 0) == 0) fd = std::atoi(arg.c_str() + 5);
        else {
            std::fprintf(stderr, "fake-bridge-helper: unknown argument %s\n", arg.c_str());
            return 2;
        }
    }
    int type = 0;
    socklen_t len = sizeof type;
    if (!vnet || bridge.empty() || fd < 0 || ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
        std::fprintf(stderr, "fake-bridge-helper: needs --use-vnet, --br=BRIDGE and --fd=SOCKET\n");
        return 2;
    }
    if (bridge == "denied") {
        std::fprintf(stderr, "access denied by acl file\n");
        return 1;
    }
    if (bridge == "silent") return 0;
    if (bridge == "hang") {
        for (;;) ::pause();
    }
    const int tap = ::memfd_create("fake-tap", 0);
    const std::string text = "tap of " + bridge;
    if (tap < 0 || ::write(tap, text.data(), text.size()) != static_cast<ssize_t>(text.size())) return 3;
    char byte = 0;
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &tap, sizeof tap);
    return ::sendmsg(fd, &msg, 0) == 1 ? 0 : 4;
}
