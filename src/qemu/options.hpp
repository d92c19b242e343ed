#pragma once
// QEMU's option syntax, in one place: "head,key=value,key=value". A ',' inside a value is
// written ",," so that a path with a comma reaches QEMU whole and never starts a new option.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvmgpu::qemu {

// Escapes one value for a QEMU key=value list.
std::string escape(std::string_view value);

// One option argument such as `-device vfio-pci,host=0000:01:00.0,bus=rp0`: a flag, an
// optional head (the driver or backend; our own constant words) and key=value properties.
struct Option {
    std::string flag;  // "-device"
    std::string head;  // "vfio-pci"; may be empty
    std::vector<std::pair<std::string, std::string>> props;
    // The head is a plain argument (a path for -pidfile), not a key=value list: not escaped.
    bool verbatim = false;

    Option& set(std::string key, std::string value) {
        props.emplace_back(std::move(key), std::move(value));
        return *this;
    }
    Option& set_if(bool condition, std::string key, std::string value) {
        if (condition) set(std::move(key), std::move(value));
        return *this;
    }
    // The option's value as QEMU reads it; every property value escaped.
    std::string value() const;
};

// Appends `opt` as two words (flag, value), or one word when the option has no value.
void render(const Option& opt, std::vector<std::string>& argv);

}  // namespace kvmgpu::qemu
