// Tests for the way back (coordinator/deployment_rollback.cpp): what is rolled back, in which
// order, and how a rollback ends.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using common::Plan;
using DeploymentRollback = DeploymentTest;

TEST_F(DeploymentRollback, FailureRollsBackReachedClustersNewestWaveFirst) {
  Deployment d = start(threeWaves());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());  // build
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());  // apply: prod-eu-1 now runs 2.0.0
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());  // build
  // prod-eu-2's apply fails while prod-eu-1 verifies.
  ASSERT_TRUE(answer(d, "prod-eu-2", Outcome::FAILED).ok());
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  ASSERT_TRUE(d.failure.has_value());
  EXPECT_EQ(d.failure->cluster, "prod-eu-2");
  EXPECT_EQ(d.failure->step, "apply");
  EXPECT_EQ(d.waves[2].state, WaveState::kSkipped);
  // prod-eu-1's verify is aborted first; prod-eu-2 (applied, failed) rolls back at once.
  ASSERT_EQ(fx_.aborts.size(), 1u);
  EXPECT_EQ(fx_.aborts[0].stage_id, "prod-eu-1/verify");
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-2/rollback"});

  ASSERT_TRUE(answer(d, "prod-eu-1", Outcome::ABORTED).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-1/rollback"});
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());
  EXPECT_TRUE(dispatched().empty());  // staging waits for the whole newer wave
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  EXPECT_EQ(d.waves[1].state, WaveState::kRolledBack);
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  EXPECT_TRUE(d.waves[2].clusters.empty());  // never reached, never touched
}

TEST_F(DeploymentRollback, ClustersThatNeverAppliedAreNotRolledBack) {
  Deployment d = start(threeWaves());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1", Outcome::FAILED).ok());  // build fails
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  // prod-eu-2's build is aborted; neither prod cluster applied.
  ASSERT_TRUE(answer(d, "prod-eu-2", Outcome::ABORTED).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
}

TEST_F(DeploymentRollback, WaveScopeRollsBackOnlyTheFailingWave) {
  Plan p = threeWaves();
  p.rollback_scope = common::RollbackScope::kWave;
  Deployment d = start(p);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  ASSERT_TRUE(answer(d, "prod-eu-2", Outcome::TIMED_OUT).ok());
  ASSERT_TRUE(answer(d, "prod-eu-1", Outcome::ABORTED).ok());
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  EXPECT_EQ(d.waves[0].state, WaveState::kSucceeded);
  EXPECT_EQ(d.waves[0].clusters[0].state, ClusterState::kSucceeded);
}

TEST_F(DeploymentRollback, FailedRollbackEndsFailedAndCanBeRetried) {
  Deployment d = start(threeWaves());
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());  // verify fails
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());
  EXPECT_EQ(d.state, DeploymentState::kFailed);
  EXPECT_EQ(d.rollback_failed, std::vector<std::string>{"staging-eu"});
  EXPECT_NE(d.reason.find("rollback failed on staging-eu"), std::string::npos);

  fx_ = Effects{};
  ASSERT_TRUE(requestRollback(d, alice_, "retry", ctx(), fx_).ok());
  ASSERT_EQ(fx_.dispatches.size(), 1u);
  EXPECT_EQ(fx_.dispatches[0].stage_id, "staging-eu/rollback");
  EXPECT_EQ(fx_.dispatches[0].attempt, 2u);
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  // The reason is the original cause again, not the failed attempt.
  EXPECT_EQ(d.reason.find("rollback failed"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("staging-eu failed at verify"), std::string::npos) << d.reason;
}

}  // namespace
}  // namespace flotilla::coordinator::testing
