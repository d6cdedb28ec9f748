// Tests for the deployment model and the forward drive (coordinator/deployment.cpp): steps in
// order, waves in order, max_parallel, clusters chosen by name or selector, the commands sent.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using common::Plan;

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

TEST_F(DeploymentTest, SelectorMatchingNothingStopsTheDeployment) {
  Plan p = threeWaves();
  p.waves[0].clusters.clear();
  p.waves[0].selector = {{"environment", "nowhere"}};
  Deployment d = start(p);
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  ASSERT_TRUE(d.failure.has_value());
  EXPECT_NE(d.failure->message.find("matches no registered cluster"), std::string::npos);
}

TEST_F(DeploymentTest, UnregisteredClusterFailsTheWave) {
  Plan p = threeWaves();
  p.waves[0].clusters = {"ghost"};
  Deployment d = start(p);
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  EXPECT_EQ(d.failure->cluster, "ghost");
}

// The process driver's steps come from each wave's strategy; the repeated ones are numbered by
// their place in the sequence, and each command carries its weight and duration.
TEST_F(DeploymentTest, ProcessStepsFollowEachWavesStrategy) {
  Plan p = threeWaves();
  p.driver = common::DriverKind::kProcess;
  p.strategy.kind = common::StrategyKind::kCanary;
  p.strategy.steps = {10, 50, 100};
  p.strategy.pause = std::chrono::seconds(90);
  p.waves[1].bake = std::chrono::minutes(15);
  common::Strategy rolling;
  rolling.kind = common::StrategyKind::kRolling;
  p.waves[2].strategy = rolling;
  auto sequence = [&](size_t wave) {
    std::vector<std::string> out;
    for (const StepSpec& s : forwardSteps(p, wave)) {
      out.push_back(std::string(stepName(s.kind)) + " " + std::to_string(s.weight) + "% " +
                    std::to_string(s.duration.count()) + "ms");
    }
    return out;
  };
  EXPECT_EQ(sequence(0),
            (std::vector<std::string>{"deploy 0% 0ms", "shift 10% 0ms", "analyze 10% 90000ms",
                                      "shift 50% 0ms", "analyze 50% 90000ms", "shift 100% 0ms",
                                      "finalize 100% 0ms"}));
  EXPECT_EQ(sequence(1),
            (std::vector<std::string>{"deploy 0% 0ms", "shift 10% 0ms", "analyze 10% 90000ms",
                                      "shift 50% 0ms", "analyze 50% 90000ms", "shift 100% 0ms",
                                      "bake 100% 900000ms", "finalize 100% 0ms"}));
  EXPECT_EQ(sequence(2), std::vector<std::string>{"roll 100% 0ms"});

  Deployment d = start(p);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/deploy"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/shift-1"});
  EXPECT_EQ(fx_.dispatches[0].command, "");  // the agent's driver knows what to do
  EXPECT_EQ(fx_.dispatches[0].env.at("FLOTILLA_WEIGHT"), "10");
  ASSERT_TRUE(fx_.dispatches[0].process.has_value());
  EXPECT_EQ(fx_.dispatches[0].process->weight, 10u);
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/analyze-2"});
  EXPECT_EQ(fx_.dispatches[0].process->duration, std::chrono::seconds(90));
  // Up to four analysis windows and a minute, when that is longer than steps.timeout (5 min).
  EXPECT_EQ(fx_.dispatches[0].timeout_ms, 420000u);
}

// The script driver: a canary's `apply` sets the first weight, each later weight is a shift that
// runs `apply` again (or `switch`), with an analysis after each step below 100 that carries the
// watch (not a ProcessSpec) and no command; a blue-green brings the new version up at 0% and
// switches.
TEST_F(DeploymentTest, ScriptStepsFollowEachWavesStrategy) {
  Plan p = threeWaves();
  p.steps.verify = "./verify.sh";
  p.strategy.kind = common::StrategyKind::kCanary;
  p.strategy.steps = {10, 50, 100};
  p.strategy.pause = std::chrono::seconds(30);
  p.health.http.url = "http://{cluster}.internal/health";
  p.waves[1].bake = std::chrono::minutes(5);
  common::Strategy blue_green;
  blue_green.kind = common::StrategyKind::kBlueGreen;
  p.waves[2].strategy = blue_green;
  auto sequence = [&](const Plan& plan, size_t wave) {
    std::vector<std::string> out;
    for (const StepSpec& s : forwardSteps(plan, wave)) {
      out.push_back(std::string(stepName(s.kind)) + " " + std::to_string(s.weight) + "%");
    }
    return out;
  };
  EXPECT_EQ(sequence(p, 0),
            (std::vector<std::string>{"build 100%", "apply 10%", "verify 10%", "analyze 10%",
                                      "shift 50%", "analyze 50%", "shift 100%"}));
  EXPECT_EQ(sequence(p, 1),
            (std::vector<std::string>{"build 100%", "apply 10%", "verify 10%", "analyze 10%",
                                      "shift 50%", "analyze 50%", "shift 100%", "bake 100%"}));
  Plan switched = p;
  switched.steps.switch_traffic = "./switch.sh";
  EXPECT_EQ(sequence(switched, 2),
            (std::vector<std::string>{"build 100%", "apply 0%", "verify 0%", "shift 100%"}));
  EXPECT_EQ(sequence(switched, 0),
            (std::vector<std::string>{"build 100%", "apply 0%", "verify 0%", "shift 10%",
                                      "analyze 10%", "shift 50%", "analyze 50%", "shift 100%"}));

  Deployment d = start(p);
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/build"});
  EXPECT_EQ(fx_.dispatches[0].env.at("FLOTILLA_STRATEGY"), "canary");
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/apply"});
  EXPECT_EQ(fx_.dispatches[0].command, p.steps.apply);
  EXPECT_EQ(fx_.dispatches[0].env.at("FLOTILLA_WEIGHT"), "10");
  EXPECT_FALSE(fx_.dispatches[0].process.has_value());
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/verify"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/analyze-3"});
  EXPECT_EQ(fx_.dispatches[0].command, "");
  ASSERT_TRUE(fx_.dispatches[0].watch.has_value());
  EXPECT_EQ(fx_.dispatches[0].watch->duration, std::chrono::seconds(30));
  EXPECT_EQ(fx_.dispatches[0].watch->weight, 10u);
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/shift-4"});
  EXPECT_EQ(fx_.dispatches[0].command, p.steps.apply);  // no switch: apply again
  EXPECT_EQ(fx_.dispatches[0].env.at("FLOTILLA_WEIGHT"), "50");
  EXPECT_FALSE(fx_.dispatches[0].watch.has_value());
}

}  // namespace
}  // namespace flotilla::coordinator::testing
