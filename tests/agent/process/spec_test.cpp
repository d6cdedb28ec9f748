// agent/process/spec.cpp: a ProcessSpec as it comes off the wire, read into the driver's Spec;
// every problem named at once; defaults where the coordinator sends nothing.
#include "agent/process/spec.hpp"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;

// A complete, valid spec; each test breaks what it looks at.
class SpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    wire_ = message_->initRoot<schema::ProcessSpec>();
    wire_.setService("checkout");
    wire_.setVersion("2.0.0-rc.1+b7");
    wire_.setPreviousVersion("1.0.0");
    wire_.setCluster("prod-eu-1");
    wire_.setDeployment("d-42");
    auto p = wire_.initProcess();
    p.setCommand("/opt/checkout/{version}/bin/checkout --port {port}");
    p.setReplicas(4);
    p.setPortMin(18000);
    p.setPortMax(18099);
    p.setHealthPath("/ready");
    auto t = wire_.initTraffic();
    t.setHaproxySocket("/run/haproxy/{cluster}.sock");
    t.setHaproxyBackend("checkout");
    auto h = wire_.initHealth();
    h.setPath("/health");
    h.setIntervalMs(2000);
    h.setTimeoutMs(1000);
    h.setFailureThreshold(3);
    auto m = wire_.initMetrics();
    m.setErrorRateIncrease(0.5);
    m.setLatencyP95Ratio(2.0);
    m.setMinRequests(20);
    m.setFailWhenInconclusive(true);
    auto q = m.initPrometheus();
    q.setUrl("http://127.0.0.1:9090");
    q.setRequestRate("rr");
    q.setErrorRate("er");
    q.setLatencyP95("lp");
    auto a = wire_.initAlerts();
    a.setErrorRate(0.05);
    a.setLatencyP95Ratio(2.0);
    a.setCpu(0.9);
    a.setMemory(0.8);
    auto r = wire_.initRolling();
    r.setMaxUnavailable(1);
    r.setMaxSurge(2);
    wire_.setWeight(10);
    wire_.setDurationMs(30000);
  }

  common::StatusOr<Spec> read(Step step) {
    return readSpec(step, wire_.asReader(), "default-cluster");
  }
  // The problems a bad spec is refused with.
  std::string refused(Step step) {
    auto s = read(step);
    EXPECT_FALSE(s.ok());
    return s.ok() ? "" : s.status().message();
  }

  // Behind a pointer: kj's destructors may throw, a gtest fixture's may not.
  std::unique_ptr<capnp::MallocMessageBuilder> message_ =
      std::make_unique<capnp::MallocMessageBuilder>();
  schema::ProcessSpec::Builder wire_{nullptr};
};

TEST_F(SpecTest, EveryFieldIsRead) {
  auto s = read(Step::SHIFT);
  ASSERT_TRUE(s.ok()) << s.status().toString();
  EXPECT_EQ(s->service, "checkout");
  EXPECT_EQ(s->version, "2.0.0-rc.1+b7");
  EXPECT_EQ(s->previous_version, "1.0.0");
  EXPECT_EQ(s->cluster, "prod-eu-1");
  EXPECT_EQ(s->deployment, "d-42");
  ASSERT_TRUE(s->process);
  EXPECT_EQ(s->process->command, "/opt/checkout/{version}/bin/checkout --port {port}");
  EXPECT_EQ(s->process->replicas, 4);
  EXPECT_EQ(s->process->port_min, 18000);
  EXPECT_EQ(s->process->port_max, 18099);
  EXPECT_EQ(s->process->health_path, "/ready");
  EXPECT_FALSE(s->process->start_timeout);
  ASSERT_TRUE(s->traffic);
  EXPECT_EQ(s->traffic->socket, "/run/haproxy/prod-eu-1.sock");  // {cluster} filled in
  EXPECT_EQ(s->traffic->backend, "checkout");
  EXPECT_EQ(s->health.path, "/health");
  EXPECT_EQ(s->health.interval, 2000ms);
  EXPECT_EQ(s->health.timeout, 1000ms);
  EXPECT_EQ(s->health.failure_threshold, 3);
  ASSERT_TRUE(s->metrics);
  EXPECT_DOUBLE_EQ(s->metrics->config.error_rate_increase, 0.5);
  EXPECT_DOUBLE_EQ(s->metrics->config.latency_p95_ratio, 2.0);
  EXPECT_EQ(s->metrics->config.min_requests, 20u);
  EXPECT_FALSE(s->metrics->wait_when_inconclusive);
  ASSERT_TRUE(s->metrics->prometheus);
  EXPECT_EQ(s->metrics->prometheus->url, "http://127.0.0.1:9090");
  EXPECT_EQ(s->metrics->prometheus->request_rate, "rr");
  EXPECT_EQ(s->metrics->prometheus->error_rate, "er");
  EXPECT_EQ(s->metrics->prometheus->latency_p95, "lp");
  ASSERT_TRUE(s->alerts);
  EXPECT_EQ(s->alerts->error_rate, 0.05);
  EXPECT_EQ(s->alerts->latency_p95_ratio, 2.0);
  EXPECT_EQ(s->alerts->cpu, 0.9);
  EXPECT_EQ(s->alerts->memory, 0.8);
  ASSERT_TRUE(s->rolling);
  EXPECT_EQ(s->rolling->max_unavailable, 1);
  EXPECT_EQ(s->rolling->max_surge, 2);
  EXPECT_EQ(s->weight, 10);
}

TEST_F(SpecTest, AnAlertRuleSentOffIsOffAndItsThresholdIsNotRead) {
  wire_.getAlerts().setCpuOff(true);
  wire_.getAlerts().setCpu(-1);  // not read
  wire_.getAlerts().setLatencyP95RatioOff(true);
  auto s = read(Step::ANALYZE);
  ASSERT_TRUE(s.ok()) << s.status().toString();
  ASSERT_TRUE(s->alerts);
  EXPECT_FALSE(s->alerts->cpu.has_value());
  EXPECT_FALSE(s->alerts->latency_p95_ratio.has_value());
  EXPECT_EQ(s->alerts->error_rate, 0.05);
  EXPECT_EQ(s->alerts->memory, 0.8);
}

TEST_F(SpecTest, WhatTheCoordinatorLeavesOutGetsDefaults) {
  wire_.disownTraffic();
  wire_.disownHealth();
  wire_.disownMetrics();
  wire_.disownAlerts();
  wire_.disownRolling();
  wire_.setCluster("");
  auto s = read(Step::ROLL);
  ASSERT_TRUE(s.ok()) << s.status().toString();
  EXPECT_EQ(s->cluster, "default-cluster");
  EXPECT_FALSE(s->traffic);
  EXPECT_FALSE(s->metrics);
  EXPECT_FALSE(s->alerts);
  EXPECT_EQ(s->health.path, "/ready");  // the process' readiness path
  EXPECT_EQ(s->health.interval, 2000ms);
  ASSERT_TRUE(s->rolling);  // a roll always has bounds
  EXPECT_EQ(s->rolling->max_unavailable, 1);
  EXPECT_EQ(s->rolling->max_surge, 1);
  // Steps that take no weight or duration do not look at them.
  wire_.setWeight(1000);
  wire_.setDurationMs(0);
  EXPECT_TRUE(read(Step::DEPLOY).ok());
  EXPECT_TRUE(read(Step::FINALIZE).ok());
}

TEST_F(SpecTest, NamesAndVersionsThatCouldReachAShellAreRefused) {
  wire_.setService("Bad Name");
  wire_.setVersion("1; rm -rf /");
  wire_.setPreviousVersion("$(id)");
  wire_.setCluster("a/../b");
  const std::string why = refused(Step::DEPLOY);
  EXPECT_EQ(why.rfind("bad spec: ", 0), 0u) << why;
  EXPECT_NE(why.find("service must be"), std::string::npos) << why;
  EXPECT_NE(why.find("version must be"), std::string::npos) << why;
  EXPECT_NE(why.find("previousVersion must be"), std::string::npos) << why;
  EXPECT_NE(why.find("cluster must be"), std::string::npos) << why;
  wire_.setService("");
  EXPECT_NE(refused(Step::DEPLOY).find("service is missing"), std::string::npos);
}

// The plan's rule (common/rules.hpp), not a narrower one of the driver's.
TEST_F(SpecTest, EveryVersionThePlanAcceptsIsAccepted) {
  for (const std::string& version :
       {std::string("2026.12.04_rc-1+build.7"), std::string("_x"), std::string(128, '9')}) {
    wire_.setVersion(version);
    wire_.setPreviousVersion(version);
    auto s = read(Step::DEPLOY);
    ASSERT_TRUE(s.ok()) << version << ": " << s.status().toString();
    EXPECT_EQ(s->version, version);
  }
  wire_.setVersion(std::string(129, '9'));
  EXPECT_NE(refused(Step::DEPLOY).find("version must be"), std::string::npos);
}

TEST_F(SpecTest, EveryBoundIsCheckedAndEveryProblemNamed) {
  auto p = wire_.getProcess();
  p.setCommand("");
  p.setReplicas(0);
  p.setPortMin(70000);
  p.setPortMax(18000);
  p.setHealthPath("no-slash");
  auto h = wire_.getHealth();
  h.setIntervalMs(0);
  h.setTimeoutMs(700'000);
  h.setFailureThreshold(5000);
  auto m = wire_.getMetrics();
  m.setErrorRateIncrease(std::numeric_limits<double>::quiet_NaN());
  m.setLatencyP95Ratio(-1);
  m.getPrometheus().setUrl("file:///etc/passwd");
  m.getPrometheus().setErrorRate("");
  wire_.getAlerts().setCpu(std::numeric_limits<double>::infinity());
  wire_.getRolling().setMaxUnavailable(0);
  wire_.getRolling().setMaxSurge(0);
  wire_.getTraffic().setHaproxyBackend("");
  const std::string why = refused(Step::DEPLOY);
  for (const char* problem :
       {"process.command is missing", "process.replicas must be in 1..256",
        "process.port_min must be in 1..65535", "process.port_min must not be above",
        "process.health_path must start with '/'", "health.intervalMs must be in 10..3600000",
        "health.timeoutMs must be in 1..600000", "health.failureThreshold must be in 0..1000",
        "metrics.errorRateIncrease must be a number >= 0",
        "metrics.latencyP95Ratio must be a number >= 0",
        "metrics.prometheus.url must be an http(s) URL", "metrics.prometheus.errorRate is missing",
        "alerts.cpu must be a number >= 0", "must not both be 0",
        "traffic.haproxyBackend is missing"}) {
    EXPECT_NE(why.find(problem), std::string::npos) << problem << " not in: " << why;
  }
}

TEST_F(SpecTest, EachStepChecksWhatItNeeds) {
  wire_.disownProcess();
  EXPECT_NE(refused(Step::DEPLOY).find("process is missing"), std::string::npos);
  EXPECT_NE(refused(Step::ROLL).find("process is missing"), std::string::npos);
  EXPECT_TRUE(read(Step::ROLLBACK).ok());  // goes back to what the record holds
  wire_.setWeight(101);
  EXPECT_NE(refused(Step::SHIFT).find("weight must be in 0..100"), std::string::npos);
  wire_.setDurationMs(0);
  EXPECT_NE(refused(Step::ANALYZE).find("durationMs must be in 1.."), std::string::npos);
  EXPECT_NE(refused(Step::BAKE).find("durationMs must be in 1.."), std::string::npos);
}

TEST(ProcessStepNameTest, EveryStepHasItsName) {
  EXPECT_STREQ(stepName(Step::DEPLOY), "deploy");
  EXPECT_STREQ(stepName(Step::SHIFT), "shift");
  EXPECT_STREQ(stepName(Step::ANALYZE), "analyze");
  EXPECT_STREQ(stepName(Step::BAKE), "bake");
  EXPECT_STREQ(stepName(Step::FINALIZE), "finalize");
  EXPECT_STREQ(stepName(Step::ROLLBACK), "rollback");
  EXPECT_STREQ(stepName(Step::ROLL), "roll");
}

}  // namespace
}  // namespace flotilla::agent
