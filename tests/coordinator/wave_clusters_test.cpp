// Tests for coordinator/wave_clusters.cpp: which clusters each wave takes, the refusals of
// unknown names and empty selectors with their suggestions, and the clusters a waiting wave
// will touch.
#include "coordinator/wave_clusters.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/deployment.hpp"

namespace flotilla::coordinator {
namespace {

using Strings = std::vector<std::string>;

AgentsByName fleet() {
  AgentsByName agents;
  auto add = [&](const std::string& name, std::map<std::string, std::string> labels,
                 AgentState state = AgentState::kConnected) {
    AgentInfo a;
    a.cluster = name;
    a.labels = std::move(labels);
    a.state = state;
    agents.emplace(name, a);
  };
  add("staging-eu", {{"environment", "staging"}, {"region", "eu"}});
  add("prod-eu-1", {{"environment", "production"}, {"region", "eu"}});
  add("prod-eu-2", {{"environment", "production"}, {"region", "eu"}}, AgentState::kLost);
  add("prod-us-1", {{"environment", "production"}, {"region", "us"}}, AgentState::kUnknown);
  return agents;
}

common::Wave named(const std::string& name, Strings clusters, int line = 0) {
  common::Wave w;
  w.name = name;
  w.clusters = std::move(clusters);
  w.line = line;
  w.column = 5;
  return w;
}

common::Wave selecting(const std::string& name, std::map<std::string, std::string> selector,
                       int line = 0) {
  common::Wave w;
  w.name = name;
  w.selector = std::move(selector);
  w.line = line;
  w.column = 5;
  return w;
}

TEST(EditDistance, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(editDistance("", ""), 0u);
  EXPECT_EQ(editDistance("prod-eu1", "prod-eu-1"), 1u);
  EXPECT_EQ(editDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(editDistance("abc", ""), 3u);
}

TEST(ClosestName, SuggestsOnlyALikelyTypo) {
  const Strings known = {"prod-eu-1", "prod-us-1", "staging-eu"};
  EXPECT_EQ(closestName("prod-eu1", known), "prod-eu-1");
  EXPECT_EQ(closestName("stagin-eu", known), "staging-eu");
  EXPECT_EQ(closestName("warehouse", known), "");
  EXPECT_EQ(closestName("x", {}), "");
}

// Lost agents are left out of a selector while others match, and taken when only they match:
// then the lost-cluster policy decides about them, not an empty wave.
TEST(WaveClusters, SelectorsTakeLiveClustersFirstAndNeverAnEarlierWaves) {
  const AgentsByName agents = fleet();
  EXPECT_EQ(waveClusters(selecting("prod", {{"environment", "production"}}), agents, {}),
            (Strings{"prod-eu-1", "prod-us-1"}));
  EXPECT_EQ(waveClusters(selecting("prod", {{"environment", "production"}}), agents,
                         {"prod-eu-1", "prod-us-1"}),
            (Strings{"prod-eu-2"}));
  EXPECT_EQ(waveClusters(named("one", {"prod-eu-2", "nowhere"}), agents, {}),
            (Strings{"prod-eu-2", "nowhere"}));
  EXPECT_TRUE(waveClusters(selecting("none", {{"environment", "qa"}}), agents, {}).empty());
}

TEST(ResolvePlanClusters, AGoodPlanResolvesEveryWave) {
  common::Plan plan;
  plan.waves = {named("staging", {"staging-eu"}),
                selecting("prod", {{"environment", "production"}})};
  const PlanClusters resolved = resolvePlanClusters(plan, fleet());
  EXPECT_TRUE(resolved.problems.empty());
  EXPECT_EQ(resolved.waves, (std::vector<Strings>{{"staging-eu"}, {"prod-eu-1", "prod-us-1"}}));
  EXPECT_EQ(resolved.known, (Strings{"prod-eu-1", "prod-eu-2", "prod-us-1", "staging-eu"}));
}

TEST(ResolvePlanClusters, UnknownNamesAreListedWithTheClosestKnownName) {
  common::Plan plan;
  plan.waves = {named("staging", {"staging-eu"}, 7), named("prod", {"prod-eu1", "warehouse"}, 9)};
  const PlanClusters resolved = resolvePlanClusters(plan, fleet());
  ASSERT_EQ(resolved.problems.size(), 2u);
  EXPECT_EQ(resolved.problems[0].wave, "prod");
  EXPECT_EQ(resolved.problems[0].line, 9);
  EXPECT_EQ(resolved.problems[0].column, 5);
  EXPECT_EQ(resolved.problems[0].message,
            "wave \"prod\": no agent has registered cluster \"prod-eu1\"; did you mean "
            "\"prod-eu-1\"?");
  EXPECT_EQ(resolved.problems[0].suggestion, "did you mean \"prod-eu-1\"?");
  EXPECT_EQ(resolved.problems[1].message,
            "wave \"prod\": no agent has registered cluster \"warehouse\"");
  EXPECT_EQ(resolved.problems[1].suggestion, "");
}

TEST(ResolvePlanClusters, EmptySelectorsSayWhichLabelsExist) {
  common::Plan plan;
  plan.waves = {selecting("a", {{"environment", "prodution"}}, 7),
                selecting("b", {{"env", "production"}}, 9),
                selecting("c", {{"environment", "staging"}, {"region", "us"}}, 11)};
  const PlanClusters resolved = resolvePlanClusters(plan, fleet());
  ASSERT_EQ(resolved.problems.size(), 3u);
  EXPECT_EQ(resolved.problems[0].message,
            "wave \"a\": selector {environment: prodution} matches no registered cluster; label "
            "\"environment\" has the values production, staging (did you mean environment: "
            "production?)");
  EXPECT_EQ(resolved.problems[1].suggestion,
            "no registered cluster has the label \"env\"; labels in use: environment, region");
  EXPECT_EQ(resolved.problems[2].suggestion,
            "every label matches some cluster, but no cluster has all of them");
  EXPECT_EQ(resolved.problems[2].line, 11);
}

TEST(ResolvePlanClusters, ASelectorLeftNothingByEarlierWavesIsRefused) {
  common::Plan plan;
  plan.waves = {selecting("eu", {{"region", "eu"}}),
                selecting("staging", {{"environment", "staging"}})};
  const PlanClusters resolved = resolvePlanClusters(plan, fleet());
  ASSERT_EQ(resolved.problems.size(), 1u);
  EXPECT_EQ(resolved.problems[0].message,
            "wave \"staging\": selector {environment: staging} matches only clusters that "
            "earlier waves take");
}

TEST(ResolvePlanClusters, AnEmptyRegistryRefusesEveryWave) {
  common::Plan plan;
  plan.waves = {named("staging", {"staging-eu"}), selecting("prod", {{"environment", "x"}})};
  const PlanClusters resolved = resolvePlanClusters(plan, {});
  ASSERT_EQ(resolved.problems.size(), 2u);
  EXPECT_TRUE(resolved.known.empty());
  EXPECT_EQ(resolved.problems[1].suggestion, "no registered cluster has the label \"environment\"");
}

// A wave that has not started shows what it will take after the earlier waves: those that
// started, what they took; those that did not, what they will take.
TEST(UpcomingWaveClusters, FollowTheEarlierWaves) {
  Deployment d;
  d.plan.waves = {selecting("first", {{"environment", "production"}, {"region", "eu"}}),
                  selecting("rest", {{"environment", "production"}})};
  d.waves.resize(2);
  const AgentsByName agents = fleet();
  EXPECT_EQ(upcomingWaveClusters(d, 0, agents), (Strings{"prod-eu-1"}));
  EXPECT_EQ(upcomingWaveClusters(d, 1, agents), (Strings{"prod-us-1"}));
  d.waves[0].resolved = true;
  d.waves[0].clusters.resize(1);
  d.waves[0].clusters[0].name = "prod-us-1";
  EXPECT_EQ(upcomingWaveClusters(d, 1, agents), (Strings{"prod-eu-1"}));
}

}  // namespace
}  // namespace flotilla::coordinator
