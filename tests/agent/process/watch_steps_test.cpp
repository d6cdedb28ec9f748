// Tests for agent/process/watch_steps.cpp: analyze and bake watching real replicas behind a real
// HAProxy (tests/agent/process/driver_fixture.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "tests/agent/process/driver_fixture.hpp"
#include "tests/support/wait.hpp"

namespace flotilla::agent::testing {
namespace {

using namespace std::chrono_literals;

TEST_F(ProcessDriverTest, ErroringCanaryFailsAnalysisAndRollbackRestoresTheStableSet) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  const std::vector<pid_t> stable_pids = recordedPids("stable");
  TrafficLoop traffic(haproxy_->port());

  auto r = run(Step::DEPLOY, spec("2.0.0-bad", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  const std::vector<pid_t> bad_pids = recordedPids("candidate");
  r = run(Step::SHIFT, withWeight(spec("2.0.0-bad", "1.0.0"), 50));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::ANALYZE, withDuration(spec("2.0.0-bad", "1.0.0"), 1500));
  EXPECT_EQ(r.outcome, Outcome::FAILED) << r.message;
  EXPECT_NE(r.message.find("error rate"), std::string::npos) << r.message;
  // The window that failed was reported with its figures, before the step ended.
  const std::vector<FiguresReport> reported = figures();
  ASSERT_EQ(reported.size(), 1u);
  const FiguresReport& f = reported[0];
  EXPECT_FALSE(f.bake);
  EXPECT_EQ(f.window, 1u);
  EXPECT_GE(f.window_ms, 1500u);
  EXPECT_EQ(f.verdict, common::WindowVerdict::kFail);
  EXPECT_EQ(f.candidate.version, "2.0.0-bad");
  ASSERT_TRUE(f.stable.has_value());
  EXPECT_EQ(f.stable->version, "1.0.0");
  EXPECT_GT(f.candidate.requests, 0u);
  ASSERT_TRUE(f.error_rate_limit.has_value());
  EXPECT_GT(f.candidate.error_rate, *f.error_rate_limit);
  EXPECT_EQ(f.health_threshold, 3u);
  EXPECT_TRUE(common::checkFigures(f).ok());

  r = run(Step::ROLLBACK, spec("2.0.0-bad", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  traffic.stop();
  EXPECT_EQ(sample(30), (std::map<std::string, int>{{"checkout 1.0.0", 30}}));
  EXPECT_EQ(recordedVersion("candidate"), "");
  EXPECT_EQ(recordedPids("stable"), stable_pids) << "the stable set is never restarted";
  for (pid_t pid : bad_pids) EXPECT_TRUE(processGone(pid)) << "bad replica " << pid;
  EXPECT_GT(traffic.count("checkout 2.0.0-bad"), 0) << traffic.describe();

  r = run(Step::ROLLBACK, spec("2.0.0-bad", "1.0.0"));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll back"), std::string::npos) << r.message;
  EXPECT_EQ(recordedPids("stable"), stable_pids);
}

TEST_F(ProcessDriverTest, HealthFailuresDuringAnalysisFailOnTheFourthInARow) {
  TestSpec s = spec("2.0.0-flaky");
  s.plan.health.metrics.reset();
  auto r = run(Step::DEPLOY, s);
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::ANALYZE, withDuration(s, 8000));
  EXPECT_EQ(r.outcome, Outcome::FAILED) << r.message;
  EXPECT_NE(r.message.find("health check failed 4 times in a row on 127.0.0.1:"), std::string::npos)
      << r.message;
  EXPECT_TRUE(logged("3 in a row")) << "the third failure is tolerated";
}

TEST_F(ProcessDriverTest, BakeWatchesHealthAndPasses) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  auto r = run(Step::BAKE, withDuration(spec("1.0.0"), 500));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("health checks"), std::string::npos) << r.message;
  // No metrics and no alerts: health checks only, no windows to report.
  EXPECT_TRUE(figures().empty());
}

// Blue-green: the new set takes all the traffic at once, the old one none; the bake judges the
// new set against what the old one served before the switch.
TEST_F(ProcessDriverTest, BlueGreenBakeFailsAVersionSlowerThanTheOldSetServed) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  TrafficLoop traffic(haproxy_->port());
  ASSERT_TRUE(support::pollUntil([&] { return traffic.count("checkout 1.0.0") >= 40; }, 20s))
      << traffic.describe();
  const TestSpec slow = spec("2.0.0-slow", "1.0.0");
  auto r = run(Step::DEPLOY, slow);
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::SHIFT, withWeight(slow, 100));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::BAKE, withDuration(slow, 8000));
  EXPECT_EQ(r.outcome, Outcome::FAILED) << r.message;
  EXPECT_NE(r.message.find("bake failed against 1.0.0"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("p95"), std::string::npos) << r.message;
  EXPECT_TRUE(logged("bake baseline 1.0.0")) << "the old set's figures are said";
}

TEST_F(ProcessDriverTest, BlueGreenBakePassesAVersionAsGoodAsTheOldSet) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  TrafficLoop traffic(haproxy_->port());
  ASSERT_TRUE(support::pollUntil([&] { return traffic.count("checkout 1.0.0") >= 40; }, 20s))
      << traffic.describe();
  const TestSpec good = spec("2.0.0", "1.0.0");
  auto r = run(Step::DEPLOY, good);
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::SHIFT, withWeight(good, 100));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::BAKE, withDuration(good, 2000));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("and the analysis against 1.0.0"), std::string::npos) << r.message;
  // One figures report per slice, numbered, each against the old set with its verdict.
  const std::vector<FiguresReport> reported = figures();
  ASSERT_GE(reported.size(), 2u);
  for (size_t i = 0; i < reported.size(); ++i) {
    EXPECT_TRUE(reported[i].bake);
    EXPECT_EQ(reported[i].window, i + 1);
    EXPECT_EQ(reported[i].candidate.version, "2.0.0");
    ASSERT_TRUE(reported[i].stable.has_value());
    EXPECT_EQ(reported[i].stable->version, "1.0.0");
    EXPECT_NE(reported[i].verdict, common::WindowVerdict::kNone);
    EXPECT_NE(reported[i].verdict, common::WindowVerdict::kFail);
    EXPECT_EQ(reported[i].health_failing, 0u);
  }
  EXPECT_GT(reported.back().health_checks, 0u);
}

TEST_F(ProcessDriverTest, CancelDuringAnalysisAbortsQuicklyAndKeepsTheRecord) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  auto r = run(Step::DEPLOY, spec("2.0.0", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  const std::vector<pid_t> candidate = recordedPids("candidate");

  std::atomic<bool> cancel{false};
  StepReport report;
  std::thread step([&] {
    report = run(Step::ANALYZE, withDuration(spec("2.0.0", "1.0.0"), 30000), nullptr, &cancel);
  });
  std::this_thread::sleep_for(500ms);
  const auto cancelled_at = Clock::now();
  cancel = true;
  step.join();
  // The analysis window is 30 s: coming back well before it means the cancel stopped it.
  EXPECT_LT(Clock::now() - cancelled_at, 20s);
  EXPECT_EQ(report.outcome, Outcome::ABORTED) << report.message;
  EXPECT_EQ(recordedPids("candidate"), candidate);

  r = run(Step::ROLLBACK, spec("2.0.0", "1.0.0"));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_EQ(recordedVersion("candidate"), "");
}

}  // namespace
}  // namespace flotilla::agent::testing
