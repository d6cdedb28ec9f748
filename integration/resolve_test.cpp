// Resolve before anything runs (issue 12, part 6), through the CLI against a real coordinator
// and agents: unknown clusters and empty selectors refused at submission with suggestions,
// `submit --dry-run` storing nothing, the approval screen naming the clusters, a cluster lost
// before its wave waited for under the lost-cluster policy, and `rollback --reason` audited.
#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const std::string kGatedPlan =
    ScriptPlan{.service = "shop",
               .version = "2.0.0",
               .verify = "",
               .waves = {waveOf("staging", {"staging-eu"}),
                         waveSelecting("production", "environment: production",
                                       {"approval: required", "max_parallel: 2"})}}
        .yaml();

class ResolveTest : public FleetTest {};

TEST_F(ResolveTest, UnknownClustersAndEmptySelectorsAreRefusedWithSuggestions) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string plan = writePlan("typo.yaml",
                                     "service: shop\n"
                                     "version: \"2.0.0\"\n"
                                     "steps: {apply: \"true\", rollback: \"true\"}\n"
                                     "waves:\n"
                                     "  - name: staging\n"
                                     "    clusters: [staging-eu]\n"
                                     "  - name: prod\n"
                                     "    clusters: [prod-eu1]\n"
                                     "  - name: rest\n"
                                     "    selector: {environment: prodution}\n");
  CommandResult refused = cli({"submit", plan});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_EQ(refused.out, "");
  EXPECT_TRUE(contains(refused.err, plan + ":7:5: wave \"prod\": no agent has registered cluster "
                                           "\"prod-eu1\"; did you mean \"prod-eu-1\"?"))
      << refused.err;
  EXPECT_TRUE(contains(refused.err, plan + ":9:5: wave \"rest\": selector {environment: "
                                           "prodution} matches no registered cluster"))
      << refused.err;
  EXPECT_TRUE(contains(refused.err, "did you mean environment: production?")) << refused.err;
  EXPECT_TRUE(contains(refused.err, "known clusters: prod-eu-1, prod-eu-2, prod-us-1, staging-eu"))
      << refused.err;
  // Nothing stored, nothing ran.
  EXPECT_EQ(get("/api/v1/deployments").parsed()["deployments"], json::array());
  // The same plan through --dry-run is refused the same way.
  CommandResult dry = cli({"submit", "--dry-run", plan});
  EXPECT_EQ(dry.exit_code, 1) << dry.out << dry.err;
  EXPECT_TRUE(contains(dry.err, "did you mean \"prod-eu-1\"?")) << dry.err;
}

TEST_F(ResolveTest, DryRunPrintsTheWavesAndStoresNothing) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string plan = writePlan("plan.yaml", kGatedPlan);
  CommandResult dry = cli({"submit", "--dry-run", plan});
  ASSERT_EQ(dry.exit_code, 0) << dry.out << dry.err;
  EXPECT_TRUE(contains(dry.out, "dry run, nothing was stored")) << dry.out;
  EXPECT_TRUE(contains(dry.out,
                       "wave 1/2 staging: staging-eu\n  steps: build, apply\n"
                       "  gates: none\n"))
      << dry.out;
  EXPECT_TRUE(contains(dry.out,
                       "wave 2/2 production: prod-eu-1, prod-eu-2, prod-us-1 (selector "
                       "environment=production)\n"))
      << dry.out;
  EXPECT_TRUE(contains(dry.out, "gates: approval by 1 (counts for 24h); max_parallel 2"))
      << dry.out;
  CommandResult as_json = cli({"submit", "--dry-run", "--json", plan});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  json answer = json::parse(as_json.out, nullptr, false);
  ASSERT_TRUE(answer.is_object()) << as_json.out;
  EXPECT_EQ(answer["waves"][1]["clusters"], (json{"prod-eu-1", "prod-eu-2", "prod-us-1"}));

  EXPECT_EQ(get("/api/v1/deployments").parsed()["deployments"], json::array());
  CommandResult status = cli({"status"});
  EXPECT_TRUE(contains(status.out, "No deployments yet")) << status.out;
  EXPECT_TRUE(holdsFor(
      "a dry run runs nothing", [&] { return !hasStepLog("shop-1", "staging-eu"); }, 1000ms));
}

// The approver sees where production goes; a rollback's reason is in the events and the audit.
TEST_F(ResolveTest, TheApprovalScreenListsTheClustersAndRollbackKeepsItsReason) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan("plan.yaml", kGatedPlan);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "awaiting_approval"));
  CommandResult status = cli({"status", id});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  for (const std::string cluster : {"prod-eu-1", "prod-eu-2", "prod-us-1"}) {
    bool planned = false;
    for (const auto& line : linesOf(status.out)) {
      planned |= contains(line, "  " + cluster) && contains(line, "planned");
    }
    EXPECT_TRUE(planned) << cluster << " not listed as planned in:\n" << status.out;
  }
  CommandResult as_json = cli({"status", id, "--json"});
  json detail = json::parse(as_json.out, nullptr, false);
  ASSERT_TRUE(detail.is_object()) << as_json.out;
  EXPECT_EQ(detail["waves"][1]["planned_clusters"], (json{"prod-eu-1", "prod-eu-2", "prod-us-1"}));

  CommandResult rollback = cli({"rollback", id, "--reason", "wrong build number"});
  ASSERT_EQ(rollback.exit_code, 0) << rollback.out << rollback.err;
  ASSERT_TRUE(waitForState(id, "rolled_back"));
  CommandResult events = cli({"events", id});
  EXPECT_TRUE(contains(events.out, "wrong build number")) << events.out;
  json audit = get("/api/v1/audit?limit=1000").parsed();
  bool audited = false;
  const json records = audit["records"];
  for (const auto& record : records) {
    audited |= record.value("action", "") == "POST /api/v1/deployments/{id}/rollback" &&
               record.value("target", "") == id &&
               record.value("detail", "") == "wrong build number";
  }
  EXPECT_TRUE(audited) << audit.dump(1);
}

// An agent lost between submission and its wave is the lost-cluster policy's business: within
// max_unavailable_clusters the wave goes on with the others and waits for it. (A selector wave
// leaves lost clusters out while others match, as before.)
TEST_F(ResolveTest, AClusterLostBeforeItsWaveIsWaitedFor) {
  CoordinatorOptions options;
  options.agent_lost_after = "2s";
  ASSERT_NO_FATAL_FAILURE(startFleet(options));
  ScriptPlan plan{.service = "shop",
                  .version = "2.1.0",
                  .verify = "",
                  .policy = "max_unavailable_clusters: 1\n",
                  .waves = {waveOf("staging", {"staging-eu"}),
                            waveOf("production", {"prod-eu-1", "prod-eu-2", "prod-us-1"},
                                   {"approval: required"})}};
  const std::string id = submitPlan("plan.yaml", plan.yaml());
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "awaiting_approval"));
  killAgent("prod-eu-2");
  // Lost for the engine itself (its gauge), not only in the API's view, which counts silence
  // against now and may say so up to one expiry check earlier.
  ASSERT_TRUE(waitUntil("prod-eu-2 is lost", [&] {
    return contains(get("/metrics").body, "flotilla_agents{state=\"lost\"} 1");
  }));
  CommandResult approve = cli({"approve", id});
  ASSERT_EQ(approve.exit_code, 0) << approve.out << approve.err;
  ASSERT_TRUE(waitUntil("the other production clusters are done", [&] {
    return clusterState(id, "prod-eu-1") == "succeeded" &&
           clusterState(id, "prod-us-1") == "succeeded";
  }));
  EXPECT_EQ(stateOf(id), "running");
  EXPECT_FALSE(hasStepLog(id, "prod-eu-2"));
  EXPECT_TRUE(contains(events(id).dump(), "agent lost before its first step; waiting for it"))
      << events(id).dump(1);

  restartAgent("prod-eu-2");
  ASSERT_TRUE(waitForState(id, "succeeded"));
  EXPECT_EQ(versionOf("prod-eu-2"), "2.1.0");
  EXPECT_EQ(versionOf("staging-eu"), "2.1.0");
}

}  // namespace
}  // namespace flotilla::integration
