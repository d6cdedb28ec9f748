// Tests for stage results (coordinator/deployment_results.cpp): stale and duplicate answers,
// batches, and steps whose effect is unknown.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using common::Plan;
using DeploymentResults = DeploymentTest;

TEST_F(DeploymentResults, StaleAndDuplicateResultsAreRefused) {
  Deployment d = start(threeWaves());
  StageResult wrong_attempt{"staging-eu", "staging-eu/build", 7, Outcome::SUCCEEDED, 0, ""};
  Effects fx;
  EXPECT_TRUE(applyResult(d, wrong_attempt, ctx(), fx).isNotFound());
  StageResult wrong_stage{"staging-eu", "staging-eu/apply", 1, Outcome::SUCCEEDED, 0, ""};
  EXPECT_TRUE(applyResult(d, wrong_stage, ctx(), fx).isNotFound());
  StageResult unknown{"nowhere", "nowhere/build", 1, Outcome::SUCCEEDED, 0, ""};
  EXPECT_TRUE(applyResult(d, unknown, ctx(), fx).isNotFound());
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  StageResult again{"staging-eu", "staging-eu/build", 1, Outcome::FAILED, 1, ""};
  EXPECT_TRUE(applyResult(d, again, ctx(), fx).isNotFound());  // a duplicate changes nothing
  EXPECT_EQ(d.state, DeploymentState::kRunning);
}

TEST_F(DeploymentResults, ABatchOfResultsEndsWhereTheSameResultsOneByOneEnd) {
  Deployment one = start(productionWave());
  Deployment batch = one;
  ASSERT_EQ(one.waves[0].clusters.size(), 3u);
  for (int step = 0; step < 2; ++step) {
    std::vector<StageResult> results;
    for (const char* c : {"prod-eu-1", "prod-eu-2", "prod-us-1"}) {
      results.push_back(resultFor(batch, c, Outcome::SUCCEEDED));
      ASSERT_TRUE(answer(one, c).ok());
    }
    Effects fx;
    EXPECT_EQ(applyResults(batch, results, ctx(), fx), 0u);
    if (step == 0) {
      std::vector<std::string> sent;
      for (const auto& x : fx.dispatches) sent.push_back(x.stage_id);
      EXPECT_EQ(sent, (std::vector<std::string>{"prod-eu-1/verify", "prod-eu-2/verify",
                                                "prod-us-1/verify"}));
    }
  }
  EXPECT_EQ(batch.state, DeploymentState::kSucceeded);
  EXPECT_EQ(deploymentToJson(batch), deploymentToJson(one));
}

TEST_F(DeploymentResults, AFailureInABatchAbortsOnlyStagesStillInFlight) {
  Deployment d = start(productionWave());
  // prod-eu-1 fails; prod-eu-2 answered in the same turn; prod-us-1 is still applying.
  std::vector<StageResult> results = {resultFor(d, "prod-eu-1", Outcome::FAILED),
                                      resultFor(d, "prod-eu-2", Outcome::SUCCEEDED),
                                      resultFor(d, "prod-eu-2", Outcome::SUCCEEDED)};
  Effects fx;
  EXPECT_EQ(applyResults(d, results, ctx(), fx), 1u);  // the repeat matched nothing
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  ASSERT_EQ(fx.aborts.size(), 1u);
  EXPECT_EQ(fx.aborts[0].cluster, "prod-us-1");
  std::vector<std::string> sent;
  for (const auto& x : fx.dispatches) sent.push_back(x.stage_id);
  // Newest wave first, and within it every cluster not in flight that applied.
  EXPECT_EQ(sent, (std::vector<std::string>{"prod-eu-1/rollback", "prod-eu-2/rollback"}));
}

TEST_F(DeploymentResults, AStepThatSucceededBeforeTheFailureInABatchGoesNoFurther) {
  Plan p = productionWave();
  p.steps.build = "build";
  Deployment d = start(p);
  // prod-eu-2's build answered before prod-eu-1's failed, in the same turn.
  std::vector<StageResult> results = {resultFor(d, "prod-eu-2", Outcome::SUCCEEDED),
                                      resultFor(d, "prod-eu-1", Outcome::FAILED)};
  Effects fx;
  EXPECT_EQ(applyResults(d, results, ctx(), fx), 0u);
  EXPECT_EQ(d.findCluster("prod-eu-2")->state, ClusterState::kAborted);
  EXPECT_FALSE(d.findCluster("prod-eu-2")->in_flight);
  for (const auto& x : fx.dispatches) EXPECT_NE(x.cluster, "prod-eu-2") << x.stage_id;
  // Nothing applied yet: once prod-us-1's build answers its abort, the rollback is done.
  ASSERT_TRUE(answer(d, "prod-us-1", Outcome::ABORTED).ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
}

// ---- A step whose effect is unknown (its agent died while it ran) ------------------------------

TEST_F(DeploymentResults, UnknownApplyIsCheckedByVerifyAndNeverSentAgain) {
  Deployment d = start(threeWaves());
  ASSERT_TRUE(answer(d, "staging-eu").ok());  // build
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::UNKNOWN).ok());
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_TRUE(hasEvent("stage.unknown"));
  EXPECT_FALSE(hasEvent("stage.failed"));
  // Verify, first attempt: apply is not run again.
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/verify"});
  EXPECT_EQ(fx_.dispatches[0].attempt, 1u);
  EXPECT_TRUE(fx_.releases.empty());  // not on the new version until verify says so
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.waves[0].clusters[0].state, ClusterState::kSucceeded);
  ASSERT_EQ(fx_.releases.size(), 1u);
  EXPECT_EQ(fx_.releases[0].version, "2.0.0");
  EXPECT_EQ(dispatched(), (std::vector<std::string>{"prod-eu-1/build", "prod-eu-2/build"}));
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kSucceeded);
}

TEST_F(DeploymentResults, UnknownApplyThatVerifyRejectsIsRolledBack) {
  Deployment d = start(threeWaves());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());  // build
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());  // build
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());  // apply
  ASSERT_TRUE(answer(d, "prod-eu-1", Outcome::UNKNOWN).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-1/verify"});
  ASSERT_TRUE(answer(d, "prod-eu-1", Outcome::FAILED).ok());
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  ASSERT_TRUE(d.failure.has_value());
  EXPECT_EQ(d.failure->cluster, "prod-eu-1");
  EXPECT_EQ(d.failure->step, "verify");
  // The cluster whose apply was unknown may run the new version: it is rolled back too.
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-1/rollback"});
  ASSERT_TRUE(answer(d, "prod-eu-2", Outcome::ABORTED).ok());  // its verify
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-2/rollback"});
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  for (const auto& w : {0, 1}) {
    for (const auto& c : d.waves[static_cast<size_t>(w)].clusters) {
      EXPECT_EQ(c.state, ClusterState::kRolledBack) << c.name;
    }
  }
}

TEST_F(DeploymentResults, UnknownApplyWithNothingToVerifyRollsBack) {
  Plan p = threeWaves();
  p.steps.verify.clear();
  Deployment d = start(p);
  ASSERT_TRUE(answer(d, "staging-eu").ok());  // build
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::UNKNOWN).ok());
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_TRUE(hasEvent("stage.failed"));
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  ASSERT_TRUE(d.failure.has_value());
  EXPECT_EQ(d.failure->step, "apply");
}

TEST_F(DeploymentResults, UnknownBuildVerifyOrRollbackIsAFailure) {
  {
    Deployment d = start(threeWaves());
    ASSERT_TRUE(answer(d, "staging-eu", Outcome::UNKNOWN).ok());  // build
    EXPECT_TRUE(dispatched().empty());
    EXPECT_EQ(d.state, DeploymentState::kRolledBack);  // nothing applied
  }
  {
    Deployment d = start(threeWaves());
    ASSERT_TRUE(answer(d, "staging-eu").ok());
    ASSERT_TRUE(answer(d, "staging-eu").ok());
    ASSERT_TRUE(answer(d, "staging-eu", Outcome::UNKNOWN).ok());  // verify
    EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
    // A rollback whose effect is unknown is not retried on its own: a human looks.
    ASSERT_TRUE(answer(d, "staging-eu", Outcome::UNKNOWN).ok());
    EXPECT_EQ(d.state, DeploymentState::kFailed);
    EXPECT_EQ(d.rollback_failed, std::vector<std::string>{"staging-eu"});
  }
}

TEST_F(DeploymentResults, UnknownApplyDuringARollbackIsRolledBackNotVerified) {
  Deployment d = start(threeWaves());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());                   // build; apply in flight
  ASSERT_TRUE(answer(d, "prod-eu-2", Outcome::FAILED).ok());  // build fails
  ASSERT_EQ(d.state, DeploymentState::kRollingBack);
  ASSERT_EQ(fx_.aborts.size(), 1u);
  EXPECT_EQ(fx_.aborts[0].stage_id, "prod-eu-1/apply");
  // Its agent died instead of aborting: the apply's effect is unknown.
  ASSERT_TRUE(answer(d, "prod-eu-1", Outcome::UNKNOWN).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-1/rollback"});
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  EXPECT_EQ(d.waves[1].clusters[0].state, ClusterState::kRolledBack);
}

}  // namespace
}  // namespace flotilla::coordinator::testing
