#pragma once
// The HTTP that `kvmgpu console` speaks, as pure functions: a bounded request head parsed, a URL
// path normalised to a relative path that cannot leave the directory it is served from, the
// content type of a file, the response head, and the console page itself.
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace kvmgpu::app {

// The most a request head may have (request line and headers); a longer one is refused (431).
inline constexpr std::size_t kMaxRequestHead = 8192;
inline constexpr std::size_t kMaxHeaders = 64;

struct HttpRequest {
    std::string method;
    std::string target;   // as sent: "/TOKEN/core/rfb.js?x"
    std::string path;     // the target without its query
    std::map<std::string, std::string> headers;  // names in lower case; a repeated one: the last
    std::string header(const std::string& lower_name) const;
    bool websocket_upgrade() const;  // GET with "Upgrade: websocket"
};

// An HTTP error to answer with: status and reason phrase.
struct HttpError {
    int status;
    std::string reason;
};

// Parses a request head: everything up to and including the blank line ("\r\n\r\n"; bare "\n"
// accepted). Returns the error to answer for a malformed or oversized head.
struct ParsedHead {
    std::optional<HttpRequest> request;
    HttpError error{0, ""};
};
ParsedHead parse_request_head(std::string_view head);

// A URL path ("/a/b%20c/d.js") as a relative path ("a/b c/d.js"): percent-decoded, empty and
// "." segments dropped; nullopt for "..", a NUL, a backslash, a bad escape, or a path that is
// not absolute. The result never starts with '/' and never names a parent.
std::optional<std::string> normalise_path(std::string_view url_path);

// "text/html; charset=utf-8", "text/javascript", ... by extension; "application/octet-stream" else.
std::string_view content_type(std::string_view file_name);

// A response head with Content-Length, Connection: close, no caching and the headers that keep
// the page to itself (no framing, no sniffing, no referrer).
std::string response_head(int status, std::string_view reason, std::string_view type, std::size_t length);

// The console page: noVNC's RFB client (./core/rfb.js beside the page) connected to the
// WebSocket at ./websockify on the same server, with the VNC password (empty: none) given to it
// so that nobody types it. `name` is a VM name (letters, digits, '_', '.', '-').
std::string console_page(std::string_view name, std::string_view password);

}  // namespace kvmgpu::app
