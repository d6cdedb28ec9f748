// Tests for the script driver's strategies, health and alerts (common/plan_script_fields.cpp and
// the script-driver rules in plan_process_fields.cpp), through parsePlan and the stored form.
#include <gtest/gtest.h>

#include <string>

#include "common/plan.hpp"
#include "tests/common/plan_test_support.hpp"

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;
using namespace plan_testing;

// A Kubernetes team's canary: apply sets the weight, Prometheus tells the versions apart.
constexpr const char* kScriptCanary = R"(service: checkout
version: "2.0.0"
steps:
  apply: ./apply.sh
  verify: kubectl rollout status deployment/checkout-canary
  rollback: ./rollback.sh
strategy: {type: canary, steps: [10, 50, 100], pause: 30s}
health:
  http: {url: "http://{cluster}.example.internal/health", interval: 5s, failure_threshold: 3}
  metrics:
    source: prometheus
    prometheus: http://prometheus:9090
    queries:
      request_rate: sum(rate(http_requests_total{version="{version}"}[{window}]))
      error_rate: sum(rate(http_requests_total{version="{version}",code=~"5.."}[{window}]))
      latency_p95: histogram_quantile(0.95, sum by (le) (rate(b{version="{version}"}[{window}])))
waves:
  - name: staging
    clusters: [staging-eu]
    bake: 1m
)";

TEST(ParseScriptPlan, CanaryWithHealthUrlAndPrometheusParsesToTheModel) {
  PlanParseResult result = parsePlan(kScriptCanary);
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  const Plan& plan = *result.plan;
  EXPECT_EQ(plan.driver, DriverKind::kScript);
  EXPECT_EQ(plan.strategy.kind, StrategyKind::kCanary);
  EXPECT_EQ(plan.strategy.steps, (std::vector<uint32_t>{10, 50, 100}));
  EXPECT_EQ(plan.health.http.url, "http://{cluster}.example.internal/health");
  ASSERT_TRUE(plan.health.metrics.has_value());
  EXPECT_EQ(plan.health.metrics->source, MetricsSource::kPrometheus);
  EXPECT_EQ(plan.health.metrics->queries.request_rate,
            "sum(rate(http_requests_total{version=\"{version}\"}[{window}]))");
  EXPECT_EQ(plan.waves[0].bake, 1min);
  // The workflow's alerts are on without an `alerts:` section.
  ASSERT_TRUE(plan.alerts.has_value());
  EXPECT_EQ(plan.alerts->error_rate, 0.05);

  // The stored form keeps the new fields.
  auto back = planFromJson(planToJson(plan));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->health.http.url, plan.health.http.url);
  EXPECT_EQ(planToJson(*back), planToJson(plan));
}

TEST(ParseScriptPlan, BlueGreenNeedsASwitchStep) {
  const std::string base = std::string(kMinimalPlan) + "    bake: 30s\n";
  EXPECT_EQ(describe(parsePlan(base + "strategy: {type: blue_green}\n")),
            "10:1: blue_green with the script driver needs steps.switch: the command that moves "
            "traffic to the new version (FLOTILLA_WEIGHT) once steps.apply brought it up\n");
  const std::string with_switch =
      "service: checkout\nversion: \"1.0\"\nsteps:\n  apply: ./apply.sh\n  rollback: ./rb.sh\n"
      "  switch: ./switch.sh\nwaves:\n  - name: staging\n    clusters: [staging-eu]\n"
      "    strategy: {type: blue_green, switch: steps, steps: [50, 100], pause: 10s}\n";
  PlanParseResult result = parsePlan(with_switch);
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  EXPECT_EQ(result.plan->steps.switch_traffic, "./switch.sh");
  auto back = planFromJson(planToJson(*result.plan));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->steps.switch_traffic, "./switch.sh");
  // A switch with nothing to switch.
  EXPECT_EQ(describe(parsePlan("service: checkout\nversion: \"1.0\"\nsteps:\n  apply: a\n"
                               "  rollback: b\n  switch: s\nwaves:\n  - name: staging\n"
                               "    clusters: [staging-eu]\n")),
            "6:3: steps.switch moves traffic step by step: it is for strategy canary or "
            "blue_green\n");
}

TEST(ParseScriptPlan, HealthAndMetricsRules) {
  auto problems = [](const std::string& health) {
    return describe(parsePlan(std::string(kMinimalPlan) +
                              "strategy: {type: canary, steps: [10, 100], pause: 10s}\n" + health));
  };
  EXPECT_EQ(problems("health: {http: {path: /health}}\n"),
            "10:10: health.http needs url with the script driver: the address the agent probes, "
            "e.g. http://{cluster}.example.internal/health\n"
            "10:17: health.http.path is for the process driver's replicas; the script driver "
            "probes health.http.url (e.g. http://{cluster}.example.internal/health)\n");
  EXPECT_EQ(problems("health: {http: {url: \"http://{cluster}/{region}\"}}\n"),
            "10:22: health.http.url: unknown placeholder \"{region}\"; valid ones: {cluster}, "
            "{version}, {environment}\n");
  EXPECT_EQ(problems("health: {http: {url: \"ftp://x\"}}\n"),
            "10:22: health.http.url must be an http:// or https:// URL without spaces, not "
            "\"ftp://x\"\n");
  EXPECT_EQ(problems("health: {metrics: {error_rate_increase: 0.5}}\n"),
            "10:10: the script driver reads metrics from Prometheus only: health.metrics.source: "
            "prometheus (there are no replicas of its own to scrape)\n");
  EXPECT_EQ(problems("health: {metrics: {source: prometheus, prometheus: \"http://p:9090\"}}\n"),
            "10:10: health.metrics needs queries with the script driver: request_rate, "
            "error_rate and latency_p95, each using {version}\n");
  EXPECT_EQ(
      problems("health: {metrics: {source: prometheus, prometheus: \"http://p:9090\", queries: "
               "{request_rate: \"sum(r{instance=~'{instances}',v='{version}'})\", error_rate: "
               "\"sum(e)\"}}}\n"),
      "10:69: health.metrics.queries.latency_p95 is required with the script driver (the "
      "defaults name the process driver's replicas)\n"
      "10:93: health.metrics.queries.request_rate: {instances} names the process driver's "
      "replicas; with the script driver tell the sets apart with {version}\n"
      "10:154: health.metrics.queries.error_rate must use {version} so it measures one version "
      "(new or stable), not the whole service\n");
}

TEST(ParseScriptPlan, HealthNeedsAWindowToRunIn) {
  EXPECT_EQ(describe(parsePlan(std::string(kMinimalPlan) +
                               "health: {http: {url: \"http://{cluster}/health\"}}\n")),
            "9:1: health is checked during the strategy's pauses and the waves' bakes, and this "
            "plan has neither: add strategy.pause or a wave's bake\n");
  // A bake is a window.
  PlanParseResult result = parsePlan(std::string(kMinimalPlan) + "    bake: 30s\n" +
                                     "health: {http: {url: \"http://{cluster}/health\"}}\n");
  EXPECT_TRUE(result.plan.has_value()) << describe(result);
}

TEST(ParseScriptPlan, ProcessOnlyFieldsStayRefused) {
  EXPECT_EQ(describe(parsePlan(std::string(kMinimalPlan) + "    bake: 30s\n" +
                               "alerts: {cpu: 0.8, memory: off, error_rate: 0.1}\n" +
                               "process: {command: \"x {port}\", ports: \"18000-18099\"}\n")),
            "10:10: alerts.cpu is measured on the process driver's replicas; the script driver "
            "has none (turn it off or leave it out)\n"
            "11:1: field \"process\" is for the process driver; this plan uses driver "
            "\"script\"\n");
  // The health URL is the script driver's.
  EXPECT_EQ(
      onlyProblem(std::string(kMinimalProcessPlan) + "health: {http: {url: \"http://x/health\"}}\n")
          .toString(),
      "10:17: health.http.url is for the script driver; the process driver probes each "
      "replica at health.http.path");
}

}  // namespace
}  // namespace flotilla::common
