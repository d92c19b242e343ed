#pragma once
// The command line of swtpm, the software TPM a VM with [tpm] enabled gets. swtpm 0.7 (Debian
// 12) splits its option values at every ',' and has no escape for one, so a path with a comma
// would end the value there and could add swtpm options of its own ("…,mode=0777"). Such a
// path is refused before anything starts.
#include <string>
#include <vector>

#include "util/error.hpp"
#include "util/layout.hpp"

namespace kvmgpu::qemu {

// A path kvmgpu would hand to swtpm cannot be written in swtpm's option syntax.
struct SwtpmPathError : util::BadInput {
    explicit SwtpmPathError(const std::string& message) : util::BadInput(message, "bad-path") {}
};

// `swtpm socket` serving a TPM 2.0 on layout.swtpm_socket(), its state in layout.tpm_state()
// and its log on its stdout (swtpm 0.7 refuses fd=2), which the caller points at
// layout.swtpm_log(); it ends when QEMU disconnects (--terminate). Throws
// SwtpmPathError naming the path and the directory option to change.
std::vector<std::string> swtpm_argv(const util::VmLayout& layout);

}  // namespace kvmgpu::qemu
