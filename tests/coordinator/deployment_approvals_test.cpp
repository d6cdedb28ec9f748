// Tests for the approval rule (coordinator/deployment_approvals.cpp): the gate, who may approve,
// how many approvers, expiry, approving ahead.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using common::Plan;
using DeploymentApprovals = DeploymentTest;

TEST_F(DeploymentApprovals, ApprovalGateHoldsTheWave) {
  Plan p = threeWaves();
  p.waves[1].approval_required = true;
  Deployment d = start(p);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kAwaitingApproval);
  EXPECT_EQ(d.waves[1].state, WaveState::kAwaitingApproval);
  EXPECT_TRUE(dispatched().empty());
  // Advancing again changes nothing.
  fx_ = Effects{};
  advance(d, ctx(), fx_);
  EXPECT_TRUE(fx_.dispatches.empty());
  EXPECT_FALSE(fx_.changed);

  Effects fx;
  EXPECT_TRUE(approve(d, "nope", bob_, ctx(), fx).isInvalidArgument());
  EXPECT_TRUE(approve(d, "prod-us", bob_, ctx(), fx).isFailedPrecondition());  // needs no approval
  fx_ = Effects{};
  ASSERT_TRUE(approve(d, "", bob_, ctx(), fx_).ok());
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(dispatched(), (std::vector<std::string>{"prod-eu-1/build", "prod-eu-2/build"}));
  EXPECT_TRUE(approve(d, "", bob_, ctx(), fx).isFailedPrecondition());
}

TEST_F(DeploymentApprovals, ApprovingAheadSkipsTheGate) {
  Plan p = threeWaves();
  p.waves[1].approval_required = true;
  Deployment d = start(p);
  Effects fx;
  ASSERT_TRUE(approve(d, "prod-eu", bob_, ctx(), fx).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(dispatched().size(), 2u);
}

TEST_F(DeploymentApprovals, SubmitterCannotApproveTheirOwnDeployment) {
  Plan p = threeWaves();
  p.waves[1].approval_required = true;
  Deployment d = start(p);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  Effects fx;
  common::Status s = approve(d, "", alice_, ctx(), fx);
  EXPECT_TRUE(s.isPermissionDenied()) << s.toString();
  EXPECT_EQ(s.message(), "alice submitted checkout-1 and cannot approve it; another approver must");
  // Not even with another role, nor ahead of time.
  EXPECT_TRUE(
      approve(d, "prod-eu", Actor{"alice", "admin", {}, ""}, ctx(), fx).isPermissionDenied());
  EXPECT_TRUE(d.waves[1].approvals.empty());
  EXPECT_FALSE(d.waves[1].approved);
  EXPECT_TRUE(fx.events.empty());
  EXPECT_EQ(d.state, DeploymentState::kAwaitingApproval);
}

TEST_F(DeploymentApprovals, TheCoordinatorItselfNeverApproves) {
  Plan p = threeWaves();
  p.waves[1].approval_required = true;
  Deployment d = start(p);
  Effects fx;
  EXPECT_TRUE(approve(d, "prod-eu", Actor::system(), ctx(), fx).isPermissionDenied());
  EXPECT_TRUE(approve(d, "prod-eu", Actor{"", "admin", {}, ""}, ctx(), fx).isPermissionDenied());
  EXPECT_TRUE(d.waves[1].approvals.empty());
  EXPECT_TRUE(fx.events.empty());
}

TEST_F(DeploymentApprovals, ApprovalRecordsWhoWhenAndThePlan) {
  Plan p = threeWaves();
  p.waves[1].approval_required = true;
  Deployment d = start(p);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  fx_ = Effects{};
  ASSERT_TRUE(approve(d, "prod-eu", bob_, ctxAt(5000), fx_).ok());
  ASSERT_EQ(d.waves[1].approvals.size(), 1u);
  EXPECT_EQ(d.waves[1].approvals[0], (Approval{"bob", "approver", 5000, d.plan_sha256}));
  const Event* approved = findEvent("wave.approved");
  ASSERT_NE(approved, nullptr);
  EXPECT_EQ(approved->wave, "prod-eu");
  EXPECT_EQ(approved->message, "by bob: 1 of 1 approvals (bob)");
  EXPECT_EQ(d.state, DeploymentState::kRunning);
}

TEST_F(DeploymentApprovals, TwoRequiredApproversAreTwoDistinctPeople) {
  Deployment d = awaitingTwoApprovals();
  fx_ = Effects{};
  ASSERT_TRUE(approve(d, "", bob_, ctxAt(1000), fx_).ok());
  // One of two: the wave still waits, and says how far it is.
  EXPECT_EQ(d.state, DeploymentState::kAwaitingApproval);
  EXPECT_FALSE(d.waves[1].approved);
  EXPECT_TRUE(dispatched().empty());
  EXPECT_EQ(findEvent("wave.approved"), nullptr);
  const Event* progress = findEvent("wave.approval");
  ASSERT_NE(progress, nullptr);
  EXPECT_EQ(progress->message, "by bob: 1 of 2 approvals; 1 more needed");

  // Bob again is not a second approver: refused, nothing changes.
  const Deployment before = d;
  Effects fx;
  common::Status again = approve(d, "", bob_, ctxAt(2000), fx);
  EXPECT_TRUE(again.isFailedPrecondition()) << again.toString();
  EXPECT_NE(again.message().find("already approved by bob"), std::string::npos) << again.message();
  EXPECT_NE(again.message().find("1 of 2 approvals"), std::string::npos) << again.message();
  EXPECT_TRUE(fx.events.empty());
  EXPECT_FALSE(fx.changed);
  EXPECT_EQ(d.waves[1].approvals, before.waves[1].approvals);
  EXPECT_EQ(d.state, DeploymentState::kAwaitingApproval);
  // Nor under another role.
  EXPECT_TRUE(
      approve(d, "", Actor{"bob", "admin", {}, ""}, ctxAt(2000), fx).isFailedPrecondition());

  fx_ = Effects{};
  ASSERT_TRUE(approve(d, "", carol_, ctxAt(3000), fx_).ok());
  EXPECT_TRUE(d.waves[1].approved);
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(dispatched(), (std::vector<std::string>{"prod-eu-1/build", "prod-eu-2/build"}));
  const Event* approved = findEvent("wave.approved");
  ASSERT_NE(approved, nullptr);
  EXPECT_EQ(approved->message, "by carol: 2 of 2 approvals (bob, carol)");
  EXPECT_EQ(liveApprovals(d, 1, 3000), 2u);
}

TEST_F(DeploymentApprovals, ExpiredApprovalsDoNotCountAndAreNamed) {
  Deployment d = awaitingTwoApprovals(std::chrono::hours(1));
  const int64_t hour = 3600 * 1000;
  ASSERT_TRUE(approve(d, "", bob_, ctxAt(1000), fx_).ok());
  EXPECT_EQ(liveApprovals(d, 1, 1000 + hour), 1u);
  EXPECT_EQ(liveApprovals(d, 1, 1001 + hour), 0u);
  // Carol comes an hour and a bit later: bob's approval no longer counts.
  fx_ = Effects{};
  ASSERT_TRUE(approve(d, "", carol_, ctxAt(1001 + hour), fx_).ok());
  EXPECT_FALSE(d.waves[1].approved);
  EXPECT_EQ(d.state, DeploymentState::kAwaitingApproval);
  EXPECT_TRUE(dispatched().empty());
  const Event* expired = findEvent("wave.approval_expired");
  ASSERT_NE(expired, nullptr);
  EXPECT_EQ(expired->wave, "prod-eu");
  EXPECT_NE(expired->message.find("approval by bob at 1970-01-01T00:00:01"), std::string::npos)
      << expired->message;
  EXPECT_NE(expired->message.find("expired"), std::string::npos) << expired->message;
  ASSERT_EQ(d.waves[1].approvals.size(), 1u);
  EXPECT_EQ(d.waves[1].approvals[0].by, "carol");
  EXPECT_EQ(findEvent("wave.approval")->message, "by carol: 1 of 2 approvals; 1 more needed");

  // Bob may approve again now; with carol's that makes two.
  fx_ = Effects{};
  ASSERT_TRUE(approve(d, "", bob_, ctxAt(2000 + hour), fx_).ok());
  EXPECT_TRUE(d.waves[1].approved);
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(findEvent("wave.approved")->message, "by bob: 2 of 2 approvals (carol, bob)");
}

TEST_F(DeploymentApprovals, WaveApprovedAheadIsHeldWhenItsApprovalsExpiredBeforeItStarts) {
  Plan p = threeWaves();
  p.waves[1].approval_required = true;
  p.waves[1].approval_expires = std::chrono::minutes(10);
  Deployment d = start(p);
  Effects fx;
  ASSERT_TRUE(approve(d, "prod-eu", bob_, ctxAt(0), fx).ok());
  EXPECT_TRUE(d.waves[1].approved);
  // Staging takes 20 minutes: when it is done, bob's approval is stale.
  const int64_t later = 20 * 60 * 1000;
  for (int i = 0; i < 3; ++i) {
    ClusterProgress* c = d.findCluster("staging-eu");
    StageResult r{"staging-eu", c->stageId(), c->attempt, Outcome::SUCCEEDED, 0, ""};
    fx_ = Effects{};
    ASSERT_TRUE(applyResult(d, r, ctxAt(later), fx_).ok());
  }
  EXPECT_EQ(d.state, DeploymentState::kAwaitingApproval);
  EXPECT_EQ(d.waves[1].state, WaveState::kAwaitingApproval);
  EXPECT_FALSE(d.waves[1].approved);
  EXPECT_TRUE(d.waves[1].approvals.empty());
  EXPECT_TRUE(dispatched().empty());
  ASSERT_NE(findEvent("wave.approval_expired"), nullptr);
  EXPECT_NE(findEvent("wave.approval_expired")->message.find("approval by bob"), std::string::npos);
  // A fresh approval starts it.
  fx_ = Effects{};
  ASSERT_TRUE(approve(d, "", bob_, ctxAt(later), fx_).ok());
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(dispatched().size(), 2u);
}

TEST_F(DeploymentApprovals, AnApprovalIsForOneWaveOnly) {
  Plan p = threeWaves();
  p.waves[1].approval_required = true;
  p.waves[2].approval_required = true;
  Deployment d = start(p);
  Effects fx;
  // Bob approves the US wave ahead; it does not open the EU wave in front of it.
  ASSERT_TRUE(approve(d, "prod-us", bob_, ctx(), fx).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kAwaitingApproval);
  EXPECT_EQ(d.waves[1].state, WaveState::kAwaitingApproval);
  EXPECT_TRUE(d.waves[1].approvals.empty());
  EXPECT_TRUE(d.waves[2].approved);
  // Bob's approval of the EU wave is his first for that wave: it counts there.
  fx_ = Effects{};
  ASSERT_TRUE(approve(d, "", bob_, ctx(), fx_).ok());
  EXPECT_EQ(fx_.events.front().wave, "prod-eu");
  EXPECT_EQ(d.waves[1].approvals.size(), 1u);
  EXPECT_EQ(d.waves[2].approvals.size(), 1u);
  succeedAll(d);
  // The US wave was approved for itself and starts without asking again.
  EXPECT_EQ(d.waves[2].state, WaveState::kSucceeded);
  EXPECT_EQ(d.state, DeploymentState::kSucceeded);
}

}  // namespace
}  // namespace flotilla::coordinator::testing
