// The project's one HTTP client (libcurl): the agent's health checks, /metrics scrapes and
// Prometheus queries, the coordinator's alert webhooks, and the CLI's requests and event streams
// to the coordinator.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <variant>

#include "common/status.hpp"

namespace flotilla::common {

// An answer is untrusted: a body over this is refused instead of buffered.
inline constexpr std::size_t kMaxHttpBodyBytes = 8u << 20;

struct HttpReply {
  long status = 0;           // the HTTP status code
  std::string content_type;  // as sent ("" when the server sent none)
  std::string body;          // at most the client's max_body_bytes; empty for a streamed body
};

// Why a request got no HTTP answer.
struct HttpFailure {
  enum class Kind {
    kConnectionRefused,  // nothing listens there
    kCannotConnect,      // unreachable host, connect timeout, TLS handshake, ...
    kResolve,            // the host name does not resolve
    kTimeout,            // connected, but no complete answer in time
    kTooLarge,           // the body is over max_body_bytes
    kOther,
  };
  Kind kind = Kind::kOther;
  std::string reason;  // short, lower case, fit for "(...)" in a user's message
  std::string detail;  // libcurl's own message, for logs
};

using HttpResult = std::variant<HttpReply, HttpFailure>;

struct HttpClientOptions {
  std::chrono::milliseconds connect_timeout{3000};
  // The whole request (connect, send, read); streams have none. At least 1 ms.
  std::chrono::milliseconds timeout{30000};
  std::string bearer_token;  // sent as "Authorization: Bearer TOKEN" ("" = none)
  std::string ca_file;       // PEM CA(s) for https:// ("" = the system's store)
  std::string user_agent;    // "" = none
  // Off: a health check or a webhook must reach the server itself. On: http_proxy, https_proxy
  // and no_proxy apply, as in curl, which is what an operator's CLI expects.
  bool proxy_from_environment = false;
  // Probes every 30 s once idle, so that a stream notices a peer that vanished without closing.
  bool tcp_keepalive = false;
  std::size_t max_body_bytes = kMaxHttpBodyBytes;
};

struct HttpRequest {
  enum class Method { kGet, kPost, kDelete };
  Method method = Method::kGet;
  std::string url;
  std::string body;          // POST only
  std::string content_type;  // sent when not empty, whatever the method
  std::string accept;        // sent when not empty
};

// Body bytes as they arrive; return false to stop the transfer.
using ChunkHandler = std::function<bool(std::string_view chunk)>;

// A blocking client. One libcurl handle is reused, so that a polling loop keeps its connection
// instead of reconnecting each time. Redirects are not followed; only http and https are
// spoken. Not thread-safe: one per thread.
class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  const HttpClientOptions& options() const { return options_; }

  // Any HTTP answer is a reply, whatever its status; deciding what a 404 means is the caller's.
  HttpResult send(const HttpRequest& request);

  // As send(), with no deadline once connected (a stream lasts as long as what it follows).
  // When the answer is 200 with a content type starting with `stream_type` (case-insensitive),
  // the body goes to `on_chunk` as it arrives, unbuffered, and the reply's body is empty; a
  // stop asked by `on_chunk` still returns the reply. Any other answer (an error, or a server
  // that ignores Accept) is buffered and returned whole, as send() would.
  HttpResult stream(const HttpRequest& request, std::string_view stream_type,
                    const ChunkHandler& on_chunk);

 private:
  // `on_chunk` null: a plain request.
  HttpResult perform(const HttpRequest& request, const ChunkHandler* on_chunk,
                     std::string_view stream_type);

  HttpClientOptions options_;
  void* curl_;  // CURL*, kept out of this header so that includers need no curl headers
};

// One request on a fresh connection, bounded by `timeout` as a whole (connect, send, read).
// Any HTTP answer is a reply, whatever its status; no answer (refused, timed out, reset, body
// too large, not http/https) is Unavailable with curl's reason. Redirects are not followed and
// proxies from the environment are ignored: a check must reach the server itself.
// Thread-safe; blocks the calling thread for up to `timeout`.
StatusOr<HttpReply> httpGet(const std::string& url, std::chrono::milliseconds timeout);
// POST with `body` sent as `content_type` (e.g. "application/json").
StatusOr<HttpReply> httpPost(const std::string& url, const std::string& body,
                             const std::string& content_type, std::chrono::milliseconds timeout);

// Percent-encodes `text` for a URL path segment or query value (RFC 3986 unreserved characters
// pass).
std::string urlEncode(const std::string& text);

}  // namespace flotilla::common
