// Failures roll the fleet back: failed apply, timeout, abort, failed rollback, manual, scope.
#include <sys/stat.h>

#include <cstdlib>
#include <set>
#include <sstream>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// apply writes the version and then runs `fail` (`true` for a good release, failing on
// prod-eu-2 for a bad one), as a half-done apply would; rollback restores the previous version.
std::string plan(const std::string& version, const std::string& fail) {
  const ScriptPlan plan{
      .version = version,
      .driver_line = true,
      .apply = logStep("apply") + " && " + kRecordVersion + " && " + fail,
      .rollback = logStep("rollback") +
                  " && echo $FLOTILLA_PREVIOUS_VERSION > @DIR@/$FLOTILLA_CLUSTER.version",
      .waves = {waveOf("staging", {"staging-eu"}),
                waveOf("prod-eu", {"prod-eu-1", "prod-eu-2"}, {"max_parallel: 1"}),
                waveSelecting("prod-us", "region: us")}};
  return plan.yaml();
}

// Two waves, staging-eu then prod-eu-1, through `build` and `apply` (no verify) and `rollback`
// with `timeout`.
std::string twoWavePlan(const std::string& build, const std::string& apply,
                        const std::string& rollback, const std::string& timeout) {
  const ScriptPlan plan{
      .version = "2.0.0",
      .build = build,
      .apply = apply,
      .verify = "",
      .rollback = rollback,
      .timeout = timeout,
      .waves = {waveOf("staging", {"staging-eu"}), waveOf("prod", {"prod-eu-1"})}};
  return plan.yaml();
}

class RollbackTest : public FleetTest {
 protected:
  // A good release first, so that every cluster has a previous version to go back to.
  void deployBaseline() {
    const std::string baseline = submitPlan("baseline.yaml", plan("1.0.0", "true"));
    ASSERT_FALSE(baseline.empty());
    ASSERT_TRUE(waitForState(baseline, "succeeded"));
  }

  // `flotilla wait` for `id`: it ends rolled back in under 15 s, cut short (`cut_short` says
  // what would have taken longer).
  void expectRolledBackQuickly(const std::string& id, const std::string& cut_short) {
    const auto start = std::chrono::steady_clock::now();
    CommandResult wait = cli({"wait", id, "--timeout", "30s"});
    EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 15s) << cut_short;
    EXPECT_EQ(stateOf(id), "rolled_back");
  }
};

TEST_F(RollbackTest, FailedApplyInWaveTwoRollsBackWavesOneAndTwoOnly) {
  ASSERT_NO_FATAL_FAILURE(startFleet());

  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  for (const char* cluster : {"staging-eu", "prod-eu-1", "prod-eu-2", "prod-us-1"}) {
    ASSERT_EQ(versionOf(cluster), "1.0.0") << cluster;
  }
  struct stat untouched {};
  ASSERT_EQ(::stat((dir() + "/prod-us-1.version").c_str(), &untouched), 0);

  const std::string id =
      submitPlan("bad.yaml", plan("2.0.0", "test $FLOTILLA_CLUSTER != prod-eu-2"));
  ASSERT_FALSE(id.empty());

  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_NE(wait.out.find(id + " rolled_back"), std::string::npos) << wait.out;
  EXPECT_EQ(stateOf(id), "rolled_back");

  // Waves 1 and 2: every cluster that ran apply ran rollback after it and is back on 1.0.0.
  EXPECT_EQ(stepLog(id, "staging-eu"),
            (std::vector<std::string>{"build", "apply", "verify", "rollback"}));
  EXPECT_EQ(stepLog(id, "prod-eu-1"),
            (std::vector<std::string>{"build", "apply", "verify", "rollback"}));
  EXPECT_EQ(stepLog(id, "prod-eu-2"), (std::vector<std::string>{"build", "apply", "rollback"}));
  for (const char* cluster : {"staging-eu", "prod-eu-1", "prod-eu-2"}) {
    EXPECT_EQ(versionOf(cluster), "1.0.0") << cluster;
  }
  // Wave 3 ran nothing at all: no step log, and its version file was not even rewritten.
  EXPECT_FALSE(hasStepLog(id, "prod-us-1"));
  EXPECT_EQ(versionOf("prod-us-1"), "1.0.0");
  struct stat after {};
  ASSERT_EQ(::stat((dir() + "/prod-us-1.version").c_str(), &after), 0);
  EXPECT_EQ(after.st_mtim.tv_sec, untouched.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, untouched.st_mtim.tv_nsec);

  json detail = deployment(id);
  ASSERT_TRUE(detail.is_object());
  ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
  EXPECT_EQ(detail["failure"]["cluster"], "prod-eu-2");
  EXPECT_EQ(detail["failure"]["step"], "apply");
  ASSERT_EQ(detail["waves"].size(), 3u);
  EXPECT_EQ(detail["waves"][0]["state"], "rolled_back");
  EXPECT_EQ(detail["waves"][1]["state"], "rolled_back");
  EXPECT_EQ(detail["waves"][2]["state"], "skipped");
  EXPECT_TRUE(detail["waves"][2]["clusters"].empty()) << detail["waves"][2].dump();
  EXPECT_TRUE(detail["rollback_failed_clusters"].empty());

  // Events: rollback only where apply ran, newest wave first, and nothing for wave 3.
  const json ev = events(id);
  EXPECT_EQ(ev.back()["type"], "deployment.rolled_back");
  EXPECT_EQ(findEvent(ev, "wave.started", "prod-us"), -1);
  EXPECT_TRUE(eventsOf(ev, "stage.started", "prod-us-1").empty());
  EXPECT_TRUE(eventsOf(ev, "rollback.started", "prod-us-1").empty());
  std::set<std::string> rolled;
  for (const auto& e : eventsOf(ev, "rollback.started")) rolled.insert(e["cluster"]);
  EXPECT_EQ(rolled, (std::set<std::string>{"staging-eu", "prod-eu-1", "prod-eu-2"}));
  int failed = findEvent(ev, "stage.failed", "prod-eu", "prod-eu-2", "apply");
  ASSERT_GE(failed, 0);
  EXPECT_GT(findEvent(ev, "deployment.rolling_back"), failed);
  int staging_rollback = findEvent(ev, "rollback.started", "staging", "staging-eu");
  for (const char* cluster : {"prod-eu-1", "prod-eu-2"}) {
    int done = findEvent(ev, "rollback.succeeded", "prod-eu", cluster);
    EXPECT_GE(done, 0) << cluster;
    EXPECT_LT(done, staging_rollback) << "wave 1 rolled back before " << cluster << " of wave 2";
  }

  // status names the failing cluster and step, in text and in JSON.
  CommandResult status = cli({"status", id});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  bool named = false;
  std::istringstream lines(status.out);
  for (std::string line; std::getline(lines, line);) {
    named |= line.find("failed") != std::string::npos &&
             line.find("prod-eu-2") != std::string::npos && line.find("apply") != std::string::npos;
  }
  EXPECT_TRUE(named) << "no line of `flotilla status` names the failed cluster and step:\n"
                     << status.out;
  CommandResult as_json = cli({"status", id, "--json"});
  EXPECT_EQ(as_json.exit_code, 0) << as_json.err;
  json parsed = json::parse(as_json.out, nullptr, false);
  ASSERT_TRUE(parsed.is_object()) << as_json.out;
  EXPECT_EQ(parsed["state"], "rolled_back");
  EXPECT_EQ(parsed["failure"]["cluster"], "prod-eu-2");
  EXPECT_EQ(parsed["failure"]["step"], "apply");
}

// A step that outlives steps.timeout is stopped (its whole process group) and counts as a
// failure; nothing had applied, so nothing rolls back.
TEST_F(RollbackTest, TimedOutStepIsKilledAndTheDeploymentRollsBack) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan(
      "slow.yaml", twoWavePlan(logStep("build") + "; echo $$ > @DIR@/$FLOTILLA_CLUSTER.pgid; " +
                                   "sleep 20; " + logStep("late"),
                               logStep("apply"), logStep("rollback"), "1s"));
  ASSERT_FALSE(id.empty());
  expectRolledBackQuickly(id, "the 20 s step was not cut short");
  json detail = deployment(id);
  ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
  EXPECT_EQ(detail["failure"]["cluster"], "staging-eu");
  EXPECT_EQ(detail["failure"]["step"], "build");
  EXPECT_NE(detail["failure"]["message"].get<std::string>().find("timed out"), std::string::npos)
      << detail["failure"].dump();
  EXPECT_EQ(stepLog(id, "staging-eu"), (std::vector<std::string>{"build"}));
  EXPECT_FALSE(hasStepLog(id, "prod-eu-1"));
  // The step's process group (the shell and its sleep) is gone.
  const pid_t group = std::atoi(readFile(dir() + "/staging-eu.pgid").c_str());
  ASSERT_GT(group, 0);
  EXPECT_TRUE(waitUntil("the timed-out step's process group to be gone",
                        [&] { return !groupAlive(group); }));
}

// A failure on one cluster aborts the step its wave mate has in flight; that cluster had started
// apply, so it rolls back too.
TEST_F(RollbackTest, StepInFlightElsewhereIsAbortedAndRolledBack) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  writeFile(dir() + "/prod-eu-1.version", "1.0.0\n");
  const ScriptPlan abort_plan{
      .version = "2.0.0",
      .apply = logStep("apply") +
               "; if [ $FLOTILLA_CLUSTER = prod-eu-1 ]; then echo $FLOTILLA_VERSION > "
               "@DIR@/prod-eu-1.version; touch @DIR@/prod-eu-1.applying; sleep 20; " +
               logStep("late") +
               "; else while [ ! -f @DIR@/prod-eu-1.applying ]; do sleep 0.05; done; exit 7; fi",
      .verify = "",
      .rollback = logStep("rollback") + "; echo 1.0.0 > @DIR@/$FLOTILLA_CLUSTER.version",
      .timeout = "25s",
      .waves = {waveOf("prod-eu", {"prod-eu-1", "prod-eu-2"})}};
  const std::string id = submitPlan("abort.yaml", abort_plan.yaml());
  ASSERT_FALSE(id.empty());
  expectRolledBackQuickly(id, "the aborted step ran on");
  EXPECT_EQ(stepLog(id, "prod-eu-1"), (std::vector<std::string>{"build", "apply", "rollback"}));
  EXPECT_EQ(stepLog(id, "prod-eu-2"), (std::vector<std::string>{"build", "apply", "rollback"}));
  EXPECT_EQ(versionOf("prod-eu-1"), "1.0.0");
  const json ev = events(id);
  int failed = findEvent(ev, "stage.failed", "prod-eu", "prod-eu-2", "apply");
  int aborting = findEvent(ev, "stage.aborting", "prod-eu", "prod-eu-1", "apply");
  int aborted = findEvent(ev, "stage.aborted", "prod-eu", "prod-eu-1", "apply");
  int rollback = findEvent(ev, "rollback.started", "prod-eu", "prod-eu-1");
  EXPECT_GE(failed, 0);
  EXPECT_GT(aborting, failed);
  EXPECT_GT(aborted, aborting);
  EXPECT_GT(rollback, aborted) << "rollback must wait for the aborted step to stop";
  json detail = deployment(id);
  EXPECT_EQ(detail["failure"]["cluster"], "prod-eu-2");
  EXPECT_EQ(detail["failure"]["step"], "apply");
}

// A rollback step that fails leaves the deployment failed, naming the cluster that needs a human.
TEST_F(RollbackTest, FailedRollbackEndsFailedNamingTheCluster) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan(
      "stuck.yaml",
      twoWavePlan("", logStep("apply") + "; test $FLOTILLA_CLUSTER != prod-eu-1",
                  logStep("rollback") + "; test $FLOTILLA_CLUSTER != staging-eu", "20s"));
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "30s"});
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_NE(wait.out.find(id + " failed"), std::string::npos) << wait.out;
  json detail = deployment(id);
  EXPECT_EQ(detail["state"], "failed");
  EXPECT_EQ(detail["rollback_failed_clusters"], json::array({"staging-eu"})) << detail.dump(2);
  EXPECT_EQ(detail["failure"]["cluster"], "prod-eu-1");
  EXPECT_EQ(stepLog(id, "staging-eu"), (std::vector<std::string>{"apply", "rollback"}));
  EXPECT_EQ(stepLog(id, "prod-eu-1"), (std::vector<std::string>{"apply", "rollback"}));
  CommandResult status = cli({"status", id});
  EXPECT_NE(status.out.find("rollback failed on: staging-eu"), std::string::npos) << status.out;
}

// `flotilla rollback` after success takes every wave back, newest first.
TEST_F(RollbackTest, ManualRollbackAfterSuccess) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  const std::string id = submitPlan("good.yaml", plan("2.0.0", "true"));
  ASSERT_TRUE(waitForState(id, "succeeded"));
  for (const char* cluster : {"staging-eu", "prod-eu-1", "prod-eu-2", "prod-us-1"}) {
    ASSERT_EQ(versionOf(cluster), "2.0.0") << cluster;
  }

  CommandResult rollback = cli({"rollback", id});
  EXPECT_EQ(rollback.exit_code, 0) << rollback.out << rollback.err;
  ASSERT_TRUE(waitForState(id, "rolled_back"));
  for (const char* cluster : {"staging-eu", "prod-eu-1", "prod-eu-2", "prod-us-1"}) {
    EXPECT_EQ(stepLog(id, cluster),
              (std::vector<std::string>{"build", "apply", "verify", "rollback"}))
        << cluster;
    EXPECT_EQ(versionOf(cluster), "1.0.0") << cluster;
  }
  const json ev = events(id);
  EXPECT_LT(findEvent(ev, "wave.rolled_back", "prod-us"),
            findEvent(ev, "wave.rolling_back", "prod-eu"));
  EXPECT_LT(findEvent(ev, "wave.rolled_back", "prod-eu"),
            findEvent(ev, "wave.rolling_back", "staging"));
  CommandResult again = cli({"rollback", id});
  EXPECT_EQ(again.exit_code, 1) << "a rolled back deployment has nothing to roll back";
}

// rollback.scope: wave takes back only the wave that failed; earlier waves keep the new version.
TEST_F(RollbackTest, WaveScopeRollsBackOnlyTheFailingWave) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  const std::string id =
      submitPlan("scoped.yaml", plan("2.0.0", "test $FLOTILLA_CLUSTER != prod-eu-2") +
                                    "rollback:\n  scope: wave\n");
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "30s"});
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_EQ(stateOf(id), "rolled_back");
  EXPECT_EQ(stepLog(id, "staging-eu"), (std::vector<std::string>{"build", "apply", "verify"}));
  EXPECT_EQ(versionOf("staging-eu"), "2.0.0");
  EXPECT_EQ(stepLog(id, "prod-eu-1"),
            (std::vector<std::string>{"build", "apply", "verify", "rollback"}));
  EXPECT_EQ(stepLog(id, "prod-eu-2"), (std::vector<std::string>{"build", "apply", "rollback"}));
  EXPECT_EQ(versionOf("prod-eu-1"), "1.0.0");
  EXPECT_EQ(versionOf("prod-eu-2"), "1.0.0");
  EXPECT_FALSE(hasStepLog(id, "prod-us-1"));
}

}  // namespace
}  // namespace flotilla::integration
