// The stored form of a plan: the JSON the coordinator keeps in RocksDB. Every field is always
// written, so reading insists on every field; anything else is corruption of stored bytes.
// The exceptions are fields added after records were first written (metrics source and
// queries, alerts, approvals_required, approval_expires_ms, steps.switch, health.url, hotfix):
// absent means what they meant
// before they existed.
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>

#include "common/plan.hpp"
#include "common/rules.hpp"

namespace flotilla::common {
namespace {

using Json = nlohmann::json;

// Raised by the readers below and caught in planFromJson only: it keeps the reading code a
// straight line instead of a check after every field. `path` names the field, e.g. waves[1].name.
class FieldError : public std::runtime_error {
 public:
  FieldError(const std::string& path, const std::string& problem)
      : std::runtime_error(path + ": " + problem) {}
};

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

const Json& member(const Json& object, std::string_view key, const std::string& path) {
  if (!object.is_object()) throw FieldError(path.empty() ? "plan" : path, "expected an object");
  auto it = object.find(key);
  if (it == object.end()) throw FieldError(join(path, key), "missing");
  return *it;
}

std::string stringAt(const Json& object, std::string_view key, const std::string& path) {
  const Json& value = member(object, key, path);
  if (!value.is_string()) throw FieldError(join(path, key), "expected a string");
  return value.get<std::string>();
}

bool boolAt(const Json& object, std::string_view key, const std::string& path) {
  const Json& value = member(object, key, path);
  if (!value.is_boolean()) throw FieldError(join(path, key), "expected a boolean");
  return value.get<bool>();
}

// Unsigned integers only: a negative or fractional count is corruption, not a value to clamp.
uint64_t unsignedAt(const Json& object, std::string_view key, const std::string& path,
                    uint64_t max) {
  const Json& value = member(object, key, path);
  const bool non_negative =
      value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0);
  if (!non_negative) {
    throw FieldError(join(path, key), "expected a non-negative integer");
  }
  const auto number = value.get<uint64_t>();
  if (number > max) throw FieldError(join(path, key), "out of range");
  return number;
}

const Json& arrayAt(const Json& object, std::string_view key, const std::string& path) {
  const Json& value = member(object, key, path);
  if (!value.is_array()) throw FieldError(join(path, key), "expected an array");
  return value;
}

double numberAt(const Json& object, std::string_view key, const std::string& path) {
  const Json& value = member(object, key, path);
  if (!value.is_number()) throw FieldError(join(path, key), "expected a number");
  return value.get<double>();
}

// An alert rule: a number, or null when the plan turned it off.
std::optional<double> ruleAt(const Json& object, std::string_view key, const std::string& path) {
  if (member(object, key, path).is_null()) return std::nullopt;
  return numberAt(object, key, path);
}
Json ruleJson(const std::optional<double>& rule) { return rule ? Json(*rule) : Json(nullptr); }

std::chrono::milliseconds msAt(const Json& object, std::string_view key, const std::string& path) {
  return std::chrono::milliseconds(static_cast<int64_t>(
      unsignedAt(object, key, path, static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))));
}

Json verifyChecksToJson(const std::vector<VerifyCheck>& checks) {
  Json out = Json::array();
  for (const VerifyCheck& c : checks) {
    Json check{{"name", c.name}, {"command", c.command}};
    if (c.timeout) check["timeout_ms"] = c.timeout->count();
    out.push_back(std::move(check));
  }
  return out;
}

std::vector<VerifyCheck> verifyChecksFromJson(const Json& checks) {
  if (checks.empty() || checks.size() > kMaxVerifyChecks) {
    throw FieldError("steps.verify",
                     "expected 1 to " + std::to_string(kMaxVerifyChecks) + " checks");
  }
  std::vector<VerifyCheck> out;
  for (size_t i = 0; i < checks.size(); ++i) {
    const std::string path = "steps.verify[" + std::to_string(i) + "]";
    VerifyCheck c;
    c.name = stringAt(checks[i], "name", path);
    if (!isVerifyCheckName(c.name)) throw FieldError(path + ".name", "not a check name");
    for (const VerifyCheck& earlier : out) {
      if (earlier.name == c.name) throw FieldError(path + ".name", "repeated");
    }
    c.command = stringAt(checks[i], "command", path);
    if (checks[i].contains("timeout_ms")) c.timeout = msAt(checks[i], "timeout_ms", path);
    out.push_back(std::move(c));
  }
  return out;
}

Json hotfixToJson(const PlanHotfix& h) {
  return Json{{"reason", h.reason},
              {"approvals", h.rules.approvals},
              {"skip_checks", h.rules.skip_checks},
              {"soak_ms", h.rules.soak.count()},
              {"watch_factor", h.rules.watch_factor},
              {"allowed_during_freeze", h.rules.allowed_during_freeze}};
}

PlanHotfix hotfixFromJson(const Json& json) {
  const std::string path = "hotfix";
  PlanHotfix h;
  h.reason = stringAt(json, "reason", path);
  h.rules.approvals = static_cast<uint32_t>(unsignedAt(json, "approvals", path, 10));
  for (const auto& name : arrayAt(json, "skip_checks", path)) {
    if (!name.is_string()) throw FieldError(path + ".skip_checks", "expected strings");
    h.rules.skip_checks.push_back(name.get<std::string>());
  }
  h.rules.soak = msAt(json, "soak_ms", path);
  h.rules.watch_factor = numberAt(json, "watch_factor", path);
  h.rules.allowed_during_freeze = boolAt(json, "allowed_during_freeze", path);
  return h;
}

Json strategyToJson(const Strategy& s) {
  return Json{{"kind", strategyName(s.kind)},
              {"steps", s.steps},
              {"pause_ms", s.pause.count()},
              {"max_unavailable", s.max_unavailable},
              {"max_surge", s.max_surge}};
}

Strategy strategyFromJson(const Json& json, const std::string& path) {
  Strategy s;
  const std::string kind = stringAt(json, "kind", path);
  bool known = false;
  for (StrategyKind k : {StrategyKind::kAllAtOnce, StrategyKind::kCanary, StrategyKind::kBlueGreen,
                         StrategyKind::kRolling}) {
    if (kind == strategyName(k)) {
      s.kind = k;
      known = true;
    }
  }
  if (!known) throw FieldError(path + ".kind", "unknown strategy");
  const Json& steps = arrayAt(json, "steps", path);
  for (const auto& step : steps) {
    if (!step.is_number_unsigned() || step.get<uint64_t>() > 100) {
      throw FieldError(path + ".steps", "expected percentages");
    }
    s.steps.push_back(step.get<uint32_t>());
  }
  s.pause = msAt(json, "pause_ms", path);
  s.max_unavailable = static_cast<uint32_t>(unsignedAt(json, "max_unavailable", path, 64));
  s.max_surge = static_cast<uint32_t>(unsignedAt(json, "max_surge", path, 64));
  return s;
}

Json checksToJson(const std::vector<Check>& checks) {
  Json out = Json::array();
  for (const Check& check : checks) {
    out.push_back({{"name", check.name},
                   {"op", check.threshold ? Json(checkOpText(check.threshold->op)) : Json(nullptr)},
                   {"value", check.threshold ? Json(check.threshold->value) : Json(nullptr)}});
  }
  return out;
}

std::vector<Check> checksFromJson(const Json& json, const std::string& path) {
  if (!json.is_array()) throw FieldError(path, "expected an array");
  std::vector<Check> checks;
  for (size_t i = 0; i < json.size(); ++i) {
    const std::string at = path + "[" + std::to_string(i) + "]";
    Check check;
    check.name = stringAt(json[i], "name", at);
    if (!isCheckName(check.name)) throw FieldError(at + ".name", kCheckNameRule);
    const Json& op = member(json[i], "op", at);
    if (!op.is_null()) {
      auto known = op.is_string() ? parseCheckOp(op.get<std::string>()) : std::nullopt;
      const Json& value = member(json[i], "value", at);
      if (!known || !value.is_number()) throw FieldError(at, "expected an operator and a number");
      check.threshold = CheckThreshold{*known, value.get<double>()};
    }
    checks.push_back(std::move(check));
  }
  return checks;
}

Json watchToJson(const std::vector<WatchTier>& tiers) {
  Json out = Json::array();
  for (const WatchTier& tier : tiers) {
    out.push_back({{"name", tier.name},
                   {"for_ms", tier.duration.count()},
                   {"interval_ms", tier.interval.count()}});
  }
  return out;
}

std::vector<WatchTier> watchFromJson(const Json& json, const std::string& path) {
  if (!json.is_array()) throw FieldError(path, "expected an array");
  std::vector<WatchTier> tiers;
  for (size_t i = 0; i < json.size(); ++i) {
    const std::string at = path + "[" + std::to_string(i) + "]";
    WatchTier tier;
    tier.name = stringAt(json[i], "name", at);
    if (!isValidName(tier.name)) throw FieldError(at + ".name", kNameRule);
    tier.duration = msAt(json[i], "for_ms", at);
    tier.interval = msAt(json[i], "interval_ms", at);
    if (tier.interval.count() <= 0 || tier.interval > tier.duration) {
      throw FieldError(at + ".interval_ms", "must be more than 0 and at most for_ms");
    }
    tiers.push_back(std::move(tier));
  }
  return tiers;
}

Json waveToJson(const Wave& wave) {
  Json out{{"name", wave.name},
           {"clusters", wave.clusters},
           {"selector", wave.selector},
           {"approval_required", wave.approval_required},
           {"approvals_required", wave.approvals_required},
           {"approval_expires_ms", wave.approval_expires.count()},
           {"max_parallel", wave.max_parallel},
           {"max_unavailable_clusters",
            wave.max_unavailable_clusters ? Json(*wave.max_unavailable_clusters) : Json(nullptr)},
           {"strategy", wave.strategy ? strategyToJson(*wave.strategy) : Json(nullptr)},
           {"bake_ms", wave.bake.count()},
           {"environment", wave.environment},
           {"checks", checksToJson(wave.checks)}};
  // Only when set: a plan without it hashes as it did before promotions.
  if (!wave.promote_from.empty()) {
    out["promotion"] = {{"from", wave.promote_from}, {"soak_ms", wave.promote_soak.count()}};
  }
  return out;
}

Wave waveFromJson(const Json& json, const std::string& path) {
  Wave wave;
  wave.name = stringAt(json, "name", path);
  const Json& clusters = arrayAt(json, "clusters", path);
  for (size_t i = 0; i < clusters.size(); ++i) {
    if (!clusters[i].is_string()) {
      throw FieldError(path + ".clusters[" + std::to_string(i) + "]", "expected a string");
    }
    wave.clusters.push_back(clusters[i].get<std::string>());
  }
  const Json& selector = member(json, "selector", path);
  if (!selector.is_object()) throw FieldError(path + ".selector", "expected an object");
  for (const auto& [key, value] : selector.items()) {
    if (!value.is_string()) throw FieldError(path + ".selector." + key, "expected a string");
    wave.selector.emplace(key, value.get<std::string>());
  }
  wave.approval_required = boolAt(json, "approval_required", path);
  // Absent in plans stored before approvals could ask for several approvers or expire.
  if (json.contains("approvals_required")) {
    wave.approvals_required =
        static_cast<uint32_t>(unsignedAt(json, "approvals_required", path, kMaxApprovalsRequired));
    if (wave.approvals_required == 0) {
      throw FieldError(path + ".approvals_required", "expected 1 to 10");
    }
  }
  if (json.contains("approval_expires_ms")) {
    wave.approval_expires = msAt(json, "approval_expires_ms", path);
    if (wave.approval_expires <= std::chrono::milliseconds(0) ||
        wave.approval_expires > kMaxApprovalValidity) {
      throw FieldError(path + ".approval_expires_ms", "expected more than 0 and at most 24h");
    }
  }
  wave.max_parallel = static_cast<uint32_t>(
      unsignedAt(json, "max_parallel", path, std::numeric_limits<uint32_t>::max()));
  if (json.contains("max_unavailable_clusters") && !json.at("max_unavailable_clusters").is_null()) {
    wave.max_unavailable_clusters =
        static_cast<uint32_t>(unsignedAt(json, "max_unavailable_clusters", path, 10000));
  }
  const Json& strategy = member(json, "strategy", path);
  if (!strategy.is_null()) wave.strategy = strategyFromJson(strategy, path + ".strategy");
  wave.bake = msAt(json, "bake_ms", path);
  // Absent in plans stored before policies.
  if (json.contains("environment")) wave.environment = stringAt(json, "environment", path);
  if (json.contains("checks")) wave.checks = checksFromJson(json.at("checks"), path + ".checks");
  if (json.contains("promotion")) {
    const Json& promotion = json.at("promotion");
    wave.promote_from = stringAt(promotion, "from", path + ".promotion");
    if (!isValidName(wave.promote_from)) throw FieldError(path + ".promotion.from", kNameRule);
    wave.promote_soak = msAt(promotion, "soak_ms", path + ".promotion");
  }
  return wave;
}

Plan planFromJsonValue(const Json& json) {
  Plan plan;
  plan.service = stringAt(json, "service", "");
  plan.version = stringAt(json, "version", "");

  const std::string driver = stringAt(json, "driver", "");
  if (driver == driverName(DriverKind::kScript)) {
    plan.driver = DriverKind::kScript;
  } else if (driver == driverName(DriverKind::kProcess)) {
    plan.driver = DriverKind::kProcess;
  } else {
    throw FieldError("driver", "unknown driver");
  }

  const Json& process = member(json, "process", "");
  plan.process.command = stringAt(process, "command", "process");
  plan.process.replicas = static_cast<uint32_t>(unsignedAt(process, "replicas", "process", 64));
  plan.process.port_min = static_cast<uint32_t>(unsignedAt(process, "port_min", "process", 65535));
  plan.process.port_max = static_cast<uint32_t>(unsignedAt(process, "port_max", "process", 65535));
  plan.process.health_path = stringAt(process, "health_path", "process");
  const Json& haproxy = member(json, "haproxy", "");
  if (!haproxy.is_null()) {
    plan.haproxy = HaproxyTraffic{stringAt(haproxy, "socket", "haproxy"),
                                  stringAt(haproxy, "backend", "haproxy")};
  }
  plan.strategy = strategyFromJson(member(json, "strategy", ""), "strategy");
  const Json& health = member(json, "health", "");
  plan.health.http.path = stringAt(health, "path", "health");
  if (health.contains("url")) plan.health.http.url = stringAt(health, "url", "health");
  plan.health.http.interval = msAt(health, "interval_ms", "health");
  plan.health.http.timeout = msAt(health, "timeout_ms", "health");
  plan.health.http.failure_threshold =
      static_cast<uint32_t>(unsignedAt(health, "failure_threshold", "health", 1000));
  const Json& metrics = member(health, "metrics", "health");
  if (!metrics.is_null()) {
    MetricsAnalysis m;
    m.error_rate_increase = numberAt(metrics, "error_rate_increase", "health.metrics");
    m.latency_p95_ratio = numberAt(metrics, "latency_p95_ratio", "health.metrics");
    m.min_requests =
        unsignedAt(metrics, "min_requests", "health.metrics", std::numeric_limits<uint32_t>::max());
    m.fail_when_inconclusive = boolAt(metrics, "fail_when_inconclusive", "health.metrics");
    // Added after the first records were written: absent means the scrape source.
    if (metrics.contains("source")) {
      const std::string source = stringAt(metrics, "source", "health.metrics");
      if (source == "prometheus") {
        m.source = MetricsSource::kPrometheus;
      } else if (source != "scrape") {
        throw FieldError("health.metrics.source", "unknown source");
      }
      m.prometheus = stringAt(metrics, "prometheus", "health.metrics");
      const Json& queries = member(metrics, "queries", "health.metrics");
      m.queries.request_rate = stringAt(queries, "request_rate", "health.metrics.queries");
      m.queries.error_rate = stringAt(queries, "error_rate", "health.metrics.queries");
      m.queries.latency_p95 = stringAt(queries, "latency_p95", "health.metrics.queries");
    }
    plan.health.metrics = m;
  }
  // Added after the first records were written: absent means the defaults.
  if (json.contains("on_agent_lost")) {
    const std::string policy = stringAt(json, "on_agent_lost", "");
    if (policy == "wait") {
      plan.on_agent_lost = OnAgentLost::kWait;
    } else if (policy != "rollback") {
      throw FieldError("on_agent_lost", "unknown policy");
    }
    plan.max_unavailable_clusters =
        static_cast<uint32_t>(unsignedAt(json, "max_unavailable_clusters", "", 10000));
  }
  // Added after the first records were written (and only written when hold): absent means
  // rollback.
  if (json.contains("on_step_failure")) {
    const std::string policy = stringAt(json, "on_step_failure", "");
    if (policy == "hold") {
      plan.on_step_failure = OnStepFailure::kHold;
    } else if (policy != "rollback") {
      throw FieldError("on_step_failure", "unknown policy");
    }
  }
  // Added after the first records were written: absent means no alerts.
  if (json.contains("alerts") && !json.at("alerts").is_null()) {
    const Json& alerts = json.at("alerts");
    Alerts a;
    // A rule turned off is null.
    a.error_rate = ruleAt(alerts, "error_rate", "alerts");
    a.latency_p95_ratio = ruleAt(alerts, "latency_p95_ratio", "alerts");
    a.cpu = ruleAt(alerts, "cpu", "alerts");
    a.memory = ruleAt(alerts, "memory", "alerts");
    a.webhook = stringAt(alerts, "webhook", "alerts");
    a.webhook_timeout = msAt(alerts, "webhook_timeout_ms", "alerts");
    a.webhook_attempts =
        static_cast<uint32_t>(unsignedAt(alerts, "webhook_attempts", "alerts", 20));
    plan.alerts = a;
  }

  // Added after the first records were written (and only written for a hotfix).
  if (json.contains("hotfix") && !json.at("hotfix").is_null()) {
    plan.hotfix = hotfixFromJson(json.at("hotfix"));
  }

  const Json& steps = member(json, "steps", "");
  plan.steps.build = stringAt(steps, "build", "steps");
  plan.steps.apply = stringAt(steps, "apply", "steps");
  // A command, or (since verification checklists) a list of named checks.
  if (member(steps, "verify", "steps").is_array()) {
    plan.steps.verify_checks = verifyChecksFromJson(steps.at("verify"));
  } else {
    plan.steps.verify = stringAt(steps, "verify", "steps");
  }
  plan.steps.rollback = stringAt(steps, "rollback", "steps");
  if (steps.contains("switch")) plan.steps.switch_traffic = stringAt(steps, "switch", "steps");
  if (json.contains("watch")) plan.watch = watchFromJson(json.at("watch"), "watch");
  if (steps.contains("watch")) plan.steps.watch = stringAt(steps, "watch", "steps");
  plan.steps.timeout = std::chrono::milliseconds(static_cast<int64_t>(unsignedAt(
      steps, "timeout_ms", "steps", static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))));

  const Json& waves = arrayAt(json, "waves", "");
  for (size_t i = 0; i < waves.size(); ++i) {
    plan.waves.push_back(waveFromJson(waves[i], "waves[" + std::to_string(i) + "]"));
  }

  const std::string scope = stringAt(json, "rollback_scope", "");
  if (scope == rollbackScopeName(RollbackScope::kFleet)) {
    plan.rollback_scope = RollbackScope::kFleet;
  } else if (scope == rollbackScopeName(RollbackScope::kWave)) {
    plan.rollback_scope = RollbackScope::kWave;
  } else {
    throw FieldError("rollback_scope", "unknown scope");
  }
  return plan;
}

}  // namespace

std::string planToJson(const Plan& plan) {
  Json waves = Json::array();
  for (const Wave& wave : plan.waves) waves.push_back(waveToJson(wave));
  Json json{
      {"service", plan.service},
      {"version", plan.version},
      {"driver", driverName(plan.driver)},
      {"steps",
       {{"build", plan.steps.build},
        {"apply", plan.steps.apply},
        {"verify", plan.steps.verify_checks.empty() ? Json(plan.steps.verify)
                                                    : verifyChecksToJson(plan.steps.verify_checks)},
        {"rollback", plan.steps.rollback},
        {"switch", plan.steps.switch_traffic},
        {"timeout_ms", plan.steps.timeout.count()}}},
      {"waves", std::move(waves)},
      {"rollback_scope", rollbackScopeName(plan.rollback_scope)},
      {"on_agent_lost", plan.on_agent_lost == OnAgentLost::kWait ? "wait" : "rollback"},
      {"max_unavailable_clusters", plan.max_unavailable_clusters},
      {"process",
       {{"command", plan.process.command},
        {"replicas", plan.process.replicas},
        {"port_min", plan.process.port_min},
        {"port_max", plan.process.port_max},
        {"health_path", plan.process.health_path}}},
      {"haproxy", plan.haproxy
                      ? Json{{"socket", plan.haproxy->socket}, {"backend", plan.haproxy->backend}}
                      : Json(nullptr)},
      {"strategy", strategyToJson(plan.strategy)},
      {"health",
       {{"path", plan.health.http.path},
        {"url", plan.health.http.url},
        {"interval_ms", plan.health.http.interval.count()},
        {"timeout_ms", plan.health.http.timeout.count()},
        {"failure_threshold", plan.health.http.failure_threshold},
        {"metrics",
         plan.health.metrics
             ? Json{{"error_rate_increase", plan.health.metrics->error_rate_increase},
                    {"latency_p95_ratio", plan.health.metrics->latency_p95_ratio},
                    {"min_requests", plan.health.metrics->min_requests},
                    {"fail_when_inconclusive", plan.health.metrics->fail_when_inconclusive},
                    {"source", plan.health.metrics->source == MetricsSource::kPrometheus
                                   ? "prometheus"
                                   : "scrape"},
                    {"prometheus", plan.health.metrics->prometheus},
                    {"queries",
                     {{"request_rate", plan.health.metrics->queries.request_rate},
                      {"error_rate", plan.health.metrics->queries.error_rate},
                      {"latency_p95", plan.health.metrics->queries.latency_p95}}}}
             : Json(nullptr)}}},
      {"alerts", plan.alerts ? Json{{"error_rate", ruleJson(plan.alerts->error_rate)},
                                    {"latency_p95_ratio", ruleJson(plan.alerts->latency_p95_ratio)},
                                    {"cpu", ruleJson(plan.alerts->cpu)},
                                    {"memory", ruleJson(plan.alerts->memory)},
                                    {"webhook", plan.alerts->webhook},
                                    {"webhook_timeout_ms", plan.alerts->webhook_timeout.count()},
                                    {"webhook_attempts", plan.alerts->webhook_attempts}}
                             : Json(nullptr)}};
  // Only when not the default: the plan hash (Deployment::plan_sha256) of every plan written
  // before the field stays what it was.
  if (plan.on_step_failure == OnStepFailure::kHold) json["on_step_failure"] = "hold";
  if (plan.hotfix) json["hotfix"] = hotfixToJson(*plan.hotfix);
  if (!plan.steps.watch.empty()) json["steps"]["watch"] = plan.steps.watch;
  if (!plan.watch.empty()) json["watch"] = watchToJson(plan.watch);
  // dump() throws on invalid UTF-8 by default. parsePlan only yields valid UTF-8 (yaml-cpp
  // decodes its input), so replacing is for hand-built plans and keeps this function total.
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

StatusOr<Plan> planFromJson(const std::string& json) {
  // Extra fields are ignored so that a newer coordinator's records stay readable by this one.
  try {
    return planFromJsonValue(Json::parse(json));
  } catch (const FieldError& e) {
    return Status::Corruption(std::string("stored plan: ") + e.what());
  } catch (const Json::exception& e) {
    return Status::Corruption(std::string("stored plan is not valid JSON: ") + e.what());
  }
}

}  // namespace flotilla::common
