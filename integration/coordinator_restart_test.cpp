// Coordinator stopped or killed mid-deployment: after a restart it finishes, no step runs twice.
#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

const std::string kGatedPlan =
    ScriptPlan{.version = "5.0.0",
               .waves = {waveOf("staging", {"staging-eu"}),
                         waveOf("production", {"prod-eu-1", "prod-eu-2"}, {"approval: required"})}}
        .yaml();

// apply takes 2 s and marks its start, so the test can crash the coordinator while it runs.
const std::string kSlowApplyPlan = ScriptPlan{
    .version = "6.0.0",
    .apply = logStep("apply") + " && touch @DIR@/$FLOTILLA_CLUSTER.apply-started && sleep 2 && " +
             kRecordVersion,
    .waves = {waveOf("first", {"staging-eu", "prod-eu-1"}),
              waveOf("second",
                     {"prod-eu-2",
                      "prod-us-1"})}}.yaml();

const std::vector<std::string> kForward = {"build", "apply", "verify"};

class CoordinatorRestartTest : public FleetTest {
 protected:
  // The finished record the agent keeps for a stage (agent/stage_record.hpp draws the layout).
  bool agentFinished(const std::string& cluster, const std::string& id, const std::string& step) {
    json record = json::parse(
        readFile(agentStateDir(cluster) + "/stages/" + id + "/" + cluster + "~" + step + ".1.json"),
        nullptr, false);
    return record.is_object() && record.value("state", "") == "finished";
  }

  // The fleet, and kSlowApplyPlan once both applies of its first wave run: the id ("" after a
  // failure, recorded).
  std::string startSlowApply() {
    EXPECT_NO_FATAL_FAILURE(startFleet());
    if (HasFatalFailure()) return "";
    const std::string id = submitPlan("plan.yaml", kSlowApplyPlan);
    if (id.empty()) return "";
    const bool running = waitUntil("both applies of wave 1 to be running", [&] {
      return fileExists(dir() + "/staging-eu.apply-started") &&
             fileExists(dir() + "/prod-eu-1.apply-started");
    });
    return running ? id : "";
  }
};

TEST_F(CoordinatorRestartTest, StoppedWhileAwaitingApprovalResumesAndFinishes) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan("plan.yaml", kGatedPlan);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "awaiting_approval"));
  const json before = events(id);

  ASSERT_NO_FATAL_FAILURE(stopCoordinator());
  CommandResult down = cli({"status", id});
  EXPECT_EQ(down.exit_code, 2) << down.out << down.err;

  ASSERT_NO_FATAL_FAILURE(restartCoordinator());
  json detail = deployment(id);
  ASSERT_TRUE(detail.is_object()) << "GET /api/v1/deployments/" << id << " after the restart";
  EXPECT_EQ(detail["state"], "awaiting_approval");
  EXPECT_EQ(detail["current_wave"], "production");
  EXPECT_EQ(detail["waves"][0]["state"], "succeeded");
  // The history survived as it was.
  json after = events(id);
  ASSERT_GE(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i], before[i]);

  ASSERT_NO_FATAL_FAILURE(waitForAgents(kUsualClusters));
  CommandResult approve = cli({"approve", id});
  EXPECT_EQ(approve.exit_code, 0) << approve.out << approve.err;
  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err;

  for (const char* cluster : {"staging-eu", "prod-eu-1", "prod-eu-2"}) {
    EXPECT_EQ(stepLog(id, cluster), kForward) << cluster;
    EXPECT_EQ(versionOf(cluster), "5.0.0") << cluster;
  }
  EXPECT_FALSE(hasStepLog(id, "prod-us-1"));
  const json ev = events(id);
  for (size_t i = 1; i < ev.size(); ++i) {
    EXPECT_GT(ev[i]["seq"].get<long long>(), ev[i - 1]["seq"].get<long long>());
  }
  EXPECT_EQ(ev.back()["type"], "deployment.succeeded");
}

TEST_F(CoordinatorRestartTest, KilledMidWaveFinishesWithoutRunningAStepTwice) {
  const std::string id = startSlowApply();
  ASSERT_FALSE(id.empty());
  ASSERT_FALSE(agentFinished("staging-eu", id, "apply")) << "too late to crash mid-step";

  ASSERT_NO_FATAL_FAILURE(killCoordinator());
  ASSERT_NO_FATAL_FAILURE(restartCoordinator());
  ASSERT_TRUE(waitForState(id, "succeeded"));
  CommandResult wait = cli({"wait", id, "--timeout", "30s"});
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err;

  for (const auto& cluster : kUsualClusters) {
    EXPECT_EQ(stepLog(id, cluster), kForward) << cluster;
    EXPECT_EQ(versionOf(cluster), "6.0.0") << cluster;
  }
}

// The harder case: the steps in flight finish while no coordinator runs, so their results have
// nobody to go to; the restarted coordinator must learn them from the agents, not re-run them.
TEST_F(CoordinatorRestartTest, StepsThatFinishWhileItIsDownAreNotRunAgain) {
  const std::string id = startSlowApply();
  ASSERT_FALSE(id.empty());

  ASSERT_NO_FATAL_FAILURE(killCoordinator());
  ASSERT_TRUE(waitUntil("the agents to finish apply with no coordinator", [&] {
    return agentFinished("staging-eu", id, "apply") && agentFinished("prod-eu-1", id, "apply");
  }));
  ASSERT_NO_FATAL_FAILURE(restartCoordinator());
  ASSERT_TRUE(waitForState(id, "succeeded"));

  for (const auto& cluster : kUsualClusters) {
    EXPECT_EQ(stepLog(id, cluster), kForward) << cluster;
    EXPECT_EQ(versionOf(cluster), "6.0.0") << cluster;
  }
}

}  // namespace
}  // namespace flotilla::integration
