// The CLI against a real coordinator: agents, status, events, pause/resume, cancel, and errors.
#include <sstream>

#include "tests/support/fleet.hpp"
#include "tests/support/net.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// Every step logs its name; apply does not record the version.
ScriptPlan shopPlan(const std::string& version) {
  return ScriptPlan{.service = "shop",
                    .version = version,
                    .apply = logStep("apply"),
                    .verify = "",
                    .waves = {waveOf("staging", {"staging-eu"})}};
}

const std::string kQuickPlan = shopPlan("1.2.3").yaml();

// The first build takes long enough for the test to pause the deployment while it runs.
const std::string kSlowBuildPlan = [] {
  ScriptPlan plan = shopPlan("1.3.0");
  plan.build = logStep("build") + "; if [ $FLOTILLA_CLUSTER = staging-eu ]; then sleep 1.5; fi";
  plan.waves.push_back(waveOf("production", {"prod-eu-1"}));
  return plan.yaml();
}();

const std::string kGatedPlan = [] {
  ScriptPlan plan = shopPlan("1.4.0");
  plan.build = "";
  plan.waves.push_back(
      waveSelecting("production", "environment: production", {"approval: required"}));
  return plan.yaml();
}();

// Splits a table row on runs of spaces.
std::vector<std::string> columnsOf(const std::string& line) {
  std::vector<std::string> columns;
  std::istringstream in(line);
  for (std::string word; in >> word;) columns.push_back(word);
  return columns;
}

bool startsWith(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

class CliTest : public FleetTest {};

TEST_F(CliTest, AgentsStatusAndEvents) {
  ASSERT_NO_FATAL_FAILURE(startFleet());

  CommandResult agents = cli({"agents"});
  ASSERT_EQ(agents.exit_code, 0) << agents.err;
  std::vector<std::string> rows = linesOf(agents.out);
  ASSERT_EQ(rows.size(), 5u) << agents.out;
  EXPECT_EQ(columnsOf(rows[0]), (std::vector<std::string>{"CLUSTER", "STATE", "LABELS"}));
  const std::map<std::string, std::string> labels = {
      {"staging-eu", "environment=staging"},
      {"prod-eu-1", "environment=production,region=eu"},
      {"prod-eu-2", "environment=production,region=eu"},
      {"prod-us-1", "environment=production,region=us"}};
  for (const auto& [cluster, label] : labels) {
    bool listed = false;
    for (size_t i = 1; i < rows.size(); ++i) {
      std::vector<std::string> c = columnsOf(rows[i]);
      if (c.size() >= 3 && c[0] == cluster) {
        listed = true;
        // "connected (last seen 0s ago; unknown at 750ms)  LABELS": the next deadline is three
        // of the fleet's 250 ms heartbeats.
        EXPECT_EQ(c[1], "connected") << rows[i];
        EXPECT_NE(rows[i].find("unknown at 750ms)"), std::string::npos) << rows[i];
        EXPECT_EQ(c.back(), label) << rows[i];
      }
    }
    EXPECT_TRUE(listed) << cluster << " missing from:\n" << agents.out;
  }

  CommandResult empty = cli({"status"});
  EXPECT_EQ(empty.exit_code, 0);
  EXPECT_NE(empty.out.find("No deployments yet"), std::string::npos) << empty.out;

  const std::string id = submitPlan("quick.yaml", kQuickPlan);
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "30s"});
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err;

  CommandResult status = cli({"status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  rows = linesOf(status.out);
  ASSERT_EQ(rows.size(), 2u) << status.out;
  EXPECT_EQ(columnsOf(rows[0]),
            (std::vector<std::string>{"ID", "SERVICE", "VERSION", "STATE", "WAVE", "AGE"}));
  std::vector<std::string> row = columnsOf(rows[1]);
  ASSERT_GE(row.size(), 4u) << rows[1];
  EXPECT_EQ(row[0], id);
  EXPECT_EQ(row[1], "shop");
  EXPECT_EQ(row[2], "1.2.3");
  EXPECT_EQ(row[3], "succeeded");

  // `events` prints one line per event of the API, in the same order.
  CommandResult listed = cli({"events", id});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  rows = linesOf(listed.out);
  const json ev = events(id);
  ASSERT_EQ(rows.size(), ev.size()) << listed.out;
  for (size_t i = 0; i < ev.size(); ++i) {
    std::vector<std::string> c = columnsOf(rows[i]);
    ASSERT_GE(c.size(), 2u) << rows[i];
    EXPECT_EQ(c[0], ev[i]["time"]) << rows[i];
    EXPECT_EQ(c[1], ev[i]["type"]) << rows[i];
  }
  EXPECT_NE(rows.front().find("deployment.submitted"), std::string::npos);
  EXPECT_NE(rows.back().find("deployment.succeeded"), std::string::npos);
  bool located = false;
  for (const auto& r : rows) located |= r.find("staging/staging-eu/apply") != std::string::npos;
  EXPECT_TRUE(located) << "no event line locates staging/staging-eu/apply:\n" << listed.out;

  // Piped (not a terminal), watch prints what changed: one line per event but the steps'
  // output (--output includes it), a line per cluster, then the outcome.
  auto watchedEvents = [&](const std::vector<std::string>& args, std::vector<std::string>* rest) {
    CommandResult watch = cli(args, 30s);
    EXPECT_EQ(watch.exit_code, 0) << watch.err;
    std::vector<std::string> out;
    for (const auto& line : linesOf(watch.out)) {
      std::vector<std::string> c = columnsOf(line);
      (c.size() >= 2 && c[1] != "cluster" && line != id + " succeeded" ? out : *rest)
          .push_back(line);
    }
    return out;
  };
  std::vector<std::string> rest;
  std::vector<std::string> watched = watchedEvents({"watch", id}, &rest);
  std::vector<std::string> expected;
  for (const auto& e : ev) {
    if (e["type"] != "stage.output") expected.push_back(e["type"].get<std::string>());
  }
  ASSERT_EQ(watched.size(), expected.size()) << listed.out;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(columnsOf(watched[i])[1], expected[i]) << watched[i];
  }
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_NE(rest[0].find("cluster  staging-eu succeeded  apply  (none) → 1.2.3"), std::string::npos)
      << rest[0];
  EXPECT_EQ(rest[1], id + " succeeded");
  rest.clear();
  EXPECT_EQ(watchedEvents({"watch", id, "--output"}, &rest).size(), ev.size());

  // Filters, applied by the coordinator.
  CommandResult stages =
      cli({"events", id, "--type", "stage.*", "--cluster", "staging-eu", "--since", "10m"});
  ASSERT_EQ(stages.exit_code, 0) << stages.err;
  size_t stage_events = 0;
  for (const auto& e : ev) stage_events += e["type"].get<std::string>().rfind("stage.", 0) == 0;
  ASSERT_GT(stage_events, 0u);
  EXPECT_EQ(linesOf(stages.out).size(), stage_events) << stages.out;
  for (const auto& line : linesOf(stages.out))
    EXPECT_TRUE(startsWith(columnsOf(line)[1], "stage."));
  CommandResult later = cli({"events", id, "--since", "2999-01-01T00:00:00Z"});
  EXPECT_EQ(later.exit_code, 0) << later.err;
  EXPECT_EQ(later.out, "");
  CommandResult bad_type = cli({"events", id, "--type", "stages"});
  EXPECT_EQ(bad_type.exit_code, 1);
  EXPECT_NE(bad_type.err.find("\"stages\" is not an event type pattern"), std::string::npos)
      << bad_type.err;
  CommandResult bad_time = cli({"events", id, "--since", "last tuesday"});
  EXPECT_EQ(bad_time.exit_code, 1);
  EXPECT_NE(bad_time.err.find("is not an RFC 3339 time"), std::string::npos) << bad_time.err;

  CommandResult unknown = cli({"status", "nosuch-9"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no deployment named nosuch-9"), std::string::npos) << unknown.err;
  CommandResult unknown_events = cli({"events", "nosuch-9"});
  EXPECT_EQ(unknown_events.exit_code, 1) << unknown_events.err;
}

TEST_F(CliTest, PauseHoldsNewStepsUntilResume) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan("slow.yaml", kSlowBuildPlan);
  ASSERT_FALSE(id.empty());

  CommandResult pause = cli({"pause", id});
  ASSERT_EQ(pause.exit_code, 0) << pause.out << pause.err;
  EXPECT_NE(pause.out.find("state is now paused"), std::string::npos) << pause.out;
  EXPECT_EQ(stateOf(id), "paused");

  // The build in flight finishes; nothing after it starts while paused.
  ASSERT_TRUE(waitUntil("the build in flight to finish", [&] {
    return findEvent(events(id), "stage.succeeded", "staging", "staging-eu", "build") >= 0;
  }));
  EXPECT_TRUE(holdsFor(
      "a paused deployment starts no step",
      [&] {
        return stateOf(id) == "paused" &&
               stepLog(id, "staging-eu") == std::vector<std::string>{"build"} &&
               !hasStepLog(id, "prod-eu-1");
      },
      1000ms));

  CommandResult again = cli({"pause", id});
  EXPECT_EQ(again.exit_code, 1) << "pausing a paused deployment is refused: " << again.out;
  EXPECT_FALSE(again.err.empty());

  CommandResult resume = cli({"resume", id});
  ASSERT_EQ(resume.exit_code, 0) << resume.out << resume.err;
  EXPECT_NE(resume.out.find("resume accepted"), std::string::npos) << resume.out;
  CommandResult wait = cli({"wait", id, "--timeout", "30s"});
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err;
  EXPECT_EQ(stepLog(id, "staging-eu"), (std::vector<std::string>{"build", "apply"}));
  EXPECT_EQ(stepLog(id, "prod-eu-1"), (std::vector<std::string>{"build", "apply"}));

  const json ev = events(id);
  int paused = findEvent(ev, "deployment.paused");
  int resumed = findEvent(ev, "deployment.resumed");
  ASSERT_GE(paused, 0);
  ASSERT_GT(resumed, paused);
  for (int i = paused; i < resumed; ++i) {
    EXPECT_NE(ev[i]["type"], "stage.started") << "a step started while paused: " << ev[i].dump();
  }
}

// Cancel stops the deployment and takes the new version out of the clusters it reached.
TEST_F(CliTest, CancelStopsForGood) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan("gated.yaml", kGatedPlan);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "awaiting_approval"));

  CommandResult cancel = cli({"cancel", id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.out << cancel.err;
  // Staging ran apply: it is rolled back before the deployment ends cancelled.
  EXPECT_NE(cancel.out.find("state is now rolling_back"), std::string::npos) << cancel.out;
  CommandResult wait = cli({"wait", id, "--timeout", "30s"});
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_NE(wait.out.find(id + " cancelled"), std::string::npos) << wait.out;

  CommandResult twice = cli({"cancel", id});
  EXPECT_EQ(twice.exit_code, 1) << twice.out;
  EXPECT_NE(twice.err.find("already cancelled"), std::string::npos) << twice.err;
  CommandResult approve = cli({"approve", id});
  EXPECT_EQ(approve.exit_code, 1) << approve.out;

  json detail = deployment(id);
  EXPECT_EQ(detail["state"], "cancelled");
  EXPECT_EQ(detail["waves"][1]["state"], "skipped");
  EXPECT_EQ(detail["waves"][0]["state"], "rolled_back");
  EXPECT_EQ(stepLog(id, "staging-eu"), (std::vector<std::string>{"apply", "rollback"}));
  EXPECT_TRUE(holdsFor(
      "a cancelled deployment runs nothing more",
      [&] {
        return !hasStepLog(id, "prod-eu-1") && !hasStepLog(id, "prod-eu-2") &&
               !hasStepLog(id, "prod-us-1") && stateOf(id) == "cancelled";
      },
      1000ms));
}

TEST_F(CliTest, UnreachableServerIsExitCodeTwoWithAPlainMessage) {
  const int port = freePort();  // nothing listens there
  ASSERT_NE(port, 0);
  const std::string server = "http://127.0.0.1:" + std::to_string(port);
  const std::string plan = writePlan("quick.yaml", kQuickPlan);
  const std::vector<std::vector<std::string>> commands = {
      {"status"}, {"agents"}, {"submit", plan}, {"wait", "shop-1"}, {"approve", "shop-1"}};
  for (const auto& args : commands) {
    SCOPED_TRACE(args[0]);
    CommandResult r = runCli(server, args, 30s);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_EQ(r.out, "");
    std::vector<std::string> lines = linesOf(r.err);
    ASSERT_EQ(lines.size(), 1u) << "one line, no stack of internals:\n" << r.err;
    EXPECT_TRUE(startsWith(lines[0], "flotilla: cannot reach the coordinator at " + server))
        << lines[0];
  }
}

// `wait` tells a script why it stopped: 3 when --timeout passed (the deployment is held at its
// approval), 2 when the coordinator cannot be reached, never the same code for both.
TEST_F(CliTest, WaitTimedOutIsThreeAndUnreachableIsTwo) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan("gated.yaml", kGatedPlan);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitUntil("the production wave to await approval",
                        [&] { return stateOf(id) == "awaiting_approval"; }));
  const auto started = std::chrono::steady_clock::now();
  CommandResult timed_out = cli({"wait", id, "--timeout", "1s"});
  EXPECT_EQ(timed_out.exit_code, 3) << timed_out.out << timed_out.err;
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1s);
  EXPECT_EQ(timed_out.out, id + " awaiting_approval\n");
  EXPECT_EQ(timed_out.err, "flotilla: gave up waiting for " + id + " after 1s\n");
  EXPECT_EQ(stateOf(id), "awaiting_approval") << "waiting gave up, the deployment did not";

  const int port = freePort();  // nothing listens there
  ASSERT_NE(port, 0);
  CommandResult unreachable =
      runCli("http://127.0.0.1:" + std::to_string(port), {"wait", id, "--timeout", "1s"}, 30s);
  EXPECT_EQ(unreachable.exit_code, 2) << unreachable.out << unreachable.err;
  EXPECT_NE(unreachable.err.find("cannot reach the coordinator"), std::string::npos)
      << unreachable.err;
}

// `--timeout 90` used to wait 90 seconds; a duration now needs a unit, as in a plan, and the
// command line is refused before anything is asked of the coordinator.
TEST_F(CliTest, ADurationWithoutAUnitIsRefused) {
  const std::string server = "http://127.0.0.1:" + std::to_string(freePort());
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"wait", "shop-1", "--timeout", "90"}, {"agents", "enroll", "eu", "--ttl", "3600"}}) {
    SCOPED_TRACE(args[0]);
    CommandResult r = runCli(server, args, 30s);
    EXPECT_GE(r.exit_code, 100) << r.out << r.err;
    EXPECT_NE(
        r.err.find("invalid duration \"" + args.back() + "\": a unit is required (h, m, s or ms)"),
        std::string::npos)
        << r.err;
    EXPECT_EQ(r.err.find("cannot reach"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace flotilla::integration
