// Tests for coordinator/registry.cpp: agents registering, coming back from the store, touching,
// going unknown then lost on a steady clock the test moves, and the selection of clusters by
// label that waves use.
#include "coordinator/registry.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace flotilla::coordinator {
namespace {

using namespace std::chrono_literals;
using Labels = std::map<std::string, std::string>;

const common::SteadyTime kStart = common::SteadyTime{} + 1000h;
const common::SystemTime kWall = common::SystemTime{} + 500000h;
constexpr uint64_t kEpoch = 7;

class RegistryTest : public ::testing::Test {
 protected:
  bool reg(const std::string& cluster, Labels labels, common::SteadyTime at = kStart,
           std::chrono::milliseconds heartbeat = 1s, const std::string& version = "1.0") {
    return registry_.registerAgent(cluster, std::move(labels), version, kEpoch, at, kWall,
                                   heartbeat);
  }
  AgentState stateOf(const std::string& cluster) const {
    const AgentInfo* a = registry_.find(cluster);
    EXPECT_NE(a, nullptr) << cluster;
    return a == nullptr ? AgentState::kLost : a->state;
  }
  Registry registry_;
};

TEST(AgentStateName, NamesEveryState) {
  EXPECT_STREQ(agentStateName(AgentState::kConnected), "connected");
  EXPECT_STREQ(agentStateName(AgentState::kUnknown), "unknown");
  EXPECT_STREQ(agentStateName(AgentState::kLost), "lost");
}

TEST_F(RegistryTest, RegisterRecordsTheAgentAndSaysWhatIsWorthPersisting) {
  EXPECT_TRUE(reg("staging-eu", {{"environment", "staging"}}));
  const AgentInfo* a = registry_.find("staging-eu");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->cluster, "staging-eu");
  EXPECT_EQ(a->labels, (Labels{{"environment", "staging"}}));
  EXPECT_EQ(a->agent_version, "1.0");
  EXPECT_EQ(a->state, AgentState::kConnected);
  EXPECT_EQ(a->epoch, kEpoch);
  EXPECT_EQ(a->heartbeat, 1s);
  EXPECT_EQ(a->last_seen, kStart);
  EXPECT_EQ(a->last_seen_wall, kWall);
  // The same again: nothing new to persist.
  EXPECT_FALSE(reg("staging-eu", {{"environment", "staging"}}, kStart + 5s));
  EXPECT_EQ(registry_.find("staging-eu")->last_seen, kStart + 5s);
  // New labels, or a new version, are.
  EXPECT_TRUE(reg("staging-eu", {{"environment", "staging"}, {"zone", "a"}}));
  EXPECT_TRUE(reg("staging-eu", {{"environment", "staging"}, {"zone", "a"}}, kStart, 1s, "1.1"));
  EXPECT_TRUE(reg("staging-eu", {}, kStart, 1s, "1.1"));
  EXPECT_EQ(registry_.agents().size(), 1u);
}

TEST_F(RegistryTest, RestoredAgentsAreUnknownUntilTheyRegisterAgain) {
  registry_.restore("prod-eu-1", {{"environment", "production"}}, "0.9", kStart, kWall);
  const AgentInfo* a = registry_.find("prod-eu-1");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->state, AgentState::kUnknown);
  EXPECT_EQ(a->epoch, 0u);
  EXPECT_EQ(a->heartbeat, 0ms);
  EXPECT_EQ(a->labels, (Labels{{"environment", "production"}}));
  EXPECT_FALSE(registry_.isLost("prod-eu-1"));
  // Not registered this run: a touch does not count, whatever the epoch.
  EXPECT_FALSE(registry_.touch("prod-eu-1", 0, kStart + 1s, kWall));
  EXPECT_FALSE(registry_.touch("prod-eu-1", kEpoch, kStart + 1s, kWall));
  EXPECT_EQ(stateOf("prod-eu-1"), AgentState::kUnknown);
  // It registers: labels and version as before, nothing new to persist.
  EXPECT_FALSE(reg("prod-eu-1", {{"environment", "production"}}, kStart + 2s, 1s, "0.9"));
  EXPECT_EQ(stateOf("prod-eu-1"), AgentState::kConnected);
  EXPECT_TRUE(registry_.touch("prod-eu-1", kEpoch, kStart + 3s, kWall + 3s));
}

TEST_F(RegistryTest, TouchKeepsOnlyAgentsOfThisEpochAlive) {
  EXPECT_FALSE(registry_.touch("nobody", kEpoch, kStart, kWall));
  reg("staging-eu", {});
  EXPECT_FALSE(registry_.touch("staging-eu", kEpoch + 1, kStart + 1s, kWall));
  EXPECT_FALSE(registry_.touch("staging-eu", kEpoch - 1, kStart + 1s, kWall));
  EXPECT_EQ(registry_.find("staging-eu")->last_seen, kStart);
  EXPECT_TRUE(registry_.touch("staging-eu", kEpoch, kStart + 2s, kWall + 2s));
  EXPECT_EQ(registry_.find("staging-eu")->last_seen, kStart + 2s);
  EXPECT_EQ(registry_.find("staging-eu")->last_seen_wall, kWall + 2s);
}

TEST_F(RegistryTest, SilenceMakesAnAgentUnknownAfterThreeHeartbeatsThenLost) {
  reg("staging-eu", {}, kStart, 1s);
  bool changed = true;
  EXPECT_TRUE(registry_.expire(kStart + 3s, 10s, &changed).empty());
  EXPECT_FALSE(changed);
  EXPECT_EQ(stateOf("staging-eu"), AgentState::kConnected) << "three heartbeats exactly";
  EXPECT_TRUE(registry_.expire(kStart + 3001ms, 10s, &changed).empty());
  EXPECT_TRUE(changed);
  EXPECT_EQ(stateOf("staging-eu"), AgentState::kUnknown);
  EXPECT_FALSE(registry_.isLost("staging-eu"));
  // A word from it and it is connected again.
  EXPECT_TRUE(registry_.touch("staging-eu", kEpoch, kStart + 4s, kWall));
  EXPECT_EQ(stateOf("staging-eu"), AgentState::kConnected);
  EXPECT_TRUE(registry_.expire(kStart + 14s, 10s, &changed).empty()) << "the deadline exactly";
  EXPECT_EQ(registry_.expire(kStart + 14001ms, 10s, &changed),
            std::vector<std::string>{"staging-eu"});
  EXPECT_TRUE(changed);
  EXPECT_EQ(stateOf("staging-eu"), AgentState::kLost);
  EXPECT_TRUE(registry_.isLost("staging-eu"));
  // Lost once: not reported again.
  EXPECT_TRUE(registry_.expire(kStart + 60s, 10s, &changed).empty());
  EXPECT_FALSE(changed);
}

TEST_F(RegistryTest, TwoThirdsOfTheDeadlineComesFirstForSlowHeartbeats) {
  // Heartbeats every 5 s, lost after 6 s: unknown after 4 s, not 15.
  reg("staging-eu", {}, kStart, 5s);
  registry_.expire(kStart + 4s, 6s);
  EXPECT_EQ(stateOf("staging-eu"), AgentState::kConnected);
  registry_.expire(kStart + 4001ms, 6s);
  EXPECT_EQ(stateOf("staging-eu"), AgentState::kUnknown);
}

TEST_F(RegistryTest, ARestoredAgentGetsAWholeDeadlineToComeBack) {
  registry_.restore("prod-eu-1", {}, "1.0", kStart, kWall);
  bool changed = true;
  EXPECT_TRUE(registry_.expire(kStart + 10s, 10s, &changed).empty());
  EXPECT_FALSE(changed) << "already unknown, and no heartbeat was asked of it";
  EXPECT_EQ(registry_.expire(kStart + 10001ms, 10s), std::vector<std::string>{"prod-eu-1"});
}

TEST_F(RegistryTest, ALostAgentMustRegisterAgain) {
  reg("staging-eu", {{"environment", "staging"}});
  ASSERT_EQ(registry_.expire(kStart + 11s, 10s).size(), 1u);
  // Its frames are not taken for a sign of life: what it holds must be reconciled first.
  EXPECT_FALSE(registry_.touch("staging-eu", kEpoch, kStart + 12s, kWall));
  EXPECT_EQ(stateOf("staging-eu"), AgentState::kLost);
  EXPECT_FALSE(reg("staging-eu", {{"environment", "staging"}}, kStart + 12s));
  EXPECT_EQ(stateOf("staging-eu"), AgentState::kConnected);
  EXPECT_TRUE(registry_.touch("staging-eu", kEpoch, kStart + 13s, kWall));
}

TEST_F(RegistryTest, ExpireReportsOnlyTheNewlyLostAmongMany) {
  reg("a", {}, kStart);
  reg("b", {}, kStart + 5s);
  registry_.restore("c", {}, "1.0", kStart, kWall);
  EXPECT_EQ(registry_.expire(kStart + 11s, 10s), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(stateOf("b"), AgentState::kUnknown);
  EXPECT_EQ(registry_.expire(kStart + 16s, 10s), std::vector<std::string>{"b"});
  // Without `changed`.
  EXPECT_TRUE(registry_.expire(kStart + 20s, 10s, nullptr).empty());
}

TEST_F(RegistryTest, SelectMatchesEveryPairAndSkipsLostAgents) {
  reg("staging-eu", {{"environment", "staging"}, {"region", "eu"}});
  reg("prod-us-1", {{"environment", "production"}, {"region", "us"}, {"tier", "1"}});
  reg("prod-eu-2", {{"environment", "production"}, {"region", "eu"}, {"tier", "2"}});
  reg("prod-eu-1", {{"environment", "production"}, {"region", "eu"}, {"tier", "1"}});
  EXPECT_EQ(registry_.select({{"environment", "production"}}),
            (std::vector<std::string>{"prod-eu-1", "prod-eu-2", "prod-us-1"}));
  EXPECT_EQ(registry_.select({{"environment", "production"}, {"region", "eu"}}),
            (std::vector<std::string>{"prod-eu-1", "prod-eu-2"}));
  EXPECT_EQ(registry_.select({{"tier", "1"}, {"region", "eu"}}),
            std::vector<std::string>{"prod-eu-1"});
  EXPECT_TRUE(registry_.select({{"environment", "Production"}}).empty()) << "values are exact";
  EXPECT_TRUE(registry_.select({{"missing", ""}}).empty()) << "an absent label is not empty";
  EXPECT_EQ(registry_.select({}).size(), 4u);
  // An unknown agent is still selected; a lost one is not.
  ASSERT_TRUE(registry_.touch("prod-eu-1", kEpoch, kStart + 9s, kWall));
  registry_.expire(kStart + 12s, 10s);
  EXPECT_EQ(stateOf("prod-eu-1"), AgentState::kConnected);
  EXPECT_EQ(registry_.select({{"environment", "production"}}),
            std::vector<std::string>{"prod-eu-1"});
  registry_.expire(kStart + 13s, 10s);
  EXPECT_EQ(stateOf("prod-eu-1"), AgentState::kUnknown);
  EXPECT_EQ(registry_.select({{"environment", "production"}}),
            std::vector<std::string>{"prod-eu-1"});
}

TEST_F(RegistryTest, RemoveForgetsTheCluster) {
  reg("staging-eu", {{"environment", "staging"}});
  registry_.remove("staging-eu");
  EXPECT_EQ(registry_.find("staging-eu"), nullptr);
  EXPECT_TRUE(registry_.isLost("staging-eu")) << "an unknown cluster counts as lost";
  EXPECT_TRUE(registry_.select({}).empty());
  EXPECT_FALSE(registry_.touch("staging-eu", kEpoch, kStart, kWall));
  registry_.remove("never-there");
  EXPECT_TRUE(registry_.agents().empty());
}

TEST_F(RegistryTest, UnknownAfterIsThreeHeartbeatsOrTwoThirdsOfTheDeadline) {
  reg("fast", {}, kStart, 1s);
  reg("slow", {}, kStart, 8s);
  EXPECT_EQ(unknownAfter(*registry_.find("fast"), 15s), 3s);
  EXPECT_EQ(unknownAfter(*registry_.find("slow"), 15s), 10s);
  registry_.restore("restored", {}, "1.0", kStart, kWall);
  EXPECT_EQ(unknownAfter(*registry_.find("restored"), 15s), 0ms);
}

TEST_F(RegistryTest, ViewJudgesTheStateAgainstNowNotTheLastPass) {
  reg("staging-eu", {});
  const AgentInfo& a = *registry_.find("staging-eu");
  AgentView v = viewAgent(a, kStart + 2s, 15s);
  EXPECT_EQ(v.state, AgentState::kConnected);
  EXPECT_EQ(v.silent, 2s);
  EXPECT_EQ(v.unknown_after, 3s);
  EXPECT_EQ(v.lost_after, 15s);
  // No expire() pass ran: the registry still says connected, the view does not.
  EXPECT_EQ(a.state, AgentState::kConnected);
  EXPECT_EQ(viewAgent(a, kStart + 3s, 15s).state, AgentState::kConnected);
  EXPECT_EQ(viewAgent(a, kStart + 3001ms, 15s).state, AgentState::kUnknown);
  EXPECT_EQ(viewAgent(a, kStart + 15s, 15s).state, AgentState::kUnknown);
  EXPECT_EQ(viewAgent(a, kStart + 38s, 15s).state, AgentState::kLost);
  EXPECT_EQ(viewAgent(a, kStart + 38s, 15s).silent, 38s);
}

TEST_F(RegistryTest, ViewNeverMakesALostOrRestoredAgentLookBetter) {
  reg("gone", {});
  registry_.expire(kStart + 16s, 15s);
  ASSERT_EQ(stateOf("gone"), AgentState::kLost);
  // A clock read before the pass (another thread) does not bring it back.
  EXPECT_EQ(viewAgent(*registry_.find("gone"), kStart + 1s, 15s).state, AgentState::kLost);
  registry_.restore("restored", {}, "1.0", kStart, kWall);
  AgentView v = viewAgent(*registry_.find("restored"), kStart + 1s, 15s);
  EXPECT_EQ(v.state, AgentState::kUnknown);
  EXPECT_EQ(v.unknown_after, 0ms);
  EXPECT_EQ(viewAgent(*registry_.find("restored"), kStart + 16s, 15s).state, AgentState::kLost);
  // A clock behind last_seen (a snapshot newer than the reader's now) reads as no silence.
  EXPECT_EQ(viewAgent(*registry_.find("restored"), kStart - 1s, 15s).silent, 0ms);
}

}  // namespace
}  // namespace flotilla::coordinator
