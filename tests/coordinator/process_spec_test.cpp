// coordinator/process_spec.cpp: what of a plan reaches the process driver, field by field.
#include "coordinator/process_spec.hpp"

#include <capnp/message.h>
#include <gtest/gtest.h>

namespace flotilla::coordinator {
namespace {

using namespace std::chrono_literals;

std::string str(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

common::Plan processPlan() {
  common::Plan p;
  p.service = "checkout";
  p.version = "2.0.0";
  p.driver = common::DriverKind::kProcess;
  p.process.command = "/opt/checkout/{version}/bin/checkout --port {port}";
  p.process.replicas = 4;
  p.process.port_min = 18000;
  p.process.port_max = 18099;
  p.process.health_path = "/ready";
  p.haproxy = common::HaproxyTraffic{"/run/haproxy/{cluster}.sock", "checkout"};
  p.health.http.path = "/health";
  p.health.http.interval = 2s;
  p.health.http.timeout = 1s;
  p.health.http.failure_threshold = 5;
  common::MetricsAnalysis m;
  m.source = common::MetricsSource::kPrometheus;
  m.prometheus = "http://127.0.0.1:9090";
  m.error_rate_increase = 0.25;
  m.latency_p95_ratio = 1.5;
  m.min_requests = 50;
  m.fail_when_inconclusive = true;
  p.health.metrics = m;
  common::Alerts a;
  a.error_rate = 0.02;
  a.latency_p95_ratio = 3;
  a.cpu = 0.8;
  a.memory = 0.7;
  a.webhook = "https://hooks.example.com/x";
  p.alerts = a;
  p.strategy.kind = common::StrategyKind::kCanary;
  p.strategy.steps = {10, 50, 100};
  common::Wave canary;
  canary.name = "canary";
  common::Wave rest;
  rest.name = "rest";
  common::Strategy rolling;
  rolling.kind = common::StrategyKind::kRolling;
  rolling.max_unavailable = 2;
  rolling.max_surge = 3;
  rest.strategy = rolling;
  p.waves = {canary, rest};
  return p;
}

TEST(ProcessSpecTest, AnAlertRuleTurnedOffIsSentAsOff) {
  common::Plan plan = processPlan();
  plan.alerts->cpu.reset();
  plan.alerts->latency_p95_ratio.reset();
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<schema::ProcessSpec>();
  buildProcessSpec(out, plan, ProcessStepParams{"d-1", "c1", "", 0, 100, {}});
  ASSERT_TRUE(out.hasAlerts());
  EXPECT_TRUE(out.getAlerts().getCpuOff());
  EXPECT_TRUE(out.getAlerts().getLatencyP95RatioOff());
  EXPECT_FALSE(out.getAlerts().getErrorRateOff());
  EXPECT_FALSE(out.getAlerts().getMemoryOff());
  EXPECT_DOUBLE_EQ(out.getAlerts().getErrorRate(), 0.02);
}

TEST(ProcessSpecTest, EveryFieldThePlanHasReachesTheAgent) {
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<schema::ProcessSpec>();
  const common::Plan plan = processPlan();
  buildProcessSpec(out, plan, {"d-7", "prod-eu-1", "1.9.0", 0, 10, 30s});
  auto s = out.asReader();
  EXPECT_EQ(str(s.getService()), "checkout");
  EXPECT_EQ(str(s.getVersion()), "2.0.0");
  EXPECT_EQ(str(s.getPreviousVersion()), "1.9.0");
  EXPECT_EQ(str(s.getCluster()), "prod-eu-1");
  // The replicas' FLOTILLA_DEPLOYMENT: the JSON spec never carried it, so it was always empty.
  EXPECT_EQ(str(s.getDeployment()), "d-7");
  EXPECT_EQ(str(s.getProcess().getCommand()), plan.process.command);
  EXPECT_EQ(s.getProcess().getReplicas(), 4u);
  EXPECT_EQ(s.getProcess().getPortMin(), 18000u);
  EXPECT_EQ(s.getProcess().getPortMax(), 18099u);
  EXPECT_EQ(str(s.getProcess().getHealthPath()), "/ready");
  ASSERT_TRUE(s.hasTraffic());
  EXPECT_EQ(str(s.getTraffic().getHaproxySocket()), "/run/haproxy/{cluster}.sock");
  EXPECT_EQ(str(s.getTraffic().getHaproxyBackend()), "checkout");
  EXPECT_EQ(str(s.getHealth().getPath()), "/health");
  EXPECT_EQ(s.getHealth().getIntervalMs(), 2000u);
  EXPECT_EQ(s.getHealth().getTimeoutMs(), 1000u);
  EXPECT_EQ(s.getHealth().getFailureThreshold(), 5u);
  ASSERT_TRUE(s.hasMetrics());
  EXPECT_DOUBLE_EQ(s.getMetrics().getErrorRateIncrease(), 0.25);
  EXPECT_DOUBLE_EQ(s.getMetrics().getLatencyP95Ratio(), 1.5);
  EXPECT_EQ(s.getMetrics().getMinRequests(), 50u);
  EXPECT_TRUE(s.getMetrics().getFailWhenInconclusive());
  ASSERT_TRUE(s.getMetrics().hasPrometheus());
  EXPECT_EQ(str(s.getMetrics().getPrometheus().getUrl()), "http://127.0.0.1:9090");
  EXPECT_EQ(str(s.getMetrics().getPrometheus().getRequestRate()),
            plan.health.metrics->queries.request_rate);
  EXPECT_EQ(str(s.getMetrics().getPrometheus().getErrorRate()),
            plan.health.metrics->queries.error_rate);
  EXPECT_EQ(str(s.getMetrics().getPrometheus().getLatencyP95()),
            plan.health.metrics->queries.latency_p95);
  ASSERT_TRUE(s.hasAlerts());
  EXPECT_DOUBLE_EQ(s.getAlerts().getErrorRate(), 0.02);
  EXPECT_DOUBLE_EQ(s.getAlerts().getLatencyP95Ratio(), 3);
  EXPECT_DOUBLE_EQ(s.getAlerts().getCpu(), 0.8);
  EXPECT_DOUBLE_EQ(s.getAlerts().getMemory(), 0.7);
  EXPECT_FALSE(s.getAlerts().getErrorRateOff());
  EXPECT_FALSE(s.getAlerts().getLatencyP95RatioOff());
  EXPECT_FALSE(s.getAlerts().getCpuOff());
  EXPECT_FALSE(s.getAlerts().getMemoryOff());
  EXPECT_FALSE(s.hasRolling());  // the canary wave
  EXPECT_EQ(s.getWeight(), 10u);
  EXPECT_EQ(s.getDurationMs(), 30000u);
}

TEST(ProcessSpecTest, AWavesRollingStrategyIsSentOnlyForThatWave) {
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<schema::ProcessSpec>();
  buildProcessSpec(out, processPlan(), {"d-7", "prod-eu-1", "", 1, 100, 0ms});
  ASSERT_TRUE(out.hasRolling());
  EXPECT_EQ(out.getRolling().getMaxUnavailable(), 2u);
  EXPECT_EQ(out.getRolling().getMaxSurge(), 3u);
}

TEST(ProcessSpecTest, WhatThePlanDoesNotHaveIsNotSent) {
  common::Plan plan = processPlan();
  plan.haproxy.reset();
  plan.health.metrics->source = common::MetricsSource::kScrape;
  plan.alerts.reset();
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<schema::ProcessSpec>();
  buildProcessSpec(out, plan, {"d-7", "prod-eu-1", "", 0, 100, 0ms});
  EXPECT_FALSE(out.hasTraffic());
  EXPECT_FALSE(out.getMetrics().hasPrometheus());  // scrape the replicas
  EXPECT_FALSE(out.hasAlerts());
  plan.health.metrics.reset();
  capnp::MallocMessageBuilder again;
  auto bare = again.initRoot<schema::ProcessSpec>();
  buildProcessSpec(bare, plan, {"d-7", "prod-eu-1", "", 0, 100, 0ms});
  EXPECT_FALSE(bare.hasMetrics());
}

}  // namespace
}  // namespace flotilla::coordinator
