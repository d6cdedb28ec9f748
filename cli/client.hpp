// Client: the CLI's HTTP connection to the coordinator (libcurl), including SSE streaming.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <variant>

namespace flotilla::cli {

// An HTTP answer, whatever its status: deciding what a 404 or 409 means is the caller's job.
struct Response {
  long status = 0;
  std::string content_type;
  std::string body;
};

// The request never produced an HTTP answer.
struct TransportError {
  enum class Kind {
    kConnectionRefused,  // nothing listens there: the coordinator is most likely not running
    kCannotConnect,      // unreachable host, connect timeout, ...
    kResolve,            // the host name does not resolve
    kTimeout,            // connected, but no complete answer in time
    kOther,
  };
  Kind kind = Kind::kOther;
  std::string reason;  // short, lower case, fit for "(...)" in a user message
};

using Result = std::variant<Response, TransportError>;

// One Server-Sent Event.
struct SseEvent {
  std::string id;
  std::string type;  // "message" when the server sent no "event:" field
  std::string data;  // several data lines are joined with '\n'
};

// Return false to stop the stream early.
using SseHandler = std::function<bool(const SseEvent&)>;

// Incremental SSE parser (WHATWG event-stream format), separate from the transport so that it
// can be tested with arbitrary chunk boundaries.
class SseParser {
 public:
  // Consumes bytes as they arrive; calls `handler` for each complete event. Returns false as soon
  // as the handler asks to stop.
  bool feed(std::string_view bytes, const SseHandler& handler);

 private:
  bool dispatch(const SseHandler& handler);
  void processLine(std::string_view line);

  std::string buffer_;  // an incomplete trailing line
  SseEvent event_;
  bool has_data_ = false;
};

// Percent-encodes one URL path segment or query value (RFC 3986 unreserved characters pass).
std::string urlEscape(std::string_view text);

struct ClientTimeouts {
  std::chrono::milliseconds connect{3000};
  std::chrono::milliseconds request{30000};  // whole request; streams have none
};

// A blocking client bound to one coordinator. One curl handle is reused so that polling loops
// keep their connection alive instead of reconnecting every 500 ms.
class Client {
 public:
  explicit Client(std::string base_url, ClientTimeouts timeouts = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The URL as used in requests and messages: no trailing slash.
  const std::string& baseUrl() const { return base_url_; }

  // Sent as "Authorization: Bearer TOKEN" with every request ("" = none).
  void setToken(std::string token) { token_ = std::move(token); }
  // PEM file of the CA(s) that vouch for an https:// coordinator ("" = the system's store).
  void setCaFile(std::string path) { ca_file_ = std::move(path); }

  Result get(std::string_view path);
  // The Content-Type is sent even with an empty body: the coordinator takes changes only as
  // JSON or YAML.
  Result post(std::string_view path, std::string_view body, std::string_view content_type);
  Result del(std::string_view path);

  // GET with `Accept: text/event-stream`, without a request timeout, calling `handler` for each
  // event. Returns when the server closes the stream or the handler returns false. If the
  // server does not answer 200 with an event stream (an error, or a server that ignores the
  // Accept header), nothing is parsed and the whole answer is returned in the Response body.
  Result stream(std::string_view path, const SseHandler& handler);

 private:
  struct Transfer;
  Result perform(Transfer& transfer);
  static size_t onWrite(char* data, size_t size, size_t count, void* transfer);

  std::string base_url_;
  std::string token_;
  std::string ca_file_;
  ClientTimeouts timeouts_;
  void* curl_;  // CURL*, kept out of this header so that includers need no curl headers
};

}  // namespace flotilla::cli
