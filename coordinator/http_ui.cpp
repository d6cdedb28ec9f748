// The dashboard's files: `GET /` is web/index.html, `GET /ui/<file>` the rest of web/, all built
// into the binary (coordinator/web_assets.hpp). A strict Content-Security-Policy: the page runs
// only its own scripts and styles, talks only to this coordinator, and cannot be framed.
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string_view>

#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"
#include "coordinator/web_assets.hpp"

namespace flotilla::coordinator {

using namespace http_internal;

namespace {

constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const char* mediaType(std::string_view name) {
  auto endsWith = [&](std::string_view ext) { return name.ends_with(ext); };
  if (endsWith(".html")) return "text/html; charset=utf-8";
  if (endsWith(".js")) return "text/javascript; charset=utf-8";
  if (endsWith(".css")) return "text/css; charset=utf-8";
  if (endsWith(".svg")) return "image/svg+xml";
  if (endsWith(".png")) return "image/png";
  return "application/octet-stream";
}

const WebAsset* findAsset(std::string_view name) {
  for (const WebAsset& a : webAssets()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

void serveAsset(const httplib::Request& req, httplib::Response& res, std::string_view name) {
  const WebAsset* asset = findAsset(name);
  if (asset == nullptr) {
    return reply(res, 404, json{{"error", "no such dashboard file: " + quoted(req.path)}});
  }
  res.set_header("Content-Security-Policy", kContentSecurityPolicy);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("Cache-Control", "no-cache");
  res.set_content(std::string(asset->body), mediaType(asset->name));
}

}  // namespace

void HttpApi::uiRoutes() {
  server_->Get("/", [](const httplib::Request& req, httplib::Response& res) {
    serveAsset(req, res, "index.html");
  });
  server_->Get(R"(/ui/([A-Za-z0-9][A-Za-z0-9._-]{0,63}))",
               [](const httplib::Request& req, httplib::Response& res) {
                 serveAsset(req, res, req.matches[1].str());
               });
}

}  // namespace flotilla::coordinator
