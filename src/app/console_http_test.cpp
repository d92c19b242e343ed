#include <catch2/catch.hpp>

#include "app/console_http.hpp"

using namespace kvmgpu::app;

TEST_CASE("a request head is parsed into method path and lower-case headers", "[console]") {
    const auto p = parse_request_head("GET /tok/core/rfb.js?v=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
                                      "Upgrade:  WebSocket \r\nX-A: 1\r\n\r\n");
    REQUIRE(p.request);
    CHECK(p.request->method == "GET");
    CHECK(p.request->target == "/tok/core/rfb.js?v=1");
    CHECK(p.request->path == "/tok/core/rfb.js");
    CHECK(p.request->header("host") == "127.0.0.1:8000");
    CHECK(p.request->websocket_upgrade());
    CHECK(p.request->header("missing").empty());
}

TEST_CASE("malformed or oversized request heads are answered with an error status", "[console]") {
    struct Case {
        std::string head;
        int status;
    };
    std::string many = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 70; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    for (const auto& c : std::vector<Case>{
             {"", 400},
             {"GET\r\n\r\n", 400},
             {"GET / HTTP/2.0\r\n\r\n", 505},
             {"GET relative HTTP/1.1\r\n\r\n", 400},
             {"G(T / HTTP/1.1\r\n\r\n", 400},
             {"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400},
             {"GET / HTTP/1.1\r\n: empty name\r\n\r\n", 400},
             {"GET / HTTP/1.1\r\nX-Big: " + std::string(kMaxRequestHead, 'a') + "\r\n\r\n", 431},
             {many + "\r\n", 431},
         }) {
        INFO(c.head.substr(0, 60));
        const auto p = parse_request_head(c.head);
        CHECK_FALSE(p.request);
        CHECK(p.error.status == c.status);
    }
}

TEST_CASE("URL paths are normalised and never leave the served directory", "[console]") {
    CHECK(normalise_path("/") == std::string());
    CHECK(normalise_path("/tok/") == std::string("tok"));
    CHECK(normalise_path("/tok/core//./rfb.js") == std::string("tok/core/rfb.js"));
    CHECK(normalise_path("/tok/a%20b.js") == std::string("tok/a b.js"));
    for (const char* bad : {"", "relative", "/..", "/tok/../etc/passwd", "/tok/%2e%2e/x", "/tok/%2E%2E",
                            "/tok/..%2fx", "/tok/a%00b", "/tok/a%5c..%5cb", "/tok/a\\b", "/tok/%zz", "/tok/%2"}) {
        INFO(bad);
        CHECK_FALSE(normalise_path(bad));
    }
    // "..%2f" decodes to "../" and is a parent segment after decoding.
    CHECK_FALSE(normalise_path("/tok/%2e%2e%2fsecret"));
}

TEST_CASE("files get their content type by extension", "[console]") {
    CHECK(content_type("core/rfb.js") == "text/javascript; charset=utf-8");
    CHECK(content_type("vnc.html") == "text/html; charset=utf-8");
    CHECK(content_type("app/styles/base.css") == "text/css; charset=utf-8");
    CHECK(content_type("README") == "application/octet-stream");
}

TEST_CASE("the console page connects noVNC to its own server and carries the password", "[console]") {
    const auto page = console_page("vm-1", "Ab3dEf7h");
    CHECK(page.find("import RFB from './core/rfb.js'") != std::string::npos);
    CHECK(page.find("const password = \"Ab3dEf7h\";") != std::string::npos);
    CHECK(page.find("'websockify'") != std::string::npos);
    CHECK(page.find("<title>vm-1 ") != std::string::npos);
    // No value can close the script element.
    const auto hostile = console_page("vm", "</script><b>");
    CHECK(hostile.find("</script><b>") == std::string::npos);
    CHECK(console_page("vm", "").find("const password = \"\";") != std::string::npos);
}

TEST_CASE("responses say their length and are neither cached nor framed", "[console]") {
    const auto h = response_head(404, "Not Found", "text/plain", 12);
    CHECK(h.rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
    CHECK(h.find("Content-Length: 12\r\n") != std::string::npos);
    CHECK(h.find("Cache-Control: no-store\r\n") != std::string::npos);
    CHECK(h.find("X-Frame-Options: DENY\r\n") != std::string::npos);
    CHECK(h.substr(h.size() - 4) == "\r\n\r\n");
}
