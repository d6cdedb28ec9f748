// Agents SIGKILLed mid-step (at their named crash points, while a step sleeps, and at random
// moments) and restarted on the same state dir: no step runs twice, an apply whose effect is
// unknown is re-checked with verify (never re-applied), and the rollout ends in the state that
// follows from what really happened on the cluster.
#include <map>
#include <random>
#include <thread>

#include "integration/rollout_check.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

const std::vector<std::string> kForward = {"build", "apply", "verify"};

struct AgentCrashPoint {
  const char* label;
  const char* failpoint;
  int hit;  // prod-eu-1 runs build (1), apply (2), verify (3)
  const char* expected;
  std::vector<std::string> prod_eu_1;  // what prod-eu-1's counter must show
  bool apply_unknown;                  // the coordinator must have been told "unknown"
};

void PrintTo(const AgentCrashPoint& p, std::ostream* os) { *os << p.failpoint << "@" << p.hit; }

class AgentCrashTest : public RolloutTest, public ::testing::WithParamInterface<AgentCrashPoint> {
 protected:
  // The fleet, with prod-eu-1's agent armed.
  void startFleetArmed(const std::string& spec) {
    ASSERT_NO_FATAL_FAILURE(startFleet());
    AgentLaunch launch;
    launch.env["FLOTILLA_FAILPOINTS"] = spec;
    ASSERT_NO_FATAL_FAILURE(restartAgent("prod-eu-1", launch));
    ASSERT_NO_FATAL_FAILURE(waitForAgents({"prod-eu-1"}));
  }
};

TEST_P(AgentCrashTest, KilledAtTheCrashPointRestartsWithoutRunningAStepTwice) {
  const AgentCrashPoint& p = GetParam();
  ASSERT_NO_FATAL_FAILURE(
      startFleetArmed(std::string(p.failpoint) + "=crash@" + std::to_string(p.hit)));
  const std::string id = submit(writeRollout());
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForAgentCrash("prod-eu-1", p.failpoint));
  ASSERT_NO_FATAL_FAILURE(restartAgent("prod-eu-1"));

  checkRollout(id, p.expected);
  EXPECT_EQ(counter("prod-eu-1", id), p.prod_eu_1);
  const json ev = events(id);
  EXPECT_EQ(findEvent(ev, "stage.unknown", "europe", "prod-eu-1", "apply") >= 0, p.apply_unknown);
  reportKills(1, std::string("agent ") + p.failpoint + "@" + std::to_string(p.hit));
}

INSTANTIATE_TEST_SUITE_P(
    CrashPoints, AgentCrashTest,
    ::testing::Values(
        // The record says apply started, but it never ran: verify finds the old version and the
        // rollout rolls back (apply is not sent again).
        AgentCrashPoint{"RecordedStartedNeverSpawned",
                        "agent.after_record_started_before_spawn",
                        2,
                        "rolled_back",
                        {"build", "verify", "rollback"},
                        true},
        // apply ran to the end, the agent died before recording it: verify finds the new
        // version, the rollout carries on.
        AgentCrashPoint{"ExitedNotRecorded", "agent.after_child_exit_before_record", 2, "succeeded",
                        kForward, true},
        // Recorded, never reported: the restarted agent reports it from the record.
        AgentCrashPoint{"RecordedNotReported", "agent.after_record_before_result", 2, "succeeded",
                        kForward, false},
        AgentCrashPoint{"VerifyRecordedNotReported", "agent.after_record_before_result", 3,
                        "succeeded", kForward, false}),
    [](const ::testing::TestParamInfo<AgentCrashPoint>& info) { return info.param.label; });

// ---- SIGKILL while a step sleeps ---------------------------------------------------------------

class AgentKilledMidStepTest : public RolloutTest {
 protected:
  // prod-eu-1's apply holds; its agent is SIGKILLed there and restarted.
  std::string killDuringApply(bool after_version_written) {
    EXPECT_NO_FATAL_FAILURE(startFleet());
    const std::string id = submit(writeRollout(applyHoldsOn("prod-eu-1", after_version_written)));
    EXPECT_FALSE(id.empty());
    EXPECT_TRUE(waitUntil("prod-eu-1's apply to start",
                          [&] { return fileExists(dir() + "/prod-eu-1.apply-started"); }));
    killAgent("prod-eu-1");
    restartAgent("prod-eu-1");
    return id;
  }
};

TEST_F(AgentKilledMidStepTest, ApplyThatTookIsVerifiedAndTheRolloutSucceeds) {
  const std::string id = killDuringApply(true);
  ASSERT_FALSE(id.empty());
  checkRollout(id, "succeeded");
  EXPECT_EQ(counter("prod-eu-1", id), kForward);
  const json ev = events(id);
  const int unknown = findEvent(ev, "stage.unknown", "europe", "prod-eu-1", "apply");
  EXPECT_GE(unknown, 0);
  EXPECT_GT(findEvent(ev, "stage.succeeded", "europe", "prod-eu-1", "verify"), unknown);
  reportKills(1, "agent SIGKILL during apply, after it took");
}

TEST_F(AgentKilledMidStepTest, ApplyThatDidNotTakeFailsVerifyAndRollsBack) {
  const std::string id = killDuringApply(false);
  ASSERT_FALSE(id.empty());
  checkRollout(id, "rolled_back");
  EXPECT_EQ(counter("prod-eu-1", id),
            (std::vector<std::string>{"build", "apply", "verify", "rollback"}));
  json detail = deployment(id);
  ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
  EXPECT_EQ(detail["failure"]["cluster"], "prod-eu-1");
  EXPECT_EQ(detail["failure"]["step"], "verify");
  reportKills(1, "agent SIGKILL during apply, before it took");
}

// ---- Random moments
// ------------------------------------------------------------------------------

TEST_F(AgentKilledMidStepTest, AgentsKilledAtRandomMomentsWhileRolloutsMoveForward) {
  std::mt19937 rng(crashSeed(5505));
  ASSERT_NO_FATAL_FAILURE(startFleet());
  std::uniform_int_distribution<int> delay_ms(100, 700);
  std::uniform_int_distribution<size_t> which(0, kUsualClusters.size() - 1);
  int kills = 0;
  std::map<std::string, int> endings;
  for (int round = 0; round < 3 && !HasFailure(); ++round) {
    const std::string id = submit(writeRollout());
    ASSERT_FALSE(id.empty());
    for (int i = 0; i < 3; ++i) {
      const int delay = delay_ms(rng);
      const std::string cluster = kUsualClusters[which(rng)];
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      // Only while moving forward: an interrupted rollback is not retried on its own (a human
      // looks), which would end this test's story in "failed".
      if (stateOf(id) != "running") break;
      std::cout << "[crash] SIGKILL agent " << cluster << " after " << delay << " ms" << std::endl;
      ASSERT_NO_FATAL_FAILURE(killAgent(cluster));
      ASSERT_NO_FATAL_FAILURE(restartAgent(cluster));
      ++kills;
    }
    const std::string final_state = checkRollout(id, "");
    std::cout << "[crash] " << id << " ended " << final_state << std::endl;
    ++endings[final_state];
  }
  EXPECT_GE(kills, 3);
  reportKills(kills, "agent SIGKILL at random moments, 3 rollouts (" +
                         std::to_string(endings["succeeded"]) + " succeeded, " +
                         std::to_string(endings["rolled_back"]) + " rolled back)");
}

}  // namespace
}  // namespace flotilla::integration
