// Tests for the plan parser, durations, names and the stored JSON form (common/plan*.cpp).
#include "common/plan.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;

// The plan of DESIGN.md, without the fields this version does not support yet.
constexpr const char* kFullPlan = R"(service: checkout
version: "1.4.2"
driver: script
steps:
  build: "docker build -t registry.example.com/checkout:$FLOTILLA_VERSION ."
  apply: "kubectl apply -f k8s/$FLOTILLA_ENVIRONMENT/"
  verify: "./scripts/verify-deployment.sh $FLOTILLA_ENVIRONMENT"
  rollback: "kubectl rollout undo deployment/checkout -n $FLOTILLA_ENVIRONMENT"
  timeout: 300s
waves:
  - name: staging
    clusters: [staging-eu]
  - name: prod-canary
    clusters: [prod-eu-1]
    approval: required
  - name: prod
    selector: {environment: production}
    max_parallel: 2
rollback:
  scope: wave
)";

// The smallest valid plan; tests append or replace lines to make one problem at a time.
constexpr const char* kMinimalPlan = R"(service: checkout
version: "1.0"
steps:
  apply: ./apply.sh
  rollback: ./rollback.sh
waves:
  - name: staging
    clusters: [staging-eu]
)";

// The process-driver plan of DESIGN.md, with traffic through HAProxy, a canary strategy, a
// wave-level strategy and bake, and both kinds of health check. Values differ from the defaults
// wherever a default exists, so that each one is seen to be read.
constexpr const char* kFullProcessPlan = R"(service: checkout
version: "1.4.2"
driver: process
process:
  command: "/opt/checkout/{version}/bin/checkout --port {port}"
  replicas: 4
  ports: "18000-18099"
  health_path: /ready
traffic:
  haproxy:
    socket: /run/haproxy/admin.sock
    backend: checkout
strategy: {type: canary, steps: [10, 50, 100], pause: 45s}
health:
  http: {path: /live, interval: 500ms, timeout: 250ms, failure_threshold: 5}
  metrics: {source: scrape, error_rate_increase: 0.25, latency_p95_ratio: 1.5, min_requests: 50,
            inconclusive: fail}
waves:
  - name: staging
    clusters: [staging-eu]
  - name: prod-canary
    clusters: [prod-eu-1]
    approval: required
    strategy: {type: blue_green, switch: steps, steps: [50, 100], pause: 60s}
    bake: 15m
  - name: prod
    selector: {environment: production}
    max_parallel: 2
rollback:
  scope: wave
)";

// A process-driver plan with rolling strategies: the plan's, a wave's own, and a canary wave (which
// needs the traffic). Bounds differ from the defaults of 1 and 1.
constexpr const char* kRollingProcessPlan = R"(service: checkout
version: "2.0.0"
driver: process
process:
  command: "/opt/checkout/{version}/bin/checkout --port {port}"
  replicas: 6
  ports: "18000-18099"
traffic:
  haproxy: {socket: /run/haproxy/admin.sock, backend: checkout}
strategy: {type: rolling, max_unavailable: 0, max_surge: 2}
waves:
  - name: staging
    clusters: [staging-eu]
  - name: prod-eu
    clusters: [prod-eu-1]
    strategy:
      type: rolling
      max_unavailable: 3
      max_surge: 0
    bake: 10m
  - name: prod-us
    clusters: [prod-us-1]
    strategy: {type: canary, steps: [25, 100]}
)";

// The smallest valid process-driver plan (lines 1 to 9); tests append from line 10.
constexpr const char* kMinimalProcessPlan = R"(service: checkout
version: "1.0"
driver: process
process:
  command: "./serve --port {port}"
  ports: "18000-18099"
waves:
  - name: staging
    clusters: [staging-eu]
)";

// A valid `traffic` line, for the plans whose strategy needs one.
constexpr const char* kTrafficLine =
    "traffic: {haproxy: {socket: /run/haproxy/admin.sock, backend: checkout}}\n";

struct Where {
  int line;
  int column;
  bool operator==(const Where&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Where& where) {
  return out << where.line << ":" << where.column;
}

std::vector<Where> positions(const PlanParseResult& result) {
  std::vector<Where> out;
  for (const PlanProblem& problem : result.problems) out.push_back({problem.line, problem.column});
  return out;
}

// All problems on one string, for failure output and substring checks.
std::string describe(const PlanParseResult& result) {
  std::string out;
  for (const PlanProblem& problem : result.problems) out += problem.toString() + "\n";
  return out;
}

// Parses text expected to hold exactly one problem and returns it.
PlanProblem onlyProblem(const std::string& text) {
  PlanParseResult result = parsePlan(text);
  EXPECT_FALSE(result.plan.has_value());
  EXPECT_EQ(result.problems.size(), 1u) << describe(result);
  return result.problems.empty() ? PlanProblem{} : result.problems.front();
}

void expectSameStrategy(const Strategy& a, const Strategy& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_EQ(a.pause, b.pause);
  EXPECT_EQ(a.max_unavailable, b.max_unavailable);
  EXPECT_EQ(a.max_surge, b.max_surge);
}

void expectSamePlan(const Plan& a, const Plan& b) {
  EXPECT_EQ(a.service, b.service);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.driver, b.driver);
  EXPECT_EQ(a.steps.build, b.steps.build);
  EXPECT_EQ(a.steps.apply, b.steps.apply);
  EXPECT_EQ(a.steps.verify, b.steps.verify);
  EXPECT_EQ(a.steps.rollback, b.steps.rollback);
  EXPECT_EQ(a.steps.timeout, b.steps.timeout);
  EXPECT_EQ(a.rollback_scope, b.rollback_scope);
  ASSERT_EQ(a.waves.size(), b.waves.size());
  for (size_t i = 0; i < a.waves.size(); ++i) {
    EXPECT_EQ(a.waves[i].name, b.waves[i].name);
    EXPECT_EQ(a.waves[i].clusters, b.waves[i].clusters);
    EXPECT_EQ(a.waves[i].selector, b.waves[i].selector);
    EXPECT_EQ(a.waves[i].approval_required, b.waves[i].approval_required);
    EXPECT_EQ(a.waves[i].approvals_required, b.waves[i].approvals_required);
    EXPECT_EQ(a.waves[i].approval_expires, b.waves[i].approval_expires);
    EXPECT_EQ(a.waves[i].max_parallel, b.waves[i].max_parallel);
    ASSERT_EQ(a.waves[i].strategy.has_value(), b.waves[i].strategy.has_value());
    if (a.waves[i].strategy) expectSameStrategy(*a.waves[i].strategy, *b.waves[i].strategy);
    EXPECT_EQ(a.waves[i].bake, b.waves[i].bake);
  }
  EXPECT_EQ(a.process.command, b.process.command);
  EXPECT_EQ(a.process.replicas, b.process.replicas);
  EXPECT_EQ(a.process.port_min, b.process.port_min);
  EXPECT_EQ(a.process.port_max, b.process.port_max);
  EXPECT_EQ(a.process.health_path, b.process.health_path);
  ASSERT_EQ(a.haproxy.has_value(), b.haproxy.has_value());
  if (a.haproxy) {
    EXPECT_EQ(a.haproxy->socket, b.haproxy->socket);
    EXPECT_EQ(a.haproxy->backend, b.haproxy->backend);
  }
  expectSameStrategy(a.strategy, b.strategy);
  EXPECT_EQ(a.health.http.path, b.health.http.path);
  EXPECT_EQ(a.health.http.interval, b.health.http.interval);
  EXPECT_EQ(a.health.http.timeout, b.health.http.timeout);
  EXPECT_EQ(a.health.http.failure_threshold, b.health.http.failure_threshold);
  ASSERT_EQ(a.health.metrics.has_value(), b.health.metrics.has_value());
  if (a.health.metrics) {
    // Exact, not near: the stored form must give back the very same doubles.
    EXPECT_EQ(a.health.metrics->error_rate_increase, b.health.metrics->error_rate_increase);
    EXPECT_EQ(a.health.metrics->latency_p95_ratio, b.health.metrics->latency_p95_ratio);
    EXPECT_EQ(a.health.metrics->min_requests, b.health.metrics->min_requests);
    EXPECT_EQ(a.health.metrics->fail_when_inconclusive, b.health.metrics->fail_when_inconclusive);
  }
}

TEST(ParsePlan, FullPlanParsesToTheModel) {
  PlanParseResult result = parsePlan(kFullPlan);
  ASSERT_TRUE(result.problems.empty()) << describe(result);
  ASSERT_TRUE(result.plan.has_value());
  const Plan& plan = *result.plan;
  EXPECT_EQ(plan.service, "checkout");
  EXPECT_EQ(plan.version, "1.4.2");
  EXPECT_EQ(plan.driver, DriverKind::kScript);
  EXPECT_EQ(plan.steps.build, "docker build -t registry.example.com/checkout:$FLOTILLA_VERSION .");
  EXPECT_EQ(plan.steps.apply, "kubectl apply -f k8s/$FLOTILLA_ENVIRONMENT/");
  EXPECT_EQ(plan.steps.verify, "./scripts/verify-deployment.sh $FLOTILLA_ENVIRONMENT");
  EXPECT_EQ(plan.steps.rollback,
            "kubectl rollout undo deployment/checkout -n $FLOTILLA_ENVIRONMENT");
  EXPECT_EQ(plan.steps.timeout, 300s);
  ASSERT_EQ(plan.waves.size(), 3u);
  EXPECT_EQ(plan.waves[0].name, "staging");
  EXPECT_EQ(plan.waves[0].clusters, std::vector<std::string>{"staging-eu"});
  EXPECT_TRUE(plan.waves[0].selector.empty());
  EXPECT_FALSE(plan.waves[0].approval_required);
  EXPECT_EQ(plan.waves[0].max_parallel, 0u);
  EXPECT_EQ(plan.waves[1].name, "prod-canary");
  EXPECT_EQ(plan.waves[1].clusters, std::vector<std::string>{"prod-eu-1"});
  EXPECT_TRUE(plan.waves[1].approval_required);
  EXPECT_EQ(plan.waves[2].name, "prod");
  EXPECT_TRUE(plan.waves[2].clusters.empty());
  EXPECT_EQ(plan.waves[2].selector,
            (std::map<std::string, std::string>{{"environment", "production"}}));
  EXPECT_EQ(plan.waves[2].max_parallel, 2u);
  EXPECT_EQ(plan.rollback_scope, RollbackScope::kWave);
}

TEST(ParsePlan, MinimalPlanTakesTheDefaults) {
  PlanParseResult result = parsePlan(kMinimalPlan);
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  EXPECT_EQ(result.plan->driver, DriverKind::kScript);
  EXPECT_EQ(result.plan->steps.build, "");
  EXPECT_EQ(result.plan->steps.verify, "");
  EXPECT_EQ(result.plan->steps.timeout, 5min);
  EXPECT_EQ(result.plan->rollback_scope, RollbackScope::kFleet);
}

TEST(ParsePlan, JsonFormIsAccepted) {
  const std::string json = R"({
	"service": "checkout",
	"version": 1.4,
	"steps": {"apply": "./apply.sh", "rollback": "./rollback.sh", "timeout": "1h30m"},
	"waves": [
		{"name": "staging", "clusters": ["staging-eu", "staging-us"], "approval": false},
		{"name": "prod", "selector": {"environment": "production", "tier": "1"},
		 "approval": true, "max_parallel": 3}
	],
	"rollback": {"scope": "fleet"}
})";
  PlanParseResult result = parsePlan(json);
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  const Plan& plan = *result.plan;
  EXPECT_EQ(plan.version, "1.4");  // an unquoted number is taken as its text
  EXPECT_EQ(plan.steps.timeout, 90min);
  ASSERT_EQ(plan.waves.size(), 2u);
  EXPECT_EQ(plan.waves[0].clusters, (std::vector<std::string>{"staging-eu", "staging-us"}));
  EXPECT_FALSE(plan.waves[0].approval_required);
  EXPECT_TRUE(plan.waves[1].approval_required);
  EXPECT_EQ(plan.waves[1].selector.at("tier"), "1");
  EXPECT_EQ(plan.waves[1].max_parallel, 3u);
}

TEST(ParsePlan, UnquotedNumericVersionKeepsItsText) {
  std::string text = kMinimalPlan;
  text.replace(text.find("\"1.0\""), 5, "1.10");
  PlanParseResult result = parsePlan(text);
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  EXPECT_EQ(result.plan->version, "1.10");
}

TEST(ParsePlan, ListsEveryProblemWithItsPosition) {
  const std::string text =
      "service: Checkout\n"           // 1:10 not a valid name
      "version: \"1.4 beta\"\n"       // 2:10 whitespace in version
      "steps:\n"                      //
      "  apply: \"\"\n"               // 4:10 empty command
      "  rollback: undo\n"            //
      "  timeout: 0s\n"               // 6:12 not greater than 0
      "  verfy: ./check.sh\n"         // 7:3 unknown field, suggestion
      "waves:\n"                      //
      "  - name: staging\n"           //
      "    clusters: [eu-1, eu-1]\n"  // 10:22 listed twice
      "  - name: staging\n"           // 11:11 wave name already used
      "    clusters: [eu-1]\n"        // 12:16 cluster already in another wave
      "    max_parallel: 0\n";        // 13:19 not positive
  PlanParseResult result = parsePlan(text);
  EXPECT_FALSE(result.plan.has_value());
  const std::vector<Where> expected = {{1, 10},  {2, 10},  {4, 10},  {6, 12}, {7, 3},
                                       {10, 22}, {11, 11}, {12, 16}, {13, 19}};
  EXPECT_EQ(positions(result), expected) << describe(result);
  ASSERT_EQ(result.problems.size(), expected.size());
  EXPECT_EQ(result.problems[0].toString(),
            "1:10: service \"Checkout\" is not a valid name: use 1 to 63 characters from "
            "[a-z0-9-], not starting or ending with '-'");
  EXPECT_NE(result.problems[3].message.find("greater than 0"), std::string::npos);
  EXPECT_NE(result.problems[5].message.find("listed twice"), std::string::npos);
  EXPECT_NE(result.problems[6].message.find("already used at 9:11"), std::string::npos);
  EXPECT_EQ(result.problems[7].message, "cluster \"eu-1\" is already in wave \"staging\"");
  EXPECT_NE(result.problems[8].message.find("positive integer"), std::string::npos);
}

TEST(ParsePlan, MissingRequiredFieldsPointAtTheirMap) {
  const std::string text =
      "# a comment first\n"
      "driver: script\n"
      "steps:\n"
      "  build: make\n"
      "waves:\n"
      "  - clusters: [a]\n";
  PlanParseResult result = parsePlan(text);
  // Top-level misses are reported where the top-level map starts; the others at their own map.
  const std::vector<Where> expected = {{2, 1}, {2, 1}, {4, 3}, {4, 3}, {6, 5}};
  EXPECT_EQ(positions(result), expected) << describe(result);
  const std::string all = describe(result);
  EXPECT_NE(all.find("2:1: missing required field \"service\""), std::string::npos);
  EXPECT_NE(all.find("2:1: missing required field \"version\""), std::string::npos);
  EXPECT_NE(all.find("4:3: missing required field \"apply\" in steps"), std::string::npos);
  EXPECT_NE(all.find("4:3: missing required field \"rollback\" in steps"), std::string::npos);
  EXPECT_NE(all.find("6:5: missing required field \"name\" in waves[0]"), std::string::npos);
}

TEST(ParsePlan, UnknownFieldSuggestsTheNearestKnownOne) {
  std::string text = kMinimalPlan;
  text.insert(text.find("waves:"), "  verfy: ./check.sh\n");
  text += "    aproval: required\nsevice: x\nwibble: 1\n";
  PlanParseResult result = parsePlan(text);
  ASSERT_EQ(result.problems.size(), 4u) << describe(result);
  EXPECT_EQ(result.problems[0].toString(),
            "6:3: unknown field \"verfy\" in steps; did you mean \"verify\"?");
  EXPECT_EQ(result.problems[1].toString(),
            "10:5: unknown field \"aproval\" in waves[0]; did you mean \"approval\"?");
  EXPECT_EQ(result.problems[2].toString(),
            "11:1: unknown field \"sevice\"; did you mean \"service\"?");
  // Nothing close: no suggestion.
  EXPECT_EQ(result.problems[3].toString(), "12:1: unknown field \"wibble\"");
}

TEST(ParsePlan, DesignedButUnimplementedFieldsAreNotSupportedYet) {
  // The kubernetes driver is designed but not there.
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "driver: kubernetes\n").toString(),
            "9:9: driver \"kubernetes\" is not supported yet; use \"script\" or \"process\"");
}

TEST(ParsePlan, PrometheusSourceParsesToTheModel) {
  const std::string text = std::string(kMinimalProcessPlan) +
                           "health:\n"                                // 10
                           "  metrics:\n"                             // 11
                           "    source: prometheus\n"                 // 12
                           "    prometheus: http://127.0.0.1:9090\n"  // 13
                           "    queries:\n"                           // 14
                           "      error_rate: 'my_errors{instance=~\"{instances}\"}'\n";
  PlanParseResult result = parsePlan(text);
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  const auto& m = result.plan->health.metrics;
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->source, MetricsSource::kPrometheus);
  EXPECT_EQ(m->prometheus, "http://127.0.0.1:9090");
  EXPECT_EQ(m->queries.error_rate, "my_errors{instance=~\"{instances}\"}");
  // The others keep their defaults, which measure one set through {instances}.
  EXPECT_EQ(m->queries.request_rate, PrometheusQueries{}.request_rate);
  EXPECT_NE(m->queries.latency_p95.find("histogram_quantile(0.95"), std::string::npos);
  EXPECT_NE(m->queries.latency_p95.find("{instances}"), std::string::npos);

  auto roundTrip = planFromJson(planToJson(*result.plan));
  ASSERT_TRUE(roundTrip.ok()) << roundTrip.status().toString();
  ASSERT_TRUE(roundTrip->health.metrics.has_value());
  EXPECT_EQ(roundTrip->health.metrics->source, MetricsSource::kPrometheus);
  EXPECT_EQ(roundTrip->health.metrics->prometheus, m->prometheus);
  EXPECT_EQ(roundTrip->health.metrics->queries.error_rate, m->queries.error_rate);
  EXPECT_EQ(roundTrip->health.metrics->queries.latency_p95, m->queries.latency_p95);
}

TEST(ParsePlan, PrometheusSourceRules) {
  auto withMetrics = [](const std::string& metrics) {
    return describe(
        parsePlan(std::string(kMinimalProcessPlan) + "health: {metrics: " + metrics + "}\n"));
  };
  EXPECT_EQ(withMetrics("{source: prometheus}"),
            "10:28: source: prometheus needs health.metrics.prometheus, the server's URL (e.g. "
            "http://127.0.0.1:9090)\n");
  EXPECT_EQ(withMetrics("{source: prometheus, prometheus: ftp://x}"),
            "10:52: health.metrics.prometheus must be an http:// or https:// URL without spaces, "
            "not \"ftp://x\"\n");
  EXPECT_EQ(withMetrics("{prometheus: http://x:9090}"),
            "10:20: health.metrics.prometheus is used only with source: prometheus\n");
  EXPECT_EQ(withMetrics("{source: prometheus, prometheus: http://x, queries: {error_rate: up}}"),
            "10:84: health.metrics.queries.error_rate must use {instances} so it measures one "
            "set of replicas (new or stable), not the whole service\n");
  EXPECT_EQ(withMetrics("{source: prometheus, prometheus: http://x, queries: {eror_rate: x}}"),
            "10:72: unknown field \"eror_rate\" in health.metrics.queries; did you mean "
            "\"error_rate\"?\n");
  EXPECT_EQ(withMetrics("{source: other}"),
            "10:28: health.metrics.source must be \"scrape\" or \"prometheus\", not \"other\"\n");
}

TEST(ParsePlan, AlertsParseToTheModel) {
  const std::string text = std::string(kMinimalProcessPlan) +
                           "alerts: {error_rate: 0.1, latency_p95_ratio: 3, cpu: 0.8, memory: 0.5,"
                           " webhook: \"https://hooks.example.com/x?a=1\", webhook_timeout: 2s,"
                           " webhook_attempts: 5}\n";
  PlanParseResult result = parsePlan(text);
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  ASSERT_TRUE(result.plan->alerts.has_value());
  const Alerts& a = *result.plan->alerts;
  EXPECT_EQ(a.error_rate, 0.1);
  EXPECT_EQ(a.latency_p95_ratio, 3.0);
  EXPECT_EQ(a.cpu, 0.8);
  EXPECT_EQ(a.memory, 0.5);
  EXPECT_EQ(a.webhook, "https://hooks.example.com/x?a=1");
  EXPECT_EQ(a.webhook_timeout, std::chrono::seconds(2));
  EXPECT_EQ(a.webhook_attempts, 5u);

  auto roundTrip = planFromJson(planToJson(*result.plan));
  ASSERT_TRUE(roundTrip.ok()) << roundTrip.status().toString();
  ASSERT_TRUE(roundTrip->alerts.has_value());
  EXPECT_EQ(roundTrip->alerts->error_rate, a.error_rate);
  EXPECT_EQ(roundTrip->alerts->webhook, a.webhook);
  EXPECT_EQ(roundTrip->alerts->webhook_timeout, a.webhook_timeout);
  EXPECT_EQ(roundTrip->alerts->webhook_attempts, a.webhook_attempts);

  // The workflow's thresholds are the defaults; no webhook means events only.
  PlanParseResult defaults = parsePlan(std::string(kMinimalProcessPlan) + "alerts: {}\n");
  ASSERT_TRUE(defaults.plan.has_value()) << describe(defaults);
  ASSERT_TRUE(defaults.plan->alerts.has_value());
  EXPECT_EQ(defaults.plan->alerts->error_rate, 0.05);
  EXPECT_EQ(defaults.plan->alerts->latency_p95_ratio, 2.0);
  EXPECT_EQ(defaults.plan->alerts->cpu, 0.9);
  EXPECT_EQ(defaults.plan->alerts->memory, 0.9);
  EXPECT_EQ(defaults.plan->alerts->webhook, "");
  // A plan without alerts has none.
  EXPECT_FALSE(parsePlan(kMinimalProcessPlan).plan->alerts.has_value());
}

TEST(ParsePlan, AlertRules) {
  auto withAlerts = [](const std::string& alerts) {
    return describe(parsePlan(std::string(kMinimalProcessPlan) + "alerts: " + alerts + "\n"));
  };
  EXPECT_EQ(withAlerts("{error_rate: 1.5}"),
            "10:22: alerts.error_rate must be a number from 0 to 1, not \"1.5\"\n");
  EXPECT_EQ(withAlerts("{webhook: \"hooks.example.com\"}"),
            "10:19: alerts.webhook must be an http:// or https:// URL without spaces, not "
            "\"hooks.example.com\"\n");
  EXPECT_EQ(withAlerts("{webhook: \"http://a b\"}"),
            "10:19: alerts.webhook must be an http:// or https:// URL without spaces, not "
            "\"http://a b\"\n");
  EXPECT_EQ(withAlerts("{webhook_attempts: 0}"),
            "10:28: alerts.webhook_attempts must be an integer from 1 to 20, not \"0\"\n");
  EXPECT_EQ(withAlerts("{webhok: x}"),
            "10:10: unknown field \"webhok\" in alerts; did you mean \"webhook\"?\n");
  EXPECT_EQ(withAlerts("x"), "10:9: alerts must be a map, not a string\n");
  // Alerts watch the process driver's replicas: a script plan has none.
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "alerts: {cpu: 0.9}\n").toString(),
            "9:1: field \"alerts\" is for the process driver; this plan uses driver \"script\"");
}

TEST(ParsePlan, ScriptAndProcessDriversAreSupported) {
  PlanParseResult script = parsePlan(std::string(kMinimalPlan) + "driver: script\n");
  ASSERT_TRUE(script.plan.has_value()) << describe(script);
  EXPECT_EQ(script.plan->driver, DriverKind::kScript);
  PlanParseResult process = parsePlan(kMinimalProcessPlan);
  ASSERT_TRUE(process.plan.has_value()) << describe(process);
  EXPECT_EQ(process.plan->driver, DriverKind::kProcess);

  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "driver: kubernetes\n").toString(),
            "9:9: driver \"kubernetes\" is not supported yet; use \"script\" or \"process\"");
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "driver: docker\n").toString(),
            "9:9: unknown driver \"docker\"; valid values: script, process");
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "driver: [script]\n").toString(),
            "9:9: driver must be a string, not a list");
  // Valid values are case-sensitive.
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "driver: Process\n").toString(),
            "9:9: unknown driver \"Process\"; valid values: script, process");
}

TEST(ParsePlan, StepsAreRequiredForTheScriptDriverOnly) {
  const std::string without_steps =
      "service: checkout\nversion: \"1\"\nwaves: [{name: a, clusters: [a]}]\n";
  EXPECT_EQ(onlyProblem(without_steps).toString(),
            "1:1: missing required field \"steps\" (the script driver needs it)");
  EXPECT_EQ(onlyProblem(without_steps + "driver: script\n").toString(),
            "1:1: missing required field \"steps\" (the script driver needs it)");
  // The process driver needs `process` instead.
  EXPECT_EQ(onlyProblem(without_steps + "driver: process\n").toString(),
            "1:1: missing required field \"process\" (the process driver needs it)");
  EXPECT_TRUE(parsePlan(without_steps + "driver: process\nprocess: {command: \"x {port}\", ports: "
                                        "\"18000-18001\"}\n")
                  .plan.has_value());
  // With a driver that is refused anyway, a missing `steps` or `process` would only be noise.
  EXPECT_EQ(onlyProblem(without_steps + "driver: kubernetes\n").toString(),
            "4:9: driver \"kubernetes\" is not supported yet; use \"script\" or \"process\"");
}

TEST(ParsePlan, FullProcessPlanParsesToTheModel) {
  PlanParseResult result = parsePlan(kFullProcessPlan);
  ASSERT_TRUE(result.problems.empty()) << describe(result);
  ASSERT_TRUE(result.plan.has_value());
  const Plan& plan = *result.plan;
  EXPECT_EQ(plan.service, "checkout");
  EXPECT_EQ(plan.version, "1.4.2");
  EXPECT_EQ(plan.driver, DriverKind::kProcess);
  EXPECT_EQ(plan.process.command, "/opt/checkout/{version}/bin/checkout --port {port}");
  EXPECT_EQ(plan.process.replicas, 4u);
  EXPECT_EQ(plan.process.port_min, 18000u);
  EXPECT_EQ(plan.process.port_max, 18099u);
  EXPECT_EQ(plan.process.health_path, "/ready");
  ASSERT_TRUE(plan.haproxy.has_value());
  EXPECT_EQ(plan.haproxy->socket, "/run/haproxy/admin.sock");
  EXPECT_EQ(plan.haproxy->backend, "checkout");
  EXPECT_EQ(plan.strategy.kind, StrategyKind::kCanary);
  EXPECT_EQ(plan.strategy.steps, (std::vector<uint32_t>{10, 50, 100}));
  EXPECT_EQ(plan.strategy.pause, 45s);
  EXPECT_EQ(plan.health.http.path, "/live");
  EXPECT_EQ(plan.health.http.interval, 500ms);
  EXPECT_EQ(plan.health.http.timeout, 250ms);
  EXPECT_EQ(plan.health.http.failure_threshold, 5u);
  ASSERT_TRUE(plan.health.metrics.has_value());
  EXPECT_EQ(plan.health.metrics->error_rate_increase, 0.25);
  EXPECT_EQ(plan.health.metrics->latency_p95_ratio, 1.5);
  EXPECT_EQ(plan.health.metrics->min_requests, 50u);
  EXPECT_TRUE(plan.health.metrics->fail_when_inconclusive);
  EXPECT_EQ(plan.rollback_scope, RollbackScope::kWave);

  ASSERT_EQ(plan.waves.size(), 3u);
  EXPECT_EQ(plan.waves[0].name, "staging");
  EXPECT_FALSE(plan.waves[0].strategy.has_value());
  EXPECT_EQ(plan.waves[0].bake, 0ms);
  EXPECT_EQ(plan.waves[1].name, "prod-canary");
  EXPECT_TRUE(plan.waves[1].approval_required);
  ASSERT_TRUE(plan.waves[1].strategy.has_value());
  EXPECT_EQ(plan.waves[1].strategy->kind, StrategyKind::kBlueGreen);
  EXPECT_EQ(plan.waves[1].strategy->steps, (std::vector<uint32_t>{50, 100}));
  EXPECT_EQ(plan.waves[1].strategy->pause, 60s);
  EXPECT_EQ(plan.waves[1].bake, 15min);
  EXPECT_EQ(plan.waves[2].selector,
            (std::map<std::string, std::string>{{"environment", "production"}}));
  EXPECT_EQ(plan.waves[2].max_parallel, 2u);
  EXPECT_FALSE(plan.waves[2].strategy.has_value());

  // A wave's own strategy overrides the plan's; the others take the plan's.
  EXPECT_EQ(&plan.strategyFor(0), &plan.strategy);
  EXPECT_EQ(plan.strategyFor(1).kind, StrategyKind::kBlueGreen);
  EXPECT_EQ(&plan.strategyFor(2), &plan.strategy);
}

TEST(ParsePlan, RollingPlanParsesToTheModel) {
  PlanParseResult result = parsePlan(kRollingProcessPlan);
  ASSERT_TRUE(result.problems.empty()) << describe(result);
  ASSERT_TRUE(result.plan.has_value());
  const Plan& plan = *result.plan;
  EXPECT_EQ(plan.strategy.kind, StrategyKind::kRolling);
  EXPECT_EQ(plan.strategy.max_unavailable, 0u);
  EXPECT_EQ(plan.strategy.max_surge, 2u);
  ASSERT_EQ(plan.waves.size(), 3u);
  EXPECT_FALSE(plan.waves[0].strategy.has_value());
  ASSERT_TRUE(plan.waves[1].strategy.has_value());
  EXPECT_EQ(plan.waves[1].strategy->kind, StrategyKind::kRolling);
  EXPECT_EQ(plan.waves[1].strategy->max_unavailable, 3u);
  EXPECT_EQ(plan.waves[1].strategy->max_surge, 0u);
  EXPECT_EQ(plan.waves[1].bake, 10min);
  ASSERT_TRUE(plan.waves[2].strategy.has_value());
  EXPECT_EQ(plan.waves[2].strategy->kind, StrategyKind::kCanary);
  EXPECT_EQ(plan.waves[2].strategy->steps, (std::vector<uint32_t>{25, 100}));
  EXPECT_EQ(plan.waves[2].strategy->max_unavailable, 1u);
  EXPECT_EQ(plan.waves[2].strategy->max_surge, 1u);

  // The wave without a strategy rolls with the plan's bounds; the others with their own.
  EXPECT_EQ(&plan.strategyFor(0), &plan.strategy);
  EXPECT_EQ(plan.strategyFor(1).max_unavailable, 3u);
  EXPECT_EQ(plan.strategyFor(2).kind, StrategyKind::kCanary);
}

TEST(ParsePlan, ProcessPlanTakesTheDefaults) {
  PlanParseResult result = parsePlan(kMinimalProcessPlan);
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  const Plan& plan = *result.plan;
  EXPECT_EQ(plan.process.command, "./serve --port {port}");
  EXPECT_EQ(plan.process.replicas, 1u);
  EXPECT_EQ(plan.process.port_min, 18000u);
  EXPECT_EQ(plan.process.port_max, 18099u);
  EXPECT_EQ(plan.process.health_path, "/health");
  EXPECT_FALSE(plan.haproxy.has_value());
  // No strategy: the new set takes all traffic in one move.
  EXPECT_EQ(plan.strategy.kind, StrategyKind::kAllAtOnce);
  EXPECT_TRUE(plan.strategy.steps.empty());
  EXPECT_EQ(plan.strategy.pause, 0ms);
  EXPECT_EQ(plan.health.http.path, "/health");
  EXPECT_EQ(plan.health.http.interval, 2s);
  EXPECT_EQ(plan.health.http.timeout, 1s);
  EXPECT_EQ(plan.health.http.failure_threshold, 3u);
  EXPECT_FALSE(plan.health.metrics.has_value());
  EXPECT_FALSE(plan.waves[0].strategy.has_value());
  EXPECT_EQ(plan.waves[0].bake, 0ms);
  EXPECT_EQ(plan.rollback_scope, RollbackScope::kFleet);

  auto withTop = [](const std::string& lines) {
    return parsePlan(std::string(kMinimalProcessPlan) + kTrafficLine + lines);
  };
  // A canary's pause defaults to 30s.
  PlanParseResult canary = withTop("strategy: {type: canary, steps: [10, 100]}\n");
  ASSERT_TRUE(canary.plan.has_value()) << describe(canary);
  EXPECT_EQ(canary.plan->strategy.kind, StrategyKind::kCanary);
  EXPECT_EQ(canary.plan->strategy.steps, (std::vector<uint32_t>{10, 100}));
  EXPECT_EQ(canary.plan->strategy.pause, 30s);
  // Blue/green switches all at once unless told otherwise: one step of 100%.
  for (const char* strategy : {"{type: blue_green}", "{type: blue_green, switch: all}"}) {
    PlanParseResult bg = withTop(std::string("strategy: ") + strategy + "\n");
    ASSERT_TRUE(bg.plan.has_value()) << strategy << "\n" << describe(bg);
    EXPECT_EQ(bg.plan->strategy.kind, StrategyKind::kBlueGreen);
    EXPECT_EQ(bg.plan->strategy.steps, std::vector<uint32_t>{100}) << strategy;
    EXPECT_EQ(bg.plan->strategy.pause, 30s) << strategy;
  }
  PlanParseResult stepped =
      withTop("strategy: {type: blue_green, switch: steps, steps: [50, 100], pause: 0s}\n");
  ASSERT_TRUE(stepped.plan.has_value()) << describe(stepped);
  EXPECT_EQ(stepped.plan->strategy.steps, (std::vector<uint32_t>{50, 100}));
  EXPECT_EQ(stepped.plan->strategy.pause, 0ms);
  // A wave strategy has the same defaults.
  PlanParseResult wave = parsePlan(std::string(kMinimalProcessPlan) +
                                   "    strategy: {type: blue_green}\n" + kTrafficLine);
  ASSERT_TRUE(wave.plan.has_value()) << describe(wave);
  ASSERT_TRUE(wave.plan->waves[0].strategy.has_value());
  EXPECT_EQ(wave.plan->waves[0].strategy->steps, std::vector<uint32_t>{100});
  EXPECT_EQ(wave.plan->waves[0].strategy->pause, 30s);
  EXPECT_EQ(wave.plan->strategy.kind, StrategyKind::kAllAtOnce);

  // An empty metrics map turns the analysis on with its defaults; inconclusive defaults to wait.
  for (const char* metrics :
       {"{}", "{source: scrape}", "{inconclusive: wait}", "{source: scrape, inconclusive: wait}"}) {
    PlanParseResult m =
        withTop(std::string("health: {metrics: ") + metrics + ", http: {path: /health}}\n");
    ASSERT_TRUE(m.plan.has_value()) << metrics << "\n" << describe(m);
    ASSERT_TRUE(m.plan->health.metrics.has_value()) << metrics;
    EXPECT_EQ(m.plan->health.metrics->error_rate_increase, 0.5);
    EXPECT_EQ(m.plan->health.metrics->latency_p95_ratio, 2.0);
    EXPECT_EQ(m.plan->health.metrics->min_requests, 20u);
    EXPECT_FALSE(m.plan->health.metrics->fail_when_inconclusive);
    EXPECT_EQ(m.plan->health.http.interval, 2s);
  }
}

TEST(ParsePlan, ProcessFieldRules) {
  // `process` is on line 4; its map starts at column 10.
  auto withProcess = [](const std::string& process) {
    return describe(parsePlan("service: checkout\nversion: \"1\"\ndriver: process\nprocess: " +
                              process + "\nwaves: [{name: a, clusters: [a]}]\n"));
  };
  EXPECT_EQ(withProcess("{command: \"r {port}\", ports: \"1024-65535\", replicas: 64}"), "");
  EXPECT_EQ(withProcess("{command: \"r {port}\", ports: \"18000-18127\", replicas: 64}"), "");
  EXPECT_EQ(withProcess("{command: \"{port}\", ports: \"18000-18001\", health_path: /}"), "");

  EXPECT_EQ(withProcess("x"), "4:10: process must be a map, not a string\n");
  EXPECT_EQ(withProcess("{}"),
            "4:10: missing required field \"command\" in process\n"
            "4:10: missing required field \"ports\" in process\n");
  EXPECT_EQ(withProcess("{command: \"r port\", ports: \"18000-18099\"}"),
            "4:20: process.command must contain {port}: the agent picks each replica's port\n");
  EXPECT_EQ(withProcess("{command: [r], ports: \"18000-18099\"}"),
            "4:20: process.command must be a string, not a list\n");
  for (const char* replicas : {"0", "65", "-1", "1.5", "four", "\"\""}) {
    EXPECT_EQ(
        withProcess(std::string("{command: \"r {port}\", ports: \"18000-18199\", replicas: ") +
                    replicas + "}"),
        std::string("4:64: process.replicas must be an integer from 1 to 64, not \"") +
            (std::string(replicas) == "\"\"" ? "" : replicas) + "\"\n");
  }
  for (const char* ports : {"1023-2000", "18000-65536", "2000-1024", "a-b", "18000-", "-18000",
                            "18000-18001-18002", "18000 - 18099", "0-2000"}) {
    EXPECT_EQ(withProcess(std::string("{command: \"r {port}\", ports: \"") + ports + "\"}"),
              std::string("4:39: process.ports must be a range like \"18000-18099\" within "
                          "1024-65535, not \"") +
                  ports + "\"\n");
  }
  EXPECT_EQ(withProcess("{command: \"r {port}\", ports: 18000-18099}"), "");
  EXPECT_EQ(withProcess("{command: \"r {port}\", ports: [18000, 18099]}"),
            "4:39: process.ports must be a string, not a list\n");
  // Old and new replicas run side by side: 4 replicas need 8 ports.
  EXPECT_EQ(withProcess("{command: \"r {port}\", ports: \"18000-18007\", replicas: 4}"), "");
  EXPECT_EQ(withProcess("{command: \"r {port}\", ports: \"18000-18006\", replicas: 4}"),
            "4:10: process.ports holds fewer than 2 x replicas ports; old and new replicas run "
            "side by side during a rollout\n");
  EXPECT_EQ(withProcess("{command: \"r {port}\", ports: \"18000-18126\", replicas: 64}"),
            "4:10: process.ports holds fewer than 2 x replicas ports; old and new replicas run "
            "side by side during a rollout\n");
  // A single port is never enough (at least 2 are needed for one replica).
  EXPECT_FALSE(parsePlan("service: checkout\nversion: \"1\"\ndriver: process\n"
                         "process: {command: \"r {port}\", ports: \"18000\"}\n"
                         "waves: [{name: a, clusters: [a]}]\n")
                   .plan.has_value());
  for (const char* path : {"health", "\"\""}) {
    EXPECT_EQ(withProcess(std::string("{command: \"r {port}\", ports: \"18000-18099\", "
                                      "health_path: ") +
                          path + "}"),
              "4:67: process.health_path must start with '/'\n");
  }
  EXPECT_EQ(withProcess("{command: \"r {port}\", ports: \"18000-18099\", replica: 2}"),
            "4:54: unknown field \"replica\" in process; did you mean \"replicas\"?\n");
}

TEST(ParsePlan, TrafficRules) {
  // `traffic` is on line 10; its haproxy map starts at column 20.
  auto withTraffic = [](const std::string& traffic) {
    return describe(parsePlan(std::string(kMinimalProcessPlan) + "traffic: " + traffic + "\n"));
  };
  EXPECT_EQ(withTraffic("{haproxy: {socket: \"/run/{cluster}/admin.sock\", backend: be_1.x-y}}"),
            "");
  EXPECT_EQ(withTraffic("{haproxy: {socket: /s, backend: " + std::string(63, 'b') + "}}"), "");

  EXPECT_EQ(withTraffic("x"), "10:10: traffic must be a map, not a string\n");
  EXPECT_EQ(withTraffic("{}"), "10:10: missing required field \"haproxy\" in traffic\n");
  EXPECT_EQ(withTraffic("{haproxy: x}"), "10:20: traffic.haproxy must be a map, not a string\n");
  EXPECT_EQ(withTraffic("{haproxy: {}}"),
            "10:20: missing required field \"socket\" in traffic.haproxy\n"
            "10:20: missing required field \"backend\" in traffic.haproxy\n");
  EXPECT_EQ(withTraffic("{haproxy: {socket: run/admin.sock, backend: checkout}}"),
            "10:29: traffic.haproxy.socket must be an absolute path\n");
  EXPECT_EQ(withTraffic("{haproxy: {socket: \"\", backend: checkout}}"),
            "10:29: traffic.haproxy.socket must be an absolute path\n");
  for (const std::string& backend :
       {std::string("\"a b\""), std::string("\"\""), std::string("a/b"), std::string(64, 'b')}) {
    EXPECT_EQ(withTraffic("{haproxy: {socket: /s, backend: " + backend + "}}"),
              "10:42: traffic.haproxy.backend must be 1 to 63 characters from [A-Za-z0-9_.-]\n")
        << backend;
  }
  EXPECT_EQ(withTraffic("{nginx: {}, haproxy: {socket: /s, backend: b}}"),
            "10:11: unknown field \"nginx\" in traffic\n");
  EXPECT_EQ(withTraffic("{haproxy: {socket: /s, backend: b, weight: 1}}"),
            "10:45: unknown field \"weight\" in traffic.haproxy\n");
}

TEST(ParsePlan, StrategyRules) {
  // `strategy` is on line 11, after a valid `traffic`; its type's value is at column 18.
  auto withStrategy = [](const std::string& strategy) {
    return describe(parsePlan(std::string(kMinimalProcessPlan) + kTrafficLine +
                              "strategy: " + strategy + "\n"));
  };
  EXPECT_EQ(withStrategy("{type: canary, steps: [100]}"), "");
  EXPECT_EQ(withStrategy("{type: canary, steps: [1, 2, 99, 100], pause: 24h}"), "");

  EXPECT_EQ(withStrategy("canary"), "11:11: strategy must be a map, not a string\n");
  EXPECT_EQ(withStrategy("{steps: [100]}"), "11:11: missing required field \"type\" in strategy\n");
  EXPECT_EQ(withStrategy("{type: linear}"),
            "11:18: unknown strategy type \"linear\"; valid values: canary, blue_green, rolling\n");
  // Valid values are case-sensitive.
  EXPECT_EQ(
      withStrategy("{type: Rolling}"),
      "11:18: unknown strategy type \"Rolling\"; valid values: canary, blue_green, rolling\n");
  EXPECT_EQ(withStrategy("{type: rolling}"), "");
  EXPECT_EQ(withStrategy("{type: canary}"),
            "11:11: strategy needs \"steps\", e.g. [10, 50, 100]\n");
  EXPECT_EQ(withStrategy("{type: canary, steps: [10, 50]}"),
            "11:33: strategy.steps must end at 100\n");
  EXPECT_EQ(withStrategy("{type: canary, steps: []}"), "11:33: strategy.steps must end at 100\n");
  EXPECT_EQ(withStrategy("{type: canary, steps: 100}"),
            "11:33: strategy.steps must be a list, not a string\n");
  // The first bad step is reported.
  for (const char* steps : {"[50, 10, 100]", "[50, 50, 100]", "[10, 150]", "[10, -5, 100]",
                            "[10, 5.5, 100]", "[10, [20], 100]"}) {
    EXPECT_EQ(withStrategy(std::string("{type: canary, steps: ") + steps + "}"),
              "11:38: strategy.steps must be increasing percentages from 1 to 100\n")
        << steps;
  }
  EXPECT_EQ(withStrategy("{type: canary, steps: [0, 100]}"),
            "11:34: strategy.steps must be increasing percentages from 1 to 100\n");
  EXPECT_EQ(withStrategy("{type: canary, steps: [10, 100], switch: all}"),
            "11:44: strategy.switch is for blue_green\n");
  EXPECT_EQ(withStrategy("{type: blue_green, steps: [50, 100]}"),
            "11:30: strategy.steps needs switch: steps\n");
  EXPECT_EQ(withStrategy("{type: blue_green, switch: all, steps: [50, 100]}"),
            "11:43: strategy.steps needs switch: steps\n");
  EXPECT_EQ(withStrategy("{type: blue_green, switch: steps}"),
            "11:11: strategy needs \"steps\", e.g. [10, 50, 100]\n");
  EXPECT_EQ(withStrategy("{type: blue_green, switch: steps, steps: [50, 90]}"),
            "11:52: strategy.steps must end at 100\n");
  EXPECT_EQ(withStrategy("{type: blue_green, switch: half}"),
            "11:38: strategy.switch must be \"all\" or \"steps\", not \"half\"\n");
  EXPECT_EQ(withStrategy("{type: canary, steps: [100], pause: 24h1ms}"),
            "11:47: strategy.pause must be between 0s and 24h\n");
  EXPECT_EQ(withStrategy("{type: canary, steps: [100], pause: 30}"),
            "11:47: strategy.pause: invalid duration \"30\": a unit is required (h, m, s or ms)\n");
  EXPECT_EQ(withStrategy("{type: canary, steps: [100], paus: 30s}"),
            "11:40: unknown field \"paus\" in strategy; did you mean \"pause\"?\n");
}

TEST(ParsePlan, RollingTakesTheDefaults) {
  auto withTop = [](const std::string& line) {
    return parsePlan(std::string(kMinimalProcessPlan) + line);
  };
  // Both bounds default to 1; steps and pause are not used (one step of 100%, no pause).
  PlanParseResult rolling = withTop("strategy: {type: rolling}\n");
  ASSERT_TRUE(rolling.plan.has_value()) << describe(rolling);
  const Strategy& s = rolling.plan->strategy;
  EXPECT_EQ(s.kind, StrategyKind::kRolling);
  EXPECT_EQ(s.max_unavailable, 1u);
  EXPECT_EQ(s.max_surge, 1u);
  EXPECT_EQ(s.steps, std::vector<uint32_t>{100});
  EXPECT_EQ(s.pause, 0ms);
  EXPECT_FALSE(rolling.plan->waves[0].strategy.has_value());
  EXPECT_EQ(&rolling.plan->strategyFor(0), &rolling.plan->strategy);

  // Each bound given alone keeps the other's default; 0 is valid for either one alone.
  const std::vector<std::pair<std::string, std::pair<uint32_t, uint32_t>>> cases = {
      {"{type: rolling, max_unavailable: 3}", {3, 1}},
      {"{type: rolling, max_surge: 2}", {1, 2}},
      {"{type: rolling, max_unavailable: 0}", {0, 1}},
      {"{type: rolling, max_surge: 0}", {1, 0}},
      {"{type: rolling, max_unavailable: 0, max_surge: 64}", {0, 64}},
      {"{type: rolling, max_unavailable: 64, max_surge: 0}", {64, 0}},
      {"{type: rolling, max_unavailable: 64, max_surge: 64}", {64, 64}},
      {"{max_surge: 5, max_unavailable: 2, type: rolling}", {2, 5}},        // any order
      {"{type: rolling, max_unavailable: \"7\", max_surge: '8'}", {7, 8}},  // quoted numbers
  };
  for (const auto& [strategy, bounds] : cases) {
    PlanParseResult r = withTop("strategy: " + strategy + "\n");
    ASSERT_TRUE(r.plan.has_value()) << strategy << "\n" << describe(r);
    EXPECT_EQ(r.plan->strategy.kind, StrategyKind::kRolling) << strategy;
    EXPECT_EQ(r.plan->strategy.max_unavailable, bounds.first) << strategy;
    EXPECT_EQ(r.plan->strategy.max_surge, bounds.second) << strategy;
  }
  // Block style too.
  PlanParseResult block =
      withTop("strategy:\n  type: rolling\n  max_unavailable: 2\n  max_surge: 3\n");
  ASSERT_TRUE(block.plan.has_value()) << describe(block);
  EXPECT_EQ(block.plan->strategy.max_unavailable, 2u);
  EXPECT_EQ(block.plan->strategy.max_surge, 3u);

  // A wave strategy has the same defaults, and the other kinds keep 1 and 1 (unused).
  PlanParseResult wave = withTop("    strategy: {type: rolling}\n");
  ASSERT_TRUE(wave.plan.has_value()) << describe(wave);
  ASSERT_TRUE(wave.plan->waves[0].strategy.has_value());
  EXPECT_EQ(wave.plan->waves[0].strategy->kind, StrategyKind::kRolling);
  EXPECT_EQ(wave.plan->waves[0].strategy->max_unavailable, 1u);
  EXPECT_EQ(wave.plan->waves[0].strategy->max_surge, 1u);
  EXPECT_EQ(wave.plan->waves[0].strategy->steps, std::vector<uint32_t>{100});
  EXPECT_EQ(wave.plan->waves[0].strategy->pause, 0ms);
  EXPECT_EQ(wave.plan->strategy.kind, StrategyKind::kAllAtOnce);
  PlanParseResult canary =
      withTop(std::string(kTrafficLine) + "strategy: {type: canary, steps: [100]}\n");
  ASSERT_TRUE(canary.plan.has_value()) << describe(canary);
  EXPECT_EQ(canary.plan->strategy.max_unavailable, 1u);
  EXPECT_EQ(canary.plan->strategy.max_surge, 1u);
}

TEST(ParsePlan, RollingStrategyRules) {
  // `strategy` is on line 11, after a valid `traffic`; its map starts at column 11, the first
  // field after `type: rolling, ` at column 27.
  auto withStrategy = [](const std::string& strategy) {
    return describe(parsePlan(std::string(kMinimalProcessPlan) + kTrafficLine +
                              "strategy: " + strategy + "\n"));
  };
  EXPECT_EQ(withStrategy("{type: rolling, max_unavailable: 2, max_surge: 0}"), "");

  // Both 0: reported at the strategy map.
  EXPECT_EQ(withStrategy("{type: rolling, max_unavailable: 0, max_surge: 0}"),
            "11:11: strategy: max_unavailable and max_surge cannot both be 0 (nothing could ever "
            "be replaced)\n");
  EXPECT_EQ(describe(parsePlan(std::string(kMinimalProcessPlan) + kTrafficLine +
                               "strategy:\n  type: rolling\n  max_unavailable: 0\n"
                               "  max_surge: 0\n")),
            "12:3: strategy: max_unavailable and max_surge cannot both be 0 (nothing could ever "
            "be replaced)\n");
  // A bad bound keeps its default: the other one at 0 is then not "both 0".
  EXPECT_EQ(withStrategy("{type: rolling, max_unavailable: x, max_surge: 0}"),
            "11:44: strategy.max_unavailable must be an integer from 0 to 64, not \"x\"\n");

  // Out of range or not a plain integer: reported at the value.
  for (const char* value : {"65", "-1", "1.5", "+1", "1e1", "0x10", "four", "4294967296", "\"\""}) {
    const std::string text = std::string(value) == "\"\"" ? "" : value;
    EXPECT_EQ(
        withStrategy(std::string("{type: rolling, max_unavailable: ") + value + "}"),
        "11:44: strategy.max_unavailable must be an integer from 0 to 64, not \"" + text + "\"\n")
        << value;
    EXPECT_EQ(withStrategy(std::string("{type: rolling, max_surge: ") + value + "}"),
              "11:38: strategy.max_surge must be an integer from 0 to 64, not \"" + text + "\"\n")
        << value;
  }
  EXPECT_EQ(withStrategy("{type: rolling, max_unavailable: 1, max_surge: 65}"),
            "11:58: strategy.max_surge must be an integer from 0 to 64, not \"65\"\n");
  EXPECT_EQ(withStrategy("{type: rolling, max_unavailable: [1]}"),
            "11:44: strategy.max_unavailable must be a string, not a list\n");
  EXPECT_EQ(withStrategy("{type: rolling, max_surge: {n: 1}}"),
            "11:38: strategy.max_surge must be a string, not a map\n");
  EXPECT_EQ(withStrategy("{type: rolling, max_surge:}"),
            "11:27: strategy.max_surge has no value\n");

  // steps, pause and switch belong to canary and blue_green: each is reported at its key,
  // whatever its value.
  EXPECT_EQ(withStrategy("{type: rolling, steps: [10, 100]}"),
            "11:27: strategy.steps is not used by type: rolling\n");
  EXPECT_EQ(withStrategy("{type: rolling, pause: 30s}"),
            "11:27: strategy.pause is not used by type: rolling\n");
  EXPECT_EQ(withStrategy("{type: rolling, switch: all}"),
            "11:27: strategy.switch is not used by type: rolling\n");
  EXPECT_EQ(withStrategy("{type: rolling, steps: x, pause: 5, switch: [a]}"),
            "11:27: strategy.steps is not used by type: rolling\n"
            "11:37: strategy.pause is not used by type: rolling\n"
            "11:47: strategy.switch is not used by type: rolling\n");
  // Every problem of one strategy is listed, in the order of the text.
  EXPECT_EQ(withStrategy("{type: rolling, steps: [100], max_unavailable: 0, max_surge: 0}"),
            "11:11: strategy: max_unavailable and max_surge cannot both be 0 (nothing could ever "
            "be replaced)\n"
            "11:27: strategy.steps is not used by type: rolling\n");

  // max_unavailable and max_surge belong to rolling: reported at their key.
  EXPECT_EQ(withStrategy("{type: canary, steps: [100], max_unavailable: 1}"),
            "11:40: strategy.max_unavailable is for type: rolling\n");
  EXPECT_EQ(withStrategy("{type: canary, steps: [100], max_unavailable: 1, max_surge: 1}"),
            "11:40: strategy.max_unavailable is for type: rolling\n"
            "11:60: strategy.max_surge is for type: rolling\n");
  EXPECT_EQ(withStrategy("{type: blue_green, max_surge: 0}"),
            "11:30: strategy.max_surge is for type: rolling\n");
  EXPECT_EQ(withStrategy("{type: blue_green, switch: steps, steps: [50, 100], max_surge: 2}"),
            "11:63: strategy.max_surge is for type: rolling\n");
  // With an unknown type, only the type is reported.
  EXPECT_EQ(withStrategy("{type: linear, max_surge: 1}"),
            "11:18: unknown strategy type \"linear\"; valid values: canary, blue_green, rolling\n");
  EXPECT_EQ(withStrategy("{max_surge: 1}"), "11:11: missing required field \"type\" in strategy\n");

  // Misspellings and repeats.
  EXPECT_EQ(withStrategy("{type: rolling, max_surg: 2}"),
            "11:27: unknown field \"max_surg\" in strategy; did you mean \"max_surge\"?\n");
  EXPECT_EQ(withStrategy("{type: rolling, max_unavailble: 2}"),
            "11:27: unknown field \"max_unavailble\" in strategy; did you mean "
            "\"max_unavailable\"?\n");
  EXPECT_EQ(withStrategy("{type: rolling, max_surge: 1, max_surge: 2}"),
            "11:41: duplicate field \"max_surge\" in strategy (first at 11:27)\n");

  // Like the other strategies, rolling is for the process driver.
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "strategy: {type: rolling}\n").toString(),
            "9:1: field \"strategy\" is for the process driver; this plan uses driver \"script\"");
}

TEST(ParsePlan, RollingNeedsNoHaproxy) {
  // Plan-level and wave-level rolling strategies without traffic (line 10 on).
  for (const char* lines :
       {"strategy: {type: rolling}\n", "strategy: {type: rolling, max_unavailable: 0}\n",
        "    strategy: {type: rolling, max_surge: 2}\n",
        "    strategy: {type: rolling}\n    bake: 5m\nstrategy: {type: rolling}\n"}) {
    PlanParseResult result = parsePlan(std::string(kMinimalProcessPlan) + lines);
    ASSERT_TRUE(result.plan.has_value()) << lines << describe(result);
    EXPECT_FALSE(result.plan->haproxy.has_value());
    EXPECT_EQ(result.plan->strategyFor(0).kind, StrategyKind::kRolling) << lines;
  }
  constexpr char kNeedsHaproxy[] =
      "canary and blue_green need traffic.haproxy in this version (weights by share of replicas "
      "are not supported yet)";
  // A canary wave still needs it, even when the plan's strategy is rolling: the problem points at
  // the wave's `strategy` key (line 10), not at the plan's (line 11).
  EXPECT_EQ(onlyProblem(std::string(kMinimalProcessPlan) +
                        "    strategy: {type: canary, steps: [10, 100]}\n"
                        "strategy: {type: rolling}\n")
                .toString(),
            std::string("10:5: ") + kNeedsHaproxy);
  // And a blue_green plan strategy needs it even when the only wave overrides it with rolling.
  EXPECT_EQ(onlyProblem(std::string(kMinimalProcessPlan) + "    strategy: {type: rolling}\n"
                                                           "strategy: {type: blue_green}\n")
                .toString(),
            std::string("11:1: ") + kNeedsHaproxy);
}

TEST(ParsePlan, WaveStrategyAndBakeRules) {
  // Lines appended to the only wave start at line 10, column 5; traffic follows them.
  auto withWaveLine = [](const std::string& line) {
    return describe(
        parsePlan(std::string(kMinimalProcessPlan) + "    " + line + "\n" + kTrafficLine));
  };
  EXPECT_EQ(withWaveLine("strategy: {type: canary, steps: [25, 100], pause: 1m}"), "");
  EXPECT_EQ(withWaveLine("bake: 24h"), "");

  EXPECT_EQ(withWaveLine("strategy: x"), "10:15: waves[0].strategy must be a map, not a string\n");
  EXPECT_EQ(withWaveLine("strategy: {type: canary}"),
            "10:15: waves[0].strategy needs \"steps\", e.g. [10, 50, 100]\n");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling}"), "");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling, max_unavailable: 0, max_surge: 64}"), "");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling, max_unavailable: 0, max_surge: 0}"),
            "10:15: waves[0].strategy: max_unavailable and max_surge cannot both be 0 (nothing "
            "could ever be replaced)\n");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling, max_unavailable: 65}"),
            "10:48: waves[0].strategy.max_unavailable must be an integer from 0 to 64, not "
            "\"65\"\n");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling, max_surge: -1}"),
            "10:42: waves[0].strategy.max_surge must be an integer from 0 to 64, not \"-1\"\n");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling, steps: [100], pause: 1s, switch: all}"),
            "10:31: waves[0].strategy.steps is not used by type: rolling\n"
            "10:45: waves[0].strategy.pause is not used by type: rolling\n"
            "10:56: waves[0].strategy.switch is not used by type: rolling\n");
  EXPECT_EQ(withWaveLine("strategy: {type: blue_green, max_unavailable: 1}"),
            "10:34: waves[0].strategy.max_unavailable is for type: rolling\n");
  EXPECT_EQ(withWaveLine("strategy: {type: canary, steps: [10, 90]}"),
            "10:37: waves[0].strategy.steps must end at 100\n");
  EXPECT_EQ(withWaveLine("strategy: {type: blue_green, steps: [50, 100]}"),
            "10:34: waves[0].strategy.steps needs switch: steps\n");
  EXPECT_EQ(withWaveLine("strategy: {type: canary, steps: [100], max_surge: 1}"),
            "10:44: waves[0].strategy.max_surge is for type: rolling\n");
  EXPECT_EQ(withWaveLine("bake: 25h"), "10:11: waves[0].bake must be between 0s and 24h\n");
  EXPECT_EQ(withWaveLine("bake: 15x"),
            "10:11: waves[0].bake: invalid duration \"15x\": unknown unit; use h, m, s or ms\n");
  EXPECT_EQ(withWaveLine("bake: [1m]"), "10:11: waves[0].bake must be a string, not a list\n");
  EXPECT_EQ(withWaveLine("bak: 1m"),
            "10:5: unknown field \"bak\" in waves[0]; did you mean \"bake\"?\n");
}

TEST(ParsePlan, HealthRules) {
  // `health` is on line 10; its map starts at column 9.
  auto withHealth = [](const std::string& health) {
    return describe(parsePlan(std::string(kMinimalProcessPlan) + "health: " + health + "\n"));
  };
  EXPECT_EQ(withHealth("{http: {interval: 50ms, timeout: 10ms, failure_threshold: 1}}"), "");
  EXPECT_EQ(withHealth("{http: {interval: 1h, timeout: 5m, failure_threshold: 100}}"), "");
  EXPECT_EQ(withHealth("{metrics: {error_rate_increase: 0, latency_p95_ratio: 1, "
                       "min_requests: 1000000}}"),
            "");
  EXPECT_EQ(withHealth("{metrics: {error_rate_increase: 100, latency_p95_ratio: 100.0, "
                       "min_requests: 1}}"),
            "");

  EXPECT_EQ(withHealth("x"), "10:9: health must be a map, not a string\n");
  EXPECT_EQ(withHealth("{http: x}"), "10:16: health.http must be a map, not a string\n");
  EXPECT_EQ(withHealth("{metrics: [x]}"), "10:19: health.metrics must be a map, not a list\n");
  EXPECT_EQ(withHealth("{http: {path: live}}"), "10:23: health.http.path must start with '/'\n");
  for (const char* interval : {"49ms", "1h1ms"}) {
    EXPECT_EQ(withHealth(std::string("{http: {interval: ") + interval + "}}"),
              "10:27: health.http.interval must be between 50ms and 1h\n");
  }
  for (const char* timeout : {"9ms", "5m1ms"}) {
    EXPECT_EQ(withHealth(std::string("{http: {timeout: ") + timeout + "}}"),
              "10:26: health.http.timeout must be between 10ms and 5m\n");
  }
  EXPECT_EQ(withHealth("{http: {timeout: 1}}"),
            "10:26: health.http.timeout: invalid duration \"1\": a unit is required (h, m, s or "
            "ms)\n");
  for (const char* threshold : {"0", "101", "-1", "2.5"}) {
    EXPECT_EQ(withHealth(std::string("{http: {failure_threshold: ") + threshold + "}}"),
              std::string("10:36: health.http.failure_threshold must be an integer from 1 to 100, "
                          "not \"") +
                  threshold + "\"\n");
  }
  for (const char* rate : {"-0.1", "100.5", "abc", "0.5x", "nan", "\"\""}) {
    EXPECT_EQ(withHealth(std::string("{metrics: {error_rate_increase: ") + rate + "}}"),
              std::string("10:41: health.metrics.error_rate_increase must be a number from 0 to "
                          "100, not \"") +
                  (std::string(rate) == "\"\"" ? "" : rate) + "\"\n")
        << rate;
  }
  for (const char* ratio : {"0.99", "101", "two"}) {
    EXPECT_EQ(withHealth(std::string("{metrics: {latency_p95_ratio: ") + ratio + "}}"),
              std::string("10:39: health.metrics.latency_p95_ratio must be a number from 1 to "
                          "100, not \"") +
                  ratio + "\"\n")
        << ratio;
  }
  for (const char* min : {"0", "1000001", "-5", "1.5"}) {
    EXPECT_EQ(withHealth(std::string("{metrics: {min_requests: ") + min + "}}"),
              std::string("10:34: health.metrics.min_requests must be an integer from 1 to "
                          "1000000, not \"") +
                  min + "\"\n")
        << min;
  }
  EXPECT_EQ(withHealth("{metrics: {inconclusive: maybe}}"),
            "10:34: health.metrics.inconclusive must be \"wait\" or \"fail\", not \"maybe\"\n");
  EXPECT_EQ(withHealth("{htp: {}}"),
            "10:10: unknown field \"htp\" in health; did you mean \"http\"?\n");
  EXPECT_EQ(withHealth("{http: {pth: /x}}"),
            "10:17: unknown field \"pth\" in health.http; did you mean \"path\"?\n");
}

TEST(ParsePlan, FieldsOfTheOtherDriverAreRefused) {
  // A script plan (no driver given: script is the default) with every process-driver field.
  const std::string script = std::string(kMinimalPlan) +
                             "    strategy: {type: canary, steps: [10, 100]}\n"            // 9
                             "    bake: 5m\n"                                              // 10
                             "process: {command: \"x {port}\", ports: \"18000-18099\"}\n"  // 11
                             + kTrafficLine +                                              // 12
                             "strategy: {type: blue_green}\n"                              // 13
                             "health: {http: {path: /h}}\n";                               // 14
  for (const std::string& text : {script, "driver: script\n" + script}) {
    const int shift = text == script ? 0 : 1;
    PlanParseResult result = parsePlan(text);
    EXPECT_FALSE(result.plan.has_value());
    const std::vector<Where> expected = {{9 + shift, 5},  {10 + shift, 5}, {11 + shift, 1},
                                         {12 + shift, 1}, {13 + shift, 1}, {14 + shift, 1}};
    EXPECT_EQ(positions(result), expected) << describe(result);
    ASSERT_EQ(result.problems.size(), expected.size());
    EXPECT_EQ(result.problems[0].message,
              "wave field \"strategy\" is for the process driver; this plan uses driver "
              "\"script\"");
    EXPECT_EQ(result.problems[1].message,
              "wave field \"bake\" is for the process driver; this plan uses driver \"script\"");
    EXPECT_EQ(result.problems[2].message,
              "field \"process\" is for the process driver; this plan uses driver \"script\"");
    EXPECT_EQ(result.problems[3].message,
              "field \"traffic\" is for the process driver; this plan uses driver \"script\"");
    EXPECT_EQ(result.problems[4].message,
              "field \"strategy\" is for the process driver; this plan uses driver \"script\"");
    EXPECT_EQ(result.problems[5].message,
              "field \"health\" is for the process driver; this plan uses driver \"script\"");
  }

  // A process plan with script steps (line 10).
  EXPECT_EQ(
      onlyProblem(std::string(kMinimalProcessPlan) + "steps: {apply: a, rollback: b}\n").toString(),
      "10:1: field \"steps\" is for the script driver; the process driver runs the replicas "
      "itself");
  // kMinimalPlan with driver: process has steps and lacks process.
  EXPECT_EQ(describe(parsePlan(std::string(kMinimalPlan) + "driver: process\n")),
            "1:1: missing required field \"process\" (the process driver needs it)\n"
            "3:1: field \"steps\" is for the script driver; the process driver runs the "
            "replicas itself\n");
}

TEST(ParsePlan, CanaryAndBlueGreenNeedHaproxy) {
  constexpr char kNeedsHaproxy[] =
      "canary and blue_green need traffic.haproxy in this version (weights by share of replicas "
      "are not supported yet)";
  // Plan-level strategy (line 10): reported at its key.
  for (const char* strategy : {"{type: canary, steps: [10, 100]}", "{type: blue_green}",
                               "{type: blue_green, switch: steps, steps: [50, 100]}"}) {
    EXPECT_EQ(
        onlyProblem(std::string(kMinimalProcessPlan) + "strategy: " + strategy + "\n").toString(),
        std::string("10:1: ") + kNeedsHaproxy)
        << strategy;
  }
  // A wave-level strategy needs it too.
  for (const char* strategy : {"{type: canary, steps: [10, 100]}", "{type: blue_green}"}) {
    const PlanProblem problem =
        onlyProblem(std::string(kMinimalProcessPlan) + "    strategy: " + strategy + "\n");
    EXPECT_EQ(problem.message, kNeedsHaproxy) << strategy;
  }
  // Without a strategy (all at once), traffic is optional.
  EXPECT_TRUE(parsePlan(kMinimalProcessPlan).plan.has_value());
}

// When only a wave has a canary or blue_green strategy and the plan has no traffic.haproxy, the
// problem points at that wave's `strategy` key (RollingNeedsNoHaproxy checks the same with a
// plan-level strategy present that needs no traffic).
TEST(ParsePlan, WaveStrategyWithoutHaproxyPointsAtTheWave) {
  EXPECT_EQ(onlyProblem(std::string(kMinimalProcessPlan) +
                        "    strategy: {type: canary, steps: [10, 100]}\n")
                .toString(),
            "10:5: canary and blue_green need traffic.haproxy in this version (weights by share "
            "of replicas are not supported yet)");
}

TEST(ParsePlan, SyntaxErrorIsOneProblemAtItsPosition) {
  const std::string text =
      "service: checkout\n"
      "version: \"1.0\"\n"
      "waves: [staging, prod\n"
      "steps: {}\n";
  const PlanProblem problem = onlyProblem(text);
  EXPECT_EQ(problem.line, 4);
  EXPECT_EQ(problem.column, 6);
  EXPECT_EQ(problem.message, "syntax error: end of sequence flow not found");

  const PlanProblem tab = onlyProblem("service: checkout\n\tversion: 1\n");
  EXPECT_EQ(tab.line, 2);
  EXPECT_NE(tab.message.find("syntax error"), std::string::npos);
}

TEST(ParsePlan, DuplicateKeysAreRefused) {
  std::string text = kMinimalPlan;
  text.insert(text.find("waves:"), "  apply: ./other.sh\n");
  text += "    name: again\nservice: other\n";
  PlanParseResult result = parsePlan(text);
  const std::vector<Where> expected = {{6, 3}, {10, 5}, {11, 1}};
  EXPECT_EQ(positions(result), expected) << describe(result);
  ASSERT_EQ(result.problems.size(), 3u);
  EXPECT_EQ(result.problems[0].message, "duplicate field \"apply\" in steps (first at 4:3)");
  EXPECT_EQ(result.problems[1].message, "duplicate field \"name\" in waves[0] (first at 8:5)");
  EXPECT_EQ(result.problems[2].message, "duplicate field \"service\" (first at 1:1)");

  const PlanProblem label = onlyProblem(std::string(kMinimalPlan) +
                                        "  - name: prod\n    selector: {env: prod, env: dev}\n");
  EXPECT_EQ(label.toString(), "10:27: duplicate label \"env\" in waves[1].selector");
}

TEST(ParsePlan, ClusterInTwoWavesIsRefused) {
  const std::string text = std::string(kMinimalPlan) +
                           "  - name: prod\n"
                           "    clusters: [prod-eu, staging-eu]\n";
  const PlanProblem problem = onlyProblem(text);
  EXPECT_EQ(problem.toString(), "10:25: cluster \"staging-eu\" is already in wave \"staging\"");
}

TEST(ParsePlan, WaveNeedsExactlyOneOfClustersAndSelector) {
  const std::string both = std::string(kMinimalPlan) + "    selector: {env: prod}\n";
  EXPECT_EQ(onlyProblem(both).toString(),
            "7:5: waves[0] has both \"clusters\" and \"selector\"; use one");

  const std::string neither = std::string(kMinimalPlan) + "  - name: prod\n    approval: none\n";
  EXPECT_EQ(onlyProblem(neither).toString(), "9:5: waves[1] needs \"clusters\" or \"selector\"");
}

TEST(ParsePlan, WaveFieldRules) {
  auto withWave = [](const std::string& wave) {
    return parsePlan(std::string(kMinimalPlan) + "  - name: prod\n" + wave);
  };
  EXPECT_TRUE(withWave("    clusters: [a]\n    approval: none\n").plan.has_value());
  EXPECT_TRUE(withWave("    clusters: [a]\n    max_parallel: 4\n").plan.has_value());

  EXPECT_EQ(describe(withWave("    clusters: []\n")),
            "10:15: waves[1].clusters must not be empty\n");
  EXPECT_EQ(describe(withWave("    clusters: [Prod_1]\n")),
            "10:16: cluster \"Prod_1\" is not a valid name: use 1 to 63 characters from "
            "[a-z0-9-], not starting or ending with '-'\n");
  EXPECT_EQ(describe(withWave("    clusters: a\n")),
            "10:15: waves[1].clusters must be a list, not a string\n");
  EXPECT_EQ(describe(withWave("    selector: {}\n")),
            "10:15: waves[1].selector must not be empty\n");
  EXPECT_EQ(describe(withWave("    selector: {Env: prod}\n")),
            "10:16: label key \"Env\" in waves[1].selector must be 1 to 63 characters from "
            "[a-z0-9._/-]\n");
  EXPECT_EQ(describe(withWave("    selector: {env: [a]}\n")),
            "10:21: label \"env\" in waves[1].selector must have a value of 1 to 63 printable "
            "ASCII characters\n");
  EXPECT_EQ(describe(withWave("    clusters: [a]\n    approval: maybe\n")),
            "11:15: waves[1].approval must be \"required\", \"none\" or {required: N}, not "
            "\"maybe\"\n");
  EXPECT_EQ(describe(withWave("    clusters: [a]\n    max_parallel: -1\n")),
            "11:19: waves[1].max_parallel must be a positive integer, not \"-1\"\n");
  EXPECT_EQ(describe(withWave("    clusters: [a]\n    max_parallel: 1.5\n")),
            "11:19: waves[1].max_parallel must be a positive integer, not \"1.5\"\n");
}

TEST(ParsePlan, ApprovalForms) {
  auto wave = [](const std::string& approval) {
    return parsePlan(std::string(kMinimalPlan) + "  - name: prod\n    clusters: [a]\n" +
                     "    approval: " + approval + "\n");
  };
  // The plain form: one approver, valid for the default (and longest) 24 hours.
  PlanParseResult plain = wave("required");
  ASSERT_TRUE(plain.plan.has_value()) << describe(plain);
  EXPECT_TRUE(plain.plan->waves[1].approval_required);
  EXPECT_EQ(plain.plan->waves[1].approvals_required, 1u);
  EXPECT_EQ(plain.plan->waves[1].approval_expires, std::chrono::hours(24));
  EXPECT_FALSE(plain.plan->waves[0].approval_required);

  PlanParseResult two = wave("{required: 2}");
  ASSERT_TRUE(two.plan.has_value()) << describe(two);
  EXPECT_TRUE(two.plan->waves[1].approval_required);
  EXPECT_EQ(two.plan->waves[1].approvals_required, 2u);
  EXPECT_EQ(two.plan->waves[1].approval_expires, std::chrono::hours(24));

  PlanParseResult shorter = wave("{required: 3, expires: 90m}");
  ASSERT_TRUE(shorter.plan.has_value()) << describe(shorter);
  EXPECT_EQ(shorter.plan->waves[1].approvals_required, 3u);
  EXPECT_EQ(shorter.plan->waves[1].approval_expires, std::chrono::minutes(90));

  // Block style, and the stored form keeps both numbers.
  PlanParseResult block = parsePlan(std::string(kMinimalPlan) +
                                    "  - name: prod\n    clusters: [a]\n    approval:\n"
                                    "      required: 10\n      expires: 24h\n");
  ASSERT_TRUE(block.plan.has_value()) << describe(block);
  EXPECT_EQ(block.plan->waves[1].approvals_required, 10u);
  auto stored = planFromJson(planToJson(*shorter.plan));
  ASSERT_TRUE(stored.ok()) << stored.status().toString();
  expectSamePlan(*shorter.plan, *stored);

  // JSON plans take the same map.
  PlanParseResult json = parsePlan(
      R"({"service": "checkout", "version": "1", "steps": {"apply": "a", "rollback": "b"},
          "waves": [{"name": "prod", "clusters": ["a"],
                     "approval": {"required": 2, "expires": "1h"}}]})");
  ASSERT_TRUE(json.plan.has_value()) << describe(json);
  EXPECT_EQ(json.plan->waves[0].approvals_required, 2u);
  EXPECT_EQ(json.plan->waves[0].approval_expires, std::chrono::hours(1));
}

TEST(ParsePlan, ApprovalRules) {
  auto wave = [](const std::string& approval) {
    return describe(parsePlan(std::string(kMinimalPlan) + "  - name: prod\n    clusters: [a]\n" +
                              "    approval: " + approval + "\n"));
  };
  EXPECT_EQ(wave("{required: 0}"),
            "11:26: waves[1].approval.required must be an integer from 1 to 10, not \"0\"\n");
  EXPECT_EQ(wave("{required: 11}"),
            "11:26: waves[1].approval.required must be an integer from 1 to 10, not \"11\"\n");
  EXPECT_EQ(wave("{required: two}"),
            "11:26: waves[1].approval.required must be an integer from 1 to 10, not \"two\"\n");
  EXPECT_EQ(wave("{required: 2, expires: 25h}"),
            "11:38: waves[1].approval.expires must be between 1s and 24h\n");
  EXPECT_EQ(wave("{required: 2, expires: 0s}"),
            "11:38: waves[1].approval.expires must be between 1s and 24h\n");
  EXPECT_EQ(wave("{required: 2, expires: soon}"),
            "11:38: waves[1].approval.expires: " + parseDuration("soon").status().message() + "\n");
  EXPECT_EQ(wave("{expires: 1h}"),
            "11:15: missing required field \"required\" in "
            "waves[1].approval\n");
  EXPECT_EQ(wave("{required: 2, expire: 1h}"),
            "11:29: unknown field \"expire\" in waves[1].approval; did you mean \"expires\"?\n");
  EXPECT_EQ(wave("[required]"),
            "11:15: waves[1].approval must be \"required\", \"none\" or a map "
            "such as {required: 2, expires: 12h}, not a list\n");
  // Every problem at once, each where it is.
  EXPECT_EQ(wave("{required: 0, expires: 2d, by: me}"),
            "11:26: waves[1].approval.required must be an integer from 1 to 10, not \"0\"\n"
            "11:38: waves[1].approval.expires: " +
                parseDuration("2d").status().message() +
                "\n"
                "11:42: unknown field \"by\" in waves[1].approval\n");
}

TEST(ParsePlan, WrongNodeTypesAreProblemsNotCrashes) {
  EXPECT_EQ(onlyProblem("- a\n- b\n").toString(),
            "1:1: a plan must be a map of fields, not a list");
  EXPECT_EQ(onlyProblem("just text\n").toString(),
            "1:1: a plan must be a map of fields, not a string");
  const std::string text =
      "service: [checkout]\n"  // 1:10
      "version:\n"             // 2:1, no value: the key's position
      "steps: [apply]\n"       // 3:8
      "waves: {name: a}\n"     // 4:8
      "rollback: fleet\n";     // 5:11
  PlanParseResult result = parsePlan(text);
  const std::vector<Where> expected = {{1, 10}, {2, 1}, {3, 8}, {4, 8}, {5, 11}};
  EXPECT_EQ(positions(result), expected) << describe(result);
  ASSERT_EQ(result.problems.size(), 5u);
  EXPECT_EQ(result.problems[0].message, "service must be a string, not a list");
  EXPECT_EQ(result.problems[1].message, "version has no value");
  EXPECT_EQ(result.problems[2].message, "steps must be a map, not a list");
  EXPECT_EQ(result.problems[3].message, "waves must be a list, not a map");
  EXPECT_EQ(result.problems[4].message, "rollback must be a map, not a string");

  EXPECT_EQ(
      describe(parsePlan(std::string(kMinimalPlan) + "  - [a]\n  - 7\n")),
      "9:5: waves[1] must be a map, not a list\n10:5: waves[2] must be a map, not a string\n");
  EXPECT_EQ(describe(parsePlan(std::string(kMinimalPlan) + "? [a]\n: b\n")),
            "9:3: field names must be strings, not a list\n");
}

TEST(ParsePlan, EmptyInputsAreProblems) {
  EXPECT_EQ(onlyProblem("").toString(), "the plan is empty");
  EXPECT_EQ(onlyProblem("# nothing here\n").toString(), "the plan is empty");
  EXPECT_EQ(onlyProblem("---\n...\n").toString(), "the plan is empty");
  EXPECT_EQ(onlyProblem("service: x\nwaves: []\nversion: '1'\nsteps: {apply: a, rollback: b}\n")
                .toString(),
            "2:8: waves must not be empty");
}

TEST(ParsePlan, RollbackScope) {
  PlanParseResult fleet = parsePlan(std::string(kMinimalPlan) + "rollback: {scope: fleet}\n");
  ASSERT_TRUE(fleet.plan.has_value()) << describe(fleet);
  EXPECT_EQ(fleet.plan->rollback_scope, RollbackScope::kFleet);
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "rollback: {scope: all}\n").toString(),
            "9:19: rollback.scope must be \"fleet\" or \"wave\", not \"all\"");
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "rollback: {}\n").toString(),
            "9:11: missing required field \"scope\" in rollback");
}

TEST(ParsePlan, StepTimeoutRules) {
  auto withTimeout = [](const std::string& timeout) {
    std::string text = kMinimalPlan;
    text.insert(text.find("waves:"), "  timeout: " + timeout + "\n");
    return parsePlan(text);
  };
  ASSERT_TRUE(withTimeout("24h").plan.has_value());
  EXPECT_EQ(withTimeout("250ms").plan->steps.timeout, 250ms);
  EXPECT_EQ(describe(withTimeout("300")),
            "6:12: steps.timeout: invalid duration \"300\": a unit is required (h, m, s or ms)\n");
  EXPECT_EQ(describe(withTimeout("24h1ms")), "6:12: steps.timeout must be at most 24h\n");
  EXPECT_EQ(describe(withTimeout("0ms")), "6:12: steps.timeout must be greater than 0\n");
  EXPECT_EQ(
      describe(withTimeout("5 minutes")),
      "6:12: steps.timeout: invalid duration \"5 minutes\": unknown unit; use h, m, s or ms\n");
}

TEST(ParsePlan, ProblemsAreSortedAndToStringOmitsMissingPosition) {
  // The wave problem is found before the top-level one but comes after it in the text.
  PlanParseResult result = parsePlan(
      "waves: [{name: A, clusters: [a]}]\nservice: checkout\nversion: '1'\n"
      "steps: {apply: a, rollback: b}\nsevice: x\n");
  EXPECT_EQ(positions(result), (std::vector<Where>{{1, 16}, {5, 1}})) << describe(result);
  EXPECT_EQ(PlanProblem{}.toString(), "");
  EXPECT_EQ((PlanProblem{0, 0, "no position"}).toString(), "no position");
  EXPECT_EQ((PlanProblem{3, 7, "here"}).toString(), "3:7: here");
}

TEST(ParsePlan, ExtraDocumentIsRefused) {
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "---\nservice: other\n").toString(),
            "10:1: a plan is a single YAML document; found another one");
  EXPECT_TRUE(parsePlan(std::string(kMinimalPlan) + "---\n").plan.has_value());
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "---\n---\n...\n[a]\n").toString(),
            "12:1: a plan is a single YAML document; found another one");
}

TEST(ParsePlan, StrayCommaIsASyntaxError) {
  // yaml-cpp 0.7 does not consume a ',' outside a flow collection (its LoadAll loops forever).
  EXPECT_EQ(onlyProblem(",").toString(), "1:1: syntax error: unexpected \",\"");
  EXPECT_EQ(onlyProblem(",service: checkout\n").toString(), "1:1: syntax error: unexpected \",\"");
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "---\n,\n").toString(),
            "10:1: syntax error: unexpected \",\"");
}

TEST(ParsePlan, HostileInputsAreProblemsNotCrashes) {
  // Deep nesting: yaml-cpp refuses it before it can exhaust the stack.
  for (const std::string& deep :
       {std::string(100000, '['), std::string(5000, '[') + std::string(5000, ']'),
        std::string(1000, '{') + "a: 1" + std::string(1000, '}')}) {
    PlanParseResult result = parsePlan(deep);
    EXPECT_FALSE(result.plan.has_value());
    EXPECT_EQ(result.problems.size(), 1u) << describe(result);
  }

  // Over the size limit: one problem without a position, whatever the content.
  const PlanProblem big = onlyProblem(std::string(2 << 20, 'a'));
  EXPECT_EQ(big.line, 0);
  EXPECT_NE(big.message.find("1 MiB"), std::string::npos);

  // Binary bytes, including NUL and invalid UTF-8.
  std::string binary;
  uint32_t seed = 12345;
  for (int i = 0; i < 4096; ++i) {
    seed = seed * 1103515245 + 12345;
    binary += static_cast<char>(seed >> 16);
  }
  for (const std::string& text : {binary, std::string("service: \0\xff\xfe", 12),
                                  std::string("\xef\xbb\xbf\x00\x01\x02", 6)}) {
    PlanParseResult result = parsePlan(text);
    EXPECT_FALSE(result.plan.has_value());
    EXPECT_FALSE(result.problems.empty());
  }

  // An anchor that contains its own alias makes a cyclic tree.
  EXPECT_FALSE(parsePlan("service: &a [*a]\nwaves: &w [*w]\n").plan.has_value());

  // yaml-cpp names the offending byte in some messages: it comes back escaped.
  EXPECT_EQ(onlyProblem("service: \"\\\xff\"\n").toString(),
            "1:13: syntax error: unknown escape character: \\xff");

  // A huge value is quoted back cut short.
  const PlanProblem huge =
      onlyProblem(std::string(kMinimalPlan) + std::string(500000, 'k') + ": 1\n");
  EXPECT_LT(huge.message.size(), 200u);

  // Very many problems are cut to a readable list, still sorted, with the cut said.
  std::string many = std::string(kMinimalPlan) + "  - name: many\n    clusters: [";
  for (int i = 0; i < 5000; ++i) many += "X,";
  many += "X]\n";
  PlanParseResult result = parsePlan(many);
  ASSERT_GT(result.problems.size(), 1u);
  EXPECT_LT(result.problems.size(), 1000u);
  EXPECT_NE(result.problems.back().message.find("more problems not listed"), std::string::npos);
  EXPECT_EQ(result.problems.back().line, 10);
}

TEST(Duration, ParsesSequencesOfUnits) {
  const std::vector<std::pair<std::string, std::chrono::milliseconds>> cases = {
      {"300s", 300s}, {"5m", 5min}, {"1h30m", 90min},         {"250ms", 250ms},
      {"2h", 2h},     {"0s", 0ms},  {"1h2m3s4ms", 3723004ms}, {"90s", 90s}};
  for (const auto& [text, expected] : cases) {
    auto parsed = parseDuration(text);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status().toString();
    EXPECT_EQ(*parsed, expected) << text;
  }
}

TEST(Duration, RefusesBadText) {
  for (const std::string text : {"", "300", "5", "m", "-5m", "5M", "1.5h", "5m5m", "30s1m",
                                 "1h 30m", " 5m", "5m ", "5d", "5mss", "9999999999999h", "ms"}) {
    auto parsed = parseDuration(text);
    EXPECT_FALSE(parsed.ok()) << "\"" << text << "\" was accepted";
    if (!parsed.ok()) {
      EXPECT_TRUE(parsed.status().isInvalidArgument());
    }
  }
  EXPECT_NE(parseDuration("300").status().message().find("unit is required"), std::string::npos);
}

TEST(Duration, FormatsTheShortestFormAndRoundTrips) {
  EXPECT_EQ(formatDuration(5min), "5m");
  EXPECT_EQ(formatDuration(90min), "1h30m");
  EXPECT_EQ(formatDuration(250ms), "250ms");
  EXPECT_EQ(formatDuration(90s), "1m30s");
  EXPECT_EQ(formatDuration(300s), "5m");
  EXPECT_EQ(formatDuration(0ms), "0s");
  EXPECT_EQ(formatDuration(1500ms), "1s500ms");
  EXPECT_EQ(formatDuration(-90s), "-1m30s");
  for (int64_t ms :
       {1LL, 999LL, 1000LL, 59999LL, 60000LL, 3600000LL, 3723004LL, 86400000LL, 123456789012LL}) {
    const std::chrono::milliseconds d(ms);
    auto parsed = parseDuration(formatDuration(d));
    ASSERT_TRUE(parsed.ok()) << formatDuration(d);
    EXPECT_EQ(*parsed, d);
  }
  for (const std::string text : {"5m", "1h30m", "250ms", "1m30s", "2h", "1h2m3s4ms"}) {
    EXPECT_EQ(formatDuration(*parseDuration(text)), text);
  }
}

TEST(Names, ValidNames) {
  for (const std::string& name :
       std::vector<std::string>{"a", "checkout", "prod-eu-1", "0", std::string(63, 'x')}) {
    EXPECT_TRUE(isValidName(name)) << name;
  }
  for (const std::string& name :
       std::vector<std::string>{"", "-a", "a-", "Prod", "a_b", "a.b", "a b", std::string(64, 'x'),
                                std::string("a\0b", 3)}) {
    EXPECT_FALSE(isValidName(name)) << name;
  }
  EXPECT_STREQ(driverName(DriverKind::kScript), "script");
  EXPECT_STREQ(driverName(DriverKind::kProcess), "process");
  EXPECT_STREQ(strategyName(StrategyKind::kAllAtOnce), "all_at_once");
  EXPECT_STREQ(strategyName(StrategyKind::kCanary), "canary");
  EXPECT_STREQ(strategyName(StrategyKind::kBlueGreen), "blue_green");
  EXPECT_STREQ(strategyName(StrategyKind::kRolling), "rolling");
  EXPECT_STREQ(rollbackScopeName(RollbackScope::kFleet), "fleet");
  EXPECT_STREQ(rollbackScopeName(RollbackScope::kWave), "wave");
}

TEST(PlanJson, RoundTripIsExact) {
  PlanParseResult parsed = parsePlan(kFullPlan);
  ASSERT_TRUE(parsed.plan.has_value()) << describe(parsed);
  Plan plan = *parsed.plan;
  plan.waves[0].selector = {{"a", "é ü"}, {"k8s.io/zone", "x y"}};  // non-ASCII survives
  plan.waves[1].max_parallel = 4294967295u;
  plan.steps.timeout = 86399999ms;

  const std::string json = planToJson(plan);
  auto back = planFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().toString();
  expectSamePlan(*back, plan);
  EXPECT_EQ(planToJson(*back), json);

  // A plan straight from the defaults round-trips too (empty optional commands).
  auto empty = planFromJson(planToJson(Plan{}));
  ASSERT_TRUE(empty.ok()) << empty.status().toString();
  expectSamePlan(*empty, Plan{});
}

TEST(PlanJson, ProcessPlanRoundTripIsExact) {
  PlanParseResult parsed = parsePlan(kFullProcessPlan);
  ASSERT_TRUE(parsed.plan.has_value()) << describe(parsed);
  const std::string json = planToJson(*parsed.plan);
  auto back = planFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().toString();
  expectSamePlan(*back, *parsed.plan);
  EXPECT_EQ(planToJson(*back), json);

  // Values at the edges of what the stored form holds, and doubles without a short decimal form.
  Plan plan = *parsed.plan;
  plan.process.replicas = 64;
  plan.process.port_min = 1024;
  plan.process.port_max = 65535;
  plan.process.command = "/opt/caf\xc3\xa9/{version} --port {port} --name \"x\"";
  plan.haproxy->socket = "/run/{cluster}/admin.sock";
  plan.strategy = Strategy{StrategyKind::kBlueGreen, {100}, 86400000ms};
  plan.waves[0].strategy = Strategy{StrategyKind::kCanary, {1, 2, 3, 100}, 0ms};
  plan.waves[1].strategy.reset();
  plan.waves[2].bake = 86400000ms;
  plan.health.http.failure_threshold = 1000;
  plan.health.metrics->error_rate_increase = 0.1;
  plan.health.metrics->latency_p95_ratio = 1.0 / 3.0;
  plan.health.metrics->min_requests = 4294967295u;
  plan.health.metrics->fail_when_inconclusive = false;
  const std::string edge_json = planToJson(plan);
  auto edge = planFromJson(edge_json);
  ASSERT_TRUE(edge.ok()) << edge.status().toString();
  expectSamePlan(*edge, plan);
  EXPECT_EQ(planToJson(*edge), edge_json);

  // Without traffic, strategy or metrics (the defaults) too.
  PlanParseResult minimal = parsePlan(kMinimalProcessPlan);
  ASSERT_TRUE(minimal.plan.has_value()) << describe(minimal);
  auto minimal_back = planFromJson(planToJson(*minimal.plan));
  ASSERT_TRUE(minimal_back.ok()) << minimal_back.status().toString();
  expectSamePlan(*minimal_back, *minimal.plan);
  EXPECT_FALSE(minimal_back->haproxy.has_value());
  EXPECT_FALSE(minimal_back->health.metrics.has_value());
  EXPECT_FALSE(minimal_back->waves[0].strategy.has_value());
}

TEST(PlanJson, RollingPlanRoundTripIsExact) {
  PlanParseResult parsed = parsePlan(kRollingProcessPlan);
  ASSERT_TRUE(parsed.plan.has_value()) << describe(parsed);
  const std::string json = planToJson(*parsed.plan);
  auto back = planFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().toString();
  expectSamePlan(*back, *parsed.plan);
  EXPECT_EQ(back->strategy.kind, StrategyKind::kRolling);
  EXPECT_EQ(back->strategy.max_unavailable, 0u);
  EXPECT_EQ(back->strategy.max_surge, 2u);
  ASSERT_TRUE(back->waves[1].strategy.has_value());
  EXPECT_EQ(back->waves[1].strategy->kind, StrategyKind::kRolling);
  EXPECT_EQ(back->waves[1].strategy->max_unavailable, 3u);
  EXPECT_EQ(back->waves[1].strategy->max_surge, 0u);
  EXPECT_EQ(planToJson(*back), json);

  // The edges of what the stored form holds (64), on the plan's and on a wave's strategy.
  Plan plan = *parsed.plan;
  plan.strategy.max_unavailable = 64;
  plan.strategy.max_surge = 64;
  plan.waves[0].strategy = Strategy{StrategyKind::kRolling, {100}, 0ms, 64, 0};
  plan.waves[2].strategy = Strategy{StrategyKind::kRolling, {100}, 0ms, 0, 64};
  const std::string edge_json = planToJson(plan);
  auto edge = planFromJson(edge_json);
  ASSERT_TRUE(edge.ok()) << edge.status().toString();
  expectSamePlan(*edge, plan);
  EXPECT_EQ(planToJson(*edge), edge_json);

  // Rolling plans straight from the parser, defaults included.
  for (const char* lines : {"strategy: {type: rolling}\n", "    strategy: {type: rolling}\n",
                            "strategy: {type: rolling, max_unavailable: 64, max_surge: 0}\n"}) {
    PlanParseResult small = parsePlan(std::string(kMinimalProcessPlan) + lines);
    ASSERT_TRUE(small.plan.has_value()) << lines << describe(small);
    auto small_back = planFromJson(planToJson(*small.plan));
    ASSERT_TRUE(small_back.ok()) << small_back.status().toString();
    expectSamePlan(*small_back, *small.plan);
  }
}

TEST(PlanJson, StoredRollingFormHasTheDocumentedKeys) {
  PlanParseResult parsed = parsePlan(kRollingProcessPlan);
  ASSERT_TRUE(parsed.plan.has_value()) << describe(parsed);
  const std::string json = planToJson(*parsed.plan);
  for (const char* key :
       {"\"strategy\":{\"kind\":\"rolling\",\"max_surge\":2,\"max_unavailable\":0,\"pause_ms\":0,"
        "\"steps\":[100]}",
        "\"strategy\":{\"kind\":\"rolling\",\"max_surge\":0,\"max_unavailable\":3,\"pause_ms\":0,"
        "\"steps\":[100]}",
        "\"strategy\":{\"kind\":\"canary\",\"max_surge\":1,\"max_unavailable\":1,"
        "\"pause_ms\":30000,\"steps\":[25,100]}",
        "\"bake_ms\":600000"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " not in " << json;
  }
}

TEST(PlanJson, StoredProcessFormHasTheDocumentedKeys) {
  PlanParseResult parsed = parsePlan(kFullProcessPlan);
  ASSERT_TRUE(parsed.plan.has_value()) << describe(parsed);
  const std::string json = planToJson(*parsed.plan);
  for (const char* key :
       {"\"driver\":\"process\"", "\"replicas\":4", "\"port_min\":18000", "\"port_max\":18099",
        "\"health_path\":\"/ready\"",
        "\"haproxy\":{\"backend\":\"checkout\",\"socket\":\"/run/haproxy/admin.sock\"}",
        "\"strategy\":{\"kind\":\"canary\",\"max_surge\":1,\"max_unavailable\":1,\"pause_ms\":"
        "45000,"
        "\"steps\":[10,50,100]}",
        "\"strategy\":{\"kind\":\"blue_green\",\"max_surge\":1,\"max_unavailable\":1,"
        "\"pause_ms\":60000,\"steps\":[50,100]}",
        "\"strategy\":null", "\"bake_ms\":900000", "\"bake_ms\":0", "\"interval_ms\":500",
        "\"timeout_ms\":250", "\"failure_threshold\":5", "\"error_rate_increase\":0.25",
        "\"latency_p95_ratio\":1.5", "\"min_requests\":50", "\"fail_when_inconclusive\":true"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " not in " << json;
  }
  const std::string minimal = planToJson(*parsePlan(kMinimalProcessPlan).plan);
  EXPECT_NE(minimal.find("\"haproxy\":null"), std::string::npos) << minimal;
  EXPECT_NE(minimal.find("\"metrics\":null"), std::string::npos) << minimal;
  EXPECT_NE(minimal.find("\"strategy\":{\"kind\":\"all_at_once\",\"max_surge\":1,"
                         "\"max_unavailable\":1,\"pause_ms\":0,\"steps\":[]}"),
            std::string::npos)
      << minimal;
}

TEST(PlanJson, StoredFormHasTheDocumentedKeys) {
  PlanParseResult parsed = parsePlan(kFullPlan);
  ASSERT_TRUE(parsed.plan.has_value());
  const std::string json = planToJson(*parsed.plan);
  for (const char* key :
       {"\"service\":\"checkout\"", "\"version\":\"1.4.2\"", "\"driver\":\"script\"",
        "\"timeout_ms\":300000", "\"approval_required\":true", "\"max_parallel\":2",
        "\"selector\":{\"environment\":\"production\"}", "\"rollback_scope\":\"wave\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " not in " << json;
  }
}

TEST(PlanJson, GarbageIsCorruption) {
  const std::string good = planToJson(*parsePlan(kMinimalPlan).plan);
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not valid JSON"},
      {"{not json", "not valid JSON"},
      {std::string("\xff\x00\x01", 3), "not valid JSON"},
      {"[1, 2]", "plan: expected an object"},
      {"{}", "service: missing"},
      {replaced("\"service\":\"checkout\"", "\"service\":7"), "service: expected a string"},
      {replaced("\"timeout_ms\":300000", "\"timeout_ms\":-1"),
       "steps.timeout_ms: expected a non-negative integer"},
      {replaced("\"timeout_ms\":300000", "\"timeout_ms\":1.5"),
       "steps.timeout_ms: expected a non-negative integer"},
      {replaced("\"max_parallel\":0", "\"max_parallel\":4294967296"),
       "waves[0].max_parallel: out of range"},
      {replaced("\"clusters\":[\"staging-eu\"]", "\"clusters\":[1]"),
       "waves[0].clusters[0]: expected a string"},
      {replaced("\"selector\":{}", "\"selector\":{\"a\":true}"),
       "waves[0].selector.a: expected a string"},
      {replaced("\"approval_required\":false", "\"approval_required\":\"no\""),
       "waves[0].approval_required: expected a boolean"},
      {replaced("\"driver\":\"script\"", "\"driver\":\"kubernetes\""), "driver: unknown driver"},
      {replaced("\"rollback_scope\":\"fleet\"", "\"rollback_scope\":\"all\""),
       "rollback_scope: unknown scope"},
      {replaced(",\"rollback_scope\":\"fleet\"", ""), "rollback_scope: missing"},
      {replaced("\"steps\":{", "\"steps\":[],\"x\":{"), "steps: expected an object"},
  };
  // The process-driver fields, on the stored form of a process plan.
  PlanParseResult process_plan = parsePlan(kFullProcessPlan);
  ASSERT_TRUE(process_plan.plan.has_value()) << describe(process_plan);
  const std::string process_good = planToJson(*process_plan.plan);
  ASSERT_TRUE(planFromJson(process_good).ok());
  {
    // "rolling" is a known stored kind now.
    std::string rolling = process_good;
    rolling.replace(rolling.find("\"kind\":\"canary\""), 15, "\"kind\":\"rolling\"");
    auto back = planFromJson(rolling);
    ASSERT_TRUE(back.ok()) << back.status().toString();
    EXPECT_EQ(back->strategy.kind, StrategyKind::kRolling);
  }
  auto in_process = [&](const std::string& from, const std::string& to) {
    std::string text = process_good;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
  };
  const std::vector<std::pair<std::string, std::string>> process_cases = {
      {in_process("\"driver\":\"process\"", "\"driver\":\"kubernetes\""), "driver: unknown driver"},
      {in_process("\"process\":{", "\"x\":{"), "process: missing"},
      {in_process("\"process\":{", "\"process\":[],\"x\":{"), "process: expected an object"},
      {in_process("\"command\":\"", "\"command\":1,\"x\":\""),
       "process.command: expected a string"},
      {in_process("\"replicas\":4", "\"replicas\":65"), "process.replicas: out of range"},
      {in_process("\"port_min\":18000", "\"port_min\":\"18000\""),
       "process.port_min: expected a non-negative integer"},
      {in_process("\"port_max\":18099", "\"port_max\":65536"), "process.port_max: out of range"},
      {in_process("\"health_path\":\"/ready\"", "\"health_path\":null"),
       "process.health_path: expected a string"},
      {in_process("\"haproxy\":{", "\"haproxy\":[],\"x\":{"), "haproxy: expected an object"},
      {in_process("\"backend\":\"checkout\"", "\"backend\":7"),
       "haproxy.backend: expected a string"},
      {in_process("\"socket\":\"", "\"sock\":\""), "haproxy.socket: missing"},
      {in_process("\"haproxy\":", "\"h\":"), "haproxy: missing"},
      {in_process("\"kind\":\"canary\"", "\"kind\":\"Rolling\""),
       "strategy.kind: unknown strategy"},
      {in_process("\"kind\":\"canary\"", "\"kind\":\"linear\""), "strategy.kind: unknown strategy"},
      {in_process("\"max_unavailable\":1", "\"max_unavailable\":65"),
       "strategy.max_unavailable: out of range"},
      {in_process("\"max_unavailable\":1", "\"max_unavailable\":-1"),
       "strategy.max_unavailable: expected a non-negative integer"},
      {in_process("\"max_unavailable\":1", "\"max_unavailable\":\"1\""),
       "strategy.max_unavailable: expected a non-negative integer"},
      {in_process("\"max_unavailable\":1,", ""), "strategy.max_unavailable: missing"},
      {in_process("\"max_surge\":1", "\"max_surge\":1.5"),
       "strategy.max_surge: expected a non-negative integer"},
      {in_process("\"max_surge\":1", "\"max_surge\":18446744073709551615"),
       "strategy.max_surge: out of range"},
      {in_process("\"max_surge\":1", "\"max_surge\":null"),
       "strategy.max_surge: expected a non-negative integer"},
      {in_process("\"max_surge\":1,", ""), "strategy.max_surge: missing"},
      {in_process("\"kind\":\"blue_green\",\"max_surge\":1",
                  "\"kind\":\"blue_green\",\"max_surge\":65"),
       "waves[1].strategy.max_surge: out of range"},
      {in_process("\"kind\":\"blue_green\",\"max_surge\":1,", "\"kind\":\"blue_green\","),
       "waves[1].strategy.max_surge: missing"},
      {in_process("[10,50,100]", "[10,101,100]"), "strategy.steps: expected percentages"},
      {in_process("[10,50,100]", "[10,-5,100]"), "strategy.steps: expected percentages"},
      {in_process("[10,50,100]", "[10,\"50\",100]"), "strategy.steps: expected percentages"},
      {in_process("[10,50,100]", "{}"), "strategy.steps: expected an array"},
      {in_process("\"pause_ms\":45000", "\"pause_ms\":-1"),
       "strategy.pause_ms: expected a non-negative integer"},
      {in_process("\"pause_ms\":45000", "\"pause_ms\":9223372036854775808"),
       "strategy.pause_ms: out of range"},
      {in_process("\"strategy\":{\"kind\":\"canary\"", "\"s\":{\"kind\":\"canary\""),
       "strategy: missing"},
      {in_process("\"strategy\":{\"kind\":\"canary\"",
                  "\"strategy\":null,\"s\":{\"kind\":\"canary\""),
       "strategy: expected an object"},
      {in_process("\"strategy\":null", "\"strategy\":7"), "waves[0].strategy: expected an object"},
      {in_process("\"kind\":\"blue_green\"", "\"kind\":\"x\""),
       "waves[1].strategy.kind: unknown strategy"},
      {in_process("\"bake_ms\":900000", "\"bake_ms\":1.5"),
       "waves[1].bake_ms: expected a non-negative integer"},
      {in_process("\"bake_ms\":0,", ""), "waves[0].bake_ms: missing"},
      {in_process("\"health\":", "\"x\":"), "health: missing"},
      {in_process("\"interval_ms\":500", "\"interval\":500"), "health.interval_ms: missing"},
      {in_process("\"timeout_ms\":250", "\"timeout_ms\":-250"),
       "health.timeout_ms: expected a non-negative integer"},
      {in_process("\"failure_threshold\":5", "\"failure_threshold\":1001"),
       "health.failure_threshold: out of range"},
      {in_process("\"path\":\"/live\"", "\"path\":false"), "health.path: expected a string"},
      {in_process("\"metrics\":{", "\"metrics\":[],\"x\":{"), "health.metrics: expected an object"},
      {in_process("\"error_rate_increase\":0.25", "\"error_rate_increase\":\"0.25\""),
       "health.metrics.error_rate_increase: expected a number"},
      {in_process("\"latency_p95_ratio\":1.5,", ""), "health.metrics.latency_p95_ratio: missing"},
      {in_process("\"min_requests\":50", "\"min_requests\":4294967296"),
       "health.metrics.min_requests: out of range"},
      {in_process("\"fail_when_inconclusive\":true", "\"fail_when_inconclusive\":1"),
       "health.metrics.fail_when_inconclusive: expected a boolean"},
  };
  std::vector<std::pair<std::string, std::string>> all_cases = cases;
  all_cases.insert(all_cases.end(), process_cases.begin(), process_cases.end());
  for (const auto& [text, context] : all_cases) {
    auto plan = planFromJson(text);
    ASSERT_FALSE(plan.ok()) << text;
    EXPECT_TRUE(plan.status().isCorruption()) << plan.status().toString();
    EXPECT_NE(plan.status().message().find(context), std::string::npos)
        << plan.status().toString() << " lacks " << context;
  }
}

}  // namespace
}  // namespace flotilla::common
