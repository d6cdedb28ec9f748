// Tests for verification checklists in the state machine (coordinator/deployment_checks.cpp and
// the forward drive): each check is its own verify stage, in order, with its own timeout and
// FLOTILLA_CHECK; its end is an event and stays on the cluster; the first failure fails the
// cluster as any step's does.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/records.hpp"
#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using common::Status;
using namespace std::chrono_literals;

class VerifyChecklist : public DeploymentTest {
 protected:
  // staging (staging-eu) then prod-eu (prod-eu-1, prod-eu-2): apply, then the checks health
  // (10 s), smoke and integration (the plan's 2 min).
  static common::Plan checklist() {
    common::Plan p = threeWaves();
    p.waves.pop_back();
    p.steps.build.clear();
    p.steps.verify.clear();
    p.steps.timeout = 2min;
    p.steps.verify_checks = {{"health", "./health.sh", 10s},
                             {"smoke", "./smoke.sh", std::nullopt},
                             {"integration", "./it.sh", std::nullopt}};
    return p;
  }
  // Answers `cluster`'s step in flight as its agent would, `ms` long.
  Status answerIn(Deployment& d, const std::string& cluster, Outcome outcome, uint64_t ms,
                  int exit_code = 0, std::string message = "") {
    StageResult r = resultFor(d, cluster, outcome);
    r.duration_ms = ms;
    r.exit_code = exit_code;
    r.message = std::move(message);
    fx_ = Effects{};
    return applyResult(d, r, ctx(), fx_);
  }
  std::vector<std::string> eventMessages(const std::string& type) const {
    std::vector<std::string> out;
    for (const Event& e : fx_.events) {
      if (e.type == type) out.push_back(e.message);
    }
    return out;
  }
};

TEST_F(VerifyChecklist, ForwardStepsRunEveryCheckAfterApplyInOrder) {
  const std::vector<StepSpec> steps = forwardSteps(checklist(), 0);
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[0].kind, Step::APPLY);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(steps[i].kind, Step::VERIFY) << i;
  EXPECT_EQ(steps[1].check, "health");
  EXPECT_EQ(steps[2].check, "smoke");
  EXPECT_EQ(steps[3].check, "integration");

  // A canary's checks run once, after apply, before the later traffic steps.
  common::Plan canary = checklist();
  canary.strategy.kind = common::StrategyKind::kCanary;
  canary.strategy.steps = {10, 100};
  std::vector<std::string> kinds;
  for (const StepSpec& s : forwardSteps(canary, 0)) {
    kinds.push_back(std::string(stepName(s.kind)) + (s.check.empty() ? "" : ":" + s.check));
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"apply", "verify:health", "verify:smoke",
                                             "verify:integration", "shift"}));

  // The single command stays one verify step, with no check name.
  const std::vector<StepSpec> single = forwardSteps(threeWaves(), 0);
  ASSERT_EQ(single.size(), 3u);
  EXPECT_EQ(single[2].kind, Step::VERIFY);
  EXPECT_EQ(single[2].check, "");
}

TEST_F(VerifyChecklist, EachCheckIsItsOwnStageWithItsTimeoutAndName) {
  Deployment d = start(checklist());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/apply"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_EQ(fx_.dispatches.size(), 1u);
  Dispatch health = fx_.dispatches[0];
  EXPECT_EQ(health.stage_id, "staging-eu/verify-health");
  EXPECT_EQ(health.step, Step::VERIFY);
  EXPECT_EQ(health.command, "./health.sh");
  EXPECT_EQ(health.timeout_ms, 10000u);
  EXPECT_EQ(health.env.at("FLOTILLA_CHECK"), "health");
  EXPECT_EQ(health.env.at("FLOTILLA_STEP"), "verify");
  EXPECT_EQ(health.env.at("FLOTILLA_CLUSTER"), "staging-eu");
  ASSERT_NE(findEvent("stage.started"), nullptr);
  EXPECT_EQ(findEvent("stage.started")->message, "check health, attempt 1");
  ASSERT_EQ(d.waves[0].clusters[0].checks.size(), 1u);
  EXPECT_TRUE(d.waves[0].clusters[0].checks[0].running);

  ASSERT_TRUE(answerIn(d, "staging-eu", Outcome::SUCCEEDED, 1234).ok());
  EXPECT_EQ(eventMessages("cluster.verify_check"),
            std::vector<std::string>{"health passed in 1.2s"});
  const Event* e = findEvent("cluster.verify_check");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->cluster, "staging-eu");
  EXPECT_EQ(e->wave, "staging");
  EXPECT_EQ(e->step, "verify");
  EXPECT_EQ(e->data, R"({"check":"health","duration_ms":1234,"exit_code":0,"state":"passed"})");
  ASSERT_EQ(fx_.dispatches.size(), 1u);
  EXPECT_EQ(fx_.dispatches[0].stage_id, "staging-eu/verify-smoke");
  EXPECT_EQ(fx_.dispatches[0].command, "./smoke.sh");
  EXPECT_EQ(fx_.dispatches[0].timeout_ms, 120000u);  // the plan's steps.timeout
  EXPECT_EQ(fx_.dispatches[0].env.at("FLOTILLA_CHECK"), "smoke");
  EXPECT_EQ(fx_.dispatches[0].attempt, 1u);

  ASSERT_TRUE(answerIn(d, "staging-eu", Outcome::SUCCEEDED, 50).ok());
  EXPECT_EQ(fx_.dispatches[0].stage_id, "staging-eu/verify-integration");
  ASSERT_TRUE(answerIn(d, "staging-eu", Outcome::SUCCEEDED, 61000).ok());
  EXPECT_EQ(eventMessages("cluster.verify_check"),
            std::vector<std::string>{"integration passed in 61.0s"});
  EXPECT_TRUE(hasEvent("cluster.succeeded"));
  const ClusterProgress& c = d.waves[0].clusters[0];
  EXPECT_EQ(c.state, ClusterState::kSucceeded);
  ASSERT_EQ(c.checks.size(), 3u);
  for (const CheckRun& run : c.checks) {
    EXPECT_FALSE(run.running) << run.name;
    EXPECT_EQ(checkRunStateName(run), "passed") << run.name;
  }
  EXPECT_EQ(c.checks[2].duration_ms, 61000u);
  // The next wave starts with the first check's cluster steps again.
  EXPECT_EQ(dispatched(), (std::vector<std::string>{"prod-eu-1/apply", "prod-eu-2/apply"}));
}

TEST_F(VerifyChecklist, TheFirstFailedCheckFailsTheClusterAndTheRestNeverRun) {
  Deployment d = start(checklist());
  ASSERT_TRUE(answer(d, "staging-eu").ok());                             // apply
  ASSERT_TRUE(answerIn(d, "staging-eu", Outcome::SUCCEEDED, 100).ok());  // health
  ASSERT_TRUE(answerIn(d, "staging-eu", Outcome::FAILED, 300, 1, "exit code 1: boom").ok());
  EXPECT_EQ(eventMessages("cluster.verify_check"),
            std::vector<std::string>{"smoke failed in 0.3s: exit code 1: boom"});
  EXPECT_TRUE(hasEvent("stage.failed"));
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  ASSERT_TRUE(d.failure.has_value());
  EXPECT_EQ(d.failure->step, "verify");
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  const ClusterProgress& c = d.waves[0].clusters[0];
  ASSERT_EQ(c.checks.size(), 2u);  // integration never ran
  EXPECT_EQ(checkRunStateName(c.checks[0]), "passed");
  EXPECT_EQ(checkRunStateName(c.checks[1]), "failed");
  EXPECT_EQ(c.checks[1].exit_code, 1);
  EXPECT_EQ(c.checks[1].message, "exit code 1: boom");
  EXPECT_EQ(c.check, "");  // the rollback is not a check
}

TEST_F(VerifyChecklist, ACheckPastItsTimeoutFails) {
  Deployment d = start(checklist());
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answerIn(d, "staging-eu", Outcome::TIMED_OUT, 10000, -1, "timed out after 10s").ok());
  EXPECT_EQ(eventMessages("cluster.verify_check"),
            std::vector<std::string>{"health timed out in 10.0s: timed out after 10s"});
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_EQ(checkRunStateName(d.waves[0].clusters[0].checks[0]), "timed_out");
}

TEST_F(VerifyChecklist, AHeldFailedCheckIsRetriedAloneAndTheListGoesOn) {
  common::Plan p = checklist();
  p.on_step_failure = common::OnStepFailure::kHold;
  Deployment d = start(p);
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answerIn(d, "staging-eu", Outcome::SUCCEEDED, 100).ok());
  ASSERT_TRUE(answerIn(d, "staging-eu", Outcome::FAILED, 300, 2, "exit code 2: flaky").ok());
  EXPECT_EQ(d.state, DeploymentState::kPaused);
  EXPECT_TRUE(d.waves[0].clusters[0].held);

  fx_ = Effects{};
  ASSERT_TRUE(retry(d, "staging-eu", alice_, "", ctx(), fx_).ok());
  ASSERT_EQ(fx_.dispatches.size(), 1u);
  EXPECT_EQ(fx_.dispatches[0].stage_id, "staging-eu/verify-smoke");
  EXPECT_EQ(fx_.dispatches[0].attempt, 2u);
  EXPECT_EQ(fx_.dispatches[0].env.at("FLOTILLA_CHECK"), "smoke");
  ASSERT_EQ(d.waves[0].clusters[0].checks.size(), 2u);  // smoke's run replaced, not added
  EXPECT_TRUE(d.waves[0].clusters[0].checks[1].running);

  ASSERT_TRUE(answerIn(d, "staging-eu", Outcome::SUCCEEDED, 200).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/verify-integration"});
  EXPECT_EQ(checkRunStateName(d.waves[0].clusters[0].checks[1]), "passed");
}

TEST_F(VerifyChecklist, ASingleVerifyCommandKeepsItsStageIdAndAddsNoChecklist) {
  common::Plan p = threeWaves();
  p.steps.build.clear();
  Deployment d = start(p);
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_EQ(fx_.dispatches.size(), 1u);
  EXPECT_EQ(fx_.dispatches[0].stage_id, "staging-eu/verify");
  EXPECT_EQ(fx_.dispatches[0].command, "verify");
  EXPECT_EQ(fx_.dispatches[0].env.at("FLOTILLA_CHECK"), "verify");
  EXPECT_EQ(findEvent("stage.started")->message, "attempt 1");
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_FALSE(hasEvent("cluster.verify_check"));
  EXPECT_TRUE(d.waves[0].clusters[0].checks.empty());
}

TEST_F(VerifyChecklist, TheCheckInFlightAndTheRunsSurviveTheStore) {
  Deployment d = start(checklist());
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answerIn(d, "staging-eu", Outcome::SUCCEEDED, 100).ok());
  const ClusterProgress& c = d.waves[0].clusters[0];
  ASSERT_EQ(c.stageId(), "staging-eu/verify-smoke");

  // The store's record, and the whole JSON form.
  auto record = decodeClusterRecord(encodeClusterRecord(c));
  ASSERT_TRUE(record.ok()) << record.status().toString();
  EXPECT_EQ(*record, c);
  EXPECT_EQ(record->stageId(), "staging-eu/verify-smoke");
  auto whole = deploymentFromJson(deploymentToJson(d));
  ASSERT_TRUE(whole.ok()) << whole.status().toString();
  EXPECT_EQ(whole->waves[0].clusters[0], c);
  EXPECT_EQ(whole->plan.steps.verify_checks, d.plan.steps.verify_checks);

  // A coordinator that restarts with it resends the same stage, and its result is taken.
  Dispatch again = makeDispatch(*whole, whole->waves[0].clusters[0]);
  EXPECT_EQ(again.stage_id, "staging-eu/verify-smoke");
  EXPECT_EQ(again.env.at("FLOTILLA_CHECK"), "smoke");
  Deployment reloaded = std::move(whole).value();
  ASSERT_TRUE(answerIn(reloaded, "staging-eu", Outcome::SUCCEEDED, 100).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/verify-integration"});
}

TEST_F(VerifyChecklist, OldClusterRecordsWithoutChecksLoad) {
  // A cluster as an older coordinator wrote it: no check, no checks.
  auto decoded = clusterFromJsonText(
      R"({"name":"staging-eu","state":"verifying","attempt":1,"step_index":2,"in_flight":true,)"
      R"("abort_sent":false,"applied":true,"previous_version":"","message":"","step":"verify",)"
      R"("exit_code":null})");
  ASSERT_TRUE(decoded.ok()) << decoded.status().toString();
  EXPECT_EQ(decoded->check, "");
  EXPECT_TRUE(decoded->checks.empty());
  EXPECT_EQ(decoded->stageId(), "staging-eu/verify");
}

}  // namespace
}  // namespace flotilla::coordinator::testing
