// The deployment state machine: transitions, ordering, rollback, approvals.
#include "coordinator/deployment.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "common/crypto.hpp"

namespace flotilla::coordinator {
namespace {

using common::Plan;

// The fleet every test starts with, and the labels each agent registers with.
const std::map<std::string, std::map<std::string, std::string>> kAgents = {
    {"staging-eu", {{"environment", "staging"}}},
    {"prod-eu-1", {{"environment", "production"}}},
    {"prod-eu-2", {{"environment", "production"}}},
    {"prod-us-1", {{"environment", "production"}, {"region", "us"}}},
};

class DeploymentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& [name, labels] : kAgents) addAgent(name, labels);
  }

  // Every agent's connection expires and only those of `back` register again.
  void onlyBack(const std::vector<std::string>& back) {
    registry_.expire(common::SteadyTime{} + std::chrono::hours(1), std::chrono::seconds(1));
    for (const auto& name : back) addAgent(name, kAgents.at(name));
  }

  // `cluster`'s agent registers again and the deployment hears of it (fx_ holds the effects).
  void returns(Deployment& d, const std::string& cluster) {
    addAgent(cluster, kAgents.at(cluster));
    fx_ = Effects{};
    agentReturned(d, cluster, ctx(), fx_);
  }

  void addAgent(const std::string& name, std::map<std::string, std::string> labels) {
    registry_.registerAgent(name, std::move(labels), "test", 1, common::SteadyTime{},
                            common::SystemTime{});
  }

  static Plan threeWaves() {
    Plan p;
    p.service = "checkout";
    p.version = "2.0.0";
    p.steps.build = "build";
    p.steps.apply = "apply";
    p.steps.verify = "verify";
    p.steps.rollback = "rollback";
    common::Wave staging;
    staging.name = "staging";
    staging.clusters = {"staging-eu"};
    common::Wave eu;
    eu.name = "prod-eu";
    eu.clusters = {"prod-eu-1", "prod-eu-2"};
    common::Wave us;
    us.name = "prod-us";
    us.selector = {{"region", "us"}};
    p.waves = {staging, eu, us};
    return p;
  }

  Context ctx() { return Context{registry_, common::SystemTime{}, versions_}; }

  Deployment start(Plan plan) {
    Effects fx;
    Deployment d = newDeployment("checkout-1", std::move(plan), alice_, common::SystemTime{}, fx);
    EXPECT_EQ(d.state, DeploymentState::kPending);
    fx_ = Effects{};
    advance(d, ctx(), fx_);
    return d;
  }

  // Answers the step `cluster` has in flight.
  common::Status answer(Deployment& d, const std::string& cluster,
                        Outcome outcome = Outcome::SUCCEEDED) {
    ClusterProgress* c = d.findCluster(cluster);
    EXPECT_NE(c, nullptr) << cluster;
    if (c == nullptr) return common::Status::NotFound(cluster);
    StageResult r{cluster, c->stageId(), c->attempt, outcome, outcome == Outcome::SUCCEEDED ? 0 : 1,
                  "msg"};
    fx_ = Effects{};
    return applyResult(d, r, ctx(), fx_);
  }

  // Runs every step of every in-flight cluster to success until nothing is in flight.
  void succeedAll(Deployment& d) {
    for (int guard = 0; guard < 100; ++guard) {
      std::string next;
      for (auto& w : d.waves) {
        for (auto& c : w.clusters) {
          if (c.in_flight && next.empty()) next = c.name;
        }
      }
      if (next.empty()) return;
      ASSERT_TRUE(answer(d, next).ok());
    }
  }

  std::vector<std::string> dispatched() const {
    std::vector<std::string> out;
    for (const auto& x : fx_.dispatches) out.push_back(x.stage_id);
    return out;
  }

  bool hasEvent(const std::string& type) const {
    return std::any_of(fx_.events.begin(), fx_.events.end(),
                       [&](const Event& e) { return e.type == type; });
  }

  // A context `ms` after the Unix epoch (the fixture's own starts at the epoch).
  Context ctxAt(int64_t ms) { return Context{registry_, common::fromUnixMillis(ms), versions_}; }

  // Staging done, the two-approver production wave waiting.
  Deployment awaitingTwoApprovals(std::chrono::milliseconds expires = std::chrono::hours(24)) {
    Plan p = threeWaves();
    p.waves[1].approval_required = true;
    p.waves[1].approvals_required = 2;
    p.waves[1].approval_expires = expires;
    Deployment d = start(p);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(answer(d, "staging-eu").ok());
    EXPECT_EQ(d.state, DeploymentState::kAwaitingApproval);
    return d;
  }

  const Event* findEvent(const std::string& type) const {
    for (const auto& e : fx_.events) {
      if (e.type == type) return &e;
    }
    return nullptr;
  }

  Registry registry_;
  std::map<std::string, std::string> versions_;
  Effects fx_;
  const Actor alice_{"alice", "deployer", {}, "127.0.0.1:1000"};
  const Actor bob_{"bob", "approver", {}, "127.0.0.1:1001"};
  const Actor carol_{"carol", "approver", {}, "127.0.0.1:1002"};
};

TEST_F(DeploymentTest, StartsFirstWaveWithBuild) {
  Deployment d = start(threeWaves());
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(d.waves[0].state, WaveState::kRunning);
  EXPECT_EQ(d.waves[1].state, WaveState::kPending);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/build"});
  ASSERT_EQ(fx_.dispatches.size(), 1u);
  const Dispatch& cmd = fx_.dispatches[0];
  EXPECT_EQ(cmd.command, "build");
  EXPECT_EQ(cmd.attempt, 1u);
  EXPECT_EQ(cmd.env.at("FLOTILLA_VERSION"), "2.0.0");
  EXPECT_EQ(cmd.env.at("FLOTILLA_WAVE"), "staging");
  EXPECT_EQ(cmd.env.at("FLOTILLA_CLUSTER"), "staging-eu");
  EXPECT_EQ(cmd.env.at("FLOTILLA_DEPLOYMENT"), "checkout-1");
  EXPECT_TRUE(hasEvent("deployment.started"));
  EXPECT_TRUE(hasEvent("wave.started"));
}

TEST_F(DeploymentTest, StepsRunInOrderThenWavesInOrder) {
  versions_["staging-eu"] = "1.9.0";
  Deployment d = start(threeWaves());
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/apply"});
  EXPECT_EQ(fx_.dispatches[0].env.at("FLOTILLA_PREVIOUS_VERSION"), "1.9.0");
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/verify"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  // Wave 1 done: wave 2 starts both clusters (no max_parallel).
  EXPECT_EQ(d.waves[0].state, WaveState::kSucceeded);
  EXPECT_EQ(d.waves[1].state, WaveState::kRunning);
  EXPECT_EQ(dispatched(), (std::vector<std::string>{"prod-eu-1/build", "prod-eu-2/build"}));
  ASSERT_EQ(fx_.releases.size(), 1u);
  EXPECT_EQ(fx_.releases[0].cluster, "staging-eu");
  EXPECT_EQ(fx_.releases[0].version, "2.0.0");
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kSucceeded);
  ASSERT_EQ(d.waves[2].clusters.size(), 1u);
  EXPECT_EQ(d.waves[2].clusters[0].name, "prod-us-1");  // chosen by selector
  for (const auto& w : d.waves) EXPECT_EQ(w.state, WaveState::kSucceeded);
}

TEST_F(DeploymentTest, OptionalStepsAreSkipped) {
  Plan p = threeWaves();
  p.steps.build.clear();
  p.steps.verify.clear();
  Deployment d = start(p);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/apply"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.waves[0].clusters[0].state, ClusterState::kSucceeded);
}

TEST_F(DeploymentTest, MaxParallelBoundsClustersInFlight) {
  Plan p = threeWaves();
  p.waves[1].max_parallel = 1;
  Deployment d = start(p);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-1/build"});
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-1/apply"});
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  // Only once prod-eu-1 is done does prod-eu-2 start.
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-2/build"});
}

TEST_F(DeploymentTest, ApprovalGateHoldsTheWave) {
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

TEST_F(DeploymentTest, ApprovingAheadSkipsTheGate) {
  Plan p = threeWaves();
  p.waves[1].approval_required = true;
  Deployment d = start(p);
  Effects fx;
  ASSERT_TRUE(approve(d, "prod-eu", bob_, ctx(), fx).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(dispatched().size(), 2u);
}

TEST_F(DeploymentTest, SubmissionRecordsWhoAndWhichPlan) {
  Effects fx;
  Deployment d = newDeployment("checkout-1", threeWaves(), alice_, common::SystemTime{}, fx);
  EXPECT_EQ(d.submitted_by, "alice");
  EXPECT_EQ(d.plan_sha256, common::sha256Hex(common::planToJson(d.plan)));
  EXPECT_EQ(d.plan_sha256.size(), 64u);
  ASSERT_EQ(fx.events.size(), 1u);
  EXPECT_EQ(fx.events[0].type, "deployment.submitted");
  EXPECT_EQ(fx.events[0].message, "checkout 2.0.0 in 3 waves by alice");
}

TEST_F(DeploymentTest, SubmitterCannotApproveTheirOwnDeployment) {
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

TEST_F(DeploymentTest, TheCoordinatorItselfNeverApproves) {
  Plan p = threeWaves();
  p.waves[1].approval_required = true;
  Deployment d = start(p);
  Effects fx;
  EXPECT_TRUE(approve(d, "prod-eu", Actor::system(), ctx(), fx).isPermissionDenied());
  EXPECT_TRUE(approve(d, "prod-eu", Actor{"", "admin", {}, ""}, ctx(), fx).isPermissionDenied());
  EXPECT_TRUE(d.waves[1].approvals.empty());
  EXPECT_TRUE(fx.events.empty());
}

TEST_F(DeploymentTest, ApprovalRecordsWhoWhenAndThePlan) {
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

TEST_F(DeploymentTest, TwoRequiredApproversAreTwoDistinctPeople) {
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

TEST_F(DeploymentTest, ExpiredApprovalsDoNotCountAndAreNamed) {
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

TEST_F(DeploymentTest, WaveApprovedAheadIsHeldWhenItsApprovalsExpiredBeforeItStarts) {
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

TEST_F(DeploymentTest, AnApprovalIsForOneWaveOnly) {
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

TEST_F(DeploymentTest, OperatorActionsNameTheActorAndTheReason) {
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

TEST_F(DeploymentTest, FailureRollsBackReachedClustersNewestWaveFirst) {
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

TEST_F(DeploymentTest, ClustersThatNeverAppliedAreNotRolledBack) {
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

TEST_F(DeploymentTest, WaveScopeRollsBackOnlyTheFailingWave) {
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

TEST_F(DeploymentTest, FailedRollbackEndsFailedAndCanBeRetried) {
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

TEST_F(DeploymentTest, AgentLostMidStepRollsBack) {
  Deployment d = start(threeWaves());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());  // prod-eu-1 build done, apply in flight
  onlyBack({"staging-eu"});                  // only prod agents are gone
  fx_ = Effects{};
  agentLost(d, "prod-eu-1", ctx(), fx_);
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_TRUE(hasEvent("agent.lost"));
  // prod-eu-1 had apply in flight: it may run the new version but its agent
  // is gone, so its rollback fails and a human must look.
  agentLost(d, "prod-eu-2", ctx(), fx_);
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kFailed);
  EXPECT_EQ(d.rollback_failed, std::vector<std::string>{"prod-eu-1"});
  EXPECT_EQ(d.waves[0].clusters[0].state, ClusterState::kRolledBack);
}

// The lost cluster's rollback failed; when its agent registers again it rolls back first.
TEST_F(DeploymentTest, LostClusterRollsBackWhenItsAgentReturns) {
  Deployment d = start(threeWaves());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());  // prod-eu-1 build done, apply in flight
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());  // prod-eu-2 verify in flight
  onlyBack({"staging-eu", "prod-eu-2"});
  fx_ = Effects{};
  agentLost(d, "prod-eu-1", ctx(), fx_);
  succeedAll(d);
  ASSERT_EQ(d.state, DeploymentState::kFailed);
  EXPECT_TRUE(d.waves[1].clusters[0].rollback_lost);
  EXPECT_TRUE(awaitsAgents(d)) << "the engine must keep it to converge the lost cluster";

  returns(d, "prod-eu-1");
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-1/rollback"});
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack) << d.reason;
  EXPECT_FALSE(awaitsAgents(d));
  // A second return changes nothing.
  fx_ = Effects{};
  agentReturned(d, "prod-eu-1", ctx(), fx_);
  EXPECT_TRUE(fx_.events.empty());
}

TEST_F(DeploymentTest, LostClustersWithinTheBudgetAreWaitedFor) {
  Plan plan = threeWaves();
  plan.max_unavailable_clusters = 1;
  Deployment d = start(plan);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());  // apply in flight
  onlyBack({"staging-eu", "prod-eu-2", "prod-us-1"});
  fx_ = Effects{};
  agentLost(d, "prod-eu-1", ctx(), fx_);
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_TRUE(hasEvent("agent.lost"));
  EXPECT_TRUE(d.waves[1].clusters[0].in_flight) << "its step stays out";
  // prod-eu-2 finishes; the wave still waits for prod-eu-1.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "prod-eu-2").ok());
  EXPECT_EQ(d.waves[1].state, WaveState::kRunning);
  EXPECT_EQ(d.wave_index, 1u);

  // Back: the same apply's result (the agent ran it once) moves it on.
  returns(d, "prod-eu-1");
  EXPECT_TRUE(hasEvent("agent.returned"));
  EXPECT_TRUE(dispatched().empty());
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-1/verify"});
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kSucceeded);
}

TEST_F(DeploymentTest, OneMoreLostThanTheBudgetRollsBack) {
  Plan plan = threeWaves();
  plan.max_unavailable_clusters = 1;
  plan.waves[1].max_unavailable_clusters = 1;
  Deployment d = start(plan);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  onlyBack({"staging-eu"});
  fx_ = Effects{};
  agentLost(d, "prod-eu-1", ctx(), fx_);
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  agentLost(d, "prod-eu-2", ctx(), fx_);
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_NE(d.reason.find("over its max_unavailable_clusters 1"), std::string::npos) << d.reason;
  succeedAll(d);
  // Neither had reached apply: nothing to roll back there.
  EXPECT_EQ(d.state, DeploymentState::kRolledBack) << d.reason;
}

TEST_F(DeploymentTest, OnAgentLostWaitPausesUntilEnoughAreBack) {
  Plan plan = threeWaves();
  plan.on_agent_lost = common::OnAgentLost::kWait;
  Deployment d = start(plan);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());  // apply in flight
  onlyBack({"staging-eu", "prod-eu-2", "prod-us-1"});
  fx_ = Effects{};
  agentLost(d, "prod-eu-1", ctx(), fx_);
  EXPECT_EQ(d.state, DeploymentState::kPaused);
  EXPECT_TRUE(d.paused_for_lost);
  EXPECT_NE(d.reason.find("on_agent_lost: wait"), std::string::npos) << d.reason;
  // prod-eu-2's step in flight finishes; nothing new starts while paused.
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());
  EXPECT_TRUE(dispatched().empty());

  returns(d, "prod-eu-1");
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_TRUE(hasEvent("deployment.resumed"));
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-2/apply"});
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kSucceeded);
  // The stored form keeps the new fields.
  auto stored = deploymentFromJson(deploymentToJson(d));
  ASSERT_TRUE(stored.ok()) << stored.status().toString();
  EXPECT_EQ(stored->plan.on_agent_lost, common::OnAgentLost::kWait);
}

TEST_F(DeploymentTest, StaleAndDuplicateResultsAreRefused) {
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

// One production wave of every production cluster, apply then verify.
Plan productionWave() {
  Plan p;
  p.service = "checkout";
  p.version = "2.0.0";
  p.steps.apply = "apply";
  p.steps.verify = "verify";
  p.steps.rollback = "rollback";
  common::Wave prod;
  prod.name = "prod";
  prod.selector = {{"environment", "production"}};
  p.waves = {prod};
  return p;
}

StageResult resultFor(const Deployment& d, const std::string& cluster, Outcome outcome) {
  const ClusterProgress* c = d.findCluster(cluster);
  EXPECT_NE(c, nullptr) << cluster;
  if (c == nullptr) return StageResult{};
  return StageResult{
      cluster, c->stageId(), c->attempt, outcome, outcome == Outcome::SUCCEEDED ? 0 : 1, "msg"};
}

TEST_F(DeploymentTest, ABatchOfResultsEndsWhereTheSameResultsOneByOneEnd) {
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

TEST_F(DeploymentTest, AFailureInABatchAbortsOnlyStagesStillInFlight) {
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

TEST_F(DeploymentTest, AStepThatSucceededBeforeTheFailureInABatchGoesNoFurther) {
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

TEST_F(DeploymentTest, ClustersAreFoundByNameInCopiesAndInWavesStartedLater) {
  Deployment d = start(threeWaves());
  Deployment copy = d;
  size_t wave = 9;
  ASSERT_NE(copy.findCluster("staging-eu", &wave), nullptr);
  EXPECT_EQ(wave, 0u);
  EXPECT_EQ(copy.findCluster("prod-eu-2"), nullptr);  // its wave has not started
  succeedAll(copy);
  ASSERT_NE(copy.findCluster("prod-eu-2", &wave), nullptr);
  EXPECT_EQ(wave, 1u);
  EXPECT_EQ(copy.findCluster("prod-eu-2")->name, "prod-eu-2");
  ASSERT_NE(copy.findCluster("prod-us-1", &wave), nullptr);
  EXPECT_EQ(wave, 2u);
  // The original is untouched by the copy's progress.
  EXPECT_EQ(d.findCluster("prod-eu-2"), nullptr);
  EXPECT_TRUE(d.findCluster("staging-eu")->in_flight);
}

TEST_F(DeploymentTest, PauseHoldsNewStepsAndResumeContinues) {
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

TEST_F(DeploymentTest, FailureWhilePausedStillRollsBack) {
  Deployment d = start(threeWaves());
  Effects fx;
  ASSERT_TRUE(pause(d, alice_, "", ctx(), fx).ok());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);  // nothing applied: done at once
}

TEST_F(DeploymentTest, CancelAbortsAndStops) {
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

TEST_F(DeploymentTest, RollbackAfterSuccessTakesEveryWaveBack) {
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

TEST_F(DeploymentTest, SelectorMatchingNothingStopsTheDeployment) {
  Plan p = threeWaves();
  p.waves[0].clusters.clear();
  p.waves[0].selector = {{"environment", "nowhere"}};
  Deployment d = start(p);
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  ASSERT_TRUE(d.failure.has_value());
  EXPECT_NE(d.failure->message.find("matches no connected cluster"), std::string::npos);
}

TEST_F(DeploymentTest, UnregisteredClusterFailsTheWave) {
  Plan p = threeWaves();
  p.waves[0].clusters = {"ghost"};
  Deployment d = start(p);
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  EXPECT_EQ(d.failure->cluster, "ghost");
}

// ---- A step whose effect is unknown (its agent died while it ran) ------------------------------

TEST_F(DeploymentTest, UnknownApplyIsCheckedByVerifyAndNeverSentAgain) {
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

TEST_F(DeploymentTest, UnknownApplyThatVerifyRejectsIsRolledBack) {
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

TEST_F(DeploymentTest, UnknownApplyWithNothingToVerifyRollsBack) {
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

TEST_F(DeploymentTest, UnknownBuildVerifyOrRollbackIsAFailure) {
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

TEST_F(DeploymentTest, UnknownApplyDuringARollbackIsRolledBackNotVerified) {
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

TEST_F(DeploymentTest, StoredFormRoundTrips) {
  Plan p = threeWaves();
  p.waves[1].approval_required = true;
  versions_["staging-eu"] = "1.0.0";
  Deployment d = start(p);
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());
  std::string json = deploymentToJson(d);
  auto back = deploymentFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(deploymentToJson(*back), json);
  EXPECT_EQ(back->state, d.state);
  EXPECT_EQ(back->waves[0].clusters[0].previous_version, "1.0.0");
  EXPECT_TRUE(deploymentFromJson("{").status().isCorruption());
  EXPECT_TRUE(deploymentFromJson("{\"id\": 3}").status().isCorruption());
}

TEST_F(DeploymentTest, StoredFormKeepsActorsAndApprovals) {
  Deployment d = awaitingTwoApprovals();
  ASSERT_TRUE(approve(d, "", bob_, ctxAt(1234), fx_).ok());
  auto back = deploymentFromJson(deploymentToJson(d));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->submitted_by, "alice");
  EXPECT_EQ(back->plan_sha256, d.plan_sha256);
  EXPECT_EQ(back->waves[1].approvals,
            (std::vector<Approval>{{"bob", "approver", 1234, d.plan_sha256}}));
  EXPECT_EQ(back->plan.waves[1].approvals_required, 2u);
  // Restored, it still refuses bob twice and takes carol as the second.
  Effects fx;
  EXPECT_TRUE(approve(*back, "", bob_, ctxAt(2000), fx).isFailedPrecondition());
  ASSERT_TRUE(approve(*back, "", carol_, ctxAt(2000), fx).ok());
  EXPECT_EQ(back->state, DeploymentState::kRunning);
}

TEST_F(DeploymentTest, ARecordFromBeforeActorsLoadsAndTakesApprovals) {
  Deployment d = awaitingTwoApprovals();
  // What an older coordinator wrote: no submitted_by, plan_sha256, approvals, nor the plan's
  // approvals_required and approval_expires_ms.
  std::string json = deploymentToJson(d);
  for (const char* field :
       {"\"submitted_by\":\"alice\",", "\"approvals\":[],", "\"approvals_required\":1,",
        "\"approvals_required\":2,", "\"approval_expires_ms\":86400000,"}) {
    for (size_t at = json.find(field); at != std::string::npos; at = json.find(field)) {
      json.erase(at, std::string(field).size());
    }
  }
  const size_t sha = json.find("\"plan_sha256\":\"");
  ASSERT_NE(sha, std::string::npos);
  json.erase(sha, std::string("\"plan_sha256\":\"\",").size() + 64);
  ASSERT_EQ(json.find("approval"), json.find("approval_required")) << json;
  ASSERT_EQ(json.find("plan_sha256"), std::string::npos) << json;
  ASSERT_EQ(json.find("submitted_by"), std::string::npos) << json;

  auto old = deploymentFromJson(json);
  ASSERT_TRUE(old.ok()) << old.status().toString() << "\n" << json;
  EXPECT_EQ(old->submitted_by, "");
  EXPECT_EQ(old->plan_sha256, common::sha256Hex(common::planToJson(old->plan)));
  EXPECT_EQ(old->plan.waves[1].approvals_required, 1u);  // what `required` meant then
  EXPECT_EQ(old->plan.waves[1].approval_expires, std::chrono::hours(24));
  EXPECT_TRUE(old->waves[1].approvals.empty());
  // Anyone but the coordinator may approve it (its submitter is not known), once.
  Effects fx;
  EXPECT_TRUE(approve(*old, "", Actor::system(), ctx(), fx).isPermissionDenied());
  ASSERT_TRUE(approve(*old, "", alice_, ctx(), fx).ok());
  EXPECT_EQ(old->state, DeploymentState::kRunning);
}

}  // namespace
}  // namespace flotilla::coordinator
