// The incident freeze end to end, with a real coordinator, agents and CLI: a freeze during a
// running rollout lets the step in flight finish and starts nothing after it (the agents'
// records and the steps' own traces show it), refuses new submissions it covers (and only
// those), lets a requested rollback run, survives a coordinator kill -9, and `flotilla
// unfreeze` lets the rollout finish.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

class FreezeTest : public FleetTest {
 protected:
  // The stage records `cluster`'s agent keeps for deployment `id`, e.g. "staging-eu~apply.1.json".
  std::vector<std::string> agentStages(const std::string& id, const std::string& cluster) {
    std::vector<std::string> out;
    const std::filesystem::path dir = std::filesystem::path(agentStateDir(cluster)) / "stages" / id;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      out.push_back(entry.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  bool ranStep(const std::string& id, const std::string& cluster, const std::string& step) {
    const auto stages = agentStages(id, cluster);
    return std::any_of(stages.begin(), stages.end(), [&](const std::string& s) {
      return s.rfind(cluster + "~" + step + ".", 0) == 0;
    });
  }
  // An apply that waits for the file @DIR@/<gate> before it records the version.
  static std::string gatedApply(const std::string& gate) {
    return logStep("apply") + " && while [ ! -e @DIR@/" + gate + " ]; do sleep 0.1; done && " +
           kRecordVersion;
  }
};

TEST_F(FreezeTest, FreezeHaltsARolloutRollbacksRunAndUnfreezeFinishesIt) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  // web: staging, then production; its apply waits for a gate, so the freeze finds it in
  // flight. api: production only, its apply never let through (rolled back during the freeze).
  const std::string web =
      submitPlan("web.yaml", ScriptPlan{.service = "web",
                                        .version = "2.0.0",
                                        .apply = gatedApply("go-web"),
                                        .timeout = "60s",
                                        .waves = {waveOf("staging", {"staging-eu"}),
                                                  waveOf("prod", {"prod-eu-1", "prod-eu-2"})}}
                                 .yaml());
  const std::string api =
      submitPlan("api.yaml", ScriptPlan{.service = "api",
                                        .version = "3.0.0",
                                        .apply = gatedApply("go-api"),
                                        .timeout = "60s",
                                        .waves = {waveOf("prod", {"prod-us-1"})}}
                                 .yaml());
  ASSERT_FALSE(web.empty());
  ASSERT_FALSE(api.empty());
  ASSERT_TRUE(waitUntil("both applies in flight", [&] {
    return clusterState(web, "staging-eu") == "applying" &&
           clusterState(api, "prod-us-1") == "applying";
  }));

  CommandResult frozen =
      cli({"freeze", "--reason", "INC-42: payments down", "--env", "production"});
  ASSERT_EQ(frozen.exit_code, 0) << frozen.out << frozen.err;
  EXPECT_EQ(frozen.out, "freeze-1\n");
  ASSERT_TRUE(waitForState(web, "frozen"));
  ASSERT_TRUE(waitForState(api, "frozen"));

  // The apply in flight finishes; after it nothing starts: no verify, no production wave.
  writeFile(dir() + "/go-web", "");
  ASSERT_TRUE(waitUntil("web's apply on staging-eu finished",
                        [&] { return versionOf("staging-eu") == "2.0.0"; }));
  ASSERT_TRUE(holdsFor(
      "nothing new starts while frozen",
      [&] {
        return stateOf(web) == "frozen" && !ranStep(web, "staging-eu", "verify") &&
               !hasStepLog(web, "prod-eu-1") && !hasStepLog(web, "prod-eu-2");
      },
      3s));
  EXPECT_EQ(stepLog(web, "staging-eu"), (std::vector<std::string>{"build", "apply"}));
  EXPECT_EQ(agentStages(web, "staging-eu"),
            (std::vector<std::string>{"staging-eu~apply.1.json", "staging-eu~build.1.json"}));
  EXPECT_TRUE(agentStages(web, "prod-eu-1").empty());

  // A submission the freeze covers is refused with the freeze; one it does not is accepted.
  CommandResult refused =
      cli({"submit",
           writePlan(
               "web-again.yaml",
               ScriptPlan{.service = "web-two", .waves = {waveOf("prod", {"prod-eu-1"})}}.yaml())});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("deployments are frozen: freeze-1 (environment production) by admin "
                             "since "),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("INC-42: payments down"), std::string::npos) << refused.err;
  const std::string docs = submitPlan(
      "docs.yaml",
      ScriptPlan{.service = "docs", .waves = {waveOf("staging", {"staging-eu"})}}.yaml());
  ASSERT_FALSE(docs.empty());
  EXPECT_TRUE(waitForState(docs, "succeeded"));

  // Every status output shows the freeze.
  CommandResult list = cli({"status"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out.rfind("FROZEN: freeze-1 (environment production) by admin since ", 0), 0u)
      << list.out;
  CommandResult one = cli({"status", web});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.out.rfind("FROZEN: freeze-1", 0), 0u) << one.out;
  EXPECT_NE(one.out.find("frozen"), std::string::npos) << one.out;
  EXPECT_NE(
      get("/metrics")
          .body.find("flotilla_freeze_active{scope=\"environment\",environment=\"production\"} 1"),
      std::string::npos);

  // A rollback still runs during the freeze: api's apply is stopped and rolled back.
  CommandResult rollback = cli({"rollback", api, "--reason", "part of INC-42"});
  ASSERT_EQ(rollback.exit_code, 0) << rollback.out << rollback.err;
  ASSERT_TRUE(waitForState(api, "rolled_back"));
  EXPECT_TRUE(ranStep(api, "prod-us-1", "rollback"));
  const std::vector<std::string> api_steps = stepLog(api, "prod-us-1");
  ASSERT_FALSE(api_steps.empty());
  EXPECT_EQ(api_steps.back(), "rollback");

  // A coordinator crash changes nothing: still frozen, still refusing, nothing starts.
  killCoordinator();
  restartCoordinator();
  waitForAgents(kUsualClusters);
  EXPECT_EQ(stateOf(web), "frozen");
  EXPECT_EQ(get("/api/v1/freeze").parsed()["frozen"], true);
  CommandResult still = cli({"submit", dir() + "/web-again.yaml"});
  EXPECT_EQ(still.exit_code, 1) << still.out << still.err;
  EXPECT_TRUE(holdsFor(
      "nothing starts after the restart",
      [&] { return stateOf(web) == "frozen" && !ranStep(web, "staging-eu", "verify"); }, 2s));

  // The post-mortem link, and the lift: only the environment's freeze is active.
  CommandResult note =
      cli({"freeze", "note", "freeze-1", "post-mortem: https://wiki.example.com/INC-42"});
  EXPECT_EQ(note.exit_code, 0) << note.out << note.err;
  CommandResult wrong = cli({"unfreeze"});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.out << wrong.err;
  EXPECT_NE(wrong.err.find("--env"), std::string::npos) << wrong.err;
  CommandResult lifted = cli({"unfreeze", "--env", "production"});
  ASSERT_EQ(lifted.exit_code, 0) << lifted.out << lifted.err;

  // web goes on from where it stopped: verify on staging-eu, then the production wave.
  ASSERT_TRUE(waitForState(web, "succeeded"));
  EXPECT_EQ(stepLog(web, "staging-eu"), (std::vector<std::string>{"build", "apply", "verify"}));
  EXPECT_EQ(versionOf("prod-eu-1"), "2.0.0");
  EXPECT_EQ(versionOf("prod-eu-2"), "2.0.0");
  EXPECT_EQ(agentStages(web, "staging-eu"),
            (std::vector<std::string>{"staging-eu~apply.1.json", "staging-eu~build.1.json",
                                      "staging-eu~verify.1.json"}));
  const json ev = events(web);
  EXPECT_GE(findEvent(ev, "deployment.frozen"), 0) << ev.dump(1);
  EXPECT_GE(findEvent(ev, "deployment.unfrozen"), 0) << ev.dump(1);

  CommandResult shown = cli({"freeze", "show", "freeze-1"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("lifted by admin"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("post-mortem: https://wiki.example.com/INC-42"), std::string::npos)
      << shown.out;
  CommandResult none = cli({"freeze", "show"});
  EXPECT_EQ(none.out, "Not frozen.\n") << none.out << none.err;

  bool audited_freeze = false;
  bool audited_lift = false;
  const json audit = get("/api/v1/audit").parsed();
  for (const auto& record : audit["records"]) {
    audited_freeze |= record["action"] == "POST /api/v1/freeze" && record["outcome"] == "ok";
    audited_lift |= record["action"] == "DELETE /api/v1/freeze" && record["outcome"] == "ok";
  }
  EXPECT_TRUE(audited_freeze);
  EXPECT_TRUE(audited_lift);
}

}  // namespace
}  // namespace flotilla::integration
