// Tests for the operator actions (coordinator/deployment_actions.cpp): pause, resume, cancel,
// rollback on request; who and why in their events.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using DeploymentActions = DeploymentTest;

TEST_F(DeploymentActions, OperatorActionsNameTheActorAndTheReason) {
  Deployment d = start(threeWaves());
  fx_ = Effects{};
  ASSERT_TRUE(pause(d, alice_, "looking at a dashboard", ctx(), fx_).ok());
  ASSERT_NE(findEvent("deployment.paused"), nullptr);
  EXPECT_EQ(
      findEvent("deployment.paused")->message.rfind("paused by alice: looking at a dashboard", 0),
      0u);
  fx_ = Effects{};
  ASSERT_TRUE(resume(d, bob_, "", ctx(), fx_).ok());
  EXPECT_EQ(findEvent("deployment.resumed")->message, "resumed by bob");
  fx_ = Effects{};
  ASSERT_TRUE(requestRollback(d, carol_, "errors\nin eu", ctx(), fx_).ok());
  ASSERT_NE(findEvent("deployment.rolling_back"), nullptr);
  // Control characters from the caller do not reach events.
  EXPECT_EQ(findEvent("deployment.rolling_back")->message,
            "rollback requested by carol: errors in eu");
  EXPECT_EQ(d.rollback_cause, "rollback requested by carol: errors in eu");

  Deployment other = start(threeWaves());
  fx_ = Effects{};
  ASSERT_TRUE(cancel(other, alice_, std::string(2000, 'x'), ctx(), fx_).ok());
  EXPECT_EQ(other.reason.rfind("cancelled by alice: xxx", 0), 0u);
  EXPECT_LT(other.reason.size(), 600u);  // the reason is bounded
}

TEST_F(DeploymentActions, PauseHoldsNewStepsAndResumeContinues) {
  Deployment d = start(threeWaves());
  Effects fx;
  ASSERT_TRUE(pause(d, alice_, "", ctx(), fx).ok());
  EXPECT_EQ(d.state, DeploymentState::kPaused);
  ASSERT_TRUE(answer(d, "staging-eu").ok());  // the build in flight finishes
  EXPECT_TRUE(dispatched().empty());          // but apply does not start
  EXPECT_TRUE(pause(d, alice_, "", ctx(), fx).isFailedPrecondition());
  fx_ = Effects{};
  ASSERT_TRUE(resume(d, alice_, "", ctx(), fx_).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/apply"});
  EXPECT_TRUE(resume(d, alice_, "", ctx(), fx).isFailedPrecondition());
}

TEST_F(DeploymentActions, FailureWhilePausedStillRollsBack) {
  Deployment d = start(threeWaves());
  Effects fx;
  ASSERT_TRUE(pause(d, alice_, "", ctx(), fx).ok());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);  // nothing applied: done at once
}

TEST_F(DeploymentActions, CancelAbortsAndStops) {
  Deployment d = start(threeWaves());
  fx_ = Effects{};
  ASSERT_TRUE(cancel(d, alice_, "", ctx(), fx_).ok());
  EXPECT_EQ(d.state, DeploymentState::kCancelled);
  ASSERT_EQ(fx_.aborts.size(), 1u);
  EXPECT_EQ(d.waves[1].state, WaveState::kSkipped);
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::ABORTED).ok());  // late answer recorded
  EXPECT_EQ(d.waves[0].clusters[0].state, ClusterState::kAborted);
  EXPECT_EQ(d.state, DeploymentState::kCancelled);
  Effects fx;
  EXPECT_TRUE(cancel(d, alice_, "", ctx(), fx).isFailedPrecondition());
  EXPECT_TRUE(requestRollback(d, alice_, "", ctx(), fx).isFailedPrecondition());
}

TEST_F(DeploymentActions, RollbackAfterSuccessTakesEveryWaveBack) {
  versions_ = {{"staging-eu", "1.0.0"},
               {"prod-eu-1", "1.0.0"},
               {"prod-eu-2", "1.0.0"},
               {"prod-us-1", "1.0.0"}};
  Deployment d = start(threeWaves());
  succeedAll(d);
  ASSERT_EQ(d.state, DeploymentState::kSucceeded);
  fx_ = Effects{};
  ASSERT_TRUE(requestRollback(d, alice_, "bad release", ctx(), fx_).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-us-1/rollback"});
  EXPECT_EQ(fx_.dispatches[0].env.at("FLOTILLA_PREVIOUS_VERSION"), "1.0.0");
  ASSERT_TRUE(answer(d, "prod-us-1").ok());
  ASSERT_EQ(fx_.releases.size(), 1u);
  EXPECT_EQ(fx_.releases[0].version, "1.0.0");
  EXPECT_EQ(dispatched(), (std::vector<std::string>{"prod-eu-1/rollback", "prod-eu-2/rollback"}));
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
}

}  // namespace
}  // namespace flotilla::coordinator::testing
