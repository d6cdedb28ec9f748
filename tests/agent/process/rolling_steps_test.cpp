// Tests for agent/process/rolling_steps.cpp: the rolling update and its rollback, with real
// replicas behind a real HAProxy and traffic through it (tests/agent/process/driver_fixture.hpp).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <iostream>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "common/http_client.hpp"
#include "tests/agent/process/driver_fixture.hpp"

namespace flotilla::agent::testing {
namespace {

using namespace std::chrono_literals;
using common::httpGet;

TEST_F(ProcessDriverTest, RollingUpdateKeepsAtLeastReplicasMinusMaxUnavailableServing) {
  constexpr int kReplicas = 4, kMaxUnavailable = 1, kMaxSurge = 1;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas));
  const std::vector<pid_t> old_pids = recordedPids("stable");
  const TestSpec roll = rollSpec("2.0.0", "1.0.0", kReplicas, kMaxUnavailable, kMaxSurge);

  TrafficLoop traffic(haproxy_->port());
  Sampler serving(haproxyServing());
  auto start = Clock::now();
  auto r = run(Step::ROLL, roll);
  const double roll_took = secondsSince(start);
  serving.stop();
  traffic.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  std::cout << "[   TIME   ] roll 1.0.0 -> 2.0.0, 4 replicas, U=1 S=1: " << roll_took << "s; "
            << serving.describe() << "\n";
  EXPECT_EQ(serving.declined(), 0) << serving.describe();
  EXPECT_GT(serving.samples(), 50) << serving.describe();
  EXPECT_GE(serving.min(), kReplicas - kMaxUnavailable) << serving.describe();
  EXPECT_LE(serving.max(), kReplicas + kMaxSurge) << serving.describe();
  EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
  EXPECT_GT(traffic.count("checkout 1.0.0"), 0) << traffic.describe();
  EXPECT_GT(traffic.count("checkout 2.0.0"), 0) << traffic.describe();
  EXPECT_TRUE(logged("round 1: 2.0.0 1/4, 1.0.0 2/4 serving"));
  EXPECT_TRUE(logged("2.0.0 4/4, 1.0.0 0/4 serving"));

  json rec = record();
  EXPECT_EQ(recordedVersion("stable"), "2.0.0");
  EXPECT_EQ(recordedPids("stable").size(), 4u);
  EXPECT_EQ(recordedVersion("candidate"), "") << "after a roll there is no candidate set";
  EXPECT_EQ(rec["previous_version"], "1.0.0");
  EXPECT_EQ(rec["rolling"]["done"], true);
  for (pid_t pid : old_pids) EXPECT_TRUE(processGone(pid)) << "1.0.0 replica " << pid;
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 2.0.0", 20}}));

  // The new set is the stable set: finalize has nothing to do, bake watches it, a repeated roll
  // changes nothing.
  r = run(Step::FINALIZE, roll);
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("already the stable set"), std::string::npos) << r.message;
  r = run(Step::BAKE, withDuration(roll, 500));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("4 replica(s) of 2.0.0 passed"), std::string::npos) << r.message;
  const std::vector<pid_t> new_pids = recordedPids("stable");
  r = run(Step::ROLL, roll);
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll"), std::string::npos) << r.message;
  EXPECT_EQ(recordedPids("stable"), new_pids);

  // Rollback after the roll goes back the same way, within the same bounds.
  TrafficLoop back_traffic(haproxy_->port());
  Sampler back(haproxyServing());
  start = Clock::now();
  r = run(Step::ROLLBACK, roll);
  const double back_took = secondsSince(start);
  back.stop();
  back_traffic.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  std::cout << "[   TIME   ] rolling rollback 2.0.0 -> 1.0.0: " << back_took << "s; "
            << back.describe() << "\n";
  EXPECT_NE(r.message.find("rolled back to 1.0.0"), std::string::npos) << r.message;
  EXPECT_GE(back.min(), kReplicas - kMaxUnavailable) << back.describe();
  EXPECT_LE(back.max(), kReplicas + kMaxSurge) << back.describe();
  EXPECT_EQ(back_traffic.failed(), 0) << back_traffic.describe();
  EXPECT_EQ(recordedVersion("stable"), "1.0.0");
  EXPECT_EQ(recordedPids("stable").size(), 4u);
  EXPECT_EQ(recordedVersion("candidate"), "");
  EXPECT_EQ(record()["previous_version"], "2.0.0");
  for (pid_t pid : new_pids) EXPECT_TRUE(processGone(pid)) << "2.0.0 replica " << pid;
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 1.0.0", 20}}));

  r = run(Step::ROLLBACK, roll);
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll back"), std::string::npos) << r.message;
  EXPECT_EQ(recordedPids("stable").size(), 4u);
}

TEST_F(ProcessDriverTest, RollingUpdateWithoutMaxUnavailableNeverDropsBelowTheReplicaCount) {
  constexpr int kReplicas = 3;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas));
  const std::vector<pid_t> old_pids = recordedPids("stable");
  TrafficLoop traffic(haproxy_->port());
  Sampler serving(haproxyServing());
  const auto start = Clock::now();
  auto r = run(Step::ROLL, rollSpec("2.0.0", "1.0.0", kReplicas, 0, 1));
  const double took = secondsSince(start);
  serving.stop();
  traffic.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  std::cout << "[   TIME   ] roll 1.0.0 -> 2.0.0, 3 replicas, U=0 S=1: " << took << "s; "
            << serving.describe() << "\n";
  EXPECT_GT(serving.samples(), 50) << serving.describe();
  EXPECT_GE(serving.min(), kReplicas) << serving.describe();
  EXPECT_LE(serving.max(), kReplicas + 1) << serving.describe();
  EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
  EXPECT_TRUE(logged("round 1: 2.0.0 1/3, 1.0.0 2/3 serving"));
  EXPECT_TRUE(logged("round 3: 2.0.0 3/3, 1.0.0 0/3 serving"));
  EXPECT_EQ(recordedVersion("stable"), "2.0.0");
  EXPECT_EQ(recordedPids("stable").size(), 3u);
  for (pid_t pid : old_pids) EXPECT_TRUE(processGone(pid)) << "1.0.0 replica " << pid;
}

TEST_F(ProcessDriverTest, RollingUpdateOfAVersionFailingHealthFailsAndRollbackRestoresTheOldSet) {
  constexpr int kReplicas = 4, kMaxUnavailable = 1, kMaxSurge = 1;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas));
  // 2.0.0-fading passes its readiness check, then its /health answers 503 after 800 ms: the
  // health checks between rounds catch it while the roll is under way.
  const TestSpec roll = rollSpec("2.0.0-fading", "1.0.0", kReplicas, kMaxUnavailable, kMaxSurge);
  TrafficLoop traffic(haproxy_->port());
  Sampler serving(haproxyServing());
  auto r = run(Step::ROLL, roll);
  EXPECT_EQ(r.outcome, Outcome::FAILED) << r.message;
  EXPECT_NE(r.message.find("health check failed 4 times in a row"), std::string::npos) << r.message;
  EXPECT_TRUE(logged("3 in a row")) << "the third failure is tolerated";
  const json mid = record();
  EXPECT_EQ(mid["rolling"]["done"], false) << mid.dump();
  EXPECT_FALSE(startedPids("2.0.0-fading").empty());

  const auto start = Clock::now();
  r = run(Step::ROLLBACK, roll);
  const double took = secondsSince(start);
  serving.stop();
  traffic.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  std::cout << "[   TIME   ] rolling rollback of a failed roll: " << took << "s; "
            << serving.describe() << "\n";
  EXPECT_GE(serving.min(), kReplicas - kMaxUnavailable) << serving.describe();
  EXPECT_LE(serving.max(), kReplicas + kMaxSurge) << serving.describe();
  EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
  EXPECT_GT(traffic.count("checkout 2.0.0-fading"), 0) << traffic.describe();
  EXPECT_EQ(recordedVersion("stable"), "1.0.0");
  EXPECT_EQ(recordedPids("stable").size(), 4u);
  EXPECT_EQ(recordedVersion("candidate"), "");
  for (pid_t pid : startedPids("2.0.0-fading")) {
    EXPECT_TRUE(processGone(pid)) << "2.0.0-fading replica " << pid;
  }
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 1.0.0", 20}}));

  r = run(Step::ROLLBACK, roll);
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll back"), std::string::npos) << r.message;
}

TEST_F(ProcessDriverTest, CancelMidRollAbortsWithAConsistentRecordAndRollbackRestoresTheOldSet) {
  constexpr int kReplicas = 4;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas));
  const TestSpec roll = rollSpec("2.0.0", "1.0.0", kReplicas, 1, 1);
  TrafficLoop traffic(haproxy_->port());
  Sampler serving(haproxyServing());

  const CancelledRoll cancelled = cancelMidRoll(roll);
  ASSERT_TRUE(cancelled.round_one) << "the roll never finished its first round";
  std::cout << "[   TIME   ] cancel to kAborted mid-roll: " << cancelled.cancel_took << "s\n";
  EXPECT_EQ(cancelled.report.outcome, Outcome::ABORTED) << cancelled.report.message;

  // The record says what runs: every replica it holds is alive, every 2.0.0 replica started and
  // not in it is gone.
  const json mid = record();
  EXPECT_EQ(mid["rolling"]["done"], false) << mid.dump();
  std::set<pid_t> recorded;
  for (const char* role : {"stable", "candidate"}) {
    for (pid_t pid : recordedPids(role)) {
      recorded.insert(pid);
      EXPECT_EQ(kill(pid, 0), 0) << "recorded replica " << pid << " is not running";
    }
  }
  for (pid_t pid : startedPids("2.0.0")) {
    if (!recorded.count(pid)) {
      EXPECT_TRUE(processGone(pid)) << "unrecorded replica " << pid;
    }
  }
  // Steps that move traffic by shares wait until the roll is finished or undone.
  auto r = run(Step::SHIFT, withWeight(spec("2.0.0", "1.0.0"), 100));
  EXPECT_EQ(r.outcome, Outcome::FAILED) << r.message;
  EXPECT_NE(r.message.find("rolling update from 1.0.0 to 2.0.0 is in progress"), std::string::npos)
      << r.message;

  r = run(Step::ROLLBACK, roll);
  serving.stop();
  traffic.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_GE(serving.min(), kReplicas - 1) << serving.describe();
  EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
  EXPECT_EQ(recordedVersion("stable"), "1.0.0");
  EXPECT_EQ(recordedPids("stable").size(), 4u);
  EXPECT_EQ(recordedVersion("candidate"), "");
  for (pid_t pid : startedPids("2.0.0")) EXPECT_TRUE(processGone(pid)) << "2.0.0 replica " << pid;
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 1.0.0", 20}}));
}

TEST_F(ProcessDriverTest, RollingUpdateWithoutTrafficConfigKeepsTheProcessBounds) {
  constexpr int kReplicas = 3;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas, /*traffic=*/false));
  const std::vector<pid_t> old_pids = recordedPids("stable");
  TestSpec roll = rollSpec("2.0.0", "1.0.0", kReplicas, 1, 1);
  roll.plan.haproxy.reset();
  Sampler serving(recordServing());
  auto r = run(Step::ROLL, roll);
  serving.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  std::cout << "[   TIME   ] roll without a load balancer: " << serving.describe() << "\n";
  // The roll takes ~0.2 s; under load the sampler fits ten samples in it, not more (seen in a
  // full parallel ctest run). Enough to bound the serving count through the roll.
  EXPECT_GE(serving.samples(), 5) << serving.describe();
  EXPECT_GE(serving.min(), kReplicas - 1) << serving.describe();
  EXPECT_LE(serving.max(), kReplicas + 1) << serving.describe();
  EXPECT_TRUE(logged("no load balancer"));
  EXPECT_EQ(recordedVersion("stable"), "2.0.0");
  for (pid_t pid : old_pids) EXPECT_TRUE(processGone(pid)) << "1.0.0 replica " << pid;
  const json rec = record();  // the loop must not range over a temporary's member
  for (const json& replica : rec["stable"]["replicas"]) {
    auto reply =
        httpGet("http://127.0.0.1:" + std::to_string(replica["port"].get<int>()) + "/", 2000ms);
    ASSERT_TRUE(reply.ok()) << reply.status().toString();
    EXPECT_EQ(trim(reply->body), "checkout 2.0.0");
  }
  auto servers = admin_->freeServers(kBackend);
  ASSERT_TRUE(servers.ok());
  EXPECT_EQ(servers->size(), static_cast<size_t>(kSlots)) << "HAProxy was not touched";
}

TEST_F(ProcessDriverTest, RollFromNothingStartsTheReplicasAndRollbackHasNothingToGoBackTo) {
  auto r = run(Step::ROLL, rollSpec("1.0.0", "", 2, 1, 1));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_TRUE(logged("round 1: 1.0.0 2/2 serving"));
  EXPECT_EQ(recordedVersion("stable"), "1.0.0");
  EXPECT_EQ(sample(10), (std::map<std::string, int>{{"checkout 1.0.0", 10}}));
  const std::vector<pid_t> pids = recordedPids("stable");
  r = run(Step::ROLLBACK, rollSpec("1.0.0", "", 2, 1, 1));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll back to"), std::string::npos) << r.message;
  EXPECT_EQ(recordedPids("stable"), pids);
}

TEST_F(ProcessDriverTest, BadRollSpecsAreRefused) {
  TestSpec s = rollSpec("2.0.0", "1.0.0", 2, 0, 0);
  auto r = run(Step::ROLL, s);
  EXPECT_EQ(r.outcome, Outcome::FAILED);
  EXPECT_NE(r.message.find("must not both be 0"), std::string::npos) << r.message;
  s.plan.strategy.max_unavailable = 300;
  r = run(Step::ROLL, s);
  EXPECT_EQ(r.outcome, Outcome::FAILED);
  EXPECT_NE(r.message.find("rolling.maxUnavailable must be in 0..256"), std::string::npos)
      << r.message;
  EXPECT_TRUE(startedPids("2.0.0").empty());

  // A canary under way is finished or rolled back first.
  r = run(Step::DEPLOY, spec("1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::ROLL, rollSpec("2.0.0", "1.0.0", 2, 1, 1));
  EXPECT_EQ(r.outcome, Outcome::FAILED);
  EXPECT_NE(r.message.find("candidate set of 1.0.0 is running"), std::string::npos) << r.message;
  EXPECT_TRUE(startedPids("2.0.0").empty());
}

}  // namespace
}  // namespace flotilla::agent::testing
