// Api: the coordinator's HTTP API as the commands need it (JSON in, JSON out) over the common
// HTTP client, and how every way a request can fail becomes a CliError: the message a user
// reads and the exit code.
#pragma once

#include <chrono>
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "common/http_client.hpp"
#include "common/sse.hpp"

namespace flotilla::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the coordinator said no, or the deployment did not succeed
inline constexpr int kExitTrouble = 2;   // could not find out: unreachable, unreadable file
inline constexpr int kExitTimedOut = 3;  // wait --timeout passed before the deployment ended

// How every command fails: caught once in run(), which prints "flotilla: " + what().
class CliError : public std::runtime_error {
 public:
  CliError(std::string message, int exit_code) : CliError(std::move(message), exit_code, "") {}
  // `transient_reason` non-empty: worth retrying in a polling loop (the coordinator may be
  // restarting); it is the short cause shown meanwhile, e.g. "connection refused".
  CliError(std::string message, int exit_code, std::string transient_reason)
      : std::runtime_error(std::move(message)),
        exit_code_(exit_code),
        transient_reason_(std::move(transient_reason)) {}
  int exitCode() const { return exit_code_; }
  bool transient() const { return !transient_reason_.empty(); }
  const std::string& transientReason() const { return transient_reason_; }

 private:
  int exit_code_;
  std::string transient_reason_;
};

// "/api/v1/deployments/ID", the id escaped.
std::string deploymentPath(const std::string& id);
// The deployment's events after sequence number `after` (0: from the first); `filters` is a
// query string already encoded ("type=stage.*&cluster=eu"), "" for every event.
std::string eventsPath(const std::string& id, long long after, const std::string& filters = "");

class Api;
// The agents (`GET /api/v1/agents`) to annotate a status view with; null when they cannot be
// had (the view is then shown without them, not refused).
nlohmann::json agentsForView(Api& api);

// Connect and request deadlines; tests shorten them.
struct ApiTimeouts {
  std::chrono::milliseconds connect{3000};
  std::chrono::milliseconds request{30000};  // whole request; streams have none
};

class Api {
 public:
  // `server`: "http://host:7780" (a trailing slash is dropped). `token` and `ca_file` may be "".
  Api(std::string server, std::string token, std::string ca_file, ApiTimeouts timeouts = {});

  // The URL as used in requests and messages: no trailing slash.
  const std::string& server() const { return server_; }

  // Raw requests, for commands that read a status themselves (submit's refused plan). The
  // Content-Type is sent even with an empty body: the coordinator takes changes only as JSON
  // or YAML.
  common::HttpResult rawPost(const std::string& path, std::string body, std::string content_type);
  // GET with `Accept: text/event-stream`, calling `handler` for each event, until the server
  // closes the stream or the handler returns false. If the server does not answer 200 with an
  // event stream (an error, or a server that ignores the Accept header), nothing is parsed and
  // the whole answer is returned in the reply's body.
  common::HttpResult stream(const std::string& path, const common::SseHandler& handler);

  // `deployment_id` is named in the message when the coordinator does not know it.
  nlohmann::json get(const std::string& path, const std::string& deployment_id = "");
  // The array at `key` of get(path): empty when it is missing or not an array, which a newer
  // or older coordinator may send.
  nlohmann::json getList(const std::string& path, const char* key,
                         const std::string& deployment_id = "");
  nlohmann::json post(const std::string& path, std::string body, const std::string& deployment_id);
  nlohmann::json del(const std::string& path);
  // For --json: the answer as the server ordered it (json would sort the keys), indented.
  std::string getPretty(const std::string& path, const std::string& deployment_id = "");

  // A 2xx answer's JSON object; anything else throws the CliError a user should read.
  nlohmann::json accept(const common::HttpResult& result, const char* method,
                        const std::string& path, const std::string& deployment_id);

 private:
  common::HttpResult send(common::HttpRequest::Method method, const std::string& path,
                          std::string body, std::string content_type);
  nlohmann::json parseBody(const common::HttpReply& reply);
  [[noreturn]] void failTransport(const common::HttpFailure& failure);
  [[noreturn]] void failStatus(const common::HttpReply& reply, const char* method,
                               const std::string& path, const std::string& deployment_id);

  std::string server_;
  common::HttpClient http_;
};

}  // namespace flotilla::cli
