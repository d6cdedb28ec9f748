// An agent SIGKILLed in the middle of a step: the deployment does not hang, it rolls back.
#include <cstdlib>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// prod-eu-1's build marks that it started and then sleeps far longer than the test waits; the
// step timeout is longer still, so only the lost-agent deadline can end it.
const ScriptPlan kPlan{
    .version = "4.0.0",
    .build = logStep("build") +
             "; if [ $FLOTILLA_CLUSTER = prod-eu-1 ]; then echo $$ > @DIR@/prod-eu-1.build-pgid; "
             "touch @DIR@/prod-eu-1.build-started; sleep 30; fi",
    .rollback = logStep("rollback") + " && echo rolled-back > @DIR@/$FLOTILLA_CLUSTER.version",
    .timeout = "60s",
    .waves = {waveOf("staging", {"staging-eu"}), waveOf("production", {"prod-eu-1", "prod-us-1"}),
              waveOf("rest", {"prod-eu-2"})}};

class AgentKillTest : public FleetTest {};

TEST_F(AgentKillTest, KilledMidStepIsLostAndTheFleetRollsBack) {
  CoordinatorOptions options;
  options.agent_lost_after = "3s";
  ASSERT_NO_FATAL_FAILURE(startFleet(options));
  const std::string id = submitPlan("plan.yaml", kPlan.yaml());
  ASSERT_FALSE(id.empty());

  // prod-eu-1 is inside its long build, and its wave mate has applied and finished.
  ASSERT_TRUE(waitUntil("prod-eu-1's build to start",
                        [&] { return fileExists(dir() + "/prod-eu-1.build-started"); }));
  ASSERT_TRUE(waitUntil("prod-us-1 to succeed",
                        [&] { return clusterState(id, "prod-us-1") == "succeeded"; }));
  ASSERT_EQ(stateOf(id), "running");

  ASSERT_NO_FATAL_FAILURE(killAgent("prod-eu-1"));
  const auto killed_at = std::chrono::steady_clock::now();
  CommandResult wait = cli({"wait", id, "--timeout", "30s"});
  const auto took = std::chrono::steady_clock::now() - killed_at;
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_NE(wait.out.find(id + " rolled_back"), std::string::npos) << wait.out;
  EXPECT_EQ(stateOf(id), "rolled_back");
  // Not before the silence deadline (3 s after the last heartbeat, at most 250 ms before the kill).
  EXPECT_GE(took, 2500ms);

  // The killed cluster never applied, so it has nothing to roll back; those that applied did.
  EXPECT_EQ(stepLog(id, "prod-eu-1"), (std::vector<std::string>{"build"}));
  EXPECT_EQ(stepLog(id, "staging-eu"),
            (std::vector<std::string>{"build", "apply", "verify", "rollback"}));
  EXPECT_EQ(stepLog(id, "prod-us-1"),
            (std::vector<std::string>{"build", "apply", "verify", "rollback"}));
  EXPECT_EQ(versionOf("staging-eu"), "rolled-back");
  EXPECT_EQ(versionOf("prod-us-1"), "rolled-back");
  EXPECT_FALSE(hasStepLog(id, "prod-eu-2"));

  json detail = deployment(id);
  ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
  EXPECT_EQ(detail["failure"]["cluster"], "prod-eu-1");
  EXPECT_EQ(detail["failure"]["step"], "build");
  EXPECT_EQ(detail["waves"][2]["state"], "skipped");

  const json ev = events(id);
  int lost = findEvent(ev, "agent.lost", "production", "prod-eu-1", "build");
  EXPECT_GE(lost, 0);
  EXPECT_GT(findEvent(ev, "deployment.rolling_back"), lost);
  EXPECT_TRUE(eventsOf(ev, "rollback.started", "prod-eu-1").empty());
  EXPECT_EQ(ev.back()["type"], "deployment.rolled_back");

  json agents = get("/api/v1/agents").parsed();
  bool shown_lost = false;
  for (const auto& a : agents["agents"]) {
    shown_lost |= a["cluster"] == "prod-eu-1" && a["state"] == "lost";
  }
  EXPECT_TRUE(shown_lost) << agents.dump();

  // Restarted on its state dir, the agent comes back and does not run the interrupted build again.
  ASSERT_NO_FATAL_FAILURE(restartAgent("prod-eu-1"));
  ASSERT_NO_FATAL_FAILURE(waitForAgents({"prod-eu-1"}));
  EXPECT_TRUE(holdsFor(
      "the restarted agent runs nothing and the deployment stays rolled back",
      [&] { return stepLog(id, "prod-eu-1").size() == 1 && stateOf(id) == "rolled_back"; },
      1000ms));
}

// The on-call's view of an agent SIGKILLed mid-step: `unknown` within its heartbeat deadline
// (three 250 ms beats), in the API and in `flotilla agents` with the lost deadline, and in the
// deployment's status row; `lost` past the deadline.
TEST_F(AgentKillTest, KilledMidStepShowsUnknownWithinItsHeartbeatDeadline) {
  CoordinatorOptions options;
  options.agent_lost_after = "6s";
  ASSERT_NO_FATAL_FAILURE(startFleet(options));
  const std::string id = submitPlan("plan.yaml", kPlan.yaml());
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitUntil("prod-eu-1's build to start",
                        [&] { return fileExists(dir() + "/prod-eu-1.build-started"); }));
  auto agentState = [&](const std::string& cluster) {
    json agents = get("/api/v1/agents").parsed();
    for (const auto& a : agents["agents"]) {
      if (a["cluster"] == cluster) return a;
    }
    return json();
  };
  json before = agentState("prod-eu-1");
  ASSERT_EQ(before["state"], "connected") << before.dump();
  EXPECT_EQ(before["unknown_after_ms"], 750);
  EXPECT_EQ(before["lost_after_ms"], 6000);

  ASSERT_NO_FATAL_FAILURE(killAgent("prod-eu-1"));
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(waitUntil("prod-eu-1 to show unknown",
                        [&] { return agentState("prod-eu-1")["state"] == "unknown"; }));
  const auto took = std::chrono::steady_clock::now() - killed_at;
  // Three missed beats (750 ms) after the last one heard, plus the polling here.
  EXPECT_LE(took, 1500ms);
  EXPECT_EQ(agentState("prod-us-1")["state"], "connected") << "its neighbours still beat";

  CommandResult agents = cli({"agents"});
  ASSERT_EQ(agents.exit_code, 0) << agents.err;
  bool shown = false;
  for (const auto& line : linesOf(agents.out)) {
    if (line.rfind("prod-eu-1 ", 0) != 0) continue;
    shown = line.find("unknown (last seen ") != std::string::npos &&
            line.find("; lost at 6s)") != std::string::npos;
    EXPECT_TRUE(shown) << line;
  }
  EXPECT_TRUE(shown) << agents.out;
  CommandResult status = cli({"status", id});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("agent unknown (last seen"), std::string::npos) << status.out;

  ASSERT_TRUE(waitUntil("prod-eu-1 to show lost",
                        [&] { return agentState("prod-eu-1")["state"] == "lost"; }));
  EXPECT_GE(std::chrono::steady_clock::now() - killed_at, 5500ms);
  CommandResult wait = cli({"wait", id, "--timeout", "30s"});
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
}

// An agent that crashes mid-step and comes back before the deadline: the step is not run again,
// its effect is unknown, and the deployment rolls back saying so.
TEST_F(AgentKillTest, AgentRestartedMidStepDoesNotRunItAgain) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan("plan.yaml", kPlan.yaml());
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitUntil("prod-eu-1's build to start",
                        [&] { return fileExists(dir() + "/prod-eu-1.build-started"); }));
  // The agent records the step's process group in a second write after the spawn; a crash in
  // that window (one fsync) leaves leftovers it cannot find. Killed after it, as here, the
  // restarted agent must kill them.
  const std::string record =
      agentStateDir("prod-eu-1") + "/stages/" + id + "/prod-eu-1~build.1.json";
  ASSERT_TRUE(waitUntil("the build's process group to be recorded", [&] {
    json r = json::parse(readFile(record), nullptr, false);
    return r.is_object() && r.value("pgid", 0) > 0;
  }));
  ASSERT_NO_FATAL_FAILURE(killAgent("prod-eu-1"));
  ASSERT_NO_FATAL_FAILURE(restartAgent("prod-eu-1"));

  CommandResult wait = cli({"wait", id, "--timeout", "30s"});
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_EQ(stateOf(id), "rolled_back");
  EXPECT_EQ(stepLog(id, "prod-eu-1"), (std::vector<std::string>{"build"}));
  json detail = deployment(id);
  ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
  EXPECT_EQ(detail["failure"]["cluster"], "prod-eu-1");
  EXPECT_EQ(detail["failure"]["step"], "build");
  // The operator must learn that the step's effect is unknown (the agent says so), not an
  // internal detail of how the result travelled.
  const std::string message = detail["failure"]["message"].get<std::string>();
  EXPECT_NE(message.find("unknown"), std::string::npos) << "failure message: " << message;
  // The crashed agent's step (a process group of its own) must not run on after the restarted
  // agent reported it and the cluster was rolled back: finishing later, it would undo the
  // rollback. (The build here only sleeps; an apply would install the new version.)
  const pid_t group = std::atoi(readFile(dir() + "/prod-eu-1.build-pgid").c_str());
  ASSERT_GT(group, 0);
  // It was sent SIGKILL before the agent reported; on a loaded machine dying can take a moment.
  EXPECT_TRUE(waitUntil(
      "the interrupted build (process group " + std::to_string(group) +
          ") to be gone after rolled_back",
      [&] { return !groupAlive(group); }, 5000ms));
}

}  // namespace
}  // namespace flotilla::integration
