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

TEST_F(DeploymentActions, CancelAbortsAndEndsCancelledOnceNothingIsInFlight) {
  Deployment d = start(threeWaves());
  fx_ = Effects{};
  ASSERT_TRUE(cancel(d, alice_, "", ctx(), fx_).ok());
  // The build in flight is aborted; the deployment waits for its answer.
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_TRUE(hasEvent("deployment.cancelling"));
  ASSERT_EQ(fx_.aborts.size(), 1u);
  EXPECT_EQ(d.waves[1].state, WaveState::kSkipped);
  Effects fx;
  EXPECT_TRUE(cancel(d, alice_, "", ctx(), fx).isFailedPrecondition());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::ABORTED).ok());
  EXPECT_EQ(d.waves[0].clusters[0].state, ClusterState::kAborted);
  // A build changes no cluster: nothing to roll back.
  EXPECT_TRUE(dispatched().empty());
  EXPECT_EQ(d.state, DeploymentState::kCancelled);
  EXPECT_TRUE(hasEvent("deployment.cancelled"));
  EXPECT_TRUE(cancel(d, alice_, "", ctx(), fx).isFailedPrecondition());
  // Rollback of a cancelled deployment works: nothing is left on the new version.
  fx_ = Effects{};
  ASSERT_TRUE(requestRollback(d, bob_, "to be sure", ctx(), fx_).ok());
  EXPECT_TRUE(dispatched().empty());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
}

TEST_F(DeploymentActions, CancelMidWaveRollsBackEveryClusterReached) {
  versions_ = {{"staging-eu", "1.0.0"}, {"prod-eu-1", "1.0.0"}, {"prod-eu-2", "1.1.0"}};
  Deployment d = start(threeWaves());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());  // build, apply, verify
  ASSERT_EQ(d.wave_index, 1u);
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());  // build: apply in flight
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());  // build
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());  // apply: verify in flight
  fx_ = Effects{};
  ASSERT_TRUE(cancel(d, alice_, "wrong build", ctx(), fx_).ok());
  ASSERT_EQ(fx_.aborts.size(), 2u);
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_EQ(d.waves[2].state, WaveState::kSkipped);
  // Each cluster goes back once its aborted step has answered; the lower wave waits.
  ASSERT_TRUE(answer(d, "prod-eu-1", Outcome::ABORTED).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-1/rollback"});
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  EXPECT_TRUE(dispatched().empty());
  ASSERT_TRUE(answer(d, "prod-eu-2", Outcome::ABORTED).ok());
  ASSERT_EQ(dispatched(), std::vector<std::string>{"prod-eu-2/rollback"});
  EXPECT_EQ(fx_.dispatches[0].env.at("FLOTILLA_PREVIOUS_VERSION"), "1.1.0");
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kCancelled);
  EXPECT_EQ(d.reason,
            "cancelled by alice: wrong build; every cluster it reached is back on its previous "
            "version");
  for (const auto& w : d.waves) {
    for (const auto& c : w.clusters) {
      EXPECT_TRUE(c.state == ClusterState::kRolledBack) << c.name;
    }
  }
  // The releases say where each cluster is.
  ASSERT_EQ(fx_.releases.size(), 1u);
  EXPECT_EQ(fx_.releases[0].version, "1.0.0");
}

TEST_F(DeploymentActions, CancelWhoseRollbackFailsEndsFailedAndRollbackRetries) {
  Deployment d = start(threeWaves());
  ASSERT_TRUE(answer(d, "staging-eu").ok());  // build
  ASSERT_TRUE(answer(d, "staging-eu").ok());  // apply
  fx_ = Effects{};
  ASSERT_TRUE(cancel(d, alice_, "", ctx(), fx_).ok());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::ABORTED).ok());  // the verify
  ASSERT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());
  EXPECT_EQ(d.state, DeploymentState::kFailed);
  EXPECT_NE(d.reason.find("rollback failed on staging-eu (after: cancelled by alice"),
            std::string::npos)
      << d.reason;
  fx_ = Effects{};
  ASSERT_TRUE(requestRollback(d, alice_, "", ctx(), fx_).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
}

TEST_F(DeploymentActions, RollbackOfAnOlderCancelTakesTheVersionOut) {
  // What a coordinator from before safe cancel left: cancelled, staging on the new version.
  Deployment d = start(threeWaves());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  for (auto& c : d.waves[1].clusters) {
    c.in_flight = false;
    c.state = ClusterState::kAborted;
  }
  d.waves[2].state = WaveState::kSkipped;
  d.state = DeploymentState::kCancelled;
  d.reason = "cancelled by alice";
  fx_ = Effects{};
  ASSERT_TRUE(requestRollback(d, bob_, "", ctx(), fx_).ok());
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  EXPECT_EQ(d.reason, "rollback requested by bob (after: cancelled by alice)");
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
