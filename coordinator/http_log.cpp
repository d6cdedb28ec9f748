// The deployment log over HTTP: `GET /api/v1/log` (one entry per deployment, filtered by
// service, environment and time, newest first, bounded), `POST /api/v1/deployments/{id}/notes`
// (a note, any time later, audited), and the release fields of a deployment's detail.
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "common/rules.hpp"
#include "coordinator/deployment_log.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"
#include "coordinator/wave_clusters.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

namespace {

// Longest query value the log takes (an RFC 3339 time is ~35 characters).
constexpr size_t kMaxQueryValue = 128;

StatusOr<LogQuery> logQuery(const httplib::Request& req) {
  for (const auto& param : req.params) {
    const std::string& key = param.first;
    if (key != "service" && key != "environment" && key != "since" && key != "limit") {
      return Status::InvalidArgument("unknown query parameter " + http_internal::quoted(key) +
                                     " (known: service, environment, since, limit)");
    }
    if (req.get_param_value_count(key.c_str()) > 1) {
      return Status::InvalidArgument(key + " may be given once");
    }
    if (param.second.size() > kMaxQueryValue) {
      return Status::InvalidArgument(key + " is longer than " + std::to_string(kMaxQueryValue) +
                                     " characters");
    }
  }
  LogQuery q;
  q.service = req.get_param_value("service");
  if (!q.service.empty() && !common::isValidName(q.service)) {
    return Status::InvalidArgument("service " + http_internal::quoted(q.service) +
                                   " is not a service name (" + common::kNameRule + ")");
  }
  q.environment = req.get_param_value("environment");
  if (!q.environment.empty() && !common::isValidLabelValue(q.environment)) {
    return Status::InvalidArgument("environment " + http_internal::quoted(q.environment) +
                                   " is not an environment label value");
  }
  if (req.has_param("since")) {
    auto since = parseSince(req.get_param_value("since"), nowMs());
    if (!since.ok()) return since.status();
    q.since_ms = *since;
  }
  if (req.has_param("limit")) {
    const std::string text = req.get_param_value("limit");
    const bool digits = !text.empty() && text.size() <= 4 &&
                        text.find_first_not_of("0123456789") == std::string::npos;
    const size_t limit = digits ? std::stoul(text) : 0;
    if (limit < 1 || limit > kMaxLogLimit) {
      return Status::InvalidArgument("limit must be a number from 1 to " +
                                     std::to_string(kMaxLogLimit) + ", not " +
                                     http_internal::quoted(text));
    }
    q.limit = limit;
  }
  return q;
}

}  // namespace

namespace http_internal {

void addReleaseLog(const Deployment& d, json& detail) {
  detail["changes"] = d.changes;
  detail["release_notes_url"] = d.release_notes_url;
  json notes = json::array();
  for (const auto& n : d.notes) {
    notes.push_back({{"text", n.text}, {"by", n.by}, {"at", rfc3339(n.at_ms)}});
  }
  detail["notes"] = std::move(notes);
  detail["finished_at"] = isFinal(d.state)
                              ? json(rfc3339(d.finished_ms > 0 ? d.finished_ms : d.updated_ms))
                              : json(nullptr);
}

}  // namespace http_internal

void HttpApi::logRoutes() {
  server_->Get("/api/v1/log", [this](const httplib::Request& req, httplib::Response& res) {
    auto query = logQuery(req);
    if (!query.ok()) return replyError(res, query.status());
    auto log = buildLog(store_, agentsByName(engine_.agentsSnapshot()), *query);
    if (!log.ok()) return replyError(res, log.status());
    reply(res, 200, *log);
  });

  // {"text": "..."}: appended to the deployment's notes, in any state. Through the engine
  // thread like every change of a deployment: durable with its event before the answer, and
  // never interleaved with the engine's own commits of a live deployment.
  server_->Post(R"(/api/v1/deployments/([^/]+)/notes)", [this](const httplib::Request& req,
                                                               httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    const std::string id = req.matches[1];
    AuditEntry entry{actor->name,   actor->role, "POST /api/v1/deployments/{id}/notes", id, "",
                     actor->client, ""};
    auto refuse = [&](const Status& s) { refuseAudited(res, entry, s); };
    Status valid = checkDeploymentId(id);
    if (!valid.ok()) return refuse(valid);
    // Whoever may steer the deployment (its environments) may note it.
    auto d = store_.loadDeployment(id);
    if (!d.ok()) return refuse(d.status());
    Status allowed = checkDeploymentEnvironments(*actor, *d, engine_.agentsSnapshot());
    if (!allowed.ok()) return refuse(allowed);
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || body.size() != 1 || !body.contains("text") ||
        !body["text"].is_string()) {
      return refuse(
          Status::InvalidArgument("request body must be a JSON object {\"text\": \"...\"}"));
    }
    const std::string text = body["text"].get<std::string>();
    // The text itself is checked by the machine (addNote); the audit keeps its start.
    entry.detail = text.substr(0, 200);
    auto done = audited<bool>(entry, [&](AuditEntry&) -> StatusOr<bool> {
      Status s = engine_.act(id, Action::kNote, text, *actor);
      if (!s.ok()) return s;
      return true;
    });
    if (!done.ok()) return replyError(res, done.status());
    auto after = store_.loadDeployment(id);
    if (!after.ok()) return replyError(res, after.status());
    json out{{"id", id}, {"notes_total", after->notes.size()}};
    addReleaseLog(*after, out);
    reply(res, 200, out);
  });
}

}  // namespace flotilla::coordinator
