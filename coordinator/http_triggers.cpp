// Policy triggers over HTTP: `POST /api/v1/triggers/{name}` with {"version": "1.4.3"} (and
// optionally "changes" and "release_notes_url", as the submission form) starts the trigger's
// plan template (read with the policy, coordinator/policy_file.hpp) with that version, with no
// human: submitted by the calling token, which needs the deploy permission (permissions.cpp)
// and must be one of the environment's deployers. Every wave must land in the trigger's
// environment. The submission's rules (clusters, policy, checks, promotion, freezes) apply as
// to any plan; the deployment's events name the trigger; the request is audited.
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "common/plan.hpp"
#include "common/rules.hpp"
#include "coordinator/deployment_log.hpp"
#include "coordinator/freeze.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"
#include "coordinator/policy_rules.hpp"
#include "coordinator/wave_clusters.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

namespace {

struct TriggerBody {
  std::string version;
  std::string changes;
  std::string release_notes_url;
};

// {"version": "1.4.3", "changes": "...", "release_notes_url": "https://..."}: version required.
StatusOr<TriggerBody> triggerBody(const std::string& body) {
  auto fields = stringFields(body, {"version", "changes", "release_notes_url"});
  if (!fields.ok()) return fields.status();
  TriggerBody out;
  auto field = [&](const char* key) {
    auto it = fields->find(key);
    return it == fields->end() ? std::string() : it->second;
  };
  out.version = field("version");
  out.changes = field("changes");
  out.release_notes_url = field("release_notes_url");
  if (out.version.empty()) {
    return Status::InvalidArgument("\"version\" is required: {\"version\": \"1.4.3\"}");
  }
  if (!common::isValidVersion(out.version)) {
    return Status::InvalidArgument("version " + http_internal::quoted(out.version) + ": " +
                                   common::kVersionRule);
  }
  Status release = checkReleaseFields(out.changes, out.release_notes_url);
  if (!release.ok()) return release;
  return out;
}

}  // namespace

void HttpApi::triggerRoutes() {
  server_->Post(R"(/api/v1/triggers/([^/]+))", [this](const httplib::Request& req,
                                                      httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    const std::string name = req.matches[1];
    AuditEntry entry{actor->name,   actor->role, "POST /api/v1/triggers/{name}", "", "",
                     actor->client, ""};
    auto refuse = [&](int status, const json& body) {
      reply(res, status, body);
      AuditEntry e = entry;
      e.outcome = std::to_string(status);
      e.detail = body.value("error", "");
      record(e);
    };
    std::optional<TriggerTemplate> trigger;
    if (common::isValidName(name) && policy_ != nullptr) trigger = policy_->trigger(name);
    if (!trigger) {
      return refuse(404,
                    json{{"error", "no trigger named " + http_internal::quoted(name) +
                                       " in the policy in force (flotilla policy lists them)"}});
    }
    entry.target = trigger->name;
    auto body = triggerBody(req.body);
    if (!body.ok()) return refuse(400, json{{"error", body.status().message()}});
    auto policy = policy_->current();
    if (!policy) return refuse(404, json{{"error", "no policy in force"}});

    common::Plan plan = trigger->plan;
    plan.version = body->version;
    const std::vector<AgentInfo> agents = engine_.agentsSnapshot();
    const PlanClusters resolved = resolvePlanClusters(plan, agentsByName(agents));
    if (!resolved.problems.empty()) return refuse(409, clusterProblemsJson(resolved));
    Status allowed = checkPlanEnvironments(*actor, plan, agents);
    if (!allowed.ok()) return refuse(403, json{{"error", allowed.message()}});
    PolicyVerdict verdict = applyPolicy(*policy, *actor, resolved, agentsByName(agents), plan);
    if (!verdict.problems.empty()) {
      return refuse(409, problemsJson("trigger " + trigger->name + "'s plan template (" +
                                          trigger->path + ") refused by the policy",
                                      verdict.problems));
    }
    if (!verdict.denied.ok()) return refuse(403, json{{"error", verdict.denied.message()}});
    // A trigger deploys to its own environment only.
    for (const common::Wave& wave : plan.waves) {
      if (wave.environment != trigger->environment) {
        return refuse(409, json{{"error", "trigger " + trigger->name + " deploys to " +
                                              trigger->environment + " only; its template's wave " +
                                              wave.name + " is in " + wave.environment}});
      }
    }
    Status blocked = wholePlanBlocked(store_, plan);
    if (!blocked.ok()) return refuse(409, json{{"error", blocked.message()}});
    auto gaps = submissionPromotionGaps(store_, plan, nowMs());
    if (!gaps.ok()) return replyError(res, gaps.status());
    if (!gaps->empty()) {
      return refuse(409, json{{"error", promotionRefusal(plan, *gaps).message()},
                              {"promotion", promotionGapsJson(*gaps)}});
    }
    auto freezes = activeFreezes(store_);
    if (!freezes.ok()) return replyError(res, freezes.status());
    const Freeze* blocking = nullptr;
    Status unfrozen = checkSubmissionAllowed(plan, *freezes, agentsByName(agents), &blocking);
    if (!unfrozen.ok()) {
      return refuse(409, json{{"error", unfrozen.message()}, {"freeze", freezeJson(*blocking)}});
    }
    if (store_.failing()) {
      return refuse(503, json{{"error", "the store cannot write (" + store_.failure() +
                                            "); new deployments are refused"}});
    }
    SubmitOptions options;
    options.changes = body->changes;
    options.release_notes_url = body->release_notes_url;
    options.trigger = trigger->name;
    AuditEntry e = entry;
    e.detail = "trigger " + trigger->name + ": " + plan.service + " " + plan.version + " to " +
               trigger->environment;
    auto id = audited<std::string>(e, [&](AuditEntry& audit) -> StatusOr<std::string> {
      auto submitted = engine_.submit(std::move(plan), *actor, options);
      if (submitted.ok()) audit.target = trigger->name + " " + *submitted;
      return submitted;
    });
    if (!id.ok()) return replyError(res, id.status());
    json accepted{{"id", *id}, {"trigger", trigger->name}, {"environment", trigger->environment}};
    if (auto d = store_.loadDeployment(*id); d.ok()) {
      accepted["state"] = deploymentStateName(d->state);
    }
    reply(res, 201, accepted);
  });
}

}  // namespace flotilla::coordinator
