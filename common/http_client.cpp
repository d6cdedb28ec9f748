// httpGet / httpPost over libcurl's easy interface, one handle per request.
#include "common/http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <mutex>

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

struct Sink {
  std::string* body;
  bool too_large = false;
};

size_t appendBounded(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  if (sink->body->size() + n > kMaxHttpBodyBytes) {
    sink->too_large = true;
    return 0;  // anything but n makes curl abort the transfer with CURLE_WRITE_ERROR
  }
  sink->body->append(data, n);
  return n;
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// `post`: the body to POST with its content type, or null for a GET.
StatusOr<HttpReply> perform(const std::string& url, const std::pair<std::string, std::string>* post,
                            std::chrono::milliseconds timeout) {
  const char* method = post != nullptr ? "POST " : "GET ";
  if (!curlReady()) return Status::Internal("curl_global_init failed");
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return Status::Internal("curl_easy_init failed");

  HttpReply reply;
  Sink sink{&reply.body};
  char error[CURL_ERROR_SIZE] = {0};
  // At least 1 ms: curl reads 0 as "no timeout".
  const long timeout_ms = std::max<long>(1, static_cast<long>(timeout.count()));
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  // Signals would be unsafe in a multi-threaded agent; without them curl needs the threaded
  // resolver for timeouts on names, which Debian's libcurl has.
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500  // 7.85.0 deprecated the bitmask form
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, appendBounded);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  if (post != nullptr) {
    headers.reset(curl_slist_append(nullptr, ("Content-Type: " + post->second).c_str()));
    // No "Expect: 100-continue" round trip: webhook bodies are small.
    headers.reset(curl_slist_append(headers.release(), "Expect:"));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, post->first.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(post->first.size()));
  }

  const CURLcode rc = curl_easy_perform(h);
  if (sink.too_large) {
    return Status::Unavailable("GET " + url + ": body over " + std::to_string(kMaxHttpBodyBytes) +
                               " bytes");
  }
  if (rc != CURLE_OK) {
    const std::string reason = error[0] != '\0' ? error : curl_easy_strerror(rc);
    return Status::Unavailable(method + url + ": " + reason);
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

}  // namespace

StatusOr<HttpReply> httpGet(const std::string& url, std::chrono::milliseconds timeout) {
  return perform(url, nullptr, timeout);
}

StatusOr<HttpReply> httpPost(const std::string& url, const std::string& body,
                             const std::string& content_type, std::chrono::milliseconds timeout) {
  const std::pair<std::string, std::string> post{body, content_type};
  return perform(url, &post, timeout);
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
