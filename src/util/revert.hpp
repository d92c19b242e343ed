#pragma once
// Undo before mutate: register how to undo each change before making it; on the way out
// everything registered is undone in reverse order, unless the whole sequence succeeded and
// was committed. (The shape of incus's shared/revert.)
#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace kvmgpu::util {

class Revert {
public:
    Revert() = default;
    Revert(const Revert&) = delete;
    Revert& operator=(const Revert&) = delete;
    ~Revert() { run(); }

    // `undo` must not throw; what it throws is swallowed so that the other undos still run.
    void add(std::function<void()> undo) { undos_.push_back(std::move(undo)); }

    // The sequence succeeded: forget every undo.
    void commit() { undos_.clear(); }

    // Undoes everything registered so far, newest first, and forgets it.
    void run() noexcept {
        while (!undos_.empty()) {
            auto undo = std::move(undos_.back());
            undos_.pop_back();
            try {
                undo();
            } catch (...) {
            }
        }
    }

    bool empty() const { return undos_.empty(); }

private:
    std::vector<std::function<void()>> undos_;
};

}  // namespace kvmgpu::util
