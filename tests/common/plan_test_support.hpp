// Plans and helpers shared by the plan parser's tests (tests/common/plan*_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "common/plan.hpp"

namespace flotilla::common::plan_testing {

// The plan of DESIGN.md, without the fields this version does not support yet.
inline constexpr const char* kFullPlan = R"(service: checkout
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
inline constexpr const char* kMinimalPlan = R"(service: checkout
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
inline constexpr const char* kFullProcessPlan = R"(service: checkout
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
inline constexpr const char* kRollingProcessPlan = R"(service: checkout
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
inline constexpr const char* kMinimalProcessPlan = R"(service: checkout
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
inline constexpr const char* kTrafficLine =
    "traffic: {haproxy: {socket: /run/haproxy/admin.sock, backend: checkout}}\n";

struct Where {
  int line;
  int column;
  bool operator==(const Where&) const = default;
};

inline std::ostream& operator<<(std::ostream& out, const Where& where) {
  return out << where.line << ":" << where.column;
}

inline std::vector<Where> positions(const PlanParseResult& result) {
  std::vector<Where> out;
  for (const PlanProblem& problem : result.problems) out.push_back({problem.line, problem.column});
  return out;
}

// All problems on one string, for failure output and substring checks.
inline std::string describe(const PlanParseResult& result) {
  std::string out;
  for (const PlanProblem& problem : result.problems) out += problem.toString() + "\n";
  return out;
}

// Parses text expected to hold exactly one problem and returns it.
inline PlanProblem onlyProblem(const std::string& text) {
  PlanParseResult result = parsePlan(text);
  EXPECT_FALSE(result.plan.has_value());
  EXPECT_EQ(result.problems.size(), 1u) << describe(result);
  return result.problems.empty() ? PlanProblem{} : result.problems.front();
}

inline void expectSameStrategy(const Strategy& a, const Strategy& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_EQ(a.pause, b.pause);
  EXPECT_EQ(a.max_unavailable, b.max_unavailable);
  EXPECT_EQ(a.max_surge, b.max_surge);
}

inline void expectSamePlan(const Plan& a, const Plan& b) {
  EXPECT_EQ(a.service, b.service);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.driver, b.driver);
  EXPECT_EQ(a.steps.build, b.steps.build);
  EXPECT_EQ(a.steps.apply, b.steps.apply);
  EXPECT_EQ(a.steps.verify, b.steps.verify);
  EXPECT_EQ(a.steps.verify_checks, b.steps.verify_checks);
  EXPECT_EQ(a.steps.rollback, b.steps.rollback);
  EXPECT_EQ(a.steps.timeout, b.steps.timeout);
  EXPECT_EQ(a.rollback_scope, b.rollback_scope);
  EXPECT_EQ(a.on_step_failure, b.on_step_failure);
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

}  // namespace flotilla::common::plan_testing
