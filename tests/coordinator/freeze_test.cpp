// Tests for the incident freeze's record and rules (coordinator/freeze.cpp): the stored form
// through a real store, ids, input checks, which environments a plan or deployment touches,
// and which freeze covers it.
#include "coordinator/freeze.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordinator/store.hpp"
#include "tests/support/files.hpp"

namespace flotilla::coordinator {
namespace {

AgentsByName fleet() {
  AgentsByName agents;
  auto add = [&](const std::string& name, std::map<std::string, std::string> labels) {
    AgentInfo a;
    a.cluster = name;
    a.labels = std::move(labels);
    agents[name] = a;
  };
  add("staging-eu", {{"environment", "staging"}});
  add("prod-eu-1", {{"environment", "production"}, {"region", "eu"}});
  add("prod-us-1", {{"environment", "production"}, {"region", "us"}});
  add("lab-1", {});
  return agents;
}

common::Wave wave(const std::string& name, std::vector<std::string> clusters,
                  std::map<std::string, std::string> selector = {}) {
  common::Wave w;
  w.name = name;
  w.clusters = std::move(clusters);
  w.selector = std::move(selector);
  return w;
}

common::Plan plan(std::vector<common::Wave> waves) {
  common::Plan p;
  p.service = "checkout";
  p.version = "2.0.0";
  p.waves = std::move(waves);
  return p;
}

Freeze active(uint64_t seq, const std::string& env) {
  Freeze f;
  f.seq = seq;
  f.reason = "INC-" + std::to_string(seq);
  f.environment = env;
  f.by = "root";
  f.at_ms = 1'800'000'000'000;
  return f;
}

TEST(FreezeTest, RecordRoundTripThroughTheStore) {
  support::TempDir dir("freeze-test");
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status().toString();
  Freeze fleet_wide = active(1, "");
  fleet_wide.lifted_by = "root";
  fleet_wide.lifted_ms = 1'800'000'100'000;
  fleet_wide.notes = {{"post-mortem: https://wiki/INC-1", "alice", 1'800'000'200'000},
                      {"ünïcode\nand a second line", "bob", 1'800'000'300'000}};
  Freeze production = active(12, "production");
  ASSERT_TRUE((*store)->putRecord(freezeKey(12), freezeToJsonText(production)).ok());
  ASSERT_TRUE((*store)->putRecord(freezeKey(1), freezeToJsonText(fleet_wide)).ok());
  auto loaded = loadFreezes(**store);
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0], fleet_wide);  // key order is id order: 1 before 12
  EXPECT_EQ((*loaded)[1], production);
  EXPECT_FALSE((*loaded)[0].active());
  EXPECT_TRUE((*loaded)[1].active());
  EXPECT_EQ(freezeKey(12), "freeze/0000000000000012");

  // A damaged record is reported, not skipped.
  ASSERT_TRUE((*store)->putRecord(freezeKey(13), "{\"seq\": 13}").ok());
  EXPECT_TRUE(loadFreezes(**store).status().isCorruption());
  EXPECT_FALSE(freezeFromJsonText("not json").ok());
}

TEST(FreezeTest, Ids) {
  EXPECT_EQ(parseFreezeId("freeze-1"), 1u);
  EXPECT_EQ(parseFreezeId("freeze-120"), 120u);
  for (const char* bad : {"freeze-", "freeze-0", "freeze-01", "freeze-1a", "checkout-1",
                          "freeze--1", "freeze-1234567890123456", "FREEZE-1", ""}) {
    EXPECT_FALSE(parseFreezeId(bad).has_value()) << bad;
  }
  EXPECT_EQ(active(7, "").id(), "freeze-7");
}

TEST(FreezeTest, InputIsBounded) {
  EXPECT_TRUE(checkFreezeReason("INC-42: database failover").ok());
  EXPECT_TRUE(checkFreezeReason("").isInvalidArgument());
  EXPECT_TRUE(checkFreezeReason(std::string(kMaxFreezeReasonBytes, 'x')).ok());
  EXPECT_TRUE(checkFreezeReason(std::string(kMaxFreezeReasonBytes + 1, 'x')).isInvalidArgument());
  EXPECT_TRUE(checkFreezeReason("two\nlines").isInvalidArgument());
  EXPECT_TRUE(checkFreezeReason(std::string("nul\0byte", 8)).isInvalidArgument());
  EXPECT_TRUE(checkFreezeEnvironment("").ok());
  EXPECT_TRUE(checkFreezeEnvironment("production").ok());
  EXPECT_TRUE(checkFreezeEnvironment("prod uction").isInvalidArgument());
  EXPECT_TRUE(checkFreezeEnvironment(std::string(200, 'p')).isInvalidArgument());
  EXPECT_TRUE(checkFreezeNote("post-mortem:\nhttps://wiki/INC-1\tdone").ok());
  EXPECT_TRUE(checkFreezeNote("").isInvalidArgument());
  EXPECT_TRUE(checkFreezeNote(std::string(kMaxFreezeNoteBytes + 1, 'n')).isInvalidArgument());
  EXPECT_TRUE(checkFreezeNote("bell\a").isInvalidArgument());
}

TEST(FreezeTest, EnvironmentsTouched) {
  const AgentsByName agents = fleet();
  EXPECT_EQ(environmentsTouched(plan({wave("staging", {"staging-eu"})}), {}, agents),
            (std::set<std::string>{"staging"}));
  EXPECT_EQ(environmentsTouched(
                plan({wave("staging", {"staging-eu"}), wave("prod", {}, {{"region", "us"}})}), {},
                agents),
            (std::set<std::string>{"staging", "production"}));
  // Unlabelled and unknown clusters add nothing.
  EXPECT_TRUE(environmentsTouched(plan({wave("lab", {"lab-1", "ghost"})}), {}, agents).empty());
  // A wave that started counts the clusters it took, not what its selector would take now.
  common::Plan p = plan({wave("prod", {}, {{"environment", "production"}})});
  std::vector<WaveProgress> progress(1);
  progress[0].resolved = true;
  ClusterProgress c;
  c.name = "staging-eu";
  progress[0].clusters.push_back(c);
  EXPECT_EQ(environmentsTouched(p, progress, agents), (std::set<std::string>{"staging"}));
}

TEST(FreezeTest, CoveringFreezeAndTheSubmissionCheck) {
  const AgentsByName agents = fleet();
  const common::Plan staging = plan({wave("staging", {"staging-eu"})});
  const common::Plan both =
      plan({wave("staging", {"staging-eu"}), wave("prod", {}, {{"environment", "production"}})});
  std::vector<Freeze> freezes = {active(1, "production")};
  EXPECT_TRUE(checkSubmissionAllowed(staging, freezes, agents).ok());
  const Freeze* blocking = nullptr;
  common::Status refused = checkSubmissionAllowed(both, freezes, agents, &blocking);
  ASSERT_TRUE(refused.isFailedPrecondition());
  ASSERT_NE(blocking, nullptr);
  EXPECT_EQ(blocking->id(), "freeze-1");
  EXPECT_NE(refused.message().find("freeze-1 (environment production) by root since "),
            std::string::npos)
      << refused.message();
  EXPECT_NE(refused.message().find(": INC-1"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("flotilla unfreeze --env production"), std::string::npos);

  // A fleet-wide freeze covers everything, unlabelled clusters included, and comes first.
  freezes.push_back(active(2, ""));
  EXPECT_EQ(coveringFreeze(freezes, environmentsTouched(both, {}, agents))->id(), "freeze-2");
  EXPECT_TRUE(checkSubmissionAllowed(plan({wave("lab", {"lab-1"})}), freezes, agents)
                  .isFailedPrecondition());
  // Lifted freezes cover nothing.
  for (auto& f : freezes) f.lifted_ms = 1;
  EXPECT_TRUE(checkSubmissionAllowed(both, freezes, agents, &blocking).ok());
  EXPECT_EQ(blocking, nullptr);
}

TEST(FreezeTest, OnlyAHotfixWhoseRulesAllowItPassesAFreeze) {
  const AgentsByName agents = fleet();
  common::Plan hotfix =
      plan({wave("staging", {"staging-eu"}), wave("prod", {}, {{"environment", "production"}})});
  hotfix.hotfix = common::PlanHotfix{"INC-2: fix", common::Hotfix{}};
  const std::vector<Freeze> freezes = {active(1, "production"), active(2, "")};
  // Rules that do not allow it (the defaults, without a policy): refused, saying why.
  common::Status refused = checkSubmissionAllowed(hotfix, freezes, agents);
  ASSERT_TRUE(refused.isFailedPrecondition());
  EXPECT_NE(refused.message().find("the policy does not allow hotfixes during a freeze"),
            std::string::npos)
      << refused.message();
  EXPECT_FALSE(passesFreezes(hotfix));

  hotfix.hotfix->rules.allowed_during_freeze = true;
  EXPECT_TRUE(passesFreezes(hotfix));
  const Freeze* blocking = &freezes[0];
  EXPECT_TRUE(checkSubmissionAllowed(hotfix, freezes, agents, &blocking).ok());
  EXPECT_EQ(blocking, nullptr);
  // And a running one is not held, whenever the freeze began.
  Deployment d;
  d.plan = hotfix;
  EXPECT_EQ(coveringFreeze(freezes, d, agents), nullptr);
  d.plan.hotfix.reset();
  EXPECT_NE(coveringFreeze(freezes, d, agents), nullptr);
}

}  // namespace
}  // namespace flotilla::coordinator
