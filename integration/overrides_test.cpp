// Operator overrides end to end, with a real coordinator, agents and CLI: `flotilla promote`
// moves a process-driver canary on from an analysis that cannot judge (no traffic at all), and
// `flotilla retry` runs a held failed apply of a script plan again as a new attempt, which the
// agent's own records show ran exactly twice.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/events.hpp"
#include "tests/support/service_fleet.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// staging-eu alone, one wave.
const ServiceShape kStagingOnly = {
    {{"staging-eu", {{"environment", "staging"}}}},
    {waveSelecting("staging", "environment: staging")},
};

class PromoteTest : public ServiceFleetTest {};

// No client sends a request: the analysis between 50% and 100% has nothing to judge and would
// wait out its windows (a minute each). The on-call deployer promotes it, the canary goes on
// to 100% and the deployment succeeds; the events and the audit trail name who promoted.
TEST_F(PromoteTest, PromoteMovesOnFromAnInconclusiveAnalysis) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kStagingOnly));
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  const std::string id = submitPlan(
      "canary.yaml", processPlan({.version = "2.0.0",
                                  .strategy = "{type: canary, steps: [50, 100], pause: 60s}",
                                  .metrics = "{error_rate_increase: 0.5, latency_p95_ratio: 2.0, "
                                             "min_requests: 20}"})
                         .yaml());
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitUntil("staging-eu analyzing",
                        [&] { return clusterState(id, "staging-eu") == "analyzing"; }));

  // Without traffic it cannot judge: it stays there.
  ASSERT_TRUE(holdsFor(
      "the analysis waits for requests",
      [&] { return clusterState(id, "staging-eu") == "analyzing"; }, 3s));

  const std::string oncall = createToken("oncall", "deployer");
  const HttpResponse promoted =
      request("POST", "/api/v1/deployments/" + id + "/promote", oncall,
              R"({"wave": "staging", "reason": "no traffic in staging"})");
  ASSERT_EQ(promoted.status, 200) << promoted.body;
  ASSERT_TRUE(waitForState(id, "succeeded"));
  EXPECT_EQ(stateOf(id), "succeeded");

  const json ev = events(id);
  const std::vector<json> promotes = eventsOf(ev, "cluster.promoted", "staging-eu");
  ASSERT_EQ(promotes.size(), 1u) << ev.dump(1);
  EXPECT_EQ(promotes[0]["message"].get<std::string>().rfind("by oncall: no traffic in staging", 0),
            0u)
      << promotes[0].dump();
  const std::vector<json> analyses = stepEvents(ev, "stage.succeeded", "staging-eu", "analyze");
  ASSERT_EQ(analyses.size(), 1u) << ev.dump(1);
  EXPECT_EQ(analyses[0]["message"], "promoted by oncall");
  EXPECT_EQ(findEvent(ev, "deployment.rolling_back"), -1) << ev.dump(1);
  expectOnlyVersion("staging-eu", "2.0.0");

  const json audit = get("/api/v1/audit").parsed();
  bool audited = false;
  for (const auto& record : audit["records"]) {
    audited |= record["action"] == "POST /api/v1/deployments/{id}/promote" &&
               record["actor"] == "oncall" && record["target"] == id && record["outcome"] == "ok";
  }
  EXPECT_TRUE(audited) << audit.dump(1);

  // Nothing left to promote once it is done.
  CommandResult again = cli({"promote", id});
  EXPECT_EQ(again.exit_code, 1) << again.out << again.err;
}

class RetryTest : public FleetTest {};

// A script whose apply fails the first time it runs (it leaves a marker) under
// `on_step_failure: hold`: the deployment is held, not rolled back; `flotilla retry` runs the
// apply again as attempt 2 and the deployment succeeds. The agent's records hold attempts 1
// and 2 of the apply and nothing more.
TEST_F(RetryTest, AHeldApplyIsRetriedOnceAndSucceeds) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator());
  ASSERT_NO_FATAL_FAILURE(startAgents({usualAgent("staging-eu")}));
  ScriptPlan plan{
      .version = "2.0.0",
      .apply = logStep("apply") +
               " && if [ ! -e @DIR@/apply-failed-once ]; then touch @DIR@/apply-failed-once; "
               "echo 'registry unreachable' >&2; exit 3; fi && " +
               kRecordVersion,
      .policy = "on_step_failure: hold\n",
      .waves = {waveOf("staging", {"staging-eu"})},
  };
  const std::string id = submitPlan("held.yaml", plan.yaml());
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "paused"));
  const std::string reason = deployment(id)["reason"].get<std::string>();
  for (const std::string& part :
       std::vector<std::string>{"staging-eu", "apply", "flotilla retry " + id + " staging-eu",
                                "flotilla rollback " + id}) {
    EXPECT_NE(reason.find(part), std::string::npos) << part << " not in " << reason;
  }
  EXPECT_EQ(clusterState(id, "staging-eu"), "failed");
  // Held, not rolled back: no rollback ran.
  EXPECT_EQ(stepLog(id, "staging-eu"), (std::vector<std::string>{"build", "apply"}));

  CommandResult retried = cli({"retry", id, "staging-eu", "--reason", "registry is back"});
  ASSERT_EQ(retried.exit_code, 0) << retried.out << retried.err;
  ASSERT_TRUE(waitForState(id, "succeeded"));
  EXPECT_EQ(versionOf("staging-eu"), "2.0.0");
  EXPECT_EQ(stepLog(id, "staging-eu"),
            (std::vector<std::string>{"build", "apply", "apply", "verify"}));

  const json ev = events(id);
  const std::vector<json> retries = eventsOf(ev, "cluster.retried", "staging-eu");
  ASSERT_EQ(retries.size(), 1u) << ev.dump(1);
  EXPECT_EQ(retries[0]["message"].get<std::string>().rfind("by admin: registry is back", 0), 0u);

  // The agent's records: apply attempt 1 failed, attempt 2 succeeded, no third.
  const std::filesystem::path stages =
      std::filesystem::path(agentStateDir("staging-eu")) / "stages" / id;
  std::vector<std::string> applies;
  for (const auto& entry : std::filesystem::directory_iterator(stages)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("staging-eu~apply.", 0) == 0) applies.push_back(name);
  }
  std::sort(applies.begin(), applies.end());
  ASSERT_EQ(applies,
            (std::vector<std::string>{"staging-eu~apply.1.json", "staging-eu~apply.2.json"}));
  auto outcome = [&](const std::string& name) {
    std::ifstream in(stages / name);
    return json::parse(in, nullptr, false).value("outcome", std::string());
  };
  EXPECT_EQ(outcome("staging-eu~apply.1.json"), "failed");
  EXPECT_EQ(outcome("staging-eu~apply.2.json"), "succeeded");

  // Nothing is held any more: a second retry is refused.
  CommandResult again = cli({"retry", id, "staging-eu"});
  EXPECT_EQ(again.exit_code, 1) << again.out << again.err;
  EXPECT_NE(again.err.find("nothing to retry"), std::string::npos) << again.err;
}

}  // namespace
}  // namespace flotilla::integration
