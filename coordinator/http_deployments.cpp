// Deployments over HTTP: submit a plan (refused with every problem and its position, and with
// every wave's clusters resolved against the registry first), try one (`?dry_run=true`: what
// it would do, nothing stored), list, show one, and approve, roll back, pause, resume or cancel
// it, promote its analysis or bake, or retry a held failed step. Environment rules are checked
// here (permissions.cpp) before the engine is asked.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/plan.hpp"
#include "common/rules.hpp"
#include "common/time_format.hpp"
#include "coordinator/cluster_view.hpp"
#include "coordinator/deployment_log.hpp"
#include "coordinator/freeze.hpp"
#include "coordinator/hotfix.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"
#include "coordinator/policy_rules.hpp"
#include "coordinator/promotion.hpp"
#include "coordinator/releases.hpp"
#include "coordinator/wave_clusters.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

namespace http_internal {
namespace {

// A true/false query parameter of a submission (queue, supersede, hotfix); absent: `fallback`.
StatusOr<bool> flagParam(const httplib::Request& req, const char* name, bool fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string value = req.get_param_value(name);
  if (value == "true" || value == "1") return true;
  if (value == "false" || value == "0") return false;
  return Status::InvalidArgument(std::string("query parameter ") + name +
                                 " must be true or false, not " + quoted(value));
}

// An operator's reason travels into events, the audit log and terminals; the machine cuts it at
// this length too, but a longer one is refused here so the caller knows.
constexpr size_t kMaxReasonBytes = 500;

// The body of a promote or retry: a JSON object with only `keys` (each a string, none
// required here), the reason at most kMaxReasonBytes. Empty body: no fields.
StatusOr<std::map<std::string, std::string>> overrideBody(const std::string& body,
                                                          std::initializer_list<const char*> keys) {
  auto fields = stringFields(body, keys);
  if (!fields.ok()) return fields.status();
  std::map<std::string, std::string>& out = *fields;
  if (auto reason = out.find("reason");
      reason != out.end() && reason->second.size() > kMaxReasonBytes) {
    return Status::InvalidArgument("\"reason\" is " + std::to_string(reason->second.size()) +
                                   " bytes; at most " + std::to_string(kMaxReasonBytes));
  }
  return out;
}

// A query's whole number: digits only, at most 9 of them (a page offset or size).
std::optional<size_t> parseCount(const std::string& text) {
  if (text.empty() || text.size() > 9 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return static_cast<size_t>(std::stoul(text));
}

// ?view=full (the default) or ?view=summary: which detail a deployment's answer carries (an
// action's answer too, so that a page of a 10,000-cluster deployment never gets every cluster).
StatusOr<DetailView> viewParam(const httplib::Request& req) {
  const std::string view = req.has_param("view") ? req.get_param_value("view") : "full";
  if (view == "full") return DetailView::kFull;
  if (view == "summary") return DetailView::kSummary;
  return Status::InvalidArgument("view must be full or summary, not " + quoted(view));
}

// The view of an action's answer: the action is done by then, so a bad ?view= gets the full one.
DetailView answerView(const httplib::Request& req) {
  auto view = viewParam(req);
  return view.ok() ? *view : DetailView::kFull;
}

bool isDeploymentId(const std::string& id) {
  auto lower = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return !id.empty() && id.size() <= 80 && lower(id[0]) &&
         std::all_of(id.begin(), id.end(), [&](char c) { return lower(c) || c == '-'; });
}

}  // namespace

Status checkDeploymentId(const std::string& id) {
  if (isDeploymentId(id)) return Status::Ok();
  return Status::InvalidArgument(quoted(id) +
                                 " is not a deployment id (expected e.g. checkout-12)");
}

StatusOr<Deployment> loadById(Store& store, const std::string& id) {
  Status valid = checkDeploymentId(id);
  if (!valid.ok()) return valid;
  return store.loadDeployment(id);
}

}  // namespace http_internal

namespace {

// At most this many known clusters are listed in a refusal (a fleet may have thousands).
json durationJson(std::chrono::milliseconds d) {
  return d.count() == 0 ? json(nullptr) : json(common::formatDuration(d));
}

// What a plan would do, for `?dry_run=true`: every wave's clusters, the steps each of them
// runs, and the gates between (approval, strategy, bake, max_parallel).
// A checklist's checks with their timeouts (the plan's step timeout where a check has none).
json verifyChecksJson(const std::vector<common::VerifyCheck>& checks,
                      std::chrono::milliseconds step_timeout) {
  json out = json::array();
  for (const common::VerifyCheck& check : checks) {
    out.push_back({{"name", check.name},
                   {"command", check.command},
                   {"timeout", common::formatDuration(check.timeout.value_or(step_timeout))}});
  }
  return out;
}

json dryRunJson(const common::Plan& plan, const PlanClusters& resolved) {
  json waves = json::array();
  for (size_t i = 0; i < plan.waves.size(); ++i) {
    const common::Wave& pw = plan.waves[i];
    json steps = json::array();
    for (const StepSpec& step : forwardSteps(plan, i)) {
      json s = {{"step", stepName(step.kind)}};
      if (step.kind == Step::SHIFT || step.kind == Step::ANALYZE) s["weight"] = step.weight;
      if (!step.check.empty()) s["check"] = step.check;
      if (step.duration.count() > 0) s["duration"] = common::formatDuration(step.duration);
      steps.push_back(std::move(s));
    }
    const common::Strategy& strategy = plan.strategyFor(i);
    json wave = {{"name", pw.name},
                 {"environment", pw.environment.empty() ? json(nullptr) : json(pw.environment)},
                 {"clusters", resolved.waves[i]},
                 {"selector", pw.selector.empty() ? json(nullptr) : json(pw.selector)},
                 {"steps", std::move(steps)},
                 {"approval", pw.approval_required
                                  ? json{{"required", pw.approvals_required},
                                         {"expires", common::formatDuration(pw.approval_expires)}}
                                  : json(nullptr)},
                 {"strategy", plan.driver == common::DriverKind::kProcess
                                  ? json{{"type", common::strategyName(strategy.kind)},
                                         {"steps", strategy.steps},
                                         {"pause", durationJson(strategy.pause)}}
                                  : json(nullptr)},
                 {"bake", durationJson(pw.bake)},
                 {"max_parallel", pw.max_parallel == 0 ? json(nullptr) : json(pw.max_parallel)}};
    waves.push_back(std::move(wave));
  }
  json commands = nullptr;
  if (plan.driver == common::DriverKind::kScript) {
    commands = {{"build", plan.steps.build},
                {"apply", plan.steps.apply},
                {"verify", plan.steps.verify},
                {"verify_checks", verifyChecksJson(plan.steps.verify_checks, plan.steps.timeout)},
                {"rollback", plan.steps.rollback},
                {"timeout", common::formatDuration(plan.steps.timeout)}};
  }
  return json{{"dry_run", true},
              {"service", plan.service},
              {"version", plan.version},
              {"driver", common::driverName(plan.driver)},
              {"commands", std::move(commands)},
              {"rollback_scope", common::rollbackScopeName(plan.rollback_scope)},
              {"hotfix", plan.hotfix ? json(plan.hotfix->reason) : json(nullptr)},
              {"waves", std::move(waves)}};
}

// `dry_run` is true, false or absent; anything else is a mistake worth saying.
StatusOr<bool> dryRunParam(const httplib::Request& req) {
  if (!req.has_param("dry_run")) return false;
  const std::string value = req.get_param_value("dry_run");
  if (value == "true" || value == "1") return true;
  if (value == "false" || value == "0") return false;
  return Status::InvalidArgument("dry_run must be true or false, not " + quoted(value));
}

}  // namespace

namespace http_internal {

constexpr size_t kMaxListedClusters = 200;

// A plan whose waves name clusters nobody registered, or select none: refused (400, as for
// any bad plan), each problem with its wave's position, and the clusters that do exist.
json clusterProblemsJson(const PlanClusters& resolved) {
  json problems = json::array();
  for (const auto& p : resolved.problems) {
    problems.push_back({{"line", p.line},
                        {"column", p.column},
                        {"wave", p.wave},
                        {"message", p.message},
                        {"suggestion", p.suggestion}});
  }
  const size_t n = resolved.problems.size();
  json known = json::array();
  for (size_t i = 0; i < resolved.known.size() && i < kMaxListedClusters; ++i) {
    known.push_back(resolved.known[i]);
  }
  return json{
      {"error", "plan refused: " + std::to_string(n) + (n == 1 ? " wave names" : " waves name") +
                    " clusters that are not registered"},
      {"problems", std::move(problems)},
      {"known_clusters", std::move(known)},
      {"known_clusters_total", resolved.known.size()}};
}

json problemsJson(const std::string& what, const std::vector<common::PlanProblem>& problems) {
  json list = json::array();
  for (const auto& p : problems) {
    list.push_back({{"line", p.line}, {"column", p.column}, {"message", p.message}});
  }
  const size_t n = problems.size();
  return json{{"error", what + ": " + std::to_string(n) + (n == 1 ? " problem" : " problems")},
              {"problems", list}};
}

// FailedPrecondition when every wave of `plan` requires checks its release has not met (read
// from what is durable), naming what each wave needs.
Status wholePlanBlocked(Store& store, const common::Plan& plan) {
  if (plan.waves.empty()) return Status::Ok();
  std::optional<ReleaseRecord> release;
  std::string needs;
  for (const common::Wave& wave : plan.waves) {
    if (wave.checks.empty()) return Status::Ok();
    if (!release) {
      auto stored = store.getRecord(releaseKey(plan.service, plan.version));
      if (!stored.ok()) return stored.status();
      release.emplace();
      if (*stored) {
        auto parsed = releaseFromJson(**stored);
        if (!parsed.ok()) return parsed.status();
        *release = std::move(*parsed);
      }
    }
    const std::vector<UnmetCheck> unmet = unmetChecks(wave.checks, &*release);
    if (unmet.empty()) return Status::Ok();
    needs += "; wave " + wave.name + " (" + wave.environment + ") needs " + unmetText(unmet);
  }
  return Status::FailedPrecondition(plan.service + " " + plan.version +
                                    " is blocked by checks in every wave" + needs +
                                    ". Report them with `flotilla checks report " + plan.service +
                                    " " + plan.version + " NAME --passed`, then submit again");
}

// The waves of `plan` whose promotion (coordinator/promotion.hpp) its release, as durable now,
// does not meet at submission.
StatusOr<std::vector<PromotionGap>> submissionPromotionGaps(Store& store, const common::Plan& plan,
                                                            int64_t now_ms) {
  const bool any = std::any_of(plan.waves.begin(), plan.waves.end(),
                               [](const common::Wave& w) { return !w.promote_from.empty(); });
  if (!any) return std::vector<PromotionGap>{};
  auto stored = store.getRecord(releaseKey(plan.service, plan.version));
  if (!stored.ok()) return stored.status();
  std::optional<ReleaseRecord> release;
  if (*stored) {
    auto parsed = releaseFromJson(**stored);
    if (!parsed.ok()) return parsed.status();
    release = std::move(*parsed);
  }
  return promotionGaps(plan, release ? &*release : nullptr, now_ms);
}

}  // namespace http_internal

void HttpApi::deploymentRoutes() {
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
    const StatusOr<bool> dry_run = dryRunParam(req);
    if (!dry_run.ok()) return refuse(400, json{{"error", dry_run.status().message()}}, "");
    // The plan alone, or with its release's description (the submission form,
    // coordinator/deployment_log.hpp).
    SubmissionForm form;
    if (isSubmissionForm(req.get_header_value("Content-Type"))) {
      auto read = readSubmissionForm(req.body);
      if (!read.ok()) return refuse(400, json{{"error", read.status().message()}}, "");
      form = std::move(read).value();
    }
    const std::string& plan_text = form.plan.empty() ? req.body : form.plan;
    common::PlanParseResult parsed = common::parsePlan(plan_text);
    if (!parsed.plan) {
      metrics_.planRefused();
      return refuse(400, problemsJson("plan refused", parsed.problems), "");
    }
    // A hotfix: the query's or the form's, else the plan's own.
    const StatusOr<bool> hotfix = flagParam(req, "hotfix", false);
    if (!hotfix.ok()) return refuse(400, json{{"error", hotfix.status().message()}}, "");
    const HotfixRequest query_hotfix{
        *hotfix, req.has_param("hotfix_reason")
                     ? std::optional<std::string>(req.get_param_value("hotfix_reason"))
                     : std::nullopt};
    Status hotfix_ok = applyHotfixRequest(
        query_hotfix, HotfixRequest{form.hotfix, form.hotfix_reason}, *parsed.plan);
    if (!hotfix_ok.ok()) {
      return refuse(400, json{{"error", hotfix_ok.message()}}, parsed.plan->service);
    }
    const std::vector<AgentInfo> agents = engine_.agentsSnapshot();
    // Before anything runs, every wave's clusters must exist: a typo found when production's
    // turn comes would fail a deployment that staging has already taken.
    const PlanClusters resolved = resolvePlanClusters(*parsed.plan, agentsByName(agents));
    if (!resolved.problems.empty()) {
      metrics_.planRefused();
      return refuse(400, clusterProblemsJson(resolved), parsed.plan->service);
    }
    Status allowed = checkPlanEnvironments(*actor, *parsed.plan, agents);
    if (!allowed.ok()) {
      return refuse(403, json{{"error", allowed.message()}}, parsed.plan->service);
    }
    // The organisation's rules: each wave's environment, who may deploy there, the approvals it
    // requires. What the plan says can only add to them.
    if (auto policy = policy_ ? policy_->current() : nullptr) {
      PolicyVerdict verdict =
          applyPolicy(*policy, *actor, resolved, agentsByName(agents), *parsed.plan);
      if (!verdict.problems.empty()) {
        metrics_.planRefused();
        return refuse(400, problemsJson("plan refused by the policy", verdict.problems),
                      parsed.plan->service);
      }
      if (!verdict.denied.ok()) {
        return refuse(403, json{{"error", verdict.denied.message()}}, parsed.plan->service);
      }
      if (!verdict.hotfix.ok()) {
        return refuse(409, json{{"error", verdict.hotfix.message()}}, parsed.plan->service);
      }
      // Every wave held by checks: nothing could run, so say it now rather than store a
      // deployment that only waits.
      Status blocked = wholePlanBlocked(store_, *parsed.plan);
      if (!blocked.ok()) {
        return refuse(409, json{{"error", blocked.message()}}, parsed.plan->service);
      }
      // Promotion: a wave entering an environment promoted from one the plan does not deploy to
      // first needs the release to have been there, with its artifact, for the soak.
      auto gaps = submissionPromotionGaps(store_, *parsed.plan, nowMs());
      if (!gaps.ok()) return replyError(res, gaps.status());
      if (!gaps->empty()) {
        return refuse(409,
                      json{{"error", promotionRefusal(*parsed.plan, *gaps).message()},
                           {"promotion", promotionGapsJson(*gaps)}},
                      parsed.plan->service);
      }
    }
    // An incident freeze covering the plan: what the engine will refuse it for (it checks
    // again, on the freezes of the moment), said here with the freeze itself.
    const Freeze* blocking = nullptr;
    const std::vector<Freeze> freezes = freezesForView(store_);
    Status unfrozen =
        checkSubmissionAllowed(*parsed.plan, freezes, agentsByName(agents), &blocking);
    if (*dry_run) {
      // Nothing is stored and nothing changes: not an audited action.
      json out = dryRunJson(*parsed.plan, resolved);
      out["frozen_by"] = blocking != nullptr ? freezeJson(*blocking) : json(nullptr);
      return reply(res, 200, out);
    }
    if (!unfrozen.ok()) {
      return refuse(409, json{{"error", unfrozen.message()}, {"freeze", freezeJson(*blocking)}},
                    parsed.plan->service);
    }
    if (store_.failing()) {
      // It could not be made durable: refuse it now rather than keep the caller waiting.
      return refuse(503,
                    json{{"error", "the store cannot write (" + store_.failure() +
                                       "); new deployments are refused and running ones wait "
                                       "until writes succeed again"}},
                    parsed.plan->service);
    }
    // One deployment per service: ?queue=false refuses when one is in flight, ?supersede=true
    // (and every hotfix) rolls it back first; by default the submission is queued behind it.
    auto queue = flagParam(req, "queue", true);
    auto supersede = flagParam(req, "supersede", false);
    for (const auto* flag : {&queue, &supersede}) {
      if (!flag->ok()) {
        return refuse(400, json{{"error", flag->status().message()}}, parsed.plan->service);
      }
    }
    const bool supersedes = *supersede || parsed.plan->hotfix.has_value();
    if (!*queue && supersedes) {
      return refuse(
          400,
          json{{"error", *supersede ? "queue=false and supersede=true contradict each other"
                                    : "queue=false contradicts a hotfix, which "
                                      "supersedes the deployment in flight"}},
          parsed.plan->service);
    }
    SubmitOptions options;
    options.changes = std::move(form.changes);
    options.release_notes_url = std::move(form.release_notes_url);
    options.queue = *queue;
    options.supersede = supersedes;
    // Superseding rolls the other deployment back: the caller must be allowed to.
    options.may_supersede = [&](const Deployment& other) {
      Status may =
          checkDeploymentEnvironments(*actor, other, engine_.agentsSnapshot(), std::nullopt);
      if (may.ok()) return may;
      return Status::PermissionDenied("cannot supersede " + other.id + ": " + may.message());
    };
    common::Plan plan = std::move(*parsed.plan);
    AuditEntry e = entry;
    e.target = plan.service;
    e.detail = plan.service + " " + plan.version + (plan.hotfix ? "; " + hotfixText(plan) : "");
    auto id = audited<std::string>(e, [&](AuditEntry& audit) -> StatusOr<std::string> {
      auto submitted = engine_.submit(std::move(plan), *actor, options);
      if (submitted.ok()) audit.target = *submitted;
      return submitted;
    });
    if (!id.ok()) return replyError(res, id.status());
    json accepted{{"id", *id}};
    if (auto d = store_.loadDeployment(*id); d.ok()) {
      accepted["state"] = deploymentStateName(d->state);
      accepted["waits_for"] = d->waits_for.empty() ? json(nullptr) : json(d->waits_for);
    }
    reply(res, 201, accepted);
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
    reply(res, 200, json{{"deployments", list}, {"freezes", freezesJson(freezesForView(store_))}});
  });

  server_->Get(R"(/api/v1/deployments/([^/]+))", [this](const httplib::Request& req,
                                                        httplib::Response& res) {
    auto d = loadById(store_, req.matches[1]);
    if (!d.ok()) return replyError(res, d.status());
    auto view = viewParam(req);
    if (!view.ok()) return replyError(res, view.status());
    reply(res, 200,
          detailJson(*d, agentsByName(engine_.agentsSnapshot()), freezesForView(store_), *view));
  });

  // A page of one wave's clusters: ?wave=NAME (required), offset, limit, state.
  server_->Get(R"(/api/v1/deployments/([^/]+)/clusters)", [this](const httplib::Request& req,
                                                                 httplib::Response& res) {
    auto d = loadById(store_, req.matches[1]);
    if (!d.ok()) return replyError(res, d.status());
    ClusterPageQuery q;
    q.wave = req.get_param_value("wave");
    q.state = req.get_param_value("state");
    if (q.wave.empty() || !common::isValidName(q.wave)) {
      return replyError(res, Status::InvalidArgument("wave=NAME is required: one of the waves"));
    }
    for (auto [key, field] : {std::pair{"offset", &q.offset}, std::pair{"limit", &q.limit}}) {
      if (!req.has_param(key)) continue;
      auto number = parseCount(req.get_param_value(key));
      if (!number) {
        return replyError(
            res, Status::InvalidArgument(std::string(key) + " must be a whole number, not " +
                                         quoted(req.get_param_value(key))));
      }
      *field = *number;
    }
    auto page = clusterPageJson(*d, q);
    if (!page.ok()) return replyError(res, page.status());
    reply(res, 200, *page);
  });

  server_->Post(
      R"(/api/v1/deployments/([^/]+)/(approve|rollback|pause|resume|cancel|watch-end))",
      [this](const httplib::Request& req, httplib::Response& res) {
        auto actor = caller(req, res);
        if (!actor) return;
        std::string id = req.matches[1];
        std::string verb = req.matches[2];
        AuditEntry entry{actor->name, actor->role, "POST /api/v1/deployments/{id}/" + verb,
                         id,          "",          actor->client,
                         ""};
        auto refuse = [&](const Status& s) { refuseAudited(res, entry, s); };
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
                        : verb == "cancel"   ? Action::kCancel
                                             : Action::kWatchEnd;
        entry.detail = argument;
        auto done = audited<bool>(entry, [&](AuditEntry&) -> StatusOr<bool> {
          Status s = engine_.act(id, action, argument, *actor);
          if (!s.ok()) return s;
          return true;
        });
        if (!done.ok()) return replyError(res, done.status());
        auto after = store_.loadDeployment(id);
        if (!after.ok()) return replyError(res, after.status());
        reply(res, 200,
              detailJson(*after, agentsByName(engine_.agentsSnapshot()), freezesForView(store_),
                         answerView(req)));
      });

  // Operator overrides: promote {"wave", "reason"}, retry {"cluster" (required), "reason"}.
  static constexpr char kOverrides[] = R"(/api/v1/deployments/([^/]+)/(promote|retry))";
  server_->Post(kOverrides, [this](const httplib::Request& req, httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    std::string id = req.matches[1];
    std::string verb = req.matches[2];
    const bool is_promote = verb == "promote";
    AuditEntry entry{actor->name,   actor->role, "POST /api/v1/deployments/{id}/" + verb, id, "",
                     actor->client, ""};
    auto refuse = [&](const Status& s) { refuseAudited(res, entry, s); };
    Status valid = checkDeploymentId(id);
    if (!valid.ok()) return refuse(valid);
    // The environment rule as for pause, resume and rollback (the whole deployment), before
    // the body: a caller who may not touch the deployment learns nothing more.
    auto d = store_.loadDeployment(id);
    if (!d.ok()) return refuse(d.status());
    Status allowed = checkDeploymentEnvironments(*actor, *d, engine_.agentsSnapshot());
    if (!allowed.ok()) return refuse(allowed);
    auto body = is_promote ? overrideBody(req.body, {"wave", "reason"})
                           : overrideBody(req.body, {"cluster", "reason"});
    if (!body.ok()) return refuse(body.status());
    const std::string target = (*body)[is_promote ? "wave" : "cluster"];
    const std::string reason = (*body)["reason"];
    if (!is_promote && target.empty()) {
      return refuse(Status::InvalidArgument("\"cluster\" is required: the cluster to retry"));
    }
    if (!target.empty() && !common::isValidName(target)) {
      return refuse(Status::InvalidArgument(quoted(target) + " is not a " +
                                            (is_promote ? "wave" : "cluster") + " name"));
    }
    if (!target.empty()) entry.detail = (is_promote ? "wave " : "cluster ") + target;
    if (!reason.empty()) entry.detail += (target.empty() ? "" : ": ") + reason;
    auto done = audited<bool>(entry, [&](AuditEntry&) -> StatusOr<bool> {
      Status s =
          engine_.act(id, is_promote ? Action::kPromote : Action::kRetry, target, *actor, reason);
      if (!s.ok()) return s;
      return true;
    });
    if (!done.ok()) return replyError(res, done.status());
    auto after = store_.loadDeployment(id);
    if (!after.ok()) return replyError(res, after.status());
    reply(res, 200,
          detailJson(*after, agentsByName(engine_.agentsSnapshot()), freezesForView(store_),
                     answerView(req)));
  });
}

}  // namespace flotilla::coordinator
