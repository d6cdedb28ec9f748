// Tests for what an incident freeze does to the state machine (coordinator/deployment.cpp,
// advance()): a covered deployment stops at its next step boundary in state frozen, steps in
// flight finish, rollbacks (automatic and requested) still run, and lifting the freeze lets it
// go on from where it stopped.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/freeze.hpp"
#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

class DeploymentFreeze : public DeploymentTest {
 protected:
  // Freezes `environment` ("" = the fleet).
  void freeze(const std::string& environment) {
    Freeze f;
    f.seq = freezes_.size() + 1;
    f.reason = "INC-" + std::to_string(f.seq);
    f.environment = environment;
    f.by = "root";
    f.at_ms = 1'800'000'000'000;
    freezes_.push_back(f);
  }
  void liftAll() {
    for (auto& f : freezes_) f.lifted_ms = 1;
  }
  Context frozenCtx() {
    Context c = ctx();
    c.freezes = &freezes_;
    return c;
  }
  // Answers `cluster`'s step in flight, with the freezes in force (fx_ holds the effects).
  common::Status answerNow(Deployment& d, const std::string& cluster,
                           Outcome outcome = Outcome::SUCCEEDED) {
    fx_ = Effects{};
    return applyResult(d, resultFor(d, cluster, outcome), frozenCtx(), fx_);
  }
  void advanceNow(Deployment& d) {
    fx_ = Effects{};
    advance(d, frozenCtx(), fx_);
  }

  std::vector<Freeze> freezes_;
};

TEST_F(DeploymentFreeze, StopsAtTheNextStepBoundaryAndGoesOnWhenLifted) {
  Deployment d = start(threeWaves());
  ASSERT_EQ(dispatched(), std::vector<std::string>{"staging-eu/build"});
  freeze("");
  // The build in flight is not aborted: its result is recorded, and apply does not start.
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kFrozen);
  EXPECT_EQ(d.resume_to, DeploymentState::kRunning);
  EXPECT_TRUE(dispatched().empty());
  EXPECT_TRUE(fx_.aborts.empty());
  ASSERT_NE(findEvent("deployment.frozen"), nullptr);
  EXPECT_EQ(findEvent("deployment.frozen")
                ->message.rfind("frozen: freeze-1 (the whole fleet) by root since ", 0),
            0u)
      << findEvent("deployment.frozen")->message;
  EXPECT_NE(d.reason.find("INC-1"), std::string::npos) << d.reason;
  EXPECT_EQ(std::string(deploymentStateName(d.state)), "frozen");

  // Nothing moves while it lasts, however often the machine is asked.
  advanceNow(d);
  EXPECT_TRUE(dispatched().empty());
  EXPECT_FALSE(fx_.changed);

  liftAll();
  advanceNow(d);
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_NE(findEvent("deployment.unfrozen"), nullptr);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/apply"});
  EXPECT_TRUE(d.reason.empty());
}

TEST_F(DeploymentFreeze, NoNewWaveStartsWhileFrozen) {
  Deployment d = start(threeWaves());
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  ASSERT_EQ(dispatched(), std::vector<std::string>{"staging-eu/verify"});
  freeze("production");  // the plan's later waves are production: it covers the deployment
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kFrozen);
  EXPECT_TRUE(dispatched().empty());
  EXPECT_EQ(d.waves[1].state, WaveState::kPending);
  liftAll();
  advanceNow(d);
  EXPECT_EQ(dispatched(), (std::vector<std::string>{"prod-eu-1/build", "prod-eu-2/build"}));
}

TEST_F(DeploymentFreeze, AnotherEnvironmentsFreezeDoesNotCoverIt) {
  common::Plan staging_only = threeWaves();
  staging_only.waves.resize(1);
  Deployment d = start(staging_only);
  freeze("production");
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/apply"});
  freeze("staging");
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kFrozen);
}

TEST_F(DeploymentFreeze, AFailedStepStillRollsBackWhileFrozen) {
  Deployment d = start(threeWaves());
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());  // applied: the cluster runs the new version
  freeze("");
  advanceNow(d);
  ASSERT_EQ(d.state, DeploymentState::kFrozen);
  ASSERT_TRUE(answerNow(d, "staging-eu", Outcome::FAILED).ok());  // the verify in flight fails
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
}

TEST_F(DeploymentFreeze, ARequestedRollbackRunsWhileFrozen) {
  Deployment d = start(threeWaves());
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  freeze("");
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());  // apply finishes; verify does not start
  ASSERT_EQ(d.state, DeploymentState::kFrozen);
  ASSERT_TRUE(dispatched().empty());
  fx_ = Effects{};
  ASSERT_TRUE(requestRollback(d, alice_, "the incident", frozenCtx(), fx_).ok());
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
}

TEST_F(DeploymentFreeze, PauseAndResumeOnTopOfAFreeze) {
  Deployment d = start(threeWaves());
  freeze("");
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  ASSERT_EQ(d.state, DeploymentState::kFrozen);
  fx_ = Effects{};
  ASSERT_TRUE(pause(d, alice_, "", frozenCtx(), fx_).ok());
  EXPECT_EQ(d.state, DeploymentState::kPaused);
  EXPECT_EQ(d.resume_to, DeploymentState::kRunning);  // where the freeze stopped it
  fx_ = Effects{};
  ASSERT_TRUE(resume(d, alice_, "", frozenCtx(), fx_).ok());
  EXPECT_EQ(d.state, DeploymentState::kFrozen);  // the freeze holds it again
  EXPECT_TRUE(dispatched().empty());
  liftAll();
  advanceNow(d);
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/apply"});
}

TEST_F(DeploymentFreeze, AWaveAwaitingApprovalMayBeApprovedButWaitsForTheUnfreeze) {
  Deployment d = awaitingTwoApprovals();
  ASSERT_EQ(d.state, DeploymentState::kAwaitingApproval);
  freeze("production");
  advanceNow(d);
  ASSERT_EQ(d.state, DeploymentState::kFrozen);
  EXPECT_EQ(d.resume_to, DeploymentState::kAwaitingApproval);
  fx_ = Effects{};
  ASSERT_TRUE(approve(d, "", bob_, frozenCtx(), fx_).ok());
  fx_ = Effects{};
  ASSERT_TRUE(approve(d, "", carol_, frozenCtx(), fx_).ok());
  EXPECT_EQ(d.state, DeploymentState::kFrozen);
  EXPECT_TRUE(dispatched().empty());
  liftAll();
  advanceNow(d);
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_FALSE(dispatched().empty());
}

TEST_F(DeploymentFreeze, TheFrozenStateIsStored) {
  Deployment d = start(threeWaves());
  freeze("");
  ASSERT_TRUE(answerNow(d, "staging-eu").ok());
  ASSERT_EQ(d.state, DeploymentState::kFrozen);
  auto back = deploymentFromJson(deploymentToJson(d));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->state, DeploymentState::kFrozen);
  EXPECT_EQ(back->resume_to, DeploymentState::kRunning);
  EXPECT_EQ(back->reason, d.reason);
}

}  // namespace
}  // namespace flotilla::coordinator::testing
