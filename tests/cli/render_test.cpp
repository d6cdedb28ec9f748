// Rendering: tables, the status views, event lines and the text safety rules, from JSON shaped
// as the coordinator sends it (and some shaped oddly, which must not abort a view).
#include "cli/render.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/time_format.hpp"

namespace flotilla::cli {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

TimePoint at(const std::string& rfc3339) {
  auto ms = common::parseRfc3339(rfc3339);
  EXPECT_TRUE(ms.has_value()) << rfc3339;
  return common::fromUnixMillis(ms.value_or(0));
}

TEST(FieldText, SpellsOutScalarsAndBlanksTheRest) {
  const json object = {{"s", "text"},        {"n", 42},
                       {"b", true},          {"z", nullptr},
                       {"a", json::array()}, {"o", json::object()}};
  EXPECT_EQ(fieldText(object, "s"), "text");
  EXPECT_EQ(fieldText(object, "n"), "42");
  EXPECT_EQ(fieldText(object, "b"), "true");
  EXPECT_EQ(fieldText(object, "z"), "");
  EXPECT_EQ(fieldText(object, "a"), "");
  EXPECT_EQ(fieldText(object, "o"), "");
  EXPECT_EQ(fieldText(object, "missing"), "");
  EXPECT_EQ(fieldText(json::array(), "s"), "");
  EXPECT_EQ(fieldText({{"s", "two\nlines"}}, "s"), "two lines");
}

TEST(IsFinalState, OnlyTheFourEndings) {
  for (const char* state : {"succeeded", "rolled_back", "failed", "cancelled"}) {
    EXPECT_TRUE(isFinalState(state)) << state;
  }
  for (const char* state : {"pending", "running", "awaiting_approval", "paused", "rolling_back"}) {
    EXPECT_FALSE(isFinalState(state)) << state;
  }
}

TEST(FormatAge, CoarseUnitsAndNoNegativeAges) {
  EXPECT_EQ(formatAge(45s), "45s");
  EXPECT_EQ(formatAge(12min + 59s), "12m");
  EXPECT_EQ(formatAge(3h + 5min), "3h");
  EXPECT_EQ(formatAge(49h), "2d");
  EXPECT_EQ(formatAge(-5s), "0s");
}

TEST(Sanitize, NeutralisesLineBreaksAndTerminalEscapes) {
  EXPECT_EQ(sanitize("a\nb\r\tc"), "a b  c");
  EXPECT_EQ(sanitize("red \x1b[31mtext"), "red ?[31mtext");
  EXPECT_EQ(sanitize("csi \xc2\x9b"
                     "31m"),
            "csi ?31m");
  EXPECT_EQ(sanitize("caf\xc3\xa9 \x7f"), "caf\xc3\xa9 ?");
}

TEST(DisplayWidth, CountsCodePointsAndCutsWithAnEllipsis) {
  EXPECT_EQ(displayWidth("caf\xc3\xa9"), 4u);
  EXPECT_EQ(truncateToWidth("checkout", 20), "checkout");
  EXPECT_EQ(truncateToWidth("checkout", 5), "chec…");
  EXPECT_EQ(truncateToWidth("caf\xc3\xa9s", 4), "caf…");
  EXPECT_EQ(truncateToWidth("abc", 0), "");
}

TEST(RenderTable, AlignsColumnsWithoutTrailingBlanks) {
  EXPECT_EQ(renderTable({"NAME", "ROLE"}, {{"alice", "admin"}, {"ci", ""}, {"bob"}}),
            "NAME   ROLE\n"
            "alice  admin\n"
            "ci\n"
            "bob\n");
}

TEST(RenderDeploymentList, OneRowPerSummaryWithWaveAndAge) {
  const json list = json::parse(R"([
    {"id": "shop-2", "service": "shop", "version": "1.3.0", "state": "running",
     "current_wave": "prod", "wave_index": 1, "waves_total": 3,
     "created_at": "2026-11-27T01:55:00.000Z"},
    {"id": "shop-1", "service": "shop", "version": "1.2.0", "state": "succeeded",
     "created_at": "yesterday"}
  ])");
  EXPECT_EQ(renderDeploymentList(list, at("2026-11-27T02:00:00Z")),
            "ID      SERVICE  VERSION  STATE      WAVE      AGE\n"
            "shop-2  shop     1.3.0    running    2/3 prod  5m\n"
            "shop-1  shop     1.2.0    succeeded  -         yesterday\n");
}

TEST(RenderDeploymentList, AHotfixIsMarkedBesideItsVersion) {
  const json list = json::parse(R"([
    {"id": "shop-4", "service": "shop", "version": "1.3.1", "state": "succeeded",
     "created_at": "2026-11-27T01:55:00.000Z", "hotfix": "INC-7: carts"}])");
  EXPECT_EQ(renderDeploymentList(list, at("2026-11-27T02:00:00Z")),
            "ID      SERVICE  VERSION         STATE      WAVE  AGE\n"
            "shop-4  shop     1.3.1 [hotfix]  succeeded  -     5m\n");
  const json detail = list[0];
  const std::vector<std::string> lines = renderDeploymentDetail(detail, at("2026-11-27T02:00:00Z"));
  EXPECT_NE(std::find(lines.begin(), lines.end(), "Hotfix      INC-7: carts"), lines.end());
}

TEST(RenderDeploymentDetail, HeaderWavesClustersAndWhatFailed) {
  const json detail = json::parse(R"({
    "id": "shop-3", "service": "shop", "version": "2.0.0", "state": "rolled_back",
    "submitted_by": "alice", "reason": "health check failed",
    "created_at": "2026-11-27T01:00:00Z", "updated_at": "2026-11-27T01:59:30Z",
    "waves": [
      {"name": "staging", "state": "succeeded", "clusters": [
        {"name": "staging-eu", "state": "succeeded", "step": "verify", "message": ""}]},
      {"name": "prod", "state": "awaiting_approval", "approval_required": true, "clusters": [
        {"name": "prod-eu-1", "state": "failed", "step": "apply", "message": "boom",
         "exit_code": 3}]}
    ],
    "failure": {"cluster": "prod-eu-1", "step": "apply", "message": "boom"},
    "rollback_failed_clusters": ["prod-eu-1"]
  })");
  const std::vector<std::string> expected = {
      "Deployment  shop-3",
      "Service     shop 2.0.0",
      "State       rolled_back",
      "Submitted   by alice",
      "Reason      health check failed",
      "Created     2026-11-27T01:00:00Z (1h ago)",
      "Updated     2026-11-27T01:59:30Z (30s ago)",
      "",
      "WAVE/CLUSTER  STATE              STEP    MESSAGE",
      "staging       succeeded",
      "  staging-eu  succeeded          verify",
      "prod          awaiting_approval          waiting for approval: flotilla approve shop-3 prod",
      "  prod-eu-1   failed             apply   boom (exit 3)",
      "",
      "failed: cluster prod-eu-1 step apply: boom",
      "rollback failed on: prod-eu-1 (these clusters need a human)",
  };
  EXPECT_EQ(renderDeploymentDetail(detail, at("2026-11-27T02:00:00Z")), expected);
}

// During a canary a row once read "analyzing analyze": now the step, where the strategy is,
// the weight, the versions, and the agent when it has gone quiet.
TEST(RenderDeploymentDetail, ClustersShowStrategyStepWeightVersionsAndQuietAgents) {
  const json detail = json::parse(R"({"id": "shop-4", "waves": [
    {"name": "prod", "state": "running", "clusters": [
      {"name": "prod-eu-1", "state": "analyzing", "step": "analyze", "strategy_step": 2,
       "strategy_steps": 3, "weight": 50, "from_version": "1.0.0", "to_version": "1.1.0",
       "message": ""},
      {"name": "prod-us-1", "state": "applying", "step": "apply", "strategy_step": null,
       "strategy_steps": 0, "weight": null, "from_version": "", "to_version": "1.1.0",
       "message": ""}]}]})");
  const json agents = json::parse(R"([
    {"cluster": "prod-eu-1", "state": "connected", "last_seen": "2026-11-27T01:59:59Z",
     "silent_ms": 500, "unknown_after_ms": 3000, "lost_after_ms": 15000},
    {"cluster": "prod-us-1", "state": "unknown", "last_seen": "2026-11-27T01:59:55Z",
     "silent_ms": 5000, "unknown_after_ms": 3000, "lost_after_ms": 15000}])");
  std::vector<std::string> lines =
      renderDeploymentDetail(detail, at("2026-11-27T02:00:00Z"), agents);
  const std::vector<std::string> table(lines.end() - 4, lines.end());
  EXPECT_EQ(table,
            (std::vector<std::string>{
                "WAVE/CLUSTER  STATE      STEP             VERSION         MESSAGE",
                "prod          running", "  prod-eu-1   analyzing  analyze 2/3 50%  1.0.0 → 1.1.0",
                "  prod-us-1   applying   apply            (none) → 1.1.0  agent unknown "
                "(last seen 5s ago; lost at 15s)"}));
  const json& cluster = detail["waves"][0]["clusters"][1];
  EXPECT_EQ(clusterSummary(cluster, agents, at("2026-11-27T02:00:00Z")),
            "prod-us-1 applying  apply  (none) → 1.1.0  agent unknown");
  EXPECT_EQ(clusterSummary(detail["waves"][0]["clusters"][0], nullptr, at("2026-11-27T02:00:00Z")),
            "prod-eu-1 analyzing  analyze 2/3 50%  1.0.0 → 1.1.0");
}

// The last analysis figures of each cluster that has some, below the table, in one line each;
// figures the CLI cannot read (another coordinator's shape) render as nothing.
TEST(RenderDeploymentDetail, ClustersShowTheirLastAnalysisFigures) {
  const json figures = json::parse(R"({"step": "analyze", "window": 1, "window_ms": 30000,
    "candidate": {"version": "2.1.0", "requests": 420, "request_rate": 14.0, "error_rate": 0.008,
                  "latency_p95_s": 0.012, "replicas": 2},
    "stable": {"version": "2.0.0", "requests": 400, "request_rate": 13.3, "error_rate": 0.005,
               "latency_p95_s": 0.010, "replicas": 2},
    "limits": {"error_rate": 0.01, "latency_p95_s": 0.02, "min_requests": 20},
    "verdict": "pass", "health": {"checks": 12, "failing": 0, "threshold": 3},
    "strategy_step": 2, "strategy_steps": 3})");
  json detail = json::parse(R"({"id": "shop-4", "waves": [
    {"name": "prod", "state": "running", "clusters": [
      {"name": "prod-eu-1", "state": "analyzing", "step": "analyze", "strategy_step": 2,
       "strategy_steps": 3, "weight": 50, "from_version": "2.0.0", "to_version": "2.1.0",
       "message": ""},
      {"name": "prod-us-1", "state": "applying", "step": "shift", "strategy_step": 1,
       "strategy_steps": 3, "weight": 10, "from_version": "2.0.0", "to_version": "2.1.0",
       "message": "", "figures": null}]}]})");
  detail["waves"][0]["clusters"][0]["figures"] = figures;
  const std::string expected =
      "analysis 2/3: 2.1.0 err 0.8% p95 12 ms (420 req) vs 2.0.0 err 0.5% p95 10 ms (400 req); "
      "limits err 1.0%, p95 20 ms, min 20 req; pass · health 0/3 failing";
  EXPECT_EQ(clusterFiguresText(detail["waves"][0]["clusters"][0]), expected);
  EXPECT_EQ(clusterFiguresText(detail["waves"][0]["clusters"][1]), "");
  std::vector<std::string> lines = renderDeploymentDetail(detail, at("2026-11-27T02:00:00Z"));
  const std::vector<std::string> tail(lines.end() - 3, lines.end());
  EXPECT_EQ(tail, (std::vector<std::string>{"", "Last analysis", "  prod-eu-1  " + expected}));

  json odd = figures;
  odd["candidate"]["error_rate"] = "high";
  EXPECT_EQ(clusterFiguresText(json{{"figures", odd}}), "");
  odd = figures;
  odd["candidate"]["version"] = "2.1.0\u001b[2J";
  EXPECT_EQ(clusterFiguresText(json{{"figures", odd}}), "");
  EXPECT_EQ(clusterFiguresText(json{{"figures", 3}}), "");
}

TEST(RenderDeploymentDetail, ClustersShowTheirVerificationChecklist) {
  const json failed = {{"name", "prod-eu-1"},
                       {"state", "failed"},
                       {"checks",
                        {{{"name", "health"}, {"state", "passed"}, {"exit_code", 0}},
                         {{"name", "smoke"}, {"state", "failed"}, {"exit_code", 1}},
                         {{"name", "slow"}, {"state", "timed_out"}, {"exit_code", -1}},
                         {{"name", "gone"}, {"state", "aborted"}, {"exit_code", 0}},
                         {{"name", "perf"}, {"state", "running"}},
                         {{"name", "logs\x1b[2J"}, {"state", "pending"}}}}};
  EXPECT_EQ(clusterChecksText(failed),
            "verify: health ✓ smoke ✗ (exit 1) slow ✗ (timed out) gone ✗ (aborted) perf … "
            "logs?[2J -");
  EXPECT_EQ(clusterChecksText(json{{"name", "c"}, {"checks", json::array()}}), "");
  EXPECT_EQ(clusterChecksText(json{{"name", "c"}}), "");  // an older coordinator
  EXPECT_EQ(clusterChecksText(json{{"checks", 3}}), "");

  const json detail = {{"id", "web-1"},
                       {"state", "rolled_back"},
                       {"waves",
                        {{{"name", "prod"},
                          {"state", "rolled_back"},
                          {"clusters", {failed, {{"name", "prod-eu-2"}, {"state", "aborted"}}}}}}}};
  const std::vector<std::string> lines = renderDeploymentDetail(detail, at("2026-11-27T00:00:00Z"));
  auto heading = std::find(lines.begin(), lines.end(), "Verification");
  ASSERT_NE(heading, lines.end());
  ASSERT_NE(heading + 1, lines.end());
  EXPECT_EQ(*(heading + 1), "  prod-eu-1  " + clusterChecksText(failed));
  EXPECT_TRUE(heading + 2 == lines.end() || (heading + 2)->empty());
}

TEST(RenderDeploymentDetail, ApprovalsNameWhoApproved) {
  const json detail = json::parse(R"({"id": "d-1", "waves": [
    {"name": "prod", "state": "running", "approval_required": true, "approved": true,
     "approvals_required": 2, "approvals": [{"by": "bob"}, {"by": "carol"}]}]})");
  std::vector<std::string> lines = renderDeploymentDetail(detail, at("2026-11-27T02:00:00Z"));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), "prod          running        approved by bob, carol (2 of 2)");
}

TEST(RenderDeploymentDetail, AWaveNotStartedListsTheClustersItWillTouch) {
  const json detail = json::parse(R"({"id": "d-1", "waves": [
    {"name": "prod", "state": "awaiting_approval", "approval_required": true, "clusters": [],
     "planned_clusters": ["prod-eu-1", "prod-eu-2"]}]})");
  std::vector<std::string> lines = renderDeploymentDetail(detail, at("2026-11-27T02:00:00Z"));
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(
      lines[lines.size() - 3],
      "prod          awaiting_approval        waiting for approval: flotilla approve d-1 prod");
  EXPECT_EQ(lines[lines.size() - 2], "  prod-eu-1   planned");
  EXPECT_EQ(lines[lines.size() - 1], "  prod-eu-2   planned");
}

TEST(FormatStateLine, ReasonOrFailure) {
  EXPECT_EQ(formatStateLine({{"id", "d-1"}, {"state", "succeeded"}}), "d-1 succeeded");
  EXPECT_EQ(formatStateLine({{"id", "d-1"}, {"state", "cancelled"}, {"reason", "by alice"}}),
            "d-1 cancelled: by alice");
  EXPECT_EQ(
      formatStateLine(json::parse(
          R"({"id": "d-1", "state": "failed", "failure": {"cluster": "eu", "message": "x"}})")),
      "d-1 failed (failed: cluster eu: x)");
  EXPECT_EQ(formatFailure(json::object()), "failed");
}

TEST(FormatEvent, ColumnsLocationAndMessage) {
  const json events = json::parse(R"([
    {"time": "2026-11-27T01:00:00.000Z", "type": "deployment.submitted", "message": "by alice"},
    {"time": "2026-11-27T01:00:01.000Z", "type": "stage.started", "wave": "staging",
     "cluster": "staging-eu", "step": "apply"}
  ])");
  EventColumns columns = measureEvents(events);
  EXPECT_EQ(columns.type, 20u);
  EXPECT_EQ(columns.where, 24u);
  EXPECT_EQ(formatEvent(events[0], columns),
            "2026-11-27T01:00:00.000Z  deployment.submitted  -                         by alice");
  EXPECT_EQ(formatEvent(events[1], columns),
            "2026-11-27T01:00:01.000Z  stage.started         staging/staging-eu/apply");
}

TEST(RenderAgents, LabelsAndStateWithTheNextDeadline) {
  const json agents = json::parse(R"([
    {"cluster": "prod-eu-1", "state": "connected", "labels": {"environment": "production",
     "region": "eu"}, "last_seen": "2026-11-27T01:59:58.500Z", "silent_ms": 1200,
     "unknown_after_ms": 3000, "lost_after_ms": 30000},
    {"cluster": "prod-us-1", "state": "unknown", "last_seen": "2026-11-27T01:59:39Z",
     "silent_ms": 21400, "unknown_after_ms": 3000, "lost_after_ms": 30000},
    {"cluster": "lab", "state": "lost", "last_seen": null}
  ])");
  EXPECT_EQ(renderAgents(agents, at("2026-11-27T02:00:00Z")),
            "CLUSTER    STATE                                        LABELS\n"
            "prod-eu-1  connected (last seen 1s ago; unknown at 3s)  "
            "environment=production,region=eu\n"
            "prod-us-1  unknown (last seen 21s ago; lost at 30s)     -\n"
            "lab        lost                                         -\n");
}

TEST(AgentStateText, SaysWhatTheCoordinatorKnows) {
  const auto now = at("2026-11-27T02:00:00Z");
  // Restored from the store after a coordinator restart, not heard from since.
  EXPECT_EQ(agentStateText(json::parse(R"({"state": "unknown", "last_seen": null,
      "silent_ms": 4000, "unknown_after_ms": null, "lost_after_ms": 15000})"),
                           now),
            "unknown (not heard from since the coordinator started; lost at 15s)");
  EXPECT_EQ(agentStateText(json::parse(R"({"state": "lost", "last_seen": "2026-11-27T01:59:20Z",
      "silent_ms": 40000, "unknown_after_ms": 3000, "lost_after_ms": 15000})"),
                           now),
            "lost (last seen 40s ago; lost at 15s)");
  // An older coordinator: the age comes from last_seen, and there is no deadline to show.
  EXPECT_EQ(agentStateText(json::parse(R"({"state": "connected",
      "last_seen": "2026-11-27T01:59:55Z"})"),
                           now),
            "connected (last seen 5s ago)");
}

TEST(FormatPlanProblems, TheFormatEditorsJumpTo) {
  const json problems = json::parse(R"([
    {"line": 3, "column": 5, "message": "unknown field \"stepz\""},
    {"line": 7, "message": "no clusters"},
    {"message": "empty plan"}
  ])");
  EXPECT_EQ(formatPlanProblems("plan.yaml", problems),
            (std::vector<std::string>{"plan.yaml:3:5: unknown field \"stepz\"",
                                      "plan.yaml:7: no clusters", "plan.yaml: empty plan"}));
}

}  // namespace
}  // namespace flotilla::cli
