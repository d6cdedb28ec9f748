// The coordinator's HTTP API.
#include "coordinator/http_api.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "common/plan.hpp"
#include "common/time_format.hpp"
#include "coordinator/permissions.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using nlohmann::json;

namespace {

constexpr size_t kMaxBodyBytes = 1024 * 1024;
constexpr size_t kEventPage = 1000;
constexpr size_t kDefaultAuditPage = 1000;
constexpr size_t kMaxAuditPage = 10000;
constexpr int64_t kDefaultEnrollTtlSeconds = 3600;
constexpr int64_t kMaxEnrollTtlSeconds = 7 * 24 * 3600;
// Longest piece of a request quoted back in an error message.
constexpr size_t kMaxQuotedBytes = 100;

// Request text quoted in a JSON error: escaped, invalid UTF-8 replaced (nlohmann throws on it
// otherwise), and cut short so a hostile path cannot make a huge reply.
std::string quoted(const std::string& text) {
  std::string shown = text.substr(0, kMaxQuotedBytes);
  if (text.size() > kMaxQuotedBytes) shown += "...";
  return json(shown).dump(-1, ' ', false, json::error_handler_t::replace);
}

// Deployment ids are "<service>-<n>"; anything else (traversal, control
// characters, huge strings) is refused before it reaches the store.
bool isDeploymentId(const std::string& id) {
  auto lower = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return !id.empty() && id.size() <= 80 && lower(id[0]) &&
         std::all_of(id.begin(), id.end(), [&](char c) { return lower(c) || c == '-'; });
}

Status checkDeploymentId(const std::string& id) {
  if (isDeploymentId(id)) return Status::Ok();
  return Status::InvalidArgument(quoted(id) +
                                 " is not a deployment id (expected e.g. checkout-12)");
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

void replyError(httplib::Response& res, const Status& s) {
  reply(res, httpStatus(s), json{{"error", s.message()}});
}

std::string rfc3339(int64_t ms) { return common::formatRfc3339(common::fromUnixMillis(ms)); }

json summaryJson(const Deployment& d) {
  json current = nullptr;
  if (d.wave_index < d.waves.size()) current = d.waves[d.wave_index].name;
  return json{{"id", d.id},
              {"service", d.plan.service},
              {"version", d.plan.version},
              {"state", deploymentStateName(d.state)},
              {"current_wave", current},
              {"wave_index", std::min(d.wave_index, d.waves.size())},
              {"waves_total", d.waves.size()},
              {"created_at", rfc3339(d.created_ms)},
              {"updated_at", rfc3339(d.updated_ms)},
              {"reason", d.reason}};
}

// A wave's approvals: who approved and when, and, while the wave has not started, how long the
// oldest of them still counts (null when there is none). Read against the wall clock: the
// engine drops what expired when it next looks at the wave.
void addApprovals(const Deployment& d, size_t i, int64_t now_ms, json& wave) {
  const common::Wave& pw = d.plan.waves[i];
  const WaveProgress& w = d.waves[i];
  json approvals = json::array();
  std::optional<int64_t> oldest;
  for (const auto& a : w.approvals) {
    approvals.push_back({{"by", a.by}, {"role", a.role}, {"at", rfc3339(a.at_ms)}});
    oldest = oldest ? std::min(*oldest, a.at_ms) : a.at_ms;
  }
  const bool waiting = w.state == WaveState::kPending || w.state == WaveState::kAwaitingApproval;
  wave["approvals_required"] = pw.approval_required ? pw.approvals_required : 0;
  wave["approvals"] = std::move(approvals);
  wave["approval_expires_in"] =
      waiting && oldest
          ? json(std::max<int64_t>(0, (*oldest + pw.approval_expires.count() - now_ms) / 1000))
          : json(nullptr);
}

json detailJson(const Deployment& d) {
  json out = summaryJson(d);
  out["submitted_by"] = d.submitted_by;
  out["plan_sha256"] = d.plan_sha256;
  const int64_t now_ms = common::toUnixMillis(std::chrono::system_clock::now());
  json waves = json::array();
  for (size_t i = 0; i < d.waves.size(); ++i) {
    const WaveProgress& w = d.waves[i];
    json clusters = json::array();
    for (const auto& c : w.clusters) {
      clusters.push_back({{"name", c.name},
                          {"state", clusterStateName(c.state)},
                          {"step", c.step ? stepName(*c.step) : ""},
                          {"attempt", c.attempt},
                          {"previous_version", c.previous_version},
                          {"message", c.message},
                          {"exit_code", c.exit_code ? json(*c.exit_code) : json(nullptr)}});
    }
    json wave = {{"name", w.name},
                 {"state", waveStateName(w.state)},
                 {"approval_required", d.plan.waves[i].approval_required},
                 {"approved", w.approved},
                 {"clusters", clusters}};
    addApprovals(d, i, now_ms, wave);
    waves.push_back(std::move(wave));
  }
  out["waves"] = waves;
  out["failure"] = d.failure ? json{{"cluster", d.failure->cluster},
                                    {"step", d.failure->step},
                                    {"message", d.failure->message}}
                             : json(nullptr);
  out["rollback_failed_clusters"] = d.rollback_failed;
  out["plan"] = json::parse(common::planToJson(d.plan));
  return out;
}

json eventJson(const StoredEvent& e) {
  return json{{"seq", e.seq},
              {"time", rfc3339(e.time_ms)},
              {"type", e.event.type},
              {"wave", e.event.wave},
              {"cluster", e.event.cluster},
              {"step", e.event.step},
              {"message", e.event.message}};
}

StatusOr<Deployment> loadById(Store& store, const std::string& id) {
  Status valid = checkDeploymentId(id);
  if (!valid.ok()) return valid;
  return store.loadDeployment(id);
}

uint64_t afterParam(const httplib::Request& req) {
  if (!req.has_param("after")) return 0;
  try {
    return std::stoull(req.get_param_value("after"));
  } catch (const std::exception&) {
    return 0;
  }
}

std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool isMutating(const std::string& method) { return method != "GET" && method != "HEAD"; }

// The media types a change may carry: a page on another origin can send text/plain or a form
// without asking first (a "simple" request), never these.
bool isJsonOrYaml(const std::string& content_type) {
  std::string type = lower(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  return type == "application/json" || type == "application/yaml" || type == "application/x-yaml" ||
         type == "text/yaml";
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

std::string clientOf(const httplib::Request& req) {
  if (req.remote_addr.find(':') != std::string::npos) {
    return "[" + req.remote_addr + "]:" + std::to_string(req.remote_port);
  }
  return req.remote_addr + ":" + std::to_string(req.remote_port);
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

json tokenJson(const TokenInfo& t) {
  return json{{"name", t.name},
              {"role", roleName(t.role)},
              {"envs", t.envs},
              {"created_at", rfc3339(t.created_ms)},
              {"created_by", t.created_by}};
}

json auditJson(const AuditRecord& r) {
  return json{{"seq", r.seq},
              {"time", rfc3339(r.time_ms)},
              {"actor", r.entry.actor},
              {"role", r.entry.role},
              {"action", r.entry.action},
              {"target", r.entry.target},
              {"outcome", r.entry.outcome},
              {"client", r.entry.client},
              {"detail", r.entry.detail}};
}

std::string outcomeOf(const Status& s) { return s.ok() ? "ok" : std::to_string(httpStatus(s)); }

int64_t nowMs() { return common::toUnixMillis(std::chrono::system_clock::now()); }

}  // namespace

// What gate() decided about a request.
struct HttpApi::Gate {
  int status = 0;              // 0: let it through; otherwise the answer
  std::string error;           // for the answer
  std::optional<Actor> actor;  // who, once the token checked out
  const Route* route = nullptr;
};

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
  const size_t headers = req.get_header_value_count("Authorization");
  if (headers == 0) {
    g.status = 401;
    g.error =
        "an API token is required: send 'Authorization: Bearer TOKEN' (flotilla reads "
        "FLOTILLA_TOKEN or --token-file)";
    return g;
  }
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
    g.error = "a change must be sent as application/json or application/yaml (got Content-Type " +
              quoted(req.get_header_value("Content-Type")) + ")";
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

template <typename T>
StatusOr<T> HttpApi::audited(AuditEntry entry, std::function<StatusOr<T>(AuditEntry&)> change) {
  return tasks_.call<T>([&]() -> StatusOr<T> {
    StatusOr<T> result = change(entry);
    entry.outcome = outcomeOf(result.status());
    if (!result.ok()) entry.detail = result.status().message();
    Status s = audit_.append(entry, nowMs());
    if (!s.ok()) spdlog::error("audit: cannot record {}: {}", entry.action, s.toString());
    return result;
  });
}

namespace {

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
      return httplib::Server::HandlerResponse::Handled;
    }
    std::chrono::milliseconds retry_after{0};
    if (g.actor && !rate_.allow(g.actor->name, std::chrono::steady_clock::now(), &retry_after)) {
      metrics_.httpRefused("rate_limited");
      res.set_header("Retry-After", std::to_string((retry_after.count() + 999) / 1000));
      reply(res, 429,
            json{{"error", "too many requests with token " + g.actor->name + " (limit " +
                               fmt::format("{:g}", limits_.rate_per_second) + "/s): retry after " +
                               std::to_string(retry_after.count()) + " ms"}});
      return httplib::Server::HandlerResponse::Handled;
    }
    const std::string encoding = req.get_header_value("Content-Encoding");
    if (req.has_header("Transfer-Encoding")) {
      reply(res, 411,
            json{{"error", "chunked request bodies are not accepted: send a Content-Length"}});
    } else if (!encoding.empty() && encoding != "identity") {
      reply(res, 415, json{{"error", "compressed request bodies are not accepted"}});
    } else {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    return httplib::Server::HandlerResponse::Handled;
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
  server_->listen_after_bind();  // returns once every connection is done
  // Stopped only now: a client dripping its headers must not hold up the shutdown.
  watch_.stop();
}

void HttpApi::stop() { server_->stop(); }

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

  server_->Post("/api/v1/deployments", [this](const httplib::Request& req, httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    const AuditEntry entry{actor->name,   actor->role, "POST /api/v1/deployments", "", "",
                           actor->client, ""};
    auto refuse = [&](int status, const json& body, std::string target) {
      reply(res, status, body);
      AuditEntry e = entry;
      e.target = std::move(target);
      e.outcome = std::to_string(status);
      e.detail = body.value("error", "");
      record(e);
    };
    common::PlanParseResult parsed = common::parsePlan(req.body);
    if (!parsed.plan) {
      metrics_.planRefused();
      json problems = json::array();
      for (const auto& p : parsed.problems) {
        problems.push_back({{"line", p.line}, {"column", p.column}, {"message", p.message}});
      }
      size_t n = parsed.problems.size();
      return refuse(400,
                    json{{"error", "plan refused: " + std::to_string(n) +
                                       (n == 1 ? " problem" : " problems")},
                         {"problems", problems}},
                    "");
    }
    Status allowed = checkPlanEnvironments(*actor, *parsed.plan, engine_.agentsSnapshot());
    if (!allowed.ok()) {
      return refuse(403, json{{"error", allowed.message()}}, parsed.plan->service);
    }
    if (store_.failing()) {
      // It could not be made durable: refuse it now rather than keep the caller waiting.
      return refuse(503,
                    json{{"error", "the store cannot write (" + store_.failure() +
                                       "); new deployments are refused and running ones wait "
                                       "until writes succeed again"}},
                    parsed.plan->service);
    }
    common::Plan plan = std::move(*parsed.plan);
    AuditEntry e = entry;
    e.target = plan.service;
    e.detail = plan.service + " " + plan.version;
    auto id = audited<std::string>(e, [&](AuditEntry& audit) -> StatusOr<std::string> {
      auto submitted = engine_.submit(std::move(plan), *actor);
      if (submitted.ok()) audit.target = *submitted;
      return submitted;
    });
    if (!id.ok()) return replyError(res, id.status());
    reply(res, 201, json{{"id", *id}});
  });

  server_->Get("/api/v1/deployments", [this](const httplib::Request&, httplib::Response& res) {
    auto summaries = store_.loadDeploymentSummaries();
    if (!summaries.ok()) return replyError(res, summaries.status());
    std::vector<Deployment>& all = *summaries;
    std::sort(all.begin(), all.end(), [](const Deployment& a, const Deployment& b) {
      return a.created_ms != b.created_ms ? a.created_ms > b.created_ms : a.id > b.id;
    });
    json list = json::array();
    for (const auto& d : all) list.push_back(summaryJson(d));
    reply(res, 200, json{{"deployments", list}});
  });

  server_->Get(R"(/api/v1/deployments/([^/]+))",
               [this](const httplib::Request& req, httplib::Response& res) {
                 auto d = loadById(store_, req.matches[1]);
                 if (!d.ok()) return replyError(res, d.status());
                 reply(res, 200, detailJson(*d));
               });

  server_->Get(R"(/api/v1/deployments/([^/]+)/events)", [this](const httplib::Request& req,
                                                               httplib::Response& res) {
    std::string id = req.matches[1];
    auto d = loadById(store_, id);
    if (!d.ok()) return replyError(res, d.status());
    uint64_t after = afterParam(req);
    if (req.get_header_value("Accept").find("text/event-stream") == std::string::npos) {
      auto events = store_.events(id, after, kEventPage * 100);
      if (!events.ok()) return replyError(res, events.status());
      json list = json::array();
      for (const auto& e : *events) list.push_back(eventJson(e));
      reply(res, 200, json{{"events", list}});
      return;
    }
    // A stream holds its connection's thread for as long as it lasts: capped in all and per
    // token, past which the caller is told to come back (503) rather than queued.
    auto actor = caller(req, res);
    if (!actor) return;
    auto slot = streams_.acquire(actor->name);
    if (!slot) {
      metrics_.httpRefused("streams_full");
      res.set_header("Retry-After", "5");
      reply(res, 503,
            json{{"error", "too many event streams open (at most " +
                               std::to_string(limits_.streams_per_token) + " per token, " +
                               std::to_string(limits_.max_streams) +
                               " in all): retry later, or poll ?after=SEQ"}});
      return;
    }
    watch_.markStreaming(req.remote_addr, req.remote_port);
    res.set_header("Cache-Control", "no-cache");
    auto last = std::make_shared<uint64_t>(after);
    res.set_chunked_content_provider(
        "text/event-stream", [this, id, last, slot](size_t, httplib::DataSink& sink) {
          (void)slot;  // held for as long as the stream lasts
          uint64_t seen = commits_.current();
          auto events = store_.events(id, *last, kEventPage);
          if (!events.ok()) return false;
          for (const auto& e : *events) {
            std::string frame = "id: " + std::to_string(e.seq) + "\nevent: " + e.event.type +
                                "\ndata: " + eventJson(e).dump() + "\n\n";
            if (!sink.write(frame.data(), frame.size())) return false;
            *last = e.seq;
          }
          if (events->size() == kEventPage) return true;  // more to send right away
          auto d = store_.loadDeployment(id);
          if (!d.ok()) return false;
          if (isFinal(d->state) && d->last_event_seq <= *last) {
            sink.done();
            return true;
          }
          if (commits_.stopping()) return false;
          // Wake on the next commit; the timeout doubles as a keep-alive.
          if (commits_.waitAfter(seen, std::chrono::seconds(15)) == seen) {
            static const char kKeepAlive[] = ": keep-alive\n\n";
            if (!sink.write(kKeepAlive, sizeof(kKeepAlive) - 1)) return false;
          }
          return true;
        });
  });

  server_->Post(
      R"(/api/v1/deployments/([^/]+)/(approve|rollback|pause|resume|cancel))",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto actor = caller(req, res);
        if (!actor) return;
        std::string id = req.matches[1];
        std::string verb = req.matches[2];
        AuditEntry entry{actor->name, actor->role, "POST /api/v1/deployments/{id}/" + verb,
                         id,          "",          actor->client,
                         ""};
        auto refuse = [&](const Status& s) {
          replyError(res, s);
          AuditEntry e = entry;
          e.outcome = outcomeOf(s);
          e.detail = s.message();
          record(e);
        };
        Status valid = checkDeploymentId(id);
        if (!valid.ok()) return refuse(valid);
        std::string argument;
        if (!req.body.empty()) {
          json body = json::parse(req.body, nullptr, false);
          if (body.is_discarded() || !body.is_object()) {
            return refuse(Status::InvalidArgument("request body must be a JSON object"));
          }
          const char* key = verb == "approve" ? "wave" : "reason";
          if (body.contains(key)) {
            if (!body[key].is_string()) {
              return refuse(
                  Status::InvalidArgument(std::string("\"") + key + "\" must be a string"));
            }
            argument = body[key].get<std::string>();
          }
        }
        // The environment rule is checked on the stored deployment: what its waves reached or
        // will reach, or for an approval the wave approved.
        auto d = store_.loadDeployment(id);
        if (!d.ok()) return refuse(d.status());
        std::optional<size_t> wave;
        if (verb == "approve") {
          wave = d->wave_index;
          for (size_t i = 0; i < d->waves.size(); ++i) {
            if (!argument.empty() && d->waves[i].name == argument) wave = i;
          }
        }
        Status allowed = checkDeploymentEnvironments(*actor, *d, engine_.agentsSnapshot(), wave);
        if (!allowed.ok()) return refuse(allowed);
        Action action = verb == "approve"    ? Action::kApprove
                        : verb == "rollback" ? Action::kRollback
                        : verb == "pause"    ? Action::kPause
                        : verb == "resume"   ? Action::kResume
                                             : Action::kCancel;
        entry.detail = argument;
        auto done = audited<bool>(entry, [&](AuditEntry&) -> StatusOr<bool> {
          Status s = engine_.act(id, action, argument, *actor);
          if (!s.ok()) return s;
          return true;
        });
        if (!done.ok()) return replyError(res, done.status());
        auto after = store_.loadDeployment(id);
        if (!after.ok()) return replyError(res, after.status());
        reply(res, 200, detailJson(*after));
      });

  server_->Get("/api/v1/agents", [this](const httplib::Request&, httplib::Response& res) {
    json list = json::array();
    for (const auto& a : engine_.agentsSnapshot()) {
      list.push_back({{"cluster", a.cluster},
                      {"labels", a.labels},
                      {"state", agentStateName(a.state)},
                      // Restored from the store and not heard from in this run: unknown.
                      {"last_seen", a.epoch == 0 ? json(nullptr)
                                                 : json(common::formatRfc3339(a.last_seen_wall))},
                      {"agent_version", a.agent_version}});
    }
    reply(res, 200, json{{"agents", list}});
  });

  // ---- Agent trust (the engine binds keys to clusters) ----------------------------------------

  server_->Post(R"(/api/v1/agents/([^/]+)/(enroll|revoke))", [this](const httplib::Request& req,
                                                                    httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    const std::string cluster = req.matches[1];
    const std::string verb = req.matches[2];
    AuditEntry entry{actor->name, actor->role, "POST /api/v1/agents/{cluster}/" + verb,
                     cluster,     "",          actor->client,
                     ""};
    auto refuse = [&](const Status& s) {
      replyError(res, s);
      entry.outcome = outcomeOf(s);
      entry.detail = s.message();
      record(entry);
    };
    if (!common::isValidName(cluster)) {
      return refuse(Status::InvalidArgument(quoted(cluster) + " is not a cluster name"));
    }
    if (verb == "revoke") {
      auto done = audited<bool>(entry, [&](AuditEntry&) -> StatusOr<bool> {
        Status s = engine_.revokeAgent(cluster, *actor);
        if (!s.ok()) return s;
        return true;
      });
      if (!done.ok()) return replyError(res, done.status());
      reply(res, 200, json{{"cluster", cluster}, {"revoked", true}});
      return;
    }
    int64_t ttl = kDefaultEnrollTtlSeconds;
    if (!req.body.empty()) {
      json body = json::parse(req.body, nullptr, false);
      if (!body.is_object()) {
        return refuse(Status::InvalidArgument("request body must be a JSON object"));
      }
      if (body.contains("ttl_seconds")) {
        if (!body["ttl_seconds"].is_number_integer()) {
          return refuse(Status::InvalidArgument("\"ttl_seconds\" must be an integer"));
        }
        ttl = body["ttl_seconds"].get<int64_t>();
      }
    }
    if (ttl < 1 || ttl > kMaxEnrollTtlSeconds) {
      return refuse(Status::InvalidArgument("\"ttl_seconds\" must be between 1 and " +
                                            std::to_string(kMaxEnrollTtlSeconds)));
    }
    entry.detail = "ttl " + std::to_string(ttl) + "s";
    auto made = audited<Enrollment>(entry, [&](AuditEntry&) {
      return engine_.createEnrollment(cluster, std::chrono::seconds(ttl), *actor);
    });
    if (!made.ok()) return replyError(res, made.status());
    reply(res, 201,
          json{{"token", made->token},
               {"cluster", cluster},
               {"expires_at", rfc3339(made->expires_ms)}});
  });

  server_->Delete(
      R"(/api/v1/agents/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
        auto actor = caller(req, res);
        if (!actor) return;
        const std::string cluster = req.matches[1];
        AuditEntry entry{actor->name,   actor->role, "DELETE /api/v1/agents/{cluster}", cluster, "",
                         actor->client, ""};
        if (!common::isValidName(cluster)) {
          Status s = Status::InvalidArgument(quoted(cluster) + " is not a cluster name");
          replyError(res, s);
          entry.outcome = outcomeOf(s);
          entry.detail = s.message();
          return record(entry);
        }
        auto done = audited<bool>(entry, [&](AuditEntry&) -> StatusOr<bool> {
          Status s = engine_.removeAgent(cluster, *actor);
          if (!s.ok()) return s;
          return true;
        });
        if (!done.ok()) return replyError(res, done.status());
        reply(res, 200, json{{"cluster", cluster}, {"removed", true}});
      });

  // ---- API tokens ---------------------------------------------------------------------------

  server_->Get("/api/v1/tokens", [this](const httplib::Request&, httplib::Response& res) {
    json list = json::array();
    for (const auto& t : tokens_.list()) list.push_back(tokenJson(t));
    reply(res, 200, json{{"tokens", list}});
  });

  server_->Post("/api/v1/tokens", [this](const httplib::Request& req, httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    AuditEntry entry{actor->name, actor->role, "POST /api/v1/tokens", "", "", actor->client, ""};
    auto refuse = [&](const Status& s) {
      replyError(res, s);
      entry.outcome = outcomeOf(s);
      entry.detail = s.message();
      record(entry);
    };
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object()) {
      return refuse(Status::InvalidArgument(
          "request body must be a JSON object {\"name\", \"role\", \"envs\"}"));
    }
    if (!body.contains("name") || !body["name"].is_string() || !body.contains("role") ||
        !body["role"].is_string()) {
      return refuse(Status::InvalidArgument("\"name\" and \"role\" are required strings"));
    }
    const std::string name = body["name"].get<std::string>();
    entry.target = name.substr(0, 63);
    auto role = parseRole(body["role"].get<std::string>());
    if (!role) {
      return refuse(
          Status::InvalidArgument("\"role\" must be one of viewer, deployer, approver, admin"));
    }
    std::vector<std::string> envs;
    if (body.contains("envs")) {
      if (!body["envs"].is_array()) {
        return refuse(Status::InvalidArgument("\"envs\" must be a list of environment names"));
      }
      for (const auto& e : body["envs"]) {
        if (!e.is_string()) {
          return refuse(Status::InvalidArgument("\"envs\" must be a list of environment names"));
        }
        envs.push_back(e.get<std::string>());
      }
    }
    Status valid = validateToken(name, *role, envs);
    if (!valid.ok()) return refuse(valid);
    std::string envs_text;
    for (const auto& e : envs) envs_text += (envs_text.empty() ? "" : ",") + e;
    entry.detail =
        std::string("role ") + roleName(*role) + (envs.empty() ? "" : " envs " + envs_text);
    // The secret is in the answer only: never in the audit record or a log line.
    auto secret = audited<std::string>(entry, [&](AuditEntry&) {
      return tokens_.create(name, *role, envs, actor->name, nowMs());
    });
    if (!secret.ok()) return replyError(res, secret.status());
    reply(res, 201,
          json{{"name", name}, {"role", roleName(*role)}, {"envs", envs}, {"token", *secret}});
  });

  server_->Delete(
      R"(/api/v1/tokens/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
        auto actor = caller(req, res);
        if (!actor) return;
        const std::string name = req.matches[1];
        AuditEntry entry{
            actor->name,   actor->role, "DELETE /api/v1/tokens/{name}", name.substr(0, 63), "",
            actor->client, ""};
        auto done = audited<bool>(entry, [&](AuditEntry&) -> StatusOr<bool> {
          if (!common::isValidName(name)) {
            return Status::InvalidArgument(quoted(name) + " is not a token name");
          }
          // Losing the last admin would leave only bootstrap-admin on a stopped coordinator.
          size_t admins = 0;
          bool target_admin = false;
          for (const auto& t : tokens_.list()) {
            if (t.role != Role::kAdmin) continue;
            ++admins;
            target_admin |= t.name == name;
          }
          if (target_admin && admins == 1) {
            return Status::FailedPrecondition(name +
                                              " is the last admin token; create another "
                                              "admin token before revoking it");
          }
          Status s = tokens_.revoke(name);
          if (!s.ok()) return s;
          return true;
        });
        if (!done.ok()) return replyError(res, done.status());
        reply(res, 200, json{{"name", name}, {"revoked", true}});
      });

  // ---- Audit trail --------------------------------------------------------------------------

  server_->Get("/api/v1/audit", [this](const httplib::Request& req, httplib::Response& res) {
    int64_t since = 0;
    if (req.has_param("since")) {
      auto parsed = common::parseRfc3339(req.get_param_value("since"));
      if (!parsed) {
        return replyError(res, Status::InvalidArgument(
                                   "since must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"));
      }
      since = *parsed;
    }
    size_t limit = kDefaultAuditPage;
    if (req.has_param("limit")) {
      const std::string text = req.get_param_value("limit");
      const bool digits =
          !text.empty() && text.size() <= 6 &&
          std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!digits || std::stoul(text) == 0 || std::stoul(text) > kMaxAuditPage) {
        return replyError(res, Status::InvalidArgument("limit must be between 1 and " +
                                                       std::to_string(kMaxAuditPage)));
      }
      limit = std::stoul(text);
    }
    auto records = audit_.list(since, limit);
    if (!records.ok()) return replyError(res, records.status());
    json list = json::array();
    for (const auto& r : *records) list.push_back(auditJson(r));
    reply(res, 200, json{{"records", list}});
  });

  server_->Get("/api/v1/audit/verify", [this](const httplib::Request&, httplib::Response& res) {
    auto verdict = audit_.verify();
    if (!verdict.ok()) return replyError(res, verdict.status());
    reply(res, 200,
          json{{"ok", verdict->ok},
               {"records", verdict->records},
               {"first_bad", verdict->first_bad ? json(*verdict->first_bad) : json(nullptr)},
               {"problem", verdict->problem}});
  });
}

}  // namespace flotilla::coordinator
