// An approval-gated wave does not start until `flotilla approve`.
#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// No verify step: the plan leaves it out, and clusters finish after apply.
const ScriptPlan kPlan{
    .version = "3.1.0",
    .verify = "",
    .waves = {waveOf("staging", {"staging-eu"}),
              waveSelecting("production", "environment: production", {"approval: required"})}};

const std::vector<std::string> kProduction = {"prod-eu-1", "prod-eu-2", "prod-us-1"};

class ApprovalTest : public FleetTest {};

TEST_F(ApprovalTest, GatedWaveWaitsForApprove) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan("plan.yaml", kPlan.yaml());
  ASSERT_FALSE(id.empty());

  ASSERT_TRUE(waitForState(id, "awaiting_approval"));
  EXPECT_EQ(stepLog(id, "staging-eu"), (std::vector<std::string>{"build", "apply"}));
  EXPECT_EQ(versionOf("staging-eu"), "3.1.0");
  json detail = deployment(id);
  EXPECT_EQ(detail["current_wave"], "production");
  EXPECT_EQ(detail["waves"][0]["state"], "succeeded");
  EXPECT_EQ(detail["waves"][1]["state"], "awaiting_approval");
  EXPECT_TRUE(detail["waves"][1]["clusters"].empty()) << detail["waves"][1].dump();

  // Nothing starts on production while nobody approves.
  EXPECT_TRUE(holdsFor(
      "the production wave waits for approval and runs nothing",
      [&] {
        if (stateOf(id) != "awaiting_approval") return false;
        for (const auto& cluster : kProduction) {
          if (hasStepLog(id, cluster)) return false;
        }
        return true;
      },
      1500ms));
  CommandResult status = cli({"status", id});
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_NE(status.out.find("awaiting_approval"), std::string::npos) << status.out;

  // Approving a wave that needs no approval is refused and changes nothing.
  CommandResult wrong = cli({"approve", id, "staging"});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.out << wrong.err;
  EXPECT_EQ(stateOf(id), "awaiting_approval");

  CommandResult approve = cli({"approve", id});
  EXPECT_EQ(approve.exit_code, 0) << approve.out << approve.err;
  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err;

  for (const auto& cluster : kProduction) {
    EXPECT_EQ(stepLog(id, cluster), (std::vector<std::string>{"build", "apply"})) << cluster;
    EXPECT_EQ(versionOf(cluster), "3.1.0") << cluster;
  }
  const json ev = events(id);
  int waiting = findEvent(ev, "wave.awaiting_approval", "production");
  int approved = findEvent(ev, "wave.approved", "production");
  int started = findEvent(ev, "wave.started", "production");
  EXPECT_GT(waiting, findEvent(ev, "wave.succeeded", "staging"));
  EXPECT_GT(approved, waiting);
  EXPECT_GT(started, approved);
  int production_steps = 0;
  for (size_t i = 0; i < ev.size(); ++i) {
    if (ev[i]["type"] != "stage.started" || ev[i]["wave"] != "production") continue;
    ++production_steps;
    EXPECT_GT(static_cast<int>(i), approved) << ev[i].dump();
  }
  EXPECT_EQ(production_steps, 6);  // build and apply on each of the three clusters
  EXPECT_EQ(ev.back()["type"], "deployment.succeeded");
}

}  // namespace
}  // namespace flotilla::integration
