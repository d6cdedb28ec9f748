// Fuzz target for the coordinator's HTTP API (coordinator/http_api.cpp). It drives the real
// thing: an HttpApi on 127.0.0.1 port 0 in front of a real engine and a RocksDB store in a
// temporary directory (no agents), started once per process and sent one request per input
// by a cpp-httplib client (one connection per request, as the server closes each).
//
// Input: the first byte picks the request, the rest is "<id>\n<body>" (the whole rest is the
// body for a plan submission or the path for a free GET). Ids and paths are percent-encoded
// byte for byte, so the API sees exactly the fuzzed bytes, '/' and NUL included.
//
// Every request must get an answer, never a 500; every error carries {"error": "..."}; a
// malformed id is a 400 (403 when it cannot even match a route of the permission table, 404
// when it matches none of the server's, 414 when the line is too long); a body over the limit
// is a 413; chunked or compressed bodies, which cpp-httplib 0.11 would buffer past the limit,
// are refused (411, 415).
//
// The requests above carry an admin token. The authentication ops send the fuzzed bytes as
// the Authorization header (raw, after "Bearer ", or repeated past any sane size), as the
// Content-Type of a change, or as the Host header; or a viewer's token with a change: each must
// be refused (401, 415, 421, 403) without a 500, and never let a request through.
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "coordinator/tokens.hpp"
#include "fuzz/fuzz_check.hpp"
#include "tests/support/in_process_coordinator.hpp"

namespace flotilla::coordinator {
namespace {

using nlohmann::json;

constexpr size_t kMaxBodyBytes = 1024 * 1024;  // HttpApi's limit

enum class Op : uint8_t {
  kSubmit,   // POST /api/v1/deployments
  kApprove,  // POST /api/v1/deployments/ID/approve, and the other verbs
  kRollback,
  kPause,
  kResume,
  kCancel,
  kGet,           // GET /api/v1/deployments/ID
  kEvents,        // GET /api/v1/deployments/ID/events?after=BODY
  kOversize,      // POST /api/v1/deployments with the body repeated past the limit
  kPath,          // GET /REST
  kChunked,       // submit with Transfer-Encoding: chunked (no Content-Length to check first)
  kBigChunked,    // the same, the body repeated past the limit
  kEncoded,       // submit with Content-Encoding: gzip (a small body could inflate without bound)
  kAuthRaw,       // GET /api/v1/deployments with Authorization: REST
  kAuthBearer,    // POST .../pause with Authorization: Bearer REST
  kAuthHuge,      // GET with Authorization: Bearer REST repeated past 8 KiB
  kNoAuth,        // GET /REST without Authorization
  kContentType,   // submit (admin) with Content-Type: REST
  kHost,          // GET /api/v1/agents (admin) with Host: REST
  kViewerChange,  // POST .../cancel with a viewer's token
  kCount,
};

const char* verbOf(Op op) {
  switch (op) {
    case Op::kApprove:
      return "approve";
    case Op::kRollback:
      return "rollback";
    case Op::kPause:
      return "pause";
    case Op::kResume:
      return "resume";
    default:
      return "cancel";
  }
}

std::string percentEncode(const std::string& text, bool keep_slash) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
        (byte >= '0' && byte <= '9') || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_slash && c == '/')) {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    }
  }
  return out;
}

// A header value the client can put on the wire: no CR, LF or NUL (they would end the header,
// which is the request parser's business, not this target's). Other bytes, 8-bit ones
// included, go as they are.
std::string headerSafe(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c != '\r' && c != '\n' && c != '\0') out += c;
  }
  return out;
}

std::string lowerAscii(std::string text) {
  for (auto& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

bool isDeploymentIdSpec(const std::string& id) {
  if (id.empty() || id.size() > 80 || id[0] == '-') return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

class Harness {
 public:
  Harness() {
    verbose_ = std::getenv("FLOTILLA_FUZZ_LOG") != nullptr;
    spdlog::set_level(verbose_ ? spdlog::level::debug : spdlog::level::off);
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/flotilla-http-fuzz-XXXXXX";
    FUZZ_CHECK(mkdtemp(pattern.data()) != nullptr, pattern);
    dir_ = pattern;
    // The seeds' clusters are known (as after a restart, never connected, so lost at once):
    // their plans are accepted and reach the routes of a stored deployment.
    EngineOptions engine_options;
    engine_options.agent_lost_after = std::chrono::milliseconds(1);
    auto started = support::InProcessCoordinator::start(
        dir_, "fuzz-admin", {{"fuzz-viewer", Role::kViewer, {}}},
        {{"staging-eu", {{"environment", "staging"}}, "fuzz"},
         {"prod-eu-1", {{"environment", "production"}}, "fuzz"}},
        engine_options);
    FUZZ_CHECK(started.ok(), started.status().message());
    coordinator_ = std::move(started).value();
    admin_token_ = coordinator_->token("fuzz-admin");
    viewer_token_ = coordinator_->token("fuzz-viewer");
    port_ = coordinator_->port();
    connect();
  }

  // Stops the threads before the process's static destructors run under them.
  void shutdown() {
    client_.reset();
    coordinator_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void run(const uint8_t* data, size_t size) {
    if (size == 0) return;
    const auto op = static_cast<Op>(data[0] % static_cast<uint8_t>(Op::kCount));
    const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    const size_t newline = rest.find('\n');
    const std::string id = rest.substr(0, newline);
    const std::string body = newline == std::string::npos ? "" : rest.substr(newline + 1);
    const std::string base = "/api/v1/deployments";

    std::string what;
    auto send = [&]() -> httplib::Result {
      switch (op) {
        case Op::kSubmit:
          what = "submit";
          return client_->Post(base, admin(), rest, "application/yaml");
        case Op::kApprove:
        case Op::kRollback:
        case Op::kPause:
        case Op::kResume:
        case Op::kCancel:
          what = std::string("POST ") + verbOf(op);
          return client_->Post(base + "/" + percentEncode(id, false) + "/" + verbOf(op), admin(),
                               body, "application/json");
        case Op::kGet:
          what = "GET deployment";
          return client_->Get(base + "/" + percentEncode(id, false), admin());
        case Op::kEvents:
          what = "GET events";
          return client_->Get(
              base + "/" + percentEncode(id, false) + "/events?after=" + percentEncode(body, false),
              admin());
        case Op::kOversize: {
          what = "oversized submit";
          std::string big = rest.empty() ? std::string("x") : rest;
          while (big.size() <= kMaxBodyBytes) big += big;
          return client_->Post(base, admin(), big, "application/yaml");
        }
        case Op::kChunked:
        case Op::kBigChunked: {
          what = op == Op::kChunked ? "chunked submit" : "oversized chunked submit";
          const std::string chunk = rest.empty() ? std::string("x") : rest;
          const size_t limit = op == Op::kChunked ? chunk.size() - 1 : kMaxBodyBytes;
          return client_->Post(
              base, admin(),
              [chunk, limit](size_t offset, httplib::DataSink& sink) {
                if (offset > limit) {
                  sink.done();
                } else {
                  sink.write(chunk.data(), chunk.size());
                }
                return true;
              },
              "application/yaml");
        }
        case Op::kEncoded:
          what = "gzip submit";
          return client_->Post(
              base, {{"Content-Encoding", "gzip"}, {"Authorization", "Bearer " + admin_token_}},
              rest, "application/yaml");
        case Op::kAuthRaw:
          what = "GET with Authorization: REST";
          return client_->Get(base, {{"Authorization", headerSafe(rest)}});
        case Op::kAuthBearer:
          what = "POST pause with Authorization: Bearer REST";
          return client_->Post(base + "/x-1/pause",
                               {{"Authorization", "Bearer " + headerSafe(rest)}}, "",
                               "application/json");
        case Op::kAuthHuge: {
          what = "GET with a huge Authorization";
          std::string big = headerSafe(rest).empty() ? std::string("A") : headerSafe(rest);
          while (big.size() <= 9000) big += big;
          return client_->Get(base, {{"Authorization", "Bearer " + big}});
        }
        case Op::kNoAuth:
          what = "GET path without a token";
          return client_->Get("/" + percentEncode(rest, true), httplib::Headers{});
        case Op::kContentType:
          what = "submit with Content-Type: REST";
          return client_->Post(base, admin(), "", headerSafe(rest).c_str());
        case Op::kHost:
          what = "GET agents with Host: REST";
          return client_->Get("/api/v1/agents", {{"Authorization", "Bearer " + admin_token_},
                                                 {"Host", headerSafe(rest)}});
        case Op::kViewerChange:
          what = "viewer cancels";
          return client_->Post(base + "/" + percentEncode(id, false) + "/cancel",
                               {{"Authorization", "Bearer " + viewer_token_}}, body,
                               "application/json");
        case Op::kPath:
        case Op::kCount:
          break;
      }
      what = "GET path";
      return client_->Get("/" + percentEncode(rest, true), admin());
    };

    httplib::Result result = send();
    if (!result && (op == Op::kChunked || op == Op::kBigChunked || op == Op::kEncoded)) {
      // Refused before its body was read, and the connection closed over the unread body:
      // the client may see a reset before the answer. The server must still be there.
      result = client_->Get("/healthz");
      FUZZ_CHECK(result && result->status == 200, what + ": the server died");
      return;
    }
    FUZZ_CHECK(result, what + ": no answer: " + httplib::to_string(result.error()));
    const httplib::Response& res = *result;
    const std::string context = what + " -> " + std::to_string(res.status) + " " + res.body;
    if (verbose_) std::fprintf(stderr, "%s\n", context.substr(0, 300).c_str());

    FUZZ_CHECK(res.status >= 200 && res.status < 600, context);
    FUZZ_CHECK(res.status != 500, context);
    // Every answer of the API is JSON. The free GETs may hit /metrics (text) or the dashboard,
    // which is served to anyone at / and /ui/FILE as HTML, JavaScript and CSS, always under the
    // strict Content-Security-Policy.
    const bool dashboard_path = rest.empty() || rest.rfind("ui/", 0) == 0;
    const bool free_get = op == Op::kPath || op == Op::kNoAuth;
    if (free_get && dashboard_path && res.status == 200) {
      FUZZ_CHECK(
          res.get_header_value("Content-Security-Policy").rfind("default-src 'none'", 0) == 0,
          context);
    }
    if (res.status >= 400 || !(op == Op::kPath || (free_get && dashboard_path))) {
      const json parsed = json::parse(res.body, nullptr, false);
      FUZZ_CHECK(!parsed.is_discarded() && parsed.is_object(), context);
      if (res.status >= 400) {
        FUZZ_CHECK(parsed.contains("error") && parsed["error"].is_string() &&
                       !parsed["error"].get<std::string>().empty(),
                   context);
      }
    }
    switch (op) {
      case Op::kSubmit:
        FUZZ_CHECK(res.status == 201 || res.status == 400 || res.status == 503, context);
        break;
      case Op::kOversize:
        FUZZ_CHECK(res.status == 413, context);
        break;
      case Op::kChunked:
      case Op::kBigChunked:
        FUZZ_CHECK(res.status == 411, context);
        break;
      case Op::kEncoded:
        FUZZ_CHECK(res.status == 415, context);
        break;
      case Op::kPath:
        break;
      case Op::kAuthRaw:
      case Op::kAuthBearer:
        FUZZ_CHECK(res.status == 401 || res.status == 400, context);
        break;
      case Op::kAuthHuge:
        // cpp-httplib refuses a header line over 8 KiB as a malformed request.
        FUZZ_CHECK(res.status == 401 || res.status == 400 || res.status == 431, context);
        break;
      case Op::kNoAuth:
        FUZZ_CHECK(res.status == 401 || res.status == 200 || res.status == 400 ||
                       res.status == 404 || res.status == 414,
                   context);
        if (res.status == 200 || res.status == 404) {
          FUZZ_CHECK(rest == "healthz" || rest.rfind("healthz?", 0) == 0 || dashboard_path,
                     context);
        }
        break;
      case Op::kContentType: {
        const std::string type = lowerAscii(headerSafe(rest).substr(0, headerSafe(rest).find(';')));
        const bool fine =
            type.rfind("application/json", 0) == 0 || type.rfind("application/yaml", 0) == 0 ||
            type.rfind("application/x-yaml", 0) == 0 || type.rfind("text/yaml", 0) == 0;
        // 400: cpp-httplib itself refused the request line or headers as malformed.
        if (!fine) FUZZ_CHECK(res.status == 415 || res.status == 400, context);
        break;
      }
      case Op::kHost: {
        const std::string host = lowerAscii(headerSafe(rest));
        const std::string port = ":" + std::to_string(port_);
        const bool allowed =
            host == "127.0.0.1" + port || host == "localhost" + port || host == "[::1]" + port;
        FUZZ_CHECK(allowed ? res.status == 200 : (res.status == 421 || res.status == 400), context);
        break;
      }
      case Op::kViewerChange:
        FUZZ_CHECK(res.status == 403 || res.status == 400 || res.status == 404 || res.status == 414,
                   context);
        break;
      default:
        if (!isDeploymentIdSpec(id)) {
          FUZZ_CHECK(
              res.status == 400 || res.status == 403 || res.status == 404 || res.status == 414,
              context);
        }
        break;
    }
  }

 private:
  httplib::Headers admin() const { return {{"Authorization", "Bearer " + admin_token_}}; }

  void connect() {
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_tcp_nodelay(true);
    client_->set_url_encode(false);  // paths are percent-encoded above, byte for byte
    client_->set_connection_timeout(10, 0);
    client_->set_read_timeout(30, 0);
    client_->set_write_timeout(30, 0);
  }

  bool verbose_ = false;  // FLOTILLA_FUZZ_LOG set: log, and print every answer
  std::string dir_;
  std::unique_ptr<support::InProcessCoordinator> coordinator_;
  std::string admin_token_;
  std::string viewer_token_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

Harness* g_harness = nullptr;

}  // namespace
}  // namespace flotilla::coordinator

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using flotilla::coordinator::g_harness;
  using flotilla::coordinator::Harness;
  if (g_harness == nullptr) {
    g_harness = new Harness();
    std::atexit([] {
      g_harness->shutdown();
      delete g_harness;
      g_harness = nullptr;
    });
  }
  g_harness->run(data, size);
  return 0;
}
