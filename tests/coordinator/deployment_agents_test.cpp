// Tests for agents lost and back (coordinator/deployment_agents.cpp): the budget of lost
// clusters, on_agent_lost, and a returning agent converging first.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using common::Plan;

class DeploymentAgents : public DeploymentTest {
 protected:
  // staging done, prod-eu-1's apply in flight when its agent is lost (the other prod agents
  // stay): the deployment as the lost-agent rule left it.
  Deployment lostMidApply(const Plan& plan) {
    Deployment d = start(plan);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(answer(d, "staging-eu").ok());
    EXPECT_TRUE(answer(d, "prod-eu-1").ok());  // apply in flight
    onlyBack({"staging-eu", "prod-eu-2", "prod-us-1"});
    fx_ = Effects{};
    agentLost(d, "prod-eu-1", ctx(), fx_);
    return d;
  }
};

TEST_F(DeploymentAgents, AgentLostMidStepRollsBack) {
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
TEST_F(DeploymentAgents, LostClusterRollsBackWhenItsAgentReturns) {
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

TEST_F(DeploymentAgents, LostClustersWithinTheBudgetAreWaitedFor) {
  Plan plan = threeWaves();
  plan.max_unavailable_clusters = 1;
  Deployment d = lostMidApply(plan);
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

TEST_F(DeploymentAgents, OneMoreLostThanTheBudgetRollsBack) {
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

TEST_F(DeploymentAgents, OnAgentLostWaitPausesUntilEnoughAreBack) {
  Plan plan = threeWaves();
  plan.on_agent_lost = common::OnAgentLost::kWait;
  Deployment d = lostMidApply(plan);
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

// A cluster whose agent went away between submission and its wave is the lost-cluster policy's
// business, as one lost mid-step: within the budget it is waited for while the rest of the wave
// goes on, and its first step goes out when it is back.
TEST_F(DeploymentAgents, AClusterLostBeforeItsWaveIsWaitedForWithinTheBudget) {
  Plan plan = threeWaves();
  plan.max_unavailable_clusters = 1;
  Deployment d = start(plan);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  onlyBack({"staging-eu", "prod-eu-1", "prod-us-1"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());  // staging done: prod-eu starts
  EXPECT_EQ(d.state, DeploymentState::kRunning) << d.reason;
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-1/build"});
  const Event* lost = findEvent("agent.lost");
  ASSERT_NE(lost, nullptr);
  EXPECT_EQ(lost->cluster, "prod-eu-2");
  EXPECT_NE(lost->message.find("agent lost before its first step; waiting for it"),
            std::string::npos)
      << lost->message;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "prod-eu-1").ok());
  EXPECT_EQ(d.wave_index, 1u) << "the wave waits for prod-eu-2";
  EXPECT_FALSE(hasEvent("agent.lost")) << "told once";

  returns(d, "prod-eu-2");
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-2/build"});
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kSucceeded) << d.reason;
}

// Past the budget, on_agent_lost decides: wait pauses the deployment until the agent is back.
TEST_F(DeploymentAgents, AClusterLostBeforeItsWaveUnderOnAgentLostWaitPauses) {
  Plan plan = threeWaves();
  plan.on_agent_lost = common::OnAgentLost::kWait;
  Deployment d = start(plan);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  onlyBack({"staging-eu", "prod-eu-1", "prod-us-1"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kPaused);
  EXPECT_TRUE(d.paused_for_lost);
  EXPECT_EQ(d.waves[0].state, WaveState::kSucceeded) << "staging is not rolled back";

  returns(d, "prod-eu-2");
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"prod-eu-2/build"});
  succeedAll(d);
  EXPECT_EQ(d.state, DeploymentState::kSucceeded) << d.reason;
}

// The default policy (no budget, on_agent_lost: rollback) rolls back, saying why; a cluster
// no longer registered at all (removed) is treated the same way.
TEST_F(DeploymentAgents, AClusterRemovedBeforeItsWaveFollowsTheDefaultPolicy) {
  Deployment d = start(threeWaves());
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  registry_.remove("prod-eu-2");
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  ASSERT_TRUE(d.failure.has_value());
  EXPECT_EQ(d.failure->cluster, "prod-eu-2");
  EXPECT_NE(d.failure->message.find("no agent registered for the cluster any more"),
            std::string::npos)
      << d.failure->message;
  EXPECT_NE(d.failure->message.find("on_agent_lost: rollback"), std::string::npos);
}

}  // namespace
}  // namespace flotilla::coordinator::testing
