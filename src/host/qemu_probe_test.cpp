// Asking QEMU for its audio drivers: the parser on QEMU 7.2's words, and the real binary.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>

#include "host/qemu_probe.hpp"

using namespace kvmgpu::host;

TEST_CASE("the audio driver list leaves out the modules QEMU says are missing", "[host][qemu-probe]") {
    // QEMU 7.2 on Debian 12 without qemu-system-gui, stdout and stderr together.
    const std::string text =
        "Available audio drivers:\nnone\nalsa\n"
        "qemu: module audio-audio-coreaudio not found, do you want to install qemu-system-gui package?\n"
        "dbus\noss\n"
        "qemu: module audio-audio-pa not found, do you want to install qemu-system-gui package?\n"
        "spice\nwav\n";
    CHECK(parse_audio_drivers(text) == std::vector<std::string>{"none", "alsa", "dbus", "oss", "spice", "wav"});
    CHECK(parse_audio_drivers("Available audio drivers:\nnone\npa\n") == std::vector<std::string>{"none", "pa"});
}

TEST_CASE("the real QEMU lists its audio drivers, pa exactly when its module is installed", "[host][qemu-probe][real]") {
    const auto drivers = qemu_audio_drivers("qemu-system-x86_64");
    REQUIRE(drivers);
    CHECK(std::find(drivers->begin(), drivers->end(), "none") != drivers->end());
    // Debian builds the PulseAudio driver as a module, shipped by qemu-system-gui.
    const bool module = std::filesystem::exists("/usr/lib/x86_64-linux-gnu/qemu/audio-pa.so");
    CHECK((std::find(drivers->begin(), drivers->end(), "pa") != drivers->end()) == module);
    CHECK_FALSE(qemu_audio_drivers("/nonexistent/qemu-system-x86_64"));
}
