// Api: requests to the coordinator, and the messages for what can go wrong with them.
#include "cli/api.hpp"

#include <nlohmann/json.hpp>
#include <utility>

#include "cli/render.hpp"

#ifndef FLOTILLA_VERSION
#define FLOTILLA_VERSION "0.1.0"
#endif

namespace flotilla::cli {

using common::HttpFailure;
using common::HttpReply;
using common::HttpRequest;
using common::HttpResult;
using nlohmann::json;

namespace {

constexpr char kUserAgent[] = "flotilla-cli";
// The coordinator's lists are not paged; this only stops a --server that is not one from
// filling memory.
constexpr std::size_t kMaxAnswerBytes = 256u << 20;

common::HttpClientOptions clientOptions(std::string token, std::string ca_file,
                                        ApiTimeouts timeouts) {
  common::HttpClientOptions options;
  options.connect_timeout = timeouts.connect;
  options.timeout = timeouts.request;
  options.bearer_token = std::move(token);
  options.ca_file = std::move(ca_file);
  options.user_agent = kUserAgent;
  options.proxy_from_environment = true;
  options.tcp_keepalive = true;
  options.max_body_bytes = kMaxAnswerBytes;
  return options;
}

// "http://host:7780/" and "http://host:7780" are the same server; paths start with '/'.
std::string withoutTrailingSlash(std::string url) {
  while (url.size() > 1 && url.back() == '/' && url[url.size() - 2] != '/') url.pop_back();
  return url;
}

}  // namespace

std::string deploymentPath(const std::string& id) {
  return "/api/v1/deployments/" + common::urlEncode(id);
}

std::string eventsPath(const std::string& id, long long after, const std::string& filters) {
  std::string path = deploymentPath(id) + "/events";
  std::string query = after > 0 ? "after=" + std::to_string(after) : "";
  if (!filters.empty()) query += (query.empty() ? "" : "&") + filters;
  return query.empty() ? path : path + "?" + query;
}

json agentsForView(Api& api) {
  try {
    return api.getList("/api/v1/agents", "agents");
  } catch (const CliError&) {
    return nullptr;
  }
}

Api::Api(std::string server, std::string token, std::string ca_file, ApiTimeouts timeouts)
    : server_(withoutTrailingSlash(std::move(server))),
      http_(clientOptions(std::move(token), std::move(ca_file), timeouts)) {}

HttpResult Api::send(HttpRequest::Method method, const std::string& path, std::string body,
                     std::string content_type) {
  HttpRequest request;
  request.method = method;
  request.url = server_ + path;
  request.body = std::move(body);
  request.content_type = std::move(content_type);
  request.accept = "application/json";
  return http_.send(request);
}

HttpResult Api::rawPost(const std::string& path, std::string body, std::string content_type) {
  return send(HttpRequest::Method::kPost, path, std::move(body), std::move(content_type));
}

HttpResult Api::stream(const std::string& path, const common::SseHandler& handler) {
  HttpRequest request;
  request.url = server_ + path;
  request.accept = "text/event-stream";
  common::SseParser parser;
  return http_.stream(request, "text/event-stream",
                      [&](std::string_view chunk) { return parser.feed(chunk, handler); });
}

json Api::get(const std::string& path, const std::string& deployment_id) {
  return accept(send(HttpRequest::Method::kGet, path, "", ""), "GET", path, deployment_id);
}

json Api::getList(const std::string& path, const char* key, const std::string& deployment_id) {
  json body = get(path, deployment_id);
  auto it = body.find(key);
  return it != body.end() && it->is_array() ? std::move(*it) : json::array();
}

json Api::post(const std::string& path, std::string body, const std::string& deployment_id) {
  return accept(rawPost(path, std::move(body), "application/json"), "POST", path, deployment_id);
}

json Api::del(const std::string& path) {
  return accept(send(HttpRequest::Method::kDelete, path, "", "application/json"), "DELETE", path,
                "");
}

std::string Api::getPretty(const std::string& path, const std::string& deployment_id) {
  HttpResult result = send(HttpRequest::Method::kGet, path, "", "");
  accept(result, "GET", path, deployment_id);  // the same checks and messages
  return nlohmann::ordered_json::parse(std::get<HttpReply>(result).body)
      .dump(2, ' ', false, json::error_handler_t::replace);
}

json Api::accept(const HttpResult& result, const char* method, const std::string& path,
                 const std::string& deployment_id) {
  if (const auto* failure = std::get_if<HttpFailure>(&result)) failTransport(*failure);
  const auto& reply = std::get<HttpReply>(result);
  if (reply.status < 200 || reply.status >= 300) failStatus(reply, method, path, deployment_id);
  return parseBody(reply);
}

json Api::parseBody(const HttpReply& reply) {
  json body = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    throw CliError("the coordinator at " + server() +
                       " sent an answer this flotilla (" FLOTILLA_VERSION ") cannot read",
                   kExitTrouble);
  }
  return body;
}

void Api::failTransport(const HttpFailure& failure) {
  switch (failure.kind) {
    case HttpFailure::Kind::kTimeout:
      throw CliError("the coordinator at " + server() + " did not answer (" + failure.reason + ")",
                     kExitTrouble, failure.reason);
    case HttpFailure::Kind::kTooLarge:
      // Not worth retrying: the next answer will be as large.
      throw CliError("the server at " + server() + " sent an answer too large to read (" +
                         failure.reason + ")",
                     kExitTrouble);
    default:
      throw CliError("cannot reach the coordinator at " + server() + " (" + failure.reason +
                         "); is flotilla-coordinator running? Set --server or FLOTILLA_SERVER.",
                     kExitTrouble, failure.reason);
  }
}

void Api::failStatus(const HttpReply& reply, const char* method, const std::string& path,
                     const std::string& deployment_id) {
  // 502..504 are what proxies and restarting servers answer, 429 a token over its rate
  // limit; 500 is a real server bug.
  const std::string transient = (reply.status >= 502 && reply.status <= 504) || reply.status == 429
                                    ? "HTTP " + std::to_string(reply.status)
                                    : "";
  json body = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  std::string message = fieldText(body, "error");
  if (message.empty()) {
    // Not the coordinator's error format: most likely --server points somewhere else.
    std::string what = "the server at " + server() + " answered HTTP " +
                       std::to_string(reply.status) + " to " + method + " " + path;
    if (reply.status == 404) what += "; is --server pointing at a flotilla coordinator?";
    throw CliError(what, kExitFailed, transient);
  }
  if (reply.status == 404 && !deployment_id.empty()) {
    throw CliError("no deployment named " + deployment_id, kExitFailed);
  }
  if (reply.status == 401) {
    throw CliError(message +
                       ". Set FLOTILLA_TOKEN or --token-file FILE (an admin creates "
                       "tokens with 'flotilla tokens create'; the first one comes from "
                       "'flotilla-coordinator bootstrap-admin')",
                   kExitFailed);
  }
  throw CliError(message, kExitFailed, transient);
}

}  // namespace flotilla::cli
