// An agent asked to stop (SIGTERM, as systemd and a package upgrade do) while a step runs: it
// lets the step finish and report, starts no new one, and exits; restarted, it is sent the
// step it did not start and the rollout goes on with no step run twice and none "unknown". A
// second signal, or --stop-timeout running out, stops it at once: then the step is reported
// unknown after the restart, as after a crash.
#include <signal.h>

#include <fstream>
#include <thread>

#include "integration/rollout_check.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

const std::vector<std::string> kForward = {"build", "apply", "verify"};

class AgentDrainTest : public RolloutTest {
 protected:
  // The fleet, prod-eu-1's agent started with --stop-timeout `stop_timeout`, and a rollout
  // whose apply on prod-eu-1 holds (after it took) until released. Returns the deployment
  // once that apply runs.
  std::string holdApply(const std::string& stop_timeout) {
    EXPECT_NO_FATAL_FAILURE(startFleet());
    AgentLaunch launch;
    launch.stop_timeout = stop_timeout;
    EXPECT_NO_FATAL_FAILURE(restartAgent("prod-eu-1", launch));
    EXPECT_NO_FATAL_FAILURE(waitForAgents({"prod-eu-1"}));
    RolloutShape shape = applyHoldsOn("prod-eu-1", true);
    shape.hold_until_released = true;
    const std::string id = submit(writeRollout(shape));
    EXPECT_FALSE(id.empty());
    EXPECT_TRUE(waitUntil("prod-eu-1's apply to start",
                          [&] { return fileExists(dir() + "/prod-eu-1.apply-started"); }));
    return id;
  }

  void signalAgent(int sig) {
    const pid_t pid = agentPid("prod-eu-1");
    ASSERT_GT(pid, 0);
    ASSERT_EQ(::kill(pid, sig), 0);
  }

  bool logSays(const std::string& text) {
    std::ifstream in(agentLog("prod-eu-1"));
    const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return log.find(text) != std::string::npos;
  }

  void release() { writeFile(dir() + "/prod-eu-1.release", "go\n"); }
};

TEST_F(AgentDrainTest, SigtermLetsTheRunningStepFinishAndTheNextOneWaitsForTheRestart) {
  const std::string id = holdApply("30s");
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(signalAgent(SIGTERM));
  ASSERT_TRUE(waitUntil("the agent to say it drains", [&] { return logSays("draining"); }));
  // Still there while its step runs: well past a moment an immediate stop would take.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(agentRunning("prod-eu-1")) << "the agent stopped before its step ended";

  release();
  // apply ends and is reported; the agent exits (a verify sent meanwhile is not started).
  ASSERT_TRUE(waitUntil("the drained agent to exit", [&] { return !agentRunning("prod-eu-1"); }));
  EXPECT_EQ(counter("prod-eu-1", id), (std::vector<std::string>{"build", "apply"}));

  ASSERT_NO_FATAL_FAILURE(restartAgent("prod-eu-1"));
  checkRollout(id, "succeeded");
  EXPECT_EQ(counter("prod-eu-1", id), kForward);
  const json ev = events(id);
  EXPECT_LT(findEvent(ev, "stage.unknown"), 0) << ev.dump(1);
  EXPECT_GE(findEvent(ev, "stage.succeeded", "europe", "prod-eu-1", "apply"), 0);
}

TEST_F(AgentDrainTest, ASecondSignalStopsAtOnceAndTheStepIsUnknown) {
  const std::string id = holdApply("30s");
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(signalAgent(SIGTERM));
  ASSERT_TRUE(waitUntil("the agent to say it drains", [&] { return logSays("draining"); }));
  ASSERT_NO_FATAL_FAILURE(signalAgent(SIGINT));
  ASSERT_TRUE(waitUntil("the agent to exit on the second signal",
                        [&] { return !agentRunning("prod-eu-1"); }));
  release();
  ASSERT_NO_FATAL_FAILURE(restartAgent("prod-eu-1"));
  // The apply took before it was stopped: verify finds the new version and the rollout goes on.
  checkRollout(id, "succeeded");
  EXPECT_EQ(counter("prod-eu-1", id), kForward);
  EXPECT_GE(findEvent(events(id), "stage.unknown", "europe", "prod-eu-1", "apply"), 0);
}

TEST_F(AgentDrainTest, TheStopTimeoutBoundsTheDrain) {
  const std::string id = holdApply("1s");
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(signalAgent(SIGTERM));
  ASSERT_TRUE(waitUntil("the agent to give up draining after 1s",
                        [&] { return !agentRunning("prod-eu-1"); }));
  EXPECT_TRUE(logSays("will be reported unknown"));
  release();
  ASSERT_NO_FATAL_FAILURE(restartAgent("prod-eu-1"));
  checkRollout(id, "succeeded");
  EXPECT_EQ(counter("prod-eu-1", id), kForward);
  EXPECT_GE(findEvent(events(id), "stage.unknown", "europe", "prod-eu-1", "apply"), 0);
}

}  // namespace
}  // namespace flotilla::integration
