#pragma once
#include <signal.h>

#include <initializer_list>
#include <system_error>

namespace kvmgpu::util {

// Blocks signals in this thread for the object's lifetime: a Ctrl-C that arrives while devices
// are being bound stays pending until an event loop that handles it unblocks it, instead of
// killing the launcher halfway. Children start with a clean mask (util::spawn resets it).
class BlockSignals {
public:
    BlockSignals(std::initializer_list<int> signals) {
        sigset_t set;
        sigemptyset(&set);
        for (int s : signals) sigaddset(&set, s);
        if (int e = ::pthread_sigmask(SIG_BLOCK, &set, &old_); e != 0)
            throw std::system_error(e, std::generic_category(), "pthread_sigmask");
    }
    BlockSignals(const BlockSignals&) = delete;
    BlockSignals& operator=(const BlockSignals&) = delete;
    ~BlockSignals() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

    // Lets the signals through now (their handlers are installed); the destructor still restores
    // the mask found at construction.
    static void unblock(std::initializer_list<int> signals) {
        sigset_t set;
        sigemptyset(&set);
        for (int s : signals) sigaddset(&set, s);
        ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    }

private:
    sigset_t old_;
};

}  // namespace kvmgpu::util
