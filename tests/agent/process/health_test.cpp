// agent/process/health.cpp against a real HTTP server on loopback: probes, a watch over a window
// that fails on the check past the threshold, and the rolling update's monitor.
#include "agent/process/health.hpp"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <thread>

#include "tests/support/http_server.hpp"

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;

// The step as the health code sees it: lines kept, pauses real but short.
class FakeStep : public StepContext {
 public:
  // Interface
  void say(const std::string& line) const override { lines.push_back(line); }
  bool pause(std::chrono::steady_clock::duration d) override {
    std::this_thread::sleep_for(d);
    return !cancelled;
  }
  common::Status abort() override { return common::Status::FailedPrecondition("cancelled"); }

  mutable std::vector<std::string> lines;
  bool cancelled = false;
};

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

}  // namespace
}  // namespace flotilla::agent
