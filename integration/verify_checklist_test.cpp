// Verification checklists (issue 13, item 4) with a real coordinator, agents and CLI: a plan's
// steps.verify as named checks, each its own stage with its own timeout and FLOTILLA_CHECK,
// each result an event and a mark in `flotilla status`; the first failure rolls the fleet back
// and the checks after it never run.
#include <string>
#include <vector>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// A script plan whose apply logs and records the version, whose rollback logs, and whose
// steps.verify is `checks` (YAML list items, each on its own line, indented under verify).
std::string checklistPlan(const std::string& checks, const std::vector<PlanWave>& waves) {
  std::string out = "service: web\nversion: \"2.0.0\"\nsteps:\n";
  out += "  apply: '" + logStep("apply") + " && " + kRecordVersion + "'\n";
  out += "  rollback: '" + logStep("rollback") + "'\n";
  out += "  timeout: 20s\n  verify:\n" + checks;
  out += "waves:\n";
  for (const PlanWave& w : waves) out += "  - name: " + w.name + "\n    " + w.targets + "\n";
  return out;
}

// A check that appends its FLOTILLA_CHECK to @DIR@/<cluster>.checks, then runs `then`.
std::string check(const std::string& name, const std::string& then = "true",
                  const std::string& timeout = "") {
  std::string line = "    - {name: " + name + ", command: 'echo $FLOTILLA_CHECK >> " +
                     "@DIR@/$FLOTILLA_CLUSTER.checks && " + then + "'";
  if (!timeout.empty()) line += ", timeout: " + timeout;
  return line + "}\n";
}

// The `flotilla status ID` line of `cluster` under "Verification".
std::string verificationLine(const std::string& status, const std::string& cluster) {
  const size_t section = status.find("\nVerification\n");
  if (section == std::string::npos) return "";
  const size_t at = status.find("  " + cluster + "  ", section);
  if (at == std::string::npos) return "";
  return status.substr(at, status.find('\n', at) - at);
}

class VerifyChecklistTest : public FleetTest {};

TEST_F(VerifyChecklistTest, EveryCheckRunsInOrderAndShowsInStatusAndEvents) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan(
      "plan.yaml",
      checklistPlan(
          check("health", "true", "10s") + check("smoke") + check("integration", "true", "1m"),
          {waveOf("staging", {"staging-eu"}), waveOf("prod", {"prod-eu-1", "prod-eu-2"})}));
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err;

  CommandResult status = cli({"status", id});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  for (const std::string cluster : {"staging-eu", "prod-eu-1", "prod-eu-2"}) {
    SCOPED_TRACE(cluster);
    // Each check ran once, in order, told its own name.
    EXPECT_EQ(readLines(dir() + "/" + cluster + ".checks"),
              (std::vector<std::string>{"health", "smoke", "integration"}));
    EXPECT_EQ(stepLog(id, cluster), std::vector<std::string>{"apply"});
    EXPECT_EQ(verificationLine(status.out, cluster),
              "  " + cluster + "  verify: health ✓ smoke ✓ integration ✓")
        << status.out;

    const json c = clusterOf(id, cluster);
    ASSERT_EQ(c["checks"].size(), 3u) << c.dump();
    for (const auto& run : c["checks"]) EXPECT_EQ(run["state"], "passed") << run.dump();

    const json ev = events(id);
    const std::vector<json> checks = eventsOf(ev, "cluster.verify_check", cluster);
    ASSERT_EQ(checks.size(), 3u) << ev.dump();
    const std::vector<std::string> names = {"health", "smoke", "integration"};
    for (size_t i = 0; i < 3; ++i) {
      const std::string message = checks[i]["message"].get<std::string>();
      EXPECT_EQ(message.rfind(names[i] + " passed in ", 0), 0u) << message;
    }
  }
  EXPECT_EQ(stateOf(id), "succeeded");
}

TEST_F(VerifyChecklistTest, AFailedSmokeCheckRollsTheFleetBackAndTheRestNeverRun) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  // smoke fails on prod-eu-1 only, after staging succeeded: the whole fleet goes back.
  const std::string smoke = "test $FLOTILLA_CLUSTER != prod-eu-1";
  const std::string marker = "touch @DIR@/$FLOTILLA_CLUSTER.integration-ran";
  const std::string id = submitPlan(
      "plan.yaml",
      checklistPlan(check("health") + check("smoke", smoke) + check("integration", marker),
                    {waveOf("staging", {"staging-eu"}), waveOf("prod", {"prod-eu-1"})}));
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_EQ(stateOf(id), "rolled_back");

  // integration never ran where smoke failed; staging had passed all three.
  EXPECT_FALSE(fileExists(dir() + "/prod-eu-1.integration-ran"));
  EXPECT_TRUE(fileExists(dir() + "/staging-eu.integration-ran"));
  EXPECT_EQ(readLines(dir() + "/prod-eu-1.checks"), (std::vector<std::string>{"health", "smoke"}));
  // Both clusters the version reached were rolled back.
  EXPECT_EQ(stepLog(id, "prod-eu-1"), (std::vector<std::string>{"apply", "rollback"}));
  EXPECT_EQ(stepLog(id, "staging-eu"), (std::vector<std::string>{"apply", "rollback"}));

  const json ev = events(id);
  const std::vector<json> checks = eventsOf(ev, "cluster.verify_check", "prod-eu-1");
  ASSERT_EQ(checks.size(), 2u) << ev.dump();
  const std::string failed = checks[1]["message"].get<std::string>();
  EXPECT_EQ(failed.rfind("smoke failed in ", 0), 0u) << failed;
  EXPECT_NE(failed.find("exit code 1"), std::string::npos) << failed;
  const json detail = deployment(id);
  EXPECT_EQ(detail["failure"]["cluster"], "prod-eu-1") << detail.dump();
  EXPECT_EQ(detail["failure"]["step"], "verify") << detail.dump();
  const json c = clusterOf(id, "prod-eu-1");
  ASSERT_EQ(c["checks"].size(), 3u) << c.dump();
  EXPECT_EQ(c["checks"][1]["state"], "failed");
  EXPECT_EQ(c["checks"][1]["exit_code"], 1);
  EXPECT_EQ(c["checks"][2]["state"], "pending");

  CommandResult status = cli({"status", id});
  EXPECT_EQ(verificationLine(status.out, "prod-eu-1"),
            "  prod-eu-1  verify: health ✓ smoke ✗ (exit 1) integration -")
      << status.out;
  EXPECT_EQ(verificationLine(status.out, "staging-eu"),
            "  staging-eu  verify: health ✓ smoke ✓ integration ✓")
      << status.out;
}

TEST_F(VerifyChecklistTest, EachCheckHasItsOwnTimeout) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  // warmup takes longer than quick's whole budget and passes within its own; quick sleeps past
  // its 1 s.
  const std::string id = submitPlan(
      "plan.yaml", checklistPlan(check("warmup", "sleep 1.5", "10s") +
                                     check("quick", "sleep 30", "1s") + check("never", "true"),
                                 {waveOf("staging", {"staging-eu"})}));
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_EQ(stateOf(id), "rolled_back");
  EXPECT_EQ(readLines(dir() + "/staging-eu.checks"), (std::vector<std::string>{"warmup", "quick"}));

  const json c = clusterOf(id, "staging-eu");
  ASSERT_EQ(c["checks"].size(), 3u) << c.dump();
  EXPECT_EQ(c["checks"][0]["state"], "passed");
  EXPECT_GE(c["checks"][0]["duration_ms"].get<long long>(), 1500);
  EXPECT_EQ(c["checks"][1]["state"], "timed_out");
  EXPECT_LT(c["checks"][1]["duration_ms"].get<long long>(), 10000);
  EXPECT_EQ(c["checks"][2]["state"], "pending");
  const std::vector<json> checks = eventsOf(events(id), "cluster.verify_check", "staging-eu");
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[1]["message"].get<std::string>().rfind("quick timed out in ", 0), 0u)
      << checks[1].dump();

  CommandResult status = cli({"status", id});
  EXPECT_EQ(verificationLine(status.out, "staging-eu"),
            "  staging-eu  verify: warmup ✓ quick ✗ (timed out) never -")
      << status.out;
}

TEST_F(VerifyChecklistTest, AMistakeInTheChecklistIsRefusedWithItsPosition) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator());
  const std::string path = writePlan(
      "plan.yaml",
      checklistPlan(check("smoke") + check("smoke"), {waveOf("staging", {"staging-eu"})}));
  CommandResult submit = cli({"submit", path});
  EXPECT_NE(submit.exit_code, 0);
  EXPECT_NE(submit.err.find("9:14: steps.verify[1].name: check \"smoke\" is already named at 8:14"),
            std::string::npos)
      << submit.out << submit.err;
}

}  // namespace
}  // namespace flotilla::integration
