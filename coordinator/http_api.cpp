// The coordinator's HTTP API: the server itself (threads, limits, TLS, timeouts, cpp-httplib's
// own error answers), binding and the allowed Host names, and routes(), the one list of what it
// serves. The routes and the checks before them live in the files http_api_internal.hpp names.
#include "coordinator/http_api.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/time_format.hpp"
#include "coordinator/http_api_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

namespace http_internal {
namespace {

// Longest piece of a request quoted back in an error message.
constexpr size_t kMaxQuotedBytes = 100;

}  // namespace

std::string quoted(const std::string& text) {
  std::string shown = text.substr(0, kMaxQuotedBytes);
  if (text.size() > kMaxQuotedBytes) shown += "...";
  return json(shown).dump(-1, ' ', false, json::error_handler_t::replace);
}

int httpStatus(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk:
      return 200;
    case Status::Code::kNotFound:
      return 404;
    case Status::Code::kInvalidArgument:
      return 400;
    case Status::Code::kFailedPrecondition:
    case Status::Code::kAlreadyExists:
      return 409;
    case Status::Code::kIoError:
    case Status::Code::kUnavailable:
      return 503;
    case Status::Code::kUnauthenticated:
      return 401;
    case Status::Code::kPermissionDenied:
      return 403;
    case Status::Code::kResourceExhausted:
      return 429;
    default:
      return 500;
  }
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Replies echo plan text and agent output, which need not be UTF-8.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                  "application/json");
}

void replyError(httplib::Response& res, const Status& s) {
  reply(res, httpStatus(s), json{{"error", s.message()}});
}

std::string rfc3339(int64_t ms) { return common::formatRfc3339(common::fromUnixMillis(ms)); }

std::string outcomeOf(const Status& s) { return s.ok() ? "ok" : std::to_string(httpStatus(s)); }

int64_t nowMs() { return common::toUnixMillis(std::chrono::system_clock::now()); }

}  // namespace http_internal

namespace {

// For the answers cpp-httplib gives by itself, with an empty body.
std::string builtinErrorMessage(const httplib::Request& req, int status) {
  switch (status) {
    case 400:
      return "malformed HTTP request";
    case 404:
      // cpp-httplib refuses unknown methods (400): the method is one of the few it knows.
      return "no such endpoint: " + req.method + " " + quoted(req.path);
    case 413:
      return "request body is over the " + std::to_string(kMaxBodyBytes) + " byte limit";
    case 414:
      return "request line is too long";
    default:
      return "HTTP status " + std::to_string(status);
  }
}

// "host" and "host:port" forms of a listen host ("::1" is written "[::1]" in a Host header).
std::string hostForm(std::string host) {
  host = lower(host);
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  return host;
}

bool hasPort(const std::string& name) {
  auto colon = name.rfind(':');
  auto bracket = name.rfind(']');
  return colon != std::string::npos && (bracket == std::string::npos || colon > bracket);
}

std::unique_ptr<httplib::Server> makeServer(const HttpOptions& options) {
  if (options.tls_cert.empty()) return std::make_unique<httplib::Server>();
  auto server =
      std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str());
  if (server->is_valid()) {
    SSL_CTX_set_min_proto_version(server->ssl_context(), TLS1_2_VERSION);
  }
  return server;
}

}  // namespace

HttpApi::HttpApi(Store& store, Engine& engine, Metrics& metrics, TaskQueue& tasks,
                 CommitSignal& commits, AuditLog& audit, Tokens& tokens, const HttpOptions& options)
    : server_(makeServer(options)),
      store_(store),
      engine_(engine),
      metrics_(metrics),
      tasks_(tasks),
      commits_(commits),
      audit_(audit),
      tokens_(tokens),
      sessions_(store, tokens),
      tls_(!options.tls_cert.empty()),
      policy_(options.policy),
      limits_(options.limits),
      watch_(metrics, options.limits),
      streams_(options.limits.max_streams, options.limits.streams_per_token),
      rate_(options.limits.rate_per_second, options.limits.rate_burst) {
  // A thread per connection, up to the cap (http_limits.hpp); the watchdog cuts connections
  // that hold one without sending a request.
  server_->new_task_queue = [limits = limits_] {
    return makeHttpWorkers(limits.min_threads, limits.max_connections).release();
  };
  server_->set_payload_max_length(kMaxBodyBytes);
  // cpp-httplib answers unknown paths (404), oversized bodies (413) and unparsable requests
  // (400) itself, with an empty body: give those the same {"error": ...} as every other error.
  httplib::Server::HandlerWithResponse builtin_errors = [](const httplib::Request& req,
                                                           httplib::Response& res) {
    if (!res.body.empty() || res.has_header("Content-Type")) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    reply(res, res.status, json{{"error", builtinErrorMessage(req, res.status)}});
    return httplib::Server::HandlerResponse::Handled;
  };
  server_->set_error_handler(std::move(builtin_errors));
  // cpp-httplib 0.11 applies the body limit to Content-Length only: a chunked body, or a
  // compressed one it inflates, would be buffered whatever its size. Our clients send neither,
  // so both are refused before the body is read. The unread body must not be taken for the
  // next request on the connection, and a handler cannot close it: one request per connection
  // (the CLI makes one or two per command; an event stream is one long request anyway).
  server_->set_keep_alive_max_count(1);
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // The request head arrived: the header deadline no longer applies to this connection.
    watch_.markRouted(req.remote_addr, req.remote_port);
    return refuseBeforeRouting(req, res) ? httplib::Server::HandlerResponse::Handled
                                         : httplib::Server::HandlerResponse::Unhandled;
  });
  server_->set_tcp_nodelay(true);
  // A request's first byte within the keep-alive wait, each later read within 5 s, and the
  // whole head within the header deadline (ConnectionWatch).
  server_->set_keep_alive_timeout(limits_.keep_alive_seconds);
  server_->set_read_timeout(5, 0);
  server_->set_write_timeout(10, 0);
  server_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.httpRequest(res.status);
    spdlog::debug("http {} {} -> {}", quoted(req.method), quoted(req.path), res.status);
  });
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("http handler failed: {}", what);
        reply(res, 500, json{{"error", "internal error: " + what}});
      });
  routes();
}

HttpApi::~HttpApi() = default;

StatusOr<int> HttpApi::bind(const std::string& host_port) {
  Status loaded = sessions_.load();
  if (!loaded.ok()) return loaded;
  if (!server_->is_valid()) {
    return Status::InvalidArgument(
        "cannot use the TLS certificate and key (--tls-cert, --tls-key): unreadable, not PEM, "
        "or the key does not match the certificate");
  }
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument("--listen-http wants HOST:PORT, got \"" + host_port + "\"");
  }
  std::string host = host_port.substr(0, colon);
  int port = 0;
  try {
    port = std::stoi(host_port.substr(colon + 1));
  } catch (const std::exception&) {
    return Status::InvalidArgument("--listen-http wants HOST:PORT, got \"" + host_port + "\"");
  }
  if (port == 0) {
    port = server_->bind_to_any_port(host);
    if (port <= 0) return Status::IoError("cannot listen for HTTP on " + host);
  } else if (!server_->bind_to_port(host, port)) {
    return Status::IoError("cannot listen for HTTP on " + host_port + " (in use?)");
  }
  port_ = port;
  if (!widenListenBacklog(port, 1024)) {
    spdlog::warn(
        "http: could not widen the listen backlog of port {}: bursts of connections "
        "will queue in SYN retransmissions",
        port);
  }
  for (const std::string& name :
       {hostForm(host), std::string("localhost"), std::string("127.0.0.1"), std::string("[::1]")}) {
    allowed_hosts_.insert(name + ":" + std::to_string(port));
  }
  return port;
}

void HttpApi::allowHost(const std::string& name) {
  std::string host = lower(name);
  if (hasPort(host)) {
    allowed_hosts_.insert(host);
    return;
  }
  host = hostForm(host);
  allowed_hosts_.insert(host);
  allowed_hosts_.insert(host + ":" + std::to_string(port_));
}

void HttpApi::serve() {
  watch_.start(port_);
  int not_serving = kNotServing;
  if (serve_state_.compare_exchange_strong(not_serving, kServing)) {  // unless stopped already
    server_->listen_after_bind();  // returns once every connection is done
  }
  serve_state_ = kServed;
  // Stopped only now: a client dripping its headers must not hold up the shutdown.
  watch_.stop();
}

void HttpApi::stop() {
  int not_serving = kNotServing;
  if (serve_state_.compare_exchange_strong(not_serving, kServed)) return;  // serve() won't listen
  // serve() is about to listen: cpp-httplib's stop() would be lost until it does.
  while (serve_state_ == kServing && !server_->is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
}

void HttpApi::routes() {
  server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    if (store_.failing()) {
      reply(res, 503, json{{"status", "store_failing"}, {"error", store_.failure()}});
      return;
    }
    reply(res, 200, json{{"status", "ok"}});
  });

  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    metrics_.setHttpStreams(streams_.open());
    res.set_content(metrics_.render(), "text/plain; version=0.0.4");
  });

  deploymentRoutes();  // http_deployments.cpp
  eventRoutes();       // http_events.cpp
  agentRoutes();       // http_agents.cpp
  tokenRoutes();       // http_tokens.cpp: API tokens and the audit trail
  policyRoutes();      // http_policy.cpp
  releaseRoutes();     // http_releases.cpp: CI's checks against a release
  freezeRoutes();      // http_freeze.cpp: incident freezes
  logRoutes();         // http_log.cpp: the deployment log and notes on deployments
  triggerRoutes();     // http_triggers.cpp: policy triggers
  sessionRoutes();     // http_session.cpp: the dashboard's login and logout
  uiRoutes();          // http_ui.cpp: the dashboard's files
}

}  // namespace flotilla::coordinator
