#include "qemu/options.hpp"

namespace kvmgpu::qemu {

std::string escape(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        out += c;
        if (c == ',') out += ',';
    }
    return out;
}

std::string Option::value() const {
    if (verbatim) return head;
    std::string out = escape(head);
    for (const auto& [key, val] : props) {
        if (!out.empty()) out += ',';
        out += key;
        out += '=';
        out += escape(val);
    }
    return out;
}

void render(const Option& opt, std::vector<std::string>& argv) {
    argv.push_back(opt.flag);
    if (!opt.head.empty() || !opt.props.empty()) argv.push_back(opt.value());
}

}  // namespace kvmgpu::qemu
