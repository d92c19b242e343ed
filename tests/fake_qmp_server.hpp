#pragma once
// An in-process stand-in for QEMU's QMP monitor, for tests of qmp::Client.
//
// A FakeQmpServer listens on a unix socket at construction, then a thread accepts one connection
// and runs a script against it. The script talks raw bytes, so tests can shape the stream any way
// QEMU (or a broken peer) could: split, coalesced, out of order, oversized, truncated. Scripts run
// on their own thread and must not use Catch2 assertions; they throw on surprises, and join()
// rethrows in the test's thread. Every blocking step has a deadline and wakes when the server is
// destroyed, so a failing test cannot hang.
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include <nlohmann/json.hpp>

#include "temp_dir.hpp"
#include "util/fd.hpp"

namespace kvmgpu::testing {

// A fresh directory under /tmp, removed with its contents on destruction. Short, because a unix
// socket path must fit in 107 bytes.
class FakeQmpConnection {
public:
    static constexpr std::chrono::seconds kStepTimeout{10};

    FakeQmpConnection(util::Fd fd, int stop_fd) : fd_(std::move(fd)), stop_fd_(stop_fd) {}

    // One write() per call (looping only over partial writes).
    void send_raw(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                throw std::system_error(errno, std::generic_category(), "fake QMP server: send failed");
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    // One write() per byte: the client must reassemble the message across reads.
    void send_bytewise(std::string_view bytes) {
        for (char c : bytes) send_raw(std::string_view(&c, 1));
    }
    static std::string line(const nlohmann::json& message) { return message.dump() + "\r\n"; }
    void send(const nlohmann::json& message) { send_raw(line(message)); }

    static nlohmann::json greeting(int major = 7, int minor = 2, int micro = 0) {
        return {{"QMP",
                 {{"version", {{"qemu", {{"micro", micro}, {"minor", minor}, {"major", major}}}, {"package", "fake"}}},
                  {"capabilities", {"oob"}}}}};
    }
    static nlohmann::json reply_to(const nlohmann::json& request, nlohmann::json value) {
        return {{"return", std::move(value)}, {"id", request.at("id")}};
    }
    static nlohmann::json error_to(const nlohmann::json& request, const std::string& cls, const std::string& desc) {
        return {{"error", {{"class", cls}, {"desc", desc}}}, {"id", request.at("id")}};
    }
    static nlohmann::json event(const std::string& name, nlohmann::json data, std::int64_t seconds = 1700000000,
                                std::int64_t microseconds = 123456) {
        nlohmann::json message = {{"event", name},
                                  {"timestamp", {{"seconds", seconds}, {"microseconds", microseconds}}}};
        if (!data.is_null()) message["data"] = std::move(data);
        return message;
    }
    void reply(const nlohmann::json& request, nlohmann::json value) { send(reply_to(request, std::move(value))); }

    // The next request line, parsed. Throws on EOF, on a timeout, or when the server stops.
    nlohmann::json read_request() {
        for (;;) {
            if (auto newline = buffer_.find('\n'); newline != std::string::npos) {
                std::string text = buffer_.substr(0, newline);
                buffer_.erase(0, newline + 1);
                return nlohmann::json::parse(text);
            }
            if (!fill()) throw std::runtime_error("fake QMP server: the client closed the connection");
        }
    }

    // Greeting, then the qmp_capabilities exchange, as QEMU does.
    void handshake(int major = 7, int minor = 2, int micro = 0) {
        send(greeting(major, minor, micro));
        const auto request = read_request();
        if (request.value("execute", "") != "qmp_capabilities") {
            throw std::runtime_error("fake QMP server: expected qmp_capabilities, got " + request.dump());
        }
        reply(request, nlohmann::json::object());
    }

    // Reads until the client closes the connection; throws if it does not within the timeout.
    void expect_eof() {
        while (fill()) {
        }
    }

    void close() { fd_.reset(); }

private:
    // Appends what is readable to the buffer; false at EOF.
    bool fill() {
        pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        const int ready = ::poll(fds, 2, static_cast<int>(std::chrono::milliseconds(kStepTimeout).count()));
        if (ready == 0) throw std::runtime_error("fake QMP server: timed out waiting for the client");
        if (ready < 0) throw std::system_error(errno, std::generic_category(), "fake QMP server: poll failed");
        if (fds[1].revents != 0) throw std::runtime_error("fake QMP server: stopped");
        char chunk[4096];
        const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
        if (n < 0) {
            if (errno == ECONNRESET) return false;
            throw std::system_error(errno, std::generic_category(), "fake QMP server: recv failed");
        }
        if (n == 0) return false;
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return true;
    }

    util::Fd fd_;
    int stop_fd_;
    std::string buffer_;
};

class FakeQmpServer {
public:
    using Script = std::function<void(FakeQmpConnection&)>;

    FakeQmpServer(const std::filesystem::path& socket_path, Script script) {
        listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!listener_) throw std::system_error(errno, std::generic_category(), "fake QMP server: socket failed");
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        const std::string path = socket_path.string();
        if (path.size() >= sizeof address.sun_path) throw std::runtime_error("fake QMP server: socket path too long");
        std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
        if (::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
            ::listen(listener_.get(), 1) != 0) {
            throw std::system_error(errno, std::generic_category(), "fake QMP server: bind/listen on " + path);
        }
        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
        stop_read_.reset(pipe_fds[0]);
        stop_write_.reset(pipe_fds[1]);
        thread_ = std::thread([this, script = std::move(script)] {
            try {
                FakeQmpConnection connection(accept_one(), stop_read_.get());
                script(connection);
            } catch (...) {
                failure_ = std::current_exception();
            }
        });
    }
    FakeQmpServer(const FakeQmpServer&) = delete;
    FakeQmpServer& operator=(const FakeQmpServer&) = delete;

    ~FakeQmpServer() {
        if (thread_.joinable()) {
            [[maybe_unused]] const auto written = ::write(stop_write_.get(), "x", 1);
            thread_.join();
        }
    }

    // Waits for the script to end; rethrows what it threw.
    void join() {
        if (thread_.joinable()) thread_.join();
        if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
    }

private:
    util::Fd accept_one() {
        pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
        const auto timeout = std::chrono::milliseconds(FakeQmpConnection::kStepTimeout);
        const int ready = ::poll(fds, 2, static_cast<int>(timeout.count()));
        if (ready <= 0 || fds[1].revents != 0) throw std::runtime_error("fake QMP server: no client connected");
        util::Fd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!fd) throw std::system_error(errno, std::generic_category(), "fake QMP server: accept failed");
        return fd;
    }

    util::Fd listener_;
    util::Fd stop_read_;
    util::Fd stop_write_;
    std::exception_ptr failure_;
    std::thread thread_;
};

}  // namespace kvmgpu::testing
