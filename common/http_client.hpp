// The small blocking HTTP client (libcurl) both sides use: the agent for health checks,
// /metrics scrapes and Prometheus queries, the coordinator for alert webhooks.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "common/status.hpp"

namespace flotilla::common {

// An answer is untrusted: a body over this is refused instead of buffered.
inline constexpr std::size_t kMaxHttpBodyBytes = 8u << 20;

struct HttpReply {
  long status = 0;   // the HTTP status code
  std::string body;  // at most kMaxHttpBodyBytes
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

// Percent-encodes `text` for a URL query value.
std::string urlEncode(const std::string& text);

}  // namespace flotilla::common
