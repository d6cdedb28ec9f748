// httpGet: the agent's small blocking HTTP client (libcurl) for health checks and /metrics
// scrapes of the replicas it runs.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "common/status.hpp"

namespace flotilla::agent {

// A replica's answer is untrusted: a body over this is refused instead of buffered.
inline constexpr std::size_t kMaxHttpBodyBytes = 8u << 20;

struct HttpReply {
  long status = 0;   // the HTTP status code
  std::string body;  // at most kMaxHttpBodyBytes
};

// One GET on a fresh connection, bounded by `timeout` as a whole (connect, send, read). Any
// HTTP answer is a reply, whatever its status; no answer (refused, timed out, reset, body too
// large, not http/https) is Unavailable with curl's reason. Redirects are not followed and
// proxies from the environment are ignored: a health check must reach the replica itself.
// Thread-safe; blocks the calling thread for up to `timeout`.
common::StatusOr<HttpReply> httpGet(const std::string& url, std::chrono::milliseconds timeout);

}  // namespace flotilla::agent
