#include "app/console_http.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvmgpu::app {
namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

bool token_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

ParsedHead fail(int status, std::string reason) { return {std::nullopt, {status, std::move(reason)}}; }

}  // namespace

std::string HttpRequest::header(const std::string& lower_name) const {
    const auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
}

bool HttpRequest::websocket_upgrade() const {
    return method == "GET" && lower(header("upgrade")) == "websocket";
}

ParsedHead parse_request_head(std::string_view head) {
    if (head.size() > kMaxRequestHead) return fail(431, "Request Header Fields Too Large");
    std::vector<std::string_view> lines;
    for (std::size_t start = 0; start < head.size();) {
        auto end = head.find('\n', start);
        if (end == std::string_view::npos) end = head.size();
        lines.push_back(trim(head.substr(start, end - start)));
        start = end + 1;
    }
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    if (lines.empty()) return fail(400, "Bad Request");
    if (lines.size() - 1 > kMaxHeaders) return fail(431, "Request Header Fields Too Large");

    // "METHOD SP TARGET SP HTTP/1.x"
    const auto line = lines.front();
    const auto sp1 = line.find(' ');
    const auto sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) return fail(400, "Bad Request");
    HttpRequest r;
    r.method = std::string(line.substr(0, sp1));
    r.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    const auto version = line.substr(sp2 + 1);
    if (r.method.empty() || !std::all_of(r.method.begin(), r.method.end(), token_char)) return fail(400, "Bad Request");
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return fail(505, "HTTP Version Not Supported");
    if (r.target.empty() || r.target.front() != '/' || r.target.find(' ') != std::string::npos)
        return fail(400, "Bad Request");
    r.path = r.target.substr(0, r.target.find_first_of("?#"));

    for (std::size_t i = 1; i < lines.size(); ++i) {
        const auto colon = lines[i].find(':');
        if (colon == 0 || colon == std::string_view::npos) return fail(400, "Bad Request");
        const auto name = lines[i].substr(0, colon);
        if (!std::all_of(name.begin(), name.end(), token_char)) return fail(400, "Bad Request");
        r.headers[lower(std::string(name))] = std::string(trim(lines[i].substr(colon + 1)));
    }
    return {std::move(r), {0, ""}};
}

std::optional<std::string> normalise_path(std::string_view url_path) {
    if (url_path.empty() || url_path.front() != '/') return std::nullopt;
    std::string decoded;
    for (std::size_t i = 0; i < url_path.size(); ++i) {
        if (url_path[i] != '%') {
            decoded += url_path[i];
            continue;
        }
        if (i + 2 >= url_path.size() || hex(url_path[i + 1]) < 0 || hex(url_path[i + 2]) < 0) return std::nullopt;
        decoded += static_cast<char>(hex(url_path[i + 1]) * 16 + hex(url_path[i + 2]));
        i += 2;
    }
    if (decoded.find('\0') != std::string::npos || decoded.find('\\') != std::string::npos) return std::nullopt;
    std::string out;
    for (std::size_t start = 0; start <= decoded.size();) {
        auto end = decoded.find('/', start);
        if (end == std::string::npos) end = decoded.size();
        const auto segment = std::string_view(decoded).substr(start, end - start);
        if (segment == "..") return std::nullopt;
        if (!segment.empty() && segment != ".") out += (out.empty() ? "" : "/") + std::string(segment);
        start = end + 1;
    }
    return out;
}

std::string_view content_type(std::string_view file_name) {
    const auto dot = file_name.rfind('.');
    const auto ext = dot == std::string_view::npos ? std::string_view() : file_name.substr(dot + 1);
    if (ext == "html") return "text/html; charset=utf-8";
    if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
    if (ext == "css") return "text/css; charset=utf-8";
    if (ext == "svg") return "image/svg+xml";
    if (ext == "png") return "image/png";
    if (ext == "ico") return "image/x-icon";
    if (ext == "json") return "application/json";
    if (ext == "ogg" || ext == "oga") return "audio/ogg";
    if (ext == "mp3") return "audio/mpeg";
    return "application/octet-stream";
}

std::string response_head(int status, std::string_view reason, std::string_view type, std::size_t length) {
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
    h += "Content-Type: " + std::string(type) + "\r\n";
    h += "Content-Length: " + std::to_string(length) + "\r\n";
    h += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n";
    h += "Referrer-Policy: no-referrer\r\nConnection: close\r\n\r\n";
    return h;
}

std::string console_page(std::string_view name, std::string_view password) {
    // The password goes into the script as a JSON string; "</" is escaped so that no value can
    // end the <script> element.
    auto js_string = [](std::string_view s) {
        auto out = nlohmann::json(std::string(s)).dump();
        for (std::size_t i = 0; (i = out.find("</", i)) != std::string::npos; i += 3) out.replace(i, 2, "<\\/");
        return out;
    };
    const std::string title = std::string(name) + " \xe2\x80\x94 kvmgpu console";
    std::string page = R"(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>)" + title + R"(</title>
<style>
  html, body { margin: 0; height: 100%; background: #1e1e1e; color: #ddd; font: 14px sans-serif; }
  #status { height: 24px; line-height: 24px; padding: 0 8px; background: #333; }
  #screen { position: absolute; top: 24px; left: 0; right: 0; bottom: 0; }
</style>
</head>
<body data-state="connecting">
<div id="status">)" + std::string(name) + R"(: connecting</div>
<div id="screen"></div>
<script type="module">
import RFB from './core/rfb.js';
const name = )" + js_string(name) + R"(;
const password = )" + js_string(password) + R"(;
const body = document.body;
const status = document.getElementById('status');
function show(state, text) { body.dataset.state = state; status.textContent = name + ': ' + text; }
// The WebSocket of this server, which relays it to the VM's VNC WebSocket (QEMU's, or the
// guest's websockify): one port for the page and the screen, the page's own origin.
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + location.pathname + 'websockify';
let rfb;
try {
  rfb = new RFB(document.getElementById('screen'), url, password ? { credentials: { password } } : {});
} catch (e) {
  show('error', 'cannot connect: ' + e.message);
}
if (rfb) {
  rfb.scaleViewport = false;
  rfb.addEventListener('connect', () => show('connected', 'connected'));
  rfb.addEventListener('disconnect', (e) => show('disconnected', e.detail.clean ? 'disconnected' : 'connection lost'));
  rfb.addEventListener('credentialsrequired', () => show('error', 'the VNC server asks for a password this page does not have'));
  rfb.addEventListener('securityfailure', (e) => show('error', 'security failure: ' + e.detail.reason));
  rfb.addEventListener('desktopname', (e) => { document.title = e.detail.name + ' \u2014 kvmgpu console'; });
}
</script>
</body>
</html>
)";
    return page;
}

}  // namespace kvmgpu::app
