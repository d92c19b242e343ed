#pragma once
// The one error base of kvmgpu: every error it raises on purpose carries its exit class, so the
// exit code follows from the error itself and never from which `catch` happens to see it first.
//   bad input (exit 2): the user's words, profile or addresses are wrong; nothing was changed.
//   runtime   (exit 1): the host, QEMU or a VM did not do what was asked.
// Anything else that escapes (std::bad_alloc, a library's exception) is a runtime failure.
#include <stdexcept>
#include <string>

namespace kvmgpu::util {

enum class ExitClass : int { runtime = 1, bad_input = 2 };

class Error : public std::runtime_error {
public:
    // `code` is a short stable id for scripts ("not-running", "bind-failed"); empty: none.
    Error(ExitClass exit_class, const std::string& message, std::string code = {})
        : std::runtime_error(message), exit_class_(exit_class), code_(std::move(code)) {}

    ExitClass exit_class() const { return exit_class_; }
    int exit_code() const { return static_cast<int>(exit_class_); }
    const std::string& code() const { return code_; }

private:
    ExitClass exit_class_;
    std::string code_;
};

// Bad input, found before anything changed (exit 2).
struct BadInput : Error {
    explicit BadInput(const std::string& message, std::string code = "bad-input")
        : Error(ExitClass::bad_input, message, std::move(code)) {}
};

// A failure of the host, QEMU or the VM (exit 1).
struct RuntimeFailure : Error {
    explicit RuntimeFailure(const std::string& message, std::string code = "failed")
        : Error(ExitClass::runtime, message, std::move(code)) {}
};

}  // namespace kvmgpu::util
