// Agents over HTTP: the registry as the engine sees it, and agent trust (admin): enroll (a
// one-time token binding a key to a cluster), revoke and remove. The engine binds keys to
// clusters; every change is audited.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "common/rules.hpp"
#include "common/time_format.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

namespace {

constexpr int64_t kDefaultEnrollTtlSeconds = 3600;
constexpr int64_t kMaxEnrollTtlSeconds = 7 * 24 * 3600;

}  // namespace

json http_internal::agentJson(const AgentView& v) {
  const AgentInfo& a = v.info;
  // Restored from the store and not heard from in this run: no last_seen, and the silence
  // counts from the coordinator's start.
  const bool heard = a.epoch != 0;
  return json{{"cluster", a.cluster},
              {"labels", a.labels},
              {"state", agentStateName(v.state)},
              {"last_seen", heard ? json(common::formatRfc3339(a.last_seen_wall)) : json(nullptr)},
              {"silent_ms", v.silent.count()},
              {"unknown_after_ms",
               v.unknown_after.count() > 0 ? json(v.unknown_after.count()) : json(nullptr)},
              {"lost_after_ms", v.lost_after.count()},
              {"agent_version", a.agent_version}};
}

void HttpApi::agentRoutes() {
  server_->Get("/api/v1/agents", [this](const httplib::Request&, httplib::Response& res) {
    json list = json::array();
    for (const auto& v : engine_.agentsNow()) list.push_back(agentJson(v));
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
    auto refuse = [&](const Status& s) { refuseAudited(res, entry, s); };
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
}

}  // namespace flotilla::coordinator
