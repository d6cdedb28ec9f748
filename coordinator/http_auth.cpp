// Before a request is routed, its body still unread: Host, bearer token, the route's permission
// (the table is permissions.cpp's), Content-Type of a change, the per-token rate limit and the
// body's encoding. Every refused change is audited (anonymous ones up to a rate per address).
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/crypto.hpp"
#include "coordinator/deployment_log.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using namespace http_internal;

namespace http_internal {

std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool isMutating(const std::string& method) { return method != "GET" && method != "HEAD"; }

common::StatusOr<std::map<std::string, std::string>> stringFields(
    const std::string& body, std::initializer_list<const char*> keys) {
  std::map<std::string, std::string> out;
  if (body.empty()) return out;
  json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return Status::InvalidArgument("request body must be a JSON object");
  }
  for (const auto& item : parsed.items()) {
    const std::string& key = item.key();
    bool known = false;
    std::string names;
    for (const char* k : keys) {
      known |= key == k;
      names += std::string(names.empty() ? "" : ", ") + "\"" + k + "\"";
    }
    if (!known)
      return Status::InvalidArgument("unknown field " + quoted(key) + " (known: " + names + ")");
    if (!item.value().is_string())
      return Status::InvalidArgument("\"" + key + "\" must be a string");
    out[key] = item.value().get<std::string>();
  }
  return out;
}

std::string clientOf(const httplib::Request& req) {
  if (req.remote_addr.find(':') != std::string::npos) {
    return "[" + req.remote_addr + "]:" + std::to_string(req.remote_port);
  }
  return req.remote_addr + ":" + std::to_string(req.remote_port);
}

}  // namespace http_internal

namespace {

// The media types a change may carry: a page on another origin can send text/plain or a form
// without asking first (a "simple" request), never these.
bool isJsonOrYaml(const std::string& content_type) {
  std::string type = lower(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  return type == "application/json" || type == "application/yaml" || type == "application/x-yaml" ||
         type == "text/yaml" || isSubmissionForm(type);
}

// "Bearer TOKEN" -> TOKEN, the token's characters limited to what our tokens (and RFC 6750's
// b64token) use; anything else is refused before it is hashed.
std::optional<std::string> bearerToken(const std::string& header) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() || header.size() > kScheme.size() + kMaxTokenBytes ||
      lower(header.substr(0, kScheme.size())) != kScheme) {
    return std::nullopt;
  }
  std::string token = header.substr(kScheme.size());
  const bool ok = std::all_of(token.begin(), token.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
           c == '~' || c == '+' || c == '/' || c == '=';
  });
  if (!ok) return std::nullopt;
  return token;
}

bool isJson(const std::string& content_type) {
  std::string type = lower(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  return type == "application/json";
}

}  // namespace

namespace http_internal {

std::optional<std::string> sessionCookie(const httplib::Request& req) {
  constexpr std::string_view kName = "flotilla_session=";
  for (size_t i = 0; i < req.get_header_value_count("Cookie"); ++i) {
    const std::string header = req.get_header_value("Cookie", i);
    for (size_t start = 0; start < header.size();) {
      size_t end = header.find(';', start);
      if (end == std::string::npos) end = header.size();
      std::string_view pair(header.data() + start, end - start);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      if (pair.starts_with(kName)) {
        std::string_view value = pair.substr(kName.size());
        // Our ids are hex; anything else is no session of ours.
        const bool ok = !value.empty() && value.size() <= kMaxSessionIdBytes &&
                        std::all_of(value.begin(), value.end(), [](char c) {
                          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                        });
        if (ok) return std::string(value);
        return std::nullopt;
      }
      start = end + 1;
    }
  }
  return std::nullopt;
}

}  // namespace http_internal

HttpApi::Gate HttpApi::gate(const httplib::Request& req) const {
  Gate g;
  g.route = findRoute(req.method, req.path);
  if (g.route != nullptr && g.route->permission == Permission::kPublic) return g;
  const std::string host = lower(req.get_header_value("Host"));
  if (req.get_header_value_count("Host") != 1 || !allowed_hosts_.count(host)) {
    g.status = 421;
    g.error = "this coordinator does not answer to Host " + quoted(host) +
              "; start it with --allowed-host NAME to accept that name";
    return g;
  }
  if (g.route != nullptr && g.route->permission == Permission::kAnyone) {
    // The login takes a token in its body: JSON only, so that no page elsewhere can post a form
    // to it.
    if (isMutating(req.method) && !isJson(req.get_header_value("Content-Type"))) {
      g.status = 415;
      g.error = "send the token as application/json: {\"token\": \"...\"}";
    }
    return g;
  }
  const size_t headers = req.get_header_value_count("Authorization");
  const std::optional<std::string> cookie = headers == 0 ? sessionCookie(req) : std::nullopt;
  if (headers == 0 && cookie) {
    // A dashboard session (the browser's cookie) stands for the token it was made from.
    auto session = sessions_.authenticate(*cookie, nowMs());
    if (!session) {
      g.status = 401;
      g.error =
          "the dashboard session has ended (logged out, expired, or its token revoked): "
          "log in again";
      return g;
    }
    g.actor = session->actor;
    g.csrf = session->csrf;
  } else if (headers == 0) {
    g.status = 401;
    g.error =
        "an API token is required: send 'Authorization: Bearer TOKEN' (flotilla reads "
        "FLOTILLA_TOKEN or --token-file)";
    return g;
  } else {
    auto token = headers == 1 ? bearerToken(req.get_header_value("Authorization")) : std::nullopt;
    if (!token) {
      g.status = 401;
      g.error = "malformed Authorization header: expected one 'Bearer TOKEN'";
      return g;
    }
    g.actor = tokens_.authenticate(*token);
    if (!g.actor) {
      g.status = 401;
      g.error = "the API token is not valid (unknown or revoked)";
      return g;
    }
  }
  g.actor->client = clientOf(req);
  if (g.route == nullptr) {
    g.status = 403;
    g.error = "no permission is defined for " + req.method + " " + quoted(req.path) +
              " (no such endpoint?)";
    return g;
  }
  auto role = parseRole(g.actor->role);
  if (!role || !roleGrants(*role, g.route->permission)) {
    g.status = 403;
    g.error = "token " + g.actor->name + " (" + g.actor->role + ") lacks the " +
              permissionName(g.route->permission) + " permission that " + req.method + " " +
              std::string(g.route->pattern) + " needs";
    return g;
  }
  if (isMutating(req.method) && !isJsonOrYaml(req.get_header_value("Content-Type"))) {
    g.status = 415;
    g.error = "a change must be sent as application/json or application/yaml (or a submission as " +
              std::string(kSubmissionMediaType) + "; got Content-Type " +
              quoted(req.get_header_value("Content-Type")) + ")";
    return g;
  }
  // A change made with a session cookie also carries the session's CSRF secret, which only
  // the dashboard's own page can read.
  if (g.csrf && isMutating(req.method) &&
      (req.get_header_value_count(kCsrfHeader) != 1 ||
       !common::constantTimeEqual(req.get_header_value(kCsrfHeader), *g.csrf))) {
    g.status = 403;
    g.error = std::string("a change made with a dashboard session must carry the session's ") +
              kCsrfHeader + " header";
    return g;
  }
  return g;
}

std::optional<Actor> HttpApi::caller(const httplib::Request& req, httplib::Response& res) const {
  Gate g = gate(req);
  if (g.status == 0 && g.actor) return g.actor;
  reply(res, g.status == 0 ? 401 : g.status,
        json{{"error", g.error.empty() ? "an API token is required" : g.error}});
  return std::nullopt;
}

// A refusal changes nothing, so its answer does not wait for its audit record to be durable:
// the record is appended on the engine thread and written with that turn's flush. (Waiting
// would hold every refused request until the store can write again, e.g. on a full disk, and
// let a flood of bad requests queue up behind fsyncs.)
void HttpApi::record(const AuditEntry& entry) {
  tasks_.post([this, entry] {
    Status s = audit_.append(entry, nowMs());
    if (!s.ok()) spdlog::error("audit: cannot record {}: {}", entry.action, s.toString());
  });
}

void HttpApi::refuseAudited(httplib::Response& res, AuditEntry entry, const Status& s) {
  replyError(res, s);
  entry.outcome = outcomeOf(s);
  entry.detail = s.message();
  record(entry);
}

bool HttpApi::refuseBeforeRouting(const httplib::Request& req, httplib::Response& res) {
  // Who, and whether they may, before the body is read: a refused request costs a header.
  Gate g = gate(req);
  if (g.status != 0) {
    if (g.status == 401) res.set_header("WWW-Authenticate", "Bearer realm=\"flotilla\"");
    reply(res, g.status, json{{"error", g.error}});
    std::chrono::milliseconds ignored{0};
    if (isMutating(req.method) && !g.actor &&
        !refusal_audit_.allow(clientOf(req), std::chrono::steady_clock::now(), &ignored)) {
      // An anonymous flood would grow the audit trail without bound: past a few refusals a
      // second per address they are counted, not recorded.
      metrics_.httpRefused("unaudited_anonymous");
    } else if (isMutating(req.method)) {
      record(AuditEntry{
          g.actor ? g.actor->name : "anonymous", g.actor ? g.actor->role : "",
          req.method + " " + (g.route ? std::string(g.route->pattern) : quoted(req.path)), "",
          std::to_string(g.status), clientOf(req), g.error});
    }
    return true;
  }
  std::chrono::milliseconds retry_after{0};
  // Anonymous changes (a login) are limited per address, the rest per token.
  const bool anonymous_change = !g.actor && g.route != nullptr &&
                                g.route->permission == Permission::kAnyone &&
                                isMutating(req.method);
  const std::string limited = g.actor ? g.actor->name : "address " + req.remote_addr;
  if ((g.actor || anonymous_change) &&
      !rate_.allow(limited, std::chrono::steady_clock::now(), &retry_after)) {
    metrics_.httpRefused("rate_limited");
    res.set_header("Retry-After", std::to_string((retry_after.count() + 999) / 1000));
    reply(res, 429,
          json{{"error", std::string("too many requests ") + (g.actor ? "with token " : "from ") +
                             limited + " (limit " + fmt::format("{:g}", limits_.rate_per_second) +
                             "/s): retry after " + std::to_string(retry_after.count()) + " ms"}});
    return true;
  }
  const std::string encoding = req.get_header_value("Content-Encoding");
  if (req.has_header("Transfer-Encoding")) {
    reply(res, 411,
          json{{"error", "chunked request bodies are not accepted: send a Content-Length"}});
  } else if (!encoding.empty() && encoding != "identity") {
    reply(res, 415, json{{"error", "compressed request bodies are not accepted"}});
  } else {
    return false;
  }
  return true;
}

}  // namespace flotilla::coordinator
