// Client: the CLI's HTTP connection to the coordinator (libcurl), including SSE streaming.
#include "cli/client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>

namespace flotilla::cli {

namespace {

constexpr char kUserAgent[] = "flotilla-cli";

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

}  // namespace

// Everything one request needs while libcurl runs it; the write callback sees only this.
struct Client::Transfer {
  std::string url;
  bool post = false;
  bool del = false;
  std::string_view body;
  std::string_view content_type;
  std::string_view accept = "application/json";
  const SseHandler* handler = nullptr;  // set for streams

  CURL* curl = nullptr;
  bool mode_decided = false;
  bool parsing_events = false;
  bool stopped_by_handler = false;
  SseParser parser;
  Response response;
  char error[CURL_ERROR_SIZE] = {};
};

size_t Client::onWrite(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Client::Transfer*>(user);
  const size_t length = size * count;
  if (transfer->handler != nullptr && !transfer->mode_decided) {
    // Decided on the first bytes of the body, when status and headers are known: an error
    // answer to a stream request is a normal JSON body and must reach the caller intact.
    transfer->mode_decided = true;
    long status = 0;
    char* content_type = nullptr;
    curl_easy_getinfo(transfer->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(transfer->curl, CURLINFO_CONTENT_TYPE, &content_type);
    transfer->parsing_events = status == 200 && content_type != nullptr &&
                               startsWith(lower(content_type), "text/event-stream");
  }
  if (transfer->parsing_events) {
    if (!transfer->parser.feed(std::string_view(data, length), *transfer->handler)) {
      transfer->stopped_by_handler = true;
      return 0;  // makes libcurl abort the transfer with CURLE_WRITE_ERROR
    }
    return length;
  }
  transfer->response.body.append(data, length);
  return length;
}

namespace {

// libcurl must be initialised once per process before any handle exists, and not concurrently.
void initCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

bool SseParser::feed(std::string_view bytes, const SseHandler& handler) {
  buffer_.append(bytes);
  size_t start = 0;
  while (true) {
    size_t newline = buffer_.find('\n', start);
    if (newline == std::string::npos) break;
    std::string_view line(buffer_.data() + start, newline - start);
    start = newline + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      if (!dispatch(handler)) {
        buffer_.clear();
        return false;
      }
    } else {
      processLine(line);
    }
  }
  buffer_.erase(0, start);
  return true;
}

void SseParser::processLine(std::string_view line) {
  if (line.front() == ':') return;  // a comment, used by servers as a keep-alive
  std::string_view field = line;
  std::string_view value;
  if (auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "event") {
    event_.type = value;
  } else if (field == "data") {
    event_.data.append(value);
    event_.data.push_back('\n');
    has_data_ = true;
  } else if (field == "id") {
    event_.id = value;
  }
  // "retry" and unknown fields are ignored, as the format requires.
}

bool SseParser::dispatch(const SseHandler& handler) {
  if (!has_data_) {
    event_.type.clear();
    return true;
  }
  SseEvent event;
  event.id = event_.id;  // the last event id persists across events, per the format
  event.type = event_.type.empty() ? "message" : event_.type;
  event.data = std::move(event_.data);
  event.data.pop_back();  // the newline appended after the last data line
  event_.type.clear();
  event_.data.clear();
  has_data_ = false;
  return handler(event);
}

std::string urlEscape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0F]);
    }
  }
  return out;
}

Client::Client(std::string base_url, ClientTimeouts timeouts)
    : base_url_(std::move(base_url)), timeouts_(timeouts) {
  // "http://host:7780/" and "http://host:7780" are the same server; paths start with '/'.
  while (base_url_.size() > 1 && base_url_.back() == '/' &&
         base_url_[base_url_.size() - 2] != '/') {
    base_url_.pop_back();
  }
  initCurlOnce();
  curl_ = curl_easy_init();
}

Client::~Client() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

Result Client::get(std::string_view path) {
  Transfer transfer;
  transfer.url = base_url_ + std::string(path);
  return perform(transfer);
}

Result Client::post(std::string_view path, std::string_view body, std::string_view content_type) {
  Transfer transfer;
  transfer.url = base_url_ + std::string(path);
  transfer.post = true;
  transfer.body = body;
  transfer.content_type = content_type;
  return perform(transfer);
}

Result Client::del(std::string_view path) {
  Transfer transfer;
  transfer.url = base_url_ + std::string(path);
  transfer.del = true;
  transfer.content_type = "application/json";
  return perform(transfer);
}

Result Client::stream(std::string_view path, const SseHandler& handler) {
  Transfer transfer;
  transfer.url = base_url_ + std::string(path);
  transfer.accept = "text/event-stream";
  transfer.handler = &handler;
  return perform(transfer);
}

Result Client::perform(Transfer& transfer) {
  CURL* curl = static_cast<CURL*>(curl_);
  if (curl == nullptr) return TransportError{TransportError::Kind::kOther, "libcurl init failed"};
  // Reset drops the previous request's options but keeps the connection cache.
  curl_easy_reset(curl);
  transfer.curl = curl;
  const bool streaming = transfer.handler != nullptr;

  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, ("Accept: " + std::string(transfer.accept)).c_str());
  // Without this libcurl waits up to a second for "100 Continue" before sending large plans.
  headers = curl_slist_append(headers, "Expect:");
  if (transfer.post || transfer.del) {
    headers =
        curl_slist_append(headers, ("Content-Type: " + std::string(transfer.content_type)).c_str());
  }
  std::string authorization;
  if (!token_.empty()) {
    authorization = "Authorization: Bearer " + token_;
    headers = curl_slist_append(headers, authorization.c_str());
  }

  curl_easy_setopt(curl, CURLOPT_URL, transfer.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, kUserAgent);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, transfer.error);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onWrite);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeouts_.connect.count()));
  // A stream lasts as long as the deployment, so it gets no deadline; TCP keep-alive still
  // notices a peer that vanished without closing the connection.
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   streaming ? 0L : static_cast<long>(timeouts_.request.count()));
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 10L);
  // Only when given: the handle is reset before each transfer, which restores libcurl's default.
  if (!ca_file_.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file_.c_str());
  if (transfer.del) curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE");
  if (transfer.post) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, transfer.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(transfer.body.size()));
  }

  CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(headers);

  if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && transfer.stopped_by_handler)) {
    long status = 0;
    char* content_type = nullptr;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &content_type);
    transfer.response.status = status;
    if (content_type != nullptr) transfer.response.content_type = content_type;
    return std::move(transfer.response);
  }

  std::string message = transfer.error[0] != '\0' ? transfer.error : curl_easy_strerror(code);
  using Kind = TransportError::Kind;
  switch (code) {
    case CURLE_COULDNT_CONNECT: {
      // libcurl's own text ("Couldn't connect to server") hides why; the OS errno does not.
      long os_errno = 0;
      curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
      if (os_errno == ECONNREFUSED) {
        return TransportError{Kind::kConnectionRefused, "connection refused"};
      }
      if (os_errno != 0) {
        return TransportError{Kind::kCannotConnect,
                              lower(std::strerror(static_cast<int>(os_errno)))};
      }
      return TransportError{Kind::kCannotConnect, osReason(message)};
    }
    case CURLE_COULDNT_RESOLVE_HOST:
      return TransportError{Kind::kResolve, "cannot resolve the host name"};
    case CURLE_OPERATION_TIMEDOUT:
      // libcurl uses the same code for both deadlines; only its message tells them apart.
      if (startsWith(message, "Connection timed out") || startsWith(message, "Failed to connect") ||
          startsWith(message, "Connection timeout")) {
        return TransportError{Kind::kCannotConnect,
                              "no connection within " + seconds(timeouts_.connect)};
      }
      return TransportError{Kind::kTimeout, "no answer within " + seconds(timeouts_.request)};
    case CURLE_GOT_NOTHING:
      return TransportError{Kind::kOther, "the server closed the connection without answering"};
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return TransportError{Kind::kOther, "not a valid http:// or https:// URL"};
    default:
      return TransportError{Kind::kOther, osReason(message)};
  }
}

}  // namespace flotilla::cli
