// Tests for the post-deploy watch in the state machine (coordinator/deployment_watch.cpp): after
// the last wave the deployment is watching, tier after tier, every cluster reached gets one
// watch stage per tier, a failure rolls the whole fleet back, and watch-end ends it early.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/process_spec.hpp"
#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using namespace std::chrono_literals;

class DeploymentWatch : public DeploymentTest {
 protected:
  // threeWaves() with two tiers after 100%, rolled back by wave (the watch ignores that).
  static common::Plan watchedPlan() {
    common::Plan p = threeWaves();
    p.rollback_scope = common::RollbackScope::kWave;
    p.steps.watch = "./still-good.sh";
    p.watch = {{"intense", 2s, 500ms}, {"regular", 4s, 1s}};
    return p;
  }
  // Answers every forward step in flight until the deployment stops going forward.
  void runWaves(Deployment& d) {
    for (int guard = 0; guard < 100; ++guard) {
      std::string next;
      for (auto& w : d.waves) {
        for (auto& c : w.clusters) {
          if (c.in_flight && c.step != Step::WATCH && next.empty()) next = c.name;
        }
      }
      if (next.empty()) return;
      ASSERT_TRUE(answer(d, next).ok());
    }
  }
  std::vector<std::string> allClusters(const Deployment& d) const {
    std::vector<std::string> out;
    for (const auto& w : d.waves) {
      for (const auto& c : w.clusters) out.push_back(c.name);
    }
    return out;
  }
};

TEST_F(DeploymentWatch, WatchesEveryTierOnEveryClusterThenSucceeds) {
  Deployment d = start(watchedPlan());
  runWaves(d);
  ASSERT_EQ(d.state, DeploymentState::kWatching);
  ASSERT_NE(findEvent("deployment.watching"), nullptr);
  EXPECT_EQ(findEvent("deployment.succeeded"), nullptr);
  EXPECT_EQ(d.watch_tier, 0);
  // Every cluster of every wave watches the first tier, with the tier's parameters.
  const std::vector<std::string> clusters = allClusters(d);
  ASSERT_EQ(clusters.size(), 4u);
  for (const auto& name : clusters) {
    const ClusterProgress* c = d.findCluster(name);
    ASSERT_TRUE(c->in_flight) << name;
    EXPECT_EQ(c->stageId(), name + "/watch-0");
    EXPECT_EQ(c->state, ClusterState::kWatching);
    const Dispatch out = makeDispatch(d, *c);
    EXPECT_EQ(out.command, "./still-good.sh");
    ASSERT_TRUE(out.watch.has_value());
    EXPECT_EQ(out.watch->duration, 2s);
    EXPECT_EQ(out.watch->interval, 500ms);
    EXPECT_EQ(out.env.at("FLOTILLA_WATCH_TIER"), "intense");
    EXPECT_GE(out.timeout_ms, 62'000u);
  }
  // The tier ends when every cluster passed it; the next one starts.
  for (size_t i = 0; i < clusters.size(); ++i) {
    ASSERT_TRUE(answer(d, clusters[i]).ok());
    if (i + 1 < clusters.size()) {
      EXPECT_EQ(d.watch_tier, 0);
    }
  }
  EXPECT_EQ(d.watch_tier, 1);
  ASSERT_NE(findEvent("deployment.watch_tier"), nullptr);
  EXPECT_EQ(dispatched().size(), clusters.size());
  for (const auto& name : clusters) {
    EXPECT_EQ(d.findCluster(name)->stageId(), name + "/watch-1");
  }
  for (const auto& name : clusters) ASSERT_TRUE(answer(d, name).ok());
  EXPECT_EQ(d.state, DeploymentState::kSucceeded);
  ASSERT_NE(findEvent("deployment.succeeded"), nullptr);
  EXPECT_NE(findEvent("deployment.succeeded")->message.find("watched for 6s"), std::string::npos);
}

TEST_F(DeploymentWatch, AFailedWatchRollsTheWholeFleetBack) {
  Deployment d = start(watchedPlan());
  runWaves(d);
  ASSERT_EQ(d.state, DeploymentState::kWatching);
  ASSERT_TRUE(answer(d, "prod-eu-2", Outcome::FAILED).ok());
  ASSERT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_NE(d.rollback_cause.find("failed the post-deploy watch (tier intense)"),
            std::string::npos);
  // The other watch stages are stopped; their clusters are rolled back with the rest, though
  // the plan's scope is the wave: the new version reached every wave.
  EXPECT_EQ(fx_.aborts.size(), 3u);
  for (const auto& name : allClusters(d)) {
    if (name == "prod-eu-2") continue;
    ASSERT_TRUE(answer(d, name, Outcome::ABORTED).ok()) << name;
  }
  for (int guard = 0; guard < 20 && d.state == DeploymentState::kRollingBack; ++guard) {
    std::string next;
    for (auto& w : d.waves) {
      for (auto& c : w.clusters) {
        if (c.in_flight && next.empty()) next = c.name;
      }
    }
    ASSERT_FALSE(next.empty());
    EXPECT_EQ(d.findCluster(next)->step, Step::ROLLBACK);
    ASSERT_TRUE(answer(d, next).ok());
  }
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  for (const auto& name : allClusters(d)) {
    EXPECT_EQ(d.findCluster(name)->state, ClusterState::kRolledBack) << name;
  }
}

TEST_F(DeploymentWatch, WatchEndStopsTheStagesAndSucceeds) {
  Deployment d = start(watchedPlan());
  runWaves(d);
  fx_ = Effects{};
  ASSERT_TRUE(endWatch(d, alice_, "seen enough", ctx(), fx_).ok());
  EXPECT_EQ(d.state, DeploymentState::kWatching);
  EXPECT_EQ(fx_.aborts.size(), 4u);
  ASSERT_NE(findEvent("deployment.watch_ending"), nullptr);
  // A second request is refused while the first one ends it.
  Effects again;
  EXPECT_EQ(endWatch(d, alice_, "", ctx(), again).code(),
            common::Status::Code::kFailedPrecondition);
  // Aborted (or finished meanwhile): both count as passed.
  const std::vector<std::string> clusters = allClusters(d);
  ASSERT_TRUE(answer(d, clusters[0]).ok());
  for (size_t i = 1; i < clusters.size(); ++i) {
    ASSERT_TRUE(answer(d, clusters[i], Outcome::ABORTED).ok());
  }
  EXPECT_EQ(d.state, DeploymentState::kSucceeded);
  ASSERT_NE(findEvent("deployment.watch_ended"), nullptr);
  EXPECT_NE(findEvent("deployment.watch_ended")->message.find("by alice: seen enough"),
            std::string::npos);
  // Only a watching deployment's watch can end.
  Effects after;
  EXPECT_EQ(endWatch(d, alice_, "", ctx(), after).code(),
            common::Status::Code::kFailedPrecondition);
}

TEST_F(DeploymentWatch, AWatchFailureReportedBeforeWatchEndStillRollsBack) {
  Deployment d = start(watchedPlan());
  runWaves(d);
  fx_ = Effects{};
  ASSERT_TRUE(endWatch(d, alice_, "", ctx(), fx_).ok());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
}

TEST_F(DeploymentWatch, WithoutTiersTheLastWaveSucceedsAtOnce) {
  Deployment d = start(threeWaves());
  runWaves(d);
  EXPECT_EQ(d.state, DeploymentState::kSucceeded);
  EXPECT_EQ(findEvent("deployment.watching"), nullptr);
}

TEST_F(DeploymentWatch, TheWatchSurvivesTheStoredForm) {
  Deployment d = start(watchedPlan());
  runWaves(d);
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  auto back = deploymentFromJson(deploymentToJson(d));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->state, DeploymentState::kWatching);
  EXPECT_EQ(back->watch_tier, 0);
  EXPECT_EQ(back->plan.watch, d.plan.watch);
  EXPECT_EQ(back->plan.steps.watch, "./still-good.sh");
  EXPECT_EQ(back->findCluster("staging-eu")->state, ClusterState::kSucceeded);
  EXPECT_EQ(back->findCluster("prod-eu-1")->state, ClusterState::kWatching);
}

}  // namespace
}  // namespace flotilla::coordinator::testing
