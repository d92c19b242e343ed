#include "qemu/swtpm.hpp"

#include "util/text.hpp"

namespace kvmgpu::qemu {
namespace {

// `path` as one value of swtpm's key=value list.
std::string swtpm_value(const std::filesystem::path& path, const char* directory_option) {
    const std::string text = path.string();
    if (text.find(',') != std::string::npos)
        throw SwtpmPathError("the TPM path " + util::quoted(text) +
                             " contains a ',', which swtpm cannot read in an option; choose a " + directory_option +
                             " without commas");
    return text;
}

}  // namespace

std::vector<std::string> swtpm_argv(const util::VmLayout& layout) {
    return {"swtpm",
            "socket",
            "--tpm2",
            "--tpmstate",
            "dir=" + swtpm_value(layout.tpm_state(), "--state-dir") + ",mode=0600",
            "--ctrl",
            "type=unixio,path=" + swtpm_value(layout.swtpm_socket(), "--runtime-dir"),
            "--terminate",
            "--log",
            "fd=1"};  // stdout: the caller points it at layout.swtpm_log()
}

}  // namespace kvmgpu::qemu
