// Tests for the process driver's sections of a plan (common/plan_process_fields.cpp): process,
// traffic, strategy, health and alerts, through parsePlan.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/plan.hpp"
#include "tests/common/plan_test_support.hpp"

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;
using namespace plan_testing;

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
  // A plan without `alerts:` has the same: alerts are on by default.
  PlanParseResult without = parsePlan(kMinimalProcessPlan);
  ASSERT_TRUE(without.plan.has_value()) << describe(without);
  ASSERT_TRUE(without.plan->alerts.has_value());
  EXPECT_EQ(without.plan->alerts->error_rate, 0.05);
  EXPECT_EQ(without.plan->alerts->latency_p95_ratio, 2.0);
  EXPECT_EQ(without.plan->alerts->cpu, 0.9);
  EXPECT_EQ(without.plan->alerts->memory, 0.9);
}

TEST(ParsePlan, AlertRulesAndAllAlertsCanBeTurnedOff) {
  PlanParseResult some = parsePlan(std::string(kMinimalProcessPlan) +
                                   "alerts: {cpu: off, memory: false, error_rate: 0.1}\n");
  ASSERT_TRUE(some.plan.has_value()) << describe(some);
  ASSERT_TRUE(some.plan->alerts.has_value());
  EXPECT_FALSE(some.plan->alerts->cpu.has_value());
  EXPECT_FALSE(some.plan->alerts->memory.has_value());
  EXPECT_EQ(some.plan->alerts->error_rate, 0.1);
  EXPECT_EQ(some.plan->alerts->latency_p95_ratio, 2.0);
  // Stored and read back the same (a rule off is null in the record).
  auto back = planFromJson(planToJson(*some.plan));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  ASSERT_TRUE(back->alerts.has_value());
  EXPECT_FALSE(back->alerts->cpu.has_value());
  EXPECT_FALSE(back->alerts->memory.has_value());
  EXPECT_EQ(back->alerts->error_rate, 0.1);
  EXPECT_EQ(back->alerts->latency_p95_ratio, 2.0);

  PlanParseResult none = parsePlan(std::string(kMinimalProcessPlan) + "alerts: off\n");
  ASSERT_TRUE(none.plan.has_value()) << describe(none);
  EXPECT_FALSE(none.plan->alerts.has_value());
  auto stored = planFromJson(planToJson(*none.plan));
  ASSERT_TRUE(stored.ok()) << stored.status().toString();
  EXPECT_FALSE(stored->alerts.has_value());

  // Anything else is still a number in range.
  EXPECT_EQ(describe(parsePlan(std::string(kMinimalProcessPlan) + "alerts: {cpu: never}\n")),
            "10:15: alerts.cpu must be a number from 0 to 64, not \"never\"\n");
  // A script-driver plan gets them too (it checks what its Prometheus queries measure).
  EXPECT_TRUE(parsePlan(kMinimalPlan).plan->alerts.has_value());
  EXPECT_FALSE(parsePlan(std::string(kMinimalPlan) + "alerts: off\n").plan->alerts.has_value());
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
  // CPU and memory are the process driver's replicas': a script plan has none.
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "alerts: {cpu: 0.9}\n").toString(),
            "9:10: alerts.cpu is measured on the process driver's replicas; the script driver has "
            "none (turn it off or leave it out)");
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

  // The script driver takes it too: `apply` runs once with FLOTILLA_STRATEGY=rolling.
  PlanParseResult script = parsePlan(std::string(kMinimalPlan) + "strategy: {type: rolling}\n");
  ASSERT_TRUE(script.plan.has_value()) << describe(script);
  EXPECT_EQ(script.plan->strategy.kind, StrategyKind::kRolling);
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

}  // namespace
}  // namespace flotilla::common
