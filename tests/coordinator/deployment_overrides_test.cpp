// Tests for the operator overrides (coordinator/deployment_overrides.cpp): promote skips an
// analysis or bake in flight; a plan with on_step_failure: hold holds a failed step until retry
// (a new attempt) or rollback.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/records.hpp"
#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using common::Status;
using namespace std::chrono_literals;

class DeploymentOverrides : public DeploymentTest {
 protected:
  // staging (staging-eu) then prod-eu (prod-eu-1, prod-eu-2, approval required), the process
  // driver's canary 50 -> 100 with a 60 s analysis: deploy, shift-1, analyze-2, shift-3,
  // finalize.
  static common::Plan canary() {
    common::Plan p = threeWaves();
    p.waves.pop_back();
    p.driver = common::DriverKind::kProcess;
    p.strategy.kind = common::StrategyKind::kCanary;
    p.strategy.steps = {50, 100};
    p.strategy.pause = 60s;
    p.waves[1].approval_required = true;
    return p;
  }
  // staging-eu's canary with its analysis in flight.
  Deployment analyzing() {
    Deployment d = start(canary());
    EXPECT_TRUE(answer(d, "staging-eu").ok());  // deploy
    EXPECT_TRUE(answer(d, "staging-eu").ok());  // shift-1
    EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/analyze-2"});
    return d;
  }
  static common::Plan held() {
    common::Plan p = threeWaves();
    p.on_step_failure = common::OnStepFailure::kHold;
    return p;
  }
  // staging-eu's apply failed under hold.
  Deployment heldAtApply() {
    Deployment d = start(held());
    EXPECT_TRUE(answer(d, "staging-eu").ok());  // build
    EXPECT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());
    return d;
  }
};

TEST_F(DeploymentOverrides, PromoteAbortsTheAnalysisAndTheClusterMovesOn) {
  Deployment d = analyzing();
  fx_ = Effects{};
  ASSERT_TRUE(promote(d, "", alice_, "too few requests in staging", ctx(), fx_).ok());
  // The intent is on the cluster (written with the deployment) before the abort goes out.
  const ClusterProgress& c = d.waves[0].clusters[0];
  EXPECT_EQ(c.promoted_by, "alice");
  EXPECT_TRUE(c.abort_sent);
  ASSERT_EQ(fx_.aborts.size(), 1u);
  EXPECT_EQ(fx_.aborts[0].stage_id, "staging-eu/analyze-2");
  EXPECT_EQ(fx_.aborts[0].reason, "promoted by alice");
  ASSERT_NE(findEvent("cluster.promoted"), nullptr);
  EXPECT_EQ(findEvent("cluster.promoted")->cluster, "staging-eu");
  EXPECT_EQ(
      findEvent("cluster.promoted")->message.rfind("by alice: too few requests in staging", 0), 0u);
  EXPECT_TRUE(fx_.dispatches.empty());
  EXPECT_EQ(d.state, DeploymentState::kRunning);

  // The agent answers "aborted": counted as passed.
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::ABORTED).ok());
  ASSERT_NE(findEvent("stage.succeeded"), nullptr);
  EXPECT_EQ(findEvent("stage.succeeded")->message, "promoted by alice");
  EXPECT_FALSE(hasEvent("stage.aborted"));
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/shift-3"});
  EXPECT_TRUE(d.waves[0].clusters[0].promoted_by.empty());
  EXPECT_EQ(d.state, DeploymentState::kRunning);
}

TEST_F(DeploymentOverrides, APromotedStageThatSucceededAnywayPasses) {
  Deployment d = analyzing();
  ASSERT_TRUE(promote(d, "staging", bob_, "", ctx(), fx_).ok());
  EXPECT_EQ(findEvent("cluster.promoted")->message.rfind("by bob (analyze skipped", 0), 0u);
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::SUCCEEDED).ok());
  EXPECT_EQ(findEvent("stage.succeeded")->message, "promoted by bob");
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/shift-3"});
}

TEST_F(DeploymentOverrides, AFailureReportedBeforeThePromoteStillFails) {
  Deployment d = analyzing();
  ASSERT_TRUE(promote(d, "", alice_, "", ctx(), fx_).ok());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  ASSERT_TRUE(d.failure.has_value());
  EXPECT_NE(d.failure->message.find("before the promote (promoted by alice) reached it"),
            std::string::npos)
      << d.failure->message;
}

TEST_F(DeploymentOverrides, PromoteSkipsABake) {
  common::Plan p = canary();
  p.strategy.steps = {100};
  p.waves[0].bake = 15min;  // deploy, shift-1, bake, finalize
  Deployment d = start(p);
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_EQ(dispatched(), std::vector<std::string>{"staging-eu/bake"});
  ASSERT_TRUE(promote(d, "", alice_, "", ctx(), fx_).ok());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::ABORTED).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/finalize"});
}

TEST_F(DeploymentOverrides, PromoteRefusesWhenThereIsNothingToPromote) {
  Deployment d = start(canary());  // deploy in flight
  Status s = promote(d, "", alice_, "", ctx(), fx_);
  EXPECT_TRUE(s.isFailedPrecondition());
  EXPECT_EQ(s.message().rfind("nothing to promote: no cluster of wave staging is analyzing or "
                              "baking (staging-eu deploying)",
                              0),
            0u)
      << s.message();

  Deployment a = analyzing();
  // Not the running wave, and a wave the deployment does not have.
  s = promote(a, "prod-eu", alice_, "", ctx(), fx_);
  EXPECT_TRUE(s.isFailedPrecondition());
  EXPECT_NE(s.message().find("not the running wave"), std::string::npos) << s.message();
  s = promote(a, "prod-eu1", alice_, "", ctx(), fx_);
  EXPECT_TRUE(s.isFailedPrecondition());
  EXPECT_NE(s.message().find("has no wave named prod-eu1 (its waves: staging, prod-eu)"),
            std::string::npos)
      << s.message();
  // Promoted once: a second promote finds nothing more.
  ASSERT_TRUE(promote(a, "", alice_, "", ctx(), fx_).ok());
  Effects fx;
  EXPECT_TRUE(promote(a, "", alice_, "", ctx(), fx).isFailedPrecondition());
  EXPECT_TRUE(fx.aborts.empty());

  Deployment done = start(threeWaves());
  succeedAll(done);
  ASSERT_EQ(done.state, DeploymentState::kSucceeded);
  EXPECT_TRUE(promote(done, "", alice_, "", ctx(), fx).isFailedPrecondition());
}

TEST_F(DeploymentOverrides, PromoteNeverPassesAnApprovalGate) {
  Deployment d = analyzing();
  ASSERT_TRUE(promote(d, "", alice_, "", ctx(), fx_).ok());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::ABORTED).ok());
  ASSERT_TRUE(answer(d, "staging-eu").ok());  // shift-3
  ASSERT_TRUE(answer(d, "staging-eu").ok());  // finalize
  ASSERT_EQ(d.state, DeploymentState::kAwaitingApproval);
  Status s = promote(d, "", alice_, "", ctx(), fx_);
  EXPECT_TRUE(s.isFailedPrecondition());
  EXPECT_NE(s.message().find("never passes an approval gate"), std::string::npos) << s.message();
  EXPECT_EQ(d.state, DeploymentState::kAwaitingApproval);
}

TEST_F(DeploymentOverrides, ThePromoteAndTheHoldSurviveTheStoredForms) {
  Deployment d = analyzing();
  ASSERT_TRUE(promote(d, "", alice_, "", ctx(), fx_).ok());
  d.waves[0].clusters[0].held = true;
  const ClusterProgress& c = d.waves[0].clusters[0];
  auto record = decodeClusterRecord(encodeClusterRecord(c));
  ASSERT_TRUE(record.ok()) << record.status().toString();
  EXPECT_EQ(*record, c);
  auto whole = deploymentFromJson(deploymentToJson(d));
  ASSERT_TRUE(whole.ok()) << whole.status().toString();
  EXPECT_EQ(whole->waves[0].clusters[0], c);
  // A record from before the fields loads with neither.
  auto old = clusterFromJsonText(
      R"({"name":"x","state":"analyzing","attempt":1,"step_index":2,"in_flight":true,)"
      R"("abort_sent":false,"applied":true,"previous_version":"","message":"","step":"analyze",)"
      R"("exit_code":null})");
  ASSERT_TRUE(old.ok()) << old.status().toString();
  EXPECT_TRUE(old->promoted_by.empty());
  EXPECT_FALSE(old->held);
}

TEST_F(DeploymentOverrides, AFailedStepIsHeldAndTheDeploymentPauses) {
  Deployment d = heldAtApply();
  EXPECT_EQ(d.state, DeploymentState::kPaused);
  const ClusterProgress& c = d.waves[0].clusters[0];
  EXPECT_TRUE(c.held);
  EXPECT_EQ(c.state, ClusterState::kFailed);
  EXPECT_TRUE(fx_.dispatches.empty());  // no rollback
  EXPECT_FALSE(d.failure.has_value());
  EXPECT_TRUE(hasEvent("stage.failed"));
  EXPECT_TRUE(hasEvent("cluster.held"));
  EXPECT_TRUE(hasEvent("deployment.paused"));
  for (const char* part : {"cluster staging-eu failed at apply: msg", "flotilla retry ",
                           "staging-eu", "flotilla rollback "}) {
    EXPECT_NE(d.reason.find(part), std::string::npos) << part << " not in " << d.reason;
  }
  // Resume would leave it failed: refused, naming the ways out.
  Effects fx;
  Status s = resume(d, alice_, "", ctx(), fx);
  EXPECT_TRUE(s.isFailedPrecondition());
  EXPECT_NE(s.message().find("flotilla retry"), std::string::npos) << s.message();
}

TEST_F(DeploymentOverrides, RetryRunsTheStepAgainAsANewAttemptAndResumes) {
  Deployment d = heldAtApply();
  fx_ = Effects{};
  ASSERT_TRUE(retry(d, "staging-eu", bob_, "fixed the registry", ctx(), fx_).ok());
  ASSERT_EQ(fx_.dispatches.size(), 1u);
  EXPECT_EQ(fx_.dispatches[0].stage_id, "staging-eu/apply");
  EXPECT_EQ(fx_.dispatches[0].attempt, 2u);
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_TRUE(d.reason.empty());
  EXPECT_FALSE(d.waves[0].clusters[0].held);
  ASSERT_NE(findEvent("cluster.retried"), nullptr);
  EXPECT_EQ(findEvent("cluster.retried")->message,
            "by bob: fixed the registry (attempt 2, retry 1 of 3)");
  EXPECT_TRUE(hasEvent("deployment.resumed"));
  // The old attempt's answer is stale; the new one's moves on.
  StageResult stale = resultFor(d, "staging-eu", Outcome::SUCCEEDED);
  stale.attempt = 1;
  Effects fx;
  EXPECT_TRUE(applyResult(d, stale, ctx(), fx).isNotFound());
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/verify"});
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kSucceeded);
}

TEST_F(DeploymentOverrides, AStepIsRetriedAtMostThreeTimes) {
  Deployment d = heldAtApply();
  for (uint32_t retry_no = 1; retry_no <= kMaxStepRetries; ++retry_no) {
    fx_ = Effects{};
    ASSERT_TRUE(retry(d, "staging-eu", alice_, "", ctx(), fx_).ok());
    EXPECT_EQ(fx_.dispatches.at(0).attempt, retry_no + 1);
    ASSERT_TRUE(answer(d, "staging-eu", Outcome::TIMED_OUT).ok());  // timed out: held too
    ASSERT_EQ(d.state, DeploymentState::kPaused);
  }
  Status s = retry(d, "staging-eu", alice_, "", ctx(), fx_);
  EXPECT_TRUE(s.isFailedPrecondition());
  EXPECT_NE(s.message().find("already retried 3 times"), std::string::npos) << s.message();
  // Rollback works as for any paused deployment: the applied cluster goes back.
  fx_ = Effects{};
  ASSERT_TRUE(requestRollback(d, alice_, "giving up", ctx(), fx_).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
}

TEST_F(DeploymentOverrides, RetryRefusals) {
  // The plan does not hold failed steps: the failure rolled back.
  Deployment plain = start(threeWaves());
  ASSERT_TRUE(answer(plain, "staging-eu", Outcome::FAILED).ok());
  Effects fx;
  Status s = retry(plain, "staging-eu", alice_, "", ctx(), fx);
  EXPECT_TRUE(s.isFailedPrecondition());
  EXPECT_NE(s.message().find("nothing to retry"), std::string::npos) << s.message();
  Deployment running = start(threeWaves());
  s = retry(running, "staging-eu", alice_, "", ctx(), fx);
  EXPECT_TRUE(s.isFailedPrecondition());
  EXPECT_NE(s.message().find("on_step_failure: hold"), std::string::npos) << s.message();

  Deployment d = heldAtApply();
  EXPECT_TRUE(retry(d, "nowhere", alice_, "", ctx(), fx).isNotFound());
  EXPECT_TRUE(retry(d, "prod-eu-1", alice_, "", ctx(), fx).isNotFound());  // not reached yet
  EXPECT_TRUE(fx.dispatches.empty());
  EXPECT_EQ(d.state, DeploymentState::kPaused);

  // A cluster of the wave whose step did not fail.
  common::Plan p = held();
  p.waves = {p.waves[1]};
  Deployment two = start(p);
  ASSERT_TRUE(answer(two, "prod-eu-1", Outcome::FAILED).ok());  // its build
  s = retry(two, "prod-eu-2", alice_, "", ctx(), fx);
  EXPECT_TRUE(s.isFailedPrecondition());
  EXPECT_EQ(s.message(), "cluster prod-eu-2 has no failed step to retry (it is building)");
}

TEST_F(DeploymentOverrides, AnalysisVerdictsStillRollBackUnderHold) {
  common::Plan p = canary();
  p.on_step_failure = common::OnStepFailure::kHold;
  Deployment d = start(p);
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());  // analyze-2's verdict
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_FALSE(d.waves[0].clusters[0].held);
}

TEST_F(DeploymentOverrides, TwoHeldClustersResumeOnlyWhenBothAreRetried) {
  common::Plan p = held();
  p.waves = {p.waves[1]};  // prod-eu: prod-eu-1 and prod-eu-2 at once
  Deployment d = start(p);
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  ASSERT_TRUE(answer(d, "prod-eu-2").ok());
  ASSERT_TRUE(answer(d, "prod-eu-1", Outcome::FAILED).ok());
  ASSERT_TRUE(answer(d, "prod-eu-2", Outcome::FAILED).ok());
  EXPECT_NE(d.reason.find("prod-eu-1"), std::string::npos);
  EXPECT_NE(d.reason.find("prod-eu-2"), std::string::npos);
  fx_ = Effects{};
  ASSERT_TRUE(retry(d, "prod-eu-1", alice_, "", ctx(), fx_).ok());
  EXPECT_EQ(d.state, DeploymentState::kPaused);  // prod-eu-2 is still held
  EXPECT_EQ(d.reason.find("cluster prod-eu-1"), std::string::npos) << d.reason;
  ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  EXPECT_TRUE(dispatched().empty());  // paused: verify waits
  fx_ = Effects{};
  ASSERT_TRUE(retry(d, "prod-eu-2", alice_, "", ctx(), fx_).ok());
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(dispatched(), (std::vector<std::string>{"prod-eu-2/apply", "prod-eu-1/verify"}));
}

}  // namespace
}  // namespace flotilla::coordinator::testing
