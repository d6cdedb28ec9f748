// HttpClient over libcurl's easy interface, and the one-shot httpGet / httpPost built on it.
#include "common/http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>

namespace flotilla::common {

namespace {

// curl_global_init is not thread-safe and must run before any other curl call; the first
// request from any thread does it, once.
bool curlReady() {
  static std::once_flag once;
  static bool ready = false;
  std::call_once(once, [] { ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; });
  return ready;
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool startsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// libcurl's messages read "Failed to connect to host port 7780 after 0 ms: Connection refused";
// the part after the last ": " is the OS's reason, which is what a user can act on.
std::string osReason(std::string_view message) {
  auto pos = message.rfind(": ");
  std::string_view tail = pos == std::string_view::npos ? message : message.substr(pos + 2);
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.remove_suffix(1);
  return lower(tail);
}

std::string seconds(std::chrono::milliseconds ms) {
  auto count = ms.count();
  if (count % 1000 == 0) return std::to_string(count / 1000) + "s";
  return std::to_string(count) + "ms";
}

// At least 1 ms: curl reads 0 as "no timeout" (or its default for connecting).
long atLeastOneMs(std::chrono::milliseconds ms) {
  return std::max<long>(1, static_cast<long>(ms.count()));
}

const char* methodName(HttpRequest::Method method) {
  switch (method) {
    case HttpRequest::Method::kGet:
      return "GET";
    case HttpRequest::Method::kPost:
      return "POST";
    case HttpRequest::Method::kDelete:
      return "DELETE";
  }
  return "GET";
}

// Everything one request needs while libcurl runs it; the write callback sees only this.
struct Transfer {
  CURL* curl = nullptr;
  std::size_t max_body = 0;
  const ChunkHandler* on_chunk = nullptr;  // set for streams
  std::string_view stream_type;
  bool mode_decided = false;
  bool streaming = false;
  bool stopped_by_handler = false;
  bool too_large = false;
  HttpReply reply;
  char error[CURL_ERROR_SIZE] = {};
};

size_t onWrite(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t length = size * count;
  if (transfer->on_chunk != nullptr && !transfer->mode_decided) {
    // Decided on the first bytes of the body, when status and headers are known: an error
    // answer to a stream request is a normal body and must reach the caller intact.
    transfer->mode_decided = true;
    long status = 0;
    char* content_type = nullptr;
    curl_easy_getinfo(transfer->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(transfer->curl, CURLINFO_CONTENT_TYPE, &content_type);
    transfer->streaming = status == 200 && content_type != nullptr &&
                          startsWith(lower(content_type), lower(transfer->stream_type));
  }
  if (transfer->streaming) {
    if (!(*transfer->on_chunk)(std::string_view(data, length))) {
      transfer->stopped_by_handler = true;
      return 0;  // anything but `length` makes libcurl abort with CURLE_WRITE_ERROR
    }
    return length;
  }
  if (transfer->reply.body.size() + length > transfer->max_body) {
    transfer->too_large = true;
    return 0;
  }
  transfer->reply.body.append(data, length);
  return length;
}

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

}  // namespace

HttpClient::HttpClient(HttpClientOptions options)
    : options_(std::move(options)), curl_(curlReady() ? curl_easy_init() : nullptr) {}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpResult HttpClient::send(const HttpRequest& request) { return perform(request, nullptr, ""); }

HttpResult HttpClient::stream(const HttpRequest& request, std::string_view stream_type,
                              const ChunkHandler& on_chunk) {
  return perform(request, &on_chunk, stream_type);
}

HttpResult HttpClient::perform(const HttpRequest& request, const ChunkHandler* on_chunk,
                               std::string_view stream_type) {
  using Kind = HttpFailure::Kind;
  CURL* curl = static_cast<CURL*>(curl_);
  if (curl == nullptr) {
    return HttpFailure{Kind::kOther, "libcurl init failed", "curl_easy_init failed"};
  }
  // Reset drops the previous request's options but keeps the connection cache.
  curl_easy_reset(curl);
  Transfer transfer;
  transfer.curl = curl;
  transfer.max_body = options_.max_body_bytes;
  transfer.on_chunk = on_chunk;
  transfer.stream_type = stream_type;

  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto addHeader = [&headers](const std::string& line) {
    headers.reset(curl_slist_append(headers.release(), line.c_str()));
  };
  if (!request.accept.empty()) addHeader("Accept: " + request.accept);
  // Without this libcurl waits up to a second for "100 Continue" before sending a large body.
  addHeader("Expect:");
  if (!request.content_type.empty()) addHeader("Content-Type: " + request.content_type);
  if (!options_.bearer_token.empty()) {
    addHeader("Authorization: Bearer " + options_.bearer_token);
  }

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  // Signals would be unsafe in a multi-threaded agent; without them curl needs the threaded
  // resolver for timeouts on names, which Debian's libcurl has.
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, transfer.error);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onWrite);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, atLeastOneMs(options_.connect_timeout));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   on_chunk != nullptr ? 0L : atLeastOneMs(options_.timeout));
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500  // 7.85.0 deprecated the bitmask form
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  if (!options_.proxy_from_environment) {
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  }
  if (!options_.user_agent.empty()) {
    curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  }
  if (options_.tcp_keepalive) {
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 10L);
  }
  // Only when given: the handle is reset before each transfer, which restores libcurl's default.
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  if (request.method == HttpRequest::Method::kDelete) {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE");
  }
  if (request.method == HttpRequest::Method::kPost) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }

  const CURLcode code = curl_easy_perform(curl);

  if (transfer.too_large) {
    const std::string limit = "over " + std::to_string(options_.max_body_bytes) + " bytes";
    return HttpFailure{Kind::kTooLarge, "the answer is " + limit, "body " + limit};
  }
  if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && transfer.stopped_by_handler)) {
    char* content_type = nullptr;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &transfer.reply.status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &content_type);
    if (content_type != nullptr) transfer.reply.content_type = content_type;
    return std::move(transfer.reply);
  }

  const std::string message = transfer.error[0] != '\0' ? transfer.error : curl_easy_strerror(code);
  auto failure = [&message](Kind kind, std::string reason) {
    return HttpFailure{kind, std::move(reason), message};
  };
  switch (code) {
    case CURLE_COULDNT_CONNECT: {
      // libcurl's own text ("Couldn't connect to server") hides why; the OS errno does not.
      long os_errno = 0;
      curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
      if (os_errno == ECONNREFUSED) return failure(Kind::kConnectionRefused, "connection refused");
      if (os_errno != 0) {
        return failure(Kind::kCannotConnect, lower(std::strerror(static_cast<int>(os_errno))));
      }
      return failure(Kind::kCannotConnect, osReason(message));
    }
    case CURLE_COULDNT_RESOLVE_HOST:
      return failure(Kind::kResolve, "cannot resolve the host name");
    case CURLE_OPERATION_TIMEDOUT:
      // libcurl uses the same code for both deadlines; only its message tells them apart.
      if (startsWith(message, "Connection timed out") || startsWith(message, "Failed to connect") ||
          startsWith(message, "Connection timeout")) {
        return failure(Kind::kCannotConnect,
                       "no connection within " + seconds(options_.connect_timeout));
      }
      return failure(Kind::kTimeout, "no answer within " + seconds(options_.timeout));
    case CURLE_GOT_NOTHING:
      return failure(Kind::kOther, "the server closed the connection without answering");
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return failure(Kind::kOther, "not a valid http:// or https:// URL");
    default:
      return failure(Kind::kOther, osReason(message));
  }
}

namespace {

// A fresh client (and connection) per call, as the one-shot functions promise.
StatusOr<HttpReply> oneShot(HttpRequest request, std::chrono::milliseconds timeout) {
  if (!curlReady()) return Status::Internal("curl_global_init failed");
  HttpClientOptions options;
  options.connect_timeout = timeout;
  options.timeout = timeout;
  HttpClient client(std::move(options));
  HttpResult result = client.send(request);
  if (auto* failure = std::get_if<HttpFailure>(&result)) {
    return Status::Unavailable(std::string(methodName(request.method)) + " " + request.url + ": " +
                               failure->detail);
  }
  return std::get<HttpReply>(std::move(result));
}

}  // namespace

StatusOr<HttpReply> httpGet(const std::string& url, std::chrono::milliseconds timeout) {
  HttpRequest request;
  request.url = url;
  return oneShot(std::move(request), timeout);
}

StatusOr<HttpReply> httpPost(const std::string& url, const std::string& body,
                             const std::string& content_type, std::chrono::milliseconds timeout) {
  HttpRequest request;
  request.method = HttpRequest::Method::kPost;
  request.url = url;
  request.body = body;
  request.content_type = content_type;
  return oneShot(std::move(request), timeout);
}

std::string urlEncode(const std::string& text) {
  if (!curlReady()) return {};
  // libcurl 7.82+ ignores the handle argument.
  char* encoded = curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  if (encoded == nullptr) return {};
  std::string out(encoded);
  curl_free(encoded);
  return out;
}

}  // namespace flotilla::common
