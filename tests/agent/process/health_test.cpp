// agent/process/health.cpp against a real HTTP server on loopback: probes, a watch over a window
// that fails on the check past the threshold, and the rolling update's monitor.
#include "agent/process/health.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <thread>

#include "tests/support/fake_step.hpp"
#include "tests/support/http_server.hpp"

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;

using support::FakeStep;

class ReplicaHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.server().Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    server_.server().Get("/sick",
                         [](const httplib::Request&, httplib::Response& res) { res.status = 503; });
    server_.start();
    ASSERT_TRUE(server_.running());
    port_ = server_.port();
  }
  ReplicaSet setOnOurPort() const { return ReplicaSet{"2.0.0", 100, {{0, 0, port_, "", 0}}}; }

  support::LocalHttpServer server_;
  int port_ = 0;
};

TEST_F(ReplicaHealthTest, ProbeTellsHealthyUnhealthyAndUnreachableApart) {
  auto results = probeAll({port_, port_}, "/health", 1000ms);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].ok && results[1].ok);
  Probe sick = probe(port_, "/sick", 1000ms);
  EXPECT_FALSE(sick.ok);
  EXPECT_TRUE(sick.answered);
  EXPECT_EQ(sick.detail, "HTTP 503");
  httplib::Server closed;
  const int unused = closed.bind_to_any_port("127.0.0.1");
  closed.stop();  // bound, never listening: refused
  Probe refused = probe(unused, "/health", 500ms);
  EXPECT_FALSE(refused.ok);
  EXPECT_FALSE(refused.answered);
}

TEST_F(ReplicaHealthTest, AWatchPassesOnHealthyReplicasAndFailsOnTheCheckPastTheThreshold) {
  FakeStep step;
  HealthSpec health;
  health.path = "/health";
  health.failure_threshold = 2;
  HealthWatch good(step, setOnOurPort(), health, 20ms);
  EXPECT_TRUE(good.watch(150ms).ok());
  EXPECT_GE(good.checks(), 3);

  health.path = "/sick";
  HealthWatch bad(step, setOnOurPort(), health, 20ms);
  common::Status s = bad.watch(10s);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("failed 3 times in a row"), std::string::npos) << s.message();
  EXPECT_EQ(bad.checks(), 3);  // two tolerated, logged; the third fails
  EXPECT_EQ(step.lines.size(), 2u);
}

TEST_F(ReplicaHealthTest, TheMonitorReportsFailuresFromItsOwnThread) {
  FakeStep step;
  HealthSpec health;
  health.path = "/sick";
  health.interval = 20ms;
  health.failure_threshold = 1;
  HealthMonitor monitor(health, "2.0.0");
  EXPECT_TRUE(monitor.healthy(port_));  // not watched yet
  monitor.watch(port_);
  common::Status s = common::Status::Ok();
  for (int i = 0; i < 200 && s.ok(); ++i) {
    std::this_thread::sleep_for(10ms);
    s = monitor.verdict(step);
  }
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("failed 2 times in a row"), std::string::npos) << s.message();
  EXPECT_FALSE(monitor.healthy(port_));
  monitor.forget(port_);
  EXPECT_TRUE(monitor.healthy(port_));
}

// The watch's rules with the test's clock and probes: a ten-minute watch in microseconds.

ReplicaSet twoReplicas() {
  return ReplicaSet{"2.0.0", 100, {{0, 0, 18001, "", 0}, {0, 0, 18002, "", 0}}};
}

TEST(HealthWatchRulesTest, ChecksEveryIntervalForTheWholeWindow) {
  FakeStep step;
  step.probes = [](const std::vector<int>& ports, FakeStep::Clock::time_point) {
    return std::vector<Probe>(ports.size(), Probe{true, true, ""});
  };
  HealthSpec health;
  health.failure_threshold = 3;
  HealthWatch watch(step, twoReplicas(), health, 10s);
  ASSERT_TRUE(watch.watch(std::chrono::minutes(10)).ok());
  EXPECT_EQ(step.probe_rounds, 60);  // at 0 s, 10 s, ... 590 s
  EXPECT_EQ(watch.checks(), 120);    // two replicas each round
  EXPECT_EQ(step.now() - step.start(), std::chrono::minutes(10));
}

TEST(HealthWatchRulesTest, ThresholdFailuresInARowAreToleratedOneMoreFails) {
  HealthSpec health;
  health.failure_threshold = 3;
  for (int failing : {3, 4}) {
    FakeStep step;
    int round = 0;
    // The second replica fails `failing` rounds in a row from the fifth, then recovers.
    step.probes = [&](const std::vector<int>& ports, FakeStep::Clock::time_point) {
      ++round;
      std::vector<Probe> out(ports.size(), Probe{true, true, ""});
      if (round >= 5 && round < 5 + failing) out[1] = Probe{false, true, "HTTP 503"};
      return out;
    };
    HealthWatch watch(step, twoReplicas(), health, 1s);
    common::Status s = watch.watch(30s);
    if (failing == 3) {
      EXPECT_TRUE(s.ok()) << s.message();
      EXPECT_EQ(step.lines.size(), 3u);  // each failure said, none fatal
    } else {
      ASSERT_FALSE(s.ok());
      EXPECT_NE(s.message().find("failed 4 times in a row on 127.0.0.1:18002: HTTP 503"),
                std::string::npos)
          << s.message();
      EXPECT_EQ(step.now() - step.start(), 7s);  // failed at the check of round 8, at 7 s
    }
  }
}

TEST(HealthWatchRulesTest, AFailureStreakBrokenByAPassStartsAgain) {
  HealthSpec health;
  health.failure_threshold = 2;
  FakeStep step;
  int round = 0;
  // fail, fail, pass, fail, fail, pass ...: never three in a row.
  step.probes = [&](const std::vector<int>& ports, FakeStep::Clock::time_point) {
    ++round;
    return std::vector<Probe>(ports.size(), Probe{round % 3 == 0, true, "HTTP 500"});
  };
  HealthWatch watch(step, twoReplicas(), health, 1s);
  EXPECT_TRUE(watch.watch(60s).ok());
}

TEST(HealthWatchRulesTest, ACancelledWatchStopsAtItsNextPause) {
  FakeStep step;
  step.probes = [&](const std::vector<int>& ports, FakeStep::Clock::time_point) {
    step.cancelled = true;
    return std::vector<Probe>(ports.size(), Probe{true, true, ""});
  };
  HealthSpec health;
  HealthWatch watch(step, twoReplicas(), health, 1s);
  common::Status s = watch.watch(std::chrono::hours(1));
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(step.aborted);
  EXPECT_EQ(step.probe_rounds, 1);
}

}  // namespace
}  // namespace flotilla::agent
