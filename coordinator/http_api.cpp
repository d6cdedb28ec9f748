// The coordinator's HTTP API.
#include "coordinator/http_api.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/plan.hpp"
#include "common/time_format.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using nlohmann::json;

namespace {

constexpr size_t kMaxBodyBytes = 1024 * 1024;
constexpr size_t kEventPage = 1000;
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

}  // namespace

HttpApi::HttpApi(Store& store, Engine& engine, Metrics& metrics, TaskQueue& tasks,
                 CommitSignal& commits, int threads)
    : server_(std::make_unique<httplib::Server>()),
      store_(store),
      engine_(engine),
      metrics_(metrics),
      tasks_(tasks),
      commits_(commits) {
  // Event streams hold a thread each; keep room for them and for short requests.
  server_->new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
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
  server_->set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
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
  server_->set_read_timeout(10, 0);
  server_->set_write_timeout(10, 0);
  server_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.httpRequest(res.status);
    spdlog::debug("http {} {} -> {}", req.method, req.path, res.status);
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
    int bound = server_->bind_to_any_port(host);
    if (bound <= 0) return Status::IoError("cannot listen for HTTP on " + host);
    return bound;
  }
  if (!server_->bind_to_port(host, port)) {
    return Status::IoError("cannot listen for HTTP on " + host_port + " (in use?)");
  }
  return port;
}

void HttpApi::serve() { server_->listen_after_bind(); }
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
    res.set_content(metrics_.render(), "text/plain; version=0.0.4");
  });

  server_->Post("/api/v1/deployments", [this](const httplib::Request& req, httplib::Response& res) {
    common::PlanParseResult parsed = common::parsePlan(req.body);
    if (!parsed.plan) {
      metrics_.planRefused();
      json problems = json::array();
      for (const auto& p : parsed.problems) {
        problems.push_back({{"line", p.line}, {"column", p.column}, {"message", p.message}});
      }
      size_t n = parsed.problems.size();
      reply(res, 400,
            json{{"error",
                  "plan refused: " + std::to_string(n) + (n == 1 ? " problem" : " problems")},
                 {"problems", problems}});
      return;
    }
    if (store_.failing()) {
      // It could not be made durable: refuse it now rather than keep the caller waiting.
      reply(res, 503,
            json{{"error", "the store cannot write (" + store_.failure() +
                               "); new deployments are refused and running ones wait until "
                               "writes succeed again"}});
      return;
    }
    common::Plan plan = std::move(*parsed.plan);
    auto id =
        tasks_.call<std::string>([&] { return engine_.submit(std::move(plan), Actor::system()); });
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
    res.set_header("Cache-Control", "no-cache");
    auto last = std::make_shared<uint64_t>(after);
    res.set_chunked_content_provider(
        "text/event-stream", [this, id, last](size_t, httplib::DataSink& sink) {
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
        std::string id = req.matches[1];
        std::string verb = req.matches[2];
        Status valid = checkDeploymentId(id);
        if (!valid.ok()) return replyError(res, valid);
        std::string argument;
        if (!req.body.empty()) {
          json body = json::parse(req.body, nullptr, false);
          if (body.is_discarded() || !body.is_object()) {
            return replyError(res, Status::InvalidArgument("request body must be a JSON object"));
          }
          const char* key = verb == "approve" ? "wave" : "reason";
          if (body.contains(key)) {
            if (!body[key].is_string()) {
              return replyError(
                  res, Status::InvalidArgument(std::string("\"") + key + "\" must be a string"));
            }
            argument = body[key].get<std::string>();
          }
        }
        Action action = verb == "approve"    ? Action::kApprove
                        : verb == "rollback" ? Action::kRollback
                        : verb == "pause"    ? Action::kPause
                        : verb == "resume"   ? Action::kResume
                                             : Action::kCancel;
        auto done = tasks_.call<bool>([&]() -> StatusOr<bool> {
          // Until API tokens name the caller: someone, never the coordinator itself (which may
          // not approve).
          Status s = engine_.act(id, action, argument, Actor{"anonymous", "", {}, req.remote_addr});
          if (!s.ok()) return s;
          return true;
        });
        if (!done.ok()) return replyError(res, done.status());
        auto d = store_.loadDeployment(id);
        if (!d.ok()) return replyError(res, d.status());
        reply(res, 200, detailJson(*d));
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
}

}  // namespace flotilla::coordinator
