// Tests for coordinator/cluster_view.cpp: a cluster's strategy step, weight and versions, as
// the deployment detail shows them.
#include "coordinator/cluster_view.hpp"

#include <gtest/gtest.h>

namespace flotilla::coordinator {
namespace {

// One wave of the process driver, canary 10 -> 50 -> 100 with analysis between the steps:
// deploy, shift 10, analyze, shift 50, analyze, shift 100, finalize.
Deployment canary() {
  Deployment d;
  d.plan.service = "checkout";
  d.plan.version = "1.1.0";
  d.plan.driver = common::DriverKind::kProcess;
  d.plan.strategy.kind = common::StrategyKind::kCanary;
  d.plan.strategy.steps = {10, 50, 100};
  d.plan.strategy.pause = std::chrono::seconds(30);
  d.plan.waves.emplace_back();
  d.plan.waves[0].name = "prod";
  return d;
}

ClusterProgress at(int step_index, ClusterState state) {
  ClusterProgress c;
  c.name = "prod-eu-1";
  c.step_index = step_index;
  c.state = state;
  c.previous_version = "1.0.0";
  return c;
}

TEST(ViewCluster, StepAndWeightFollowTheCanary) {
  const Deployment d = canary();
  ClusterView deployed = viewCluster(d, 0, at(0, ClusterState::kDeploying));
  EXPECT_EQ(deployed.strategy_step, 0);
  EXPECT_EQ(deployed.strategy_steps, 3);
  EXPECT_EQ(deployed.weight, 0u);
  EXPECT_EQ(deployed.from_version, "1.0.0");
  EXPECT_EQ(deployed.to_version, "1.1.0");

  ClusterView analyzing = viewCluster(d, 0, at(4, ClusterState::kAnalyzing));  // after shift 50
  EXPECT_EQ(analyzing.strategy_step, 2);
  EXPECT_EQ(analyzing.weight, 50u);
  ClusterView full = viewCluster(d, 0, at(5, ClusterState::kShifting));
  EXPECT_EQ(full.strategy_step, 3);
  EXPECT_EQ(full.weight, 100u);
  // A failed step keeps where it was: the on-call wants to know it failed at 10%.
  ClusterView failed = viewCluster(d, 0, at(2, ClusterState::kFailed));
  EXPECT_EQ(failed.strategy_step, 1);
  EXPECT_EQ(failed.weight, 10u);
}

TEST(ViewCluster, NoStepWhereThereIsNoTrafficToShift) {
  const Deployment d = canary();
  EXPECT_FALSE(viewCluster(d, 0, at(-1, ClusterState::kPending)).strategy_step);
  EXPECT_FALSE(viewCluster(d, 0, at(4, ClusterState::kRollingBack)).weight);
  EXPECT_FALSE(viewCluster(d, 0, at(4, ClusterState::kRolledBack)).strategy_step);
  // A step index past the sequence (a record from another plan) is not trusted.
  EXPECT_FALSE(viewCluster(d, 0, at(40, ClusterState::kShifting)).strategy_step);
  EXPECT_FALSE(viewCluster(d, 3, at(1, ClusterState::kShifting)).strategy_step);

  Deployment script = canary();
  script.plan.driver = common::DriverKind::kScript;
  script.plan.strategy = common::Strategy{};  // all at once: nothing to count
  ClusterView applying = viewCluster(script, 0, at(0, ClusterState::kApplying));
  EXPECT_FALSE(applying.strategy_step);
  EXPECT_EQ(applying.strategy_steps, 0);
  EXPECT_FALSE(applying.weight);
  EXPECT_EQ(applying.to_version, "1.1.0");  // the versions are there for every driver
}

// The script driver's canary: its first `apply` sets the first weight, its shifts the rest.
TEST(ViewCluster, ScriptCanaryCountsItsApplyAsTheFirstStep) {
  Deployment script = canary();
  script.plan.driver = common::DriverKind::kScript;
  // apply 10, analyze 10, shift 50, analyze 50, shift 100
  ClusterView applying = viewCluster(script, 0, at(0, ClusterState::kApplying));
  EXPECT_EQ(applying.strategy_step, 1);
  EXPECT_EQ(applying.strategy_steps, 3);
  EXPECT_EQ(applying.weight, 10u);
  ClusterView shifting = viewCluster(script, 0, at(2, ClusterState::kShifting));
  EXPECT_EQ(shifting.strategy_step, 2);
  EXPECT_EQ(shifting.weight, 50u);
  // With a switch step, apply brings the new version up at 0%: not a traffic step.
  script.plan.steps.switch_traffic = "./switch.sh";
  EXPECT_EQ(viewCluster(script, 0, at(0, ClusterState::kApplying)).strategy_step, 0);
  EXPECT_EQ(viewCluster(script, 0, at(1, ClusterState::kShifting)).strategy_step, 1);
}

}  // namespace
}  // namespace flotilla::coordinator
