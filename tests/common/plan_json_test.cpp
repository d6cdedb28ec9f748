// Tests for the stored JSON form of a plan (common/plan_json.cpp).
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/plan.hpp"
#include "tests/common/plan_test_support.hpp"

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;
using namespace plan_testing;

// `plan` through its stored form and back: the same plan, and the same JSON again. The plan
// read back.
Plan expectRoundTrip(const Plan& plan) {
  const std::string json = planToJson(plan);
  auto back = planFromJson(json);
  EXPECT_TRUE(back.ok()) << back.status().toString();
  if (!back.ok()) return Plan{};
  expectSamePlan(*back, plan);
  EXPECT_EQ(planToJson(*back), json);
  return *back;
}

// The stored form of `text`'s plan holds each of `parts`.
void expectStoredParts(const std::string& text, std::initializer_list<const char*> parts) {
  PlanParseResult parsed = parsePlan(text);
  ASSERT_TRUE(parsed.plan.has_value()) << describe(parsed);
  const std::string json = planToJson(*parsed.plan);
  for (const char* part : parts) {
    EXPECT_NE(json.find(part), std::string::npos) << part << " not in " << json;
  }
}

// `text` with its first `from` replaced by `to` (a failure when there is none).
std::string replacedIn(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(PlanJson, RoundTripIsExact) {
  PlanParseResult parsed = parsePlan(kFullPlan);
  ASSERT_TRUE(parsed.plan.has_value()) << describe(parsed);
  Plan plan = *parsed.plan;
  plan.waves[0].selector = {{"a", "é ü"}, {"k8s.io/zone", "x y"}};  // non-ASCII survives
  plan.waves[1].max_parallel = 4294967295u;
  plan.steps.timeout = 86399999ms;

  expectRoundTrip(plan);
  // A plan straight from the defaults round-trips too (empty optional commands).
  expectRoundTrip(Plan{});
}

TEST(PlanJson, ProcessPlanRoundTripIsExact) {
  PlanParseResult parsed = parsePlan(kFullProcessPlan);
  ASSERT_TRUE(parsed.plan.has_value()) << describe(parsed);
  expectRoundTrip(*parsed.plan);

  // Values at the edges of what the stored form holds, and doubles without a short decimal form.
  Plan plan = *parsed.plan;
  plan.process.replicas = 64;
  plan.process.port_min = 1024;
  plan.process.port_max = 65535;
  plan.process.command = "/opt/caf\xc3\xa9/{version} --port {port} --name \"x\"";
  plan.haproxy->socket = "/run/{cluster}/admin.sock";
  plan.strategy = Strategy{StrategyKind::kBlueGreen, {100}, 86400000ms};
  plan.waves[0].strategy = Strategy{StrategyKind::kCanary, {1, 2, 3, 100}, 0ms};
  plan.waves[1].strategy.reset();
  plan.waves[2].bake = 86400000ms;
  plan.health.http.failure_threshold = 1000;
  plan.health.metrics->error_rate_increase = 0.1;
  plan.health.metrics->latency_p95_ratio = 1.0 / 3.0;
  plan.health.metrics->min_requests = 4294967295u;
  plan.health.metrics->fail_when_inconclusive = false;
  expectRoundTrip(plan);

  // Without traffic, strategy or metrics (the defaults) too.
  PlanParseResult minimal = parsePlan(kMinimalProcessPlan);
  ASSERT_TRUE(minimal.plan.has_value()) << describe(minimal);
  const Plan minimal_back = expectRoundTrip(*minimal.plan);
  EXPECT_FALSE(minimal_back.haproxy.has_value());
  EXPECT_FALSE(minimal_back.health.metrics.has_value());
  ASSERT_EQ(minimal_back.waves.size(), 1u);
  EXPECT_FALSE(minimal_back.waves[0].strategy.has_value());
}

TEST(PlanJson, RollingPlanRoundTripIsExact) {
  PlanParseResult parsed = parsePlan(kRollingProcessPlan);
  ASSERT_TRUE(parsed.plan.has_value()) << describe(parsed);
  const Plan back = expectRoundTrip(*parsed.plan);
  EXPECT_EQ(back.strategy.kind, StrategyKind::kRolling);
  EXPECT_EQ(back.strategy.max_unavailable, 0u);
  EXPECT_EQ(back.strategy.max_surge, 2u);
  ASSERT_EQ(back.waves.size(), 3u);
  ASSERT_TRUE(back.waves[1].strategy.has_value());
  EXPECT_EQ(back.waves[1].strategy->kind, StrategyKind::kRolling);
  EXPECT_EQ(back.waves[1].strategy->max_unavailable, 3u);
  EXPECT_EQ(back.waves[1].strategy->max_surge, 0u);

  // The edges of what the stored form holds (64), on the plan's and on a wave's strategy.
  Plan plan = *parsed.plan;
  plan.strategy.max_unavailable = 64;
  plan.strategy.max_surge = 64;
  plan.waves[0].strategy = Strategy{StrategyKind::kRolling, {100}, 0ms, 64, 0};
  plan.waves[2].strategy = Strategy{StrategyKind::kRolling, {100}, 0ms, 0, 64};
  expectRoundTrip(plan);

  // Rolling plans straight from the parser, defaults included.
  for (const char* lines : {"strategy: {type: rolling}\n", "    strategy: {type: rolling}\n",
                            "strategy: {type: rolling, max_unavailable: 64, max_surge: 0}\n"}) {
    PlanParseResult small = parsePlan(std::string(kMinimalProcessPlan) + lines);
    ASSERT_TRUE(small.plan.has_value()) << lines << describe(small);
    expectRoundTrip(*small.plan);
  }
}

TEST(PlanJson, StoredRollingFormHasTheDocumentedKeys) {
  expectStoredParts(
      kRollingProcessPlan,
      {"\"strategy\":{\"kind\":\"rolling\",\"max_surge\":2,\"max_unavailable\":0,\"pause_ms\":0,"
       "\"steps\":[100]}",
       "\"strategy\":{\"kind\":\"rolling\",\"max_surge\":0,\"max_unavailable\":3,\"pause_ms\":0,"
       "\"steps\":[100]}",
       "\"strategy\":{\"kind\":\"canary\",\"max_surge\":1,\"max_unavailable\":1,"
       "\"pause_ms\":30000,\"steps\":[25,100]}",
       "\"bake_ms\":600000"});
}

TEST(PlanJson, StoredProcessFormHasTheDocumentedKeys) {
  expectStoredParts(
      kFullProcessPlan,
      {"\"driver\":\"process\"", "\"replicas\":4", "\"port_min\":18000", "\"port_max\":18099",
       "\"health_path\":\"/ready\"",
       "\"haproxy\":{\"backend\":\"checkout\",\"socket\":\"/run/haproxy/admin.sock\"}",
       "\"strategy\":{\"kind\":\"canary\",\"max_surge\":1,\"max_unavailable\":1,\"pause_ms\":"
       "45000,"
       "\"steps\":[10,50,100]}",
       "\"strategy\":{\"kind\":\"blue_green\",\"max_surge\":1,\"max_unavailable\":1,"
       "\"pause_ms\":60000,\"steps\":[50,100]}",
       "\"strategy\":null", "\"bake_ms\":900000", "\"bake_ms\":0", "\"interval_ms\":500",
       "\"timeout_ms\":250", "\"failure_threshold\":5", "\"error_rate_increase\":0.25",
       "\"latency_p95_ratio\":1.5", "\"min_requests\":50", "\"fail_when_inconclusive\":true"});
  const std::string minimal = planToJson(*parsePlan(kMinimalProcessPlan).plan);
  EXPECT_NE(minimal.find("\"haproxy\":null"), std::string::npos) << minimal;
  EXPECT_NE(minimal.find("\"metrics\":null"), std::string::npos) << minimal;
  EXPECT_NE(minimal.find("\"strategy\":{\"kind\":\"all_at_once\",\"max_surge\":1,"
                         "\"max_unavailable\":1,\"pause_ms\":0,\"steps\":[]}"),
            std::string::npos)
      << minimal;
}

TEST(PlanJson, StoredFormHasTheDocumentedKeys) {
  expectStoredParts(
      kFullPlan, {"\"service\":\"checkout\"", "\"version\":\"1.4.2\"", "\"driver\":\"script\"",
                  "\"timeout_ms\":300000", "\"approval_required\":true", "\"max_parallel\":2",
                  "\"selector\":{\"environment\":\"production\"}", "\"rollback_scope\":\"wave\""});
}

TEST(PlanJson, GarbageIsCorruption) {
  const std::string good = planToJson(*parsePlan(kMinimalPlan).plan);
  auto replaced = [&](const std::string& from, const std::string& to) {
    return replacedIn(good, from, to);
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not valid JSON"},
      {"{not json", "not valid JSON"},
      {std::string("\xff\x00\x01", 3), "not valid JSON"},
      {"[1, 2]", "plan: expected an object"},
      {"{}", "service: missing"},
      {replaced("\"service\":\"checkout\"", "\"service\":7"), "service: expected a string"},
      {replaced("\"timeout_ms\":300000", "\"timeout_ms\":-1"),
       "steps.timeout_ms: expected a non-negative integer"},
      {replaced("\"timeout_ms\":300000", "\"timeout_ms\":1.5"),
       "steps.timeout_ms: expected a non-negative integer"},
      {replaced("\"max_parallel\":0", "\"max_parallel\":4294967296"),
       "waves[0].max_parallel: out of range"},
      {replaced("\"clusters\":[\"staging-eu\"]", "\"clusters\":[1]"),
       "waves[0].clusters[0]: expected a string"},
      {replaced("\"selector\":{}", "\"selector\":{\"a\":true}"),
       "waves[0].selector.a: expected a string"},
      {replaced("\"approval_required\":false", "\"approval_required\":\"no\""),
       "waves[0].approval_required: expected a boolean"},
      {replaced("\"driver\":\"script\"", "\"driver\":\"kubernetes\""), "driver: unknown driver"},
      {replaced("\"rollback_scope\":\"fleet\"", "\"rollback_scope\":\"all\""),
       "rollback_scope: unknown scope"},
      {replaced(",\"rollback_scope\":\"fleet\"", ""), "rollback_scope: missing"},
      {replaced("\"steps\":{", "\"steps\":[],\"x\":{"), "steps: expected an object"},
  };
  // The process-driver fields, on the stored form of a process plan.
  PlanParseResult process_plan = parsePlan(kFullProcessPlan);
  ASSERT_TRUE(process_plan.plan.has_value()) << describe(process_plan);
  const std::string process_good = planToJson(*process_plan.plan);
  ASSERT_TRUE(planFromJson(process_good).ok());
  {
    // "rolling" is a known stored kind now.
    std::string rolling = process_good;
    rolling.replace(rolling.find("\"kind\":\"canary\""), 15, "\"kind\":\"rolling\"");
    auto back = planFromJson(rolling);
    ASSERT_TRUE(back.ok()) << back.status().toString();
    EXPECT_EQ(back->strategy.kind, StrategyKind::kRolling);
  }
  auto in_process = [&](const std::string& from, const std::string& to) {
    return replacedIn(process_good, from, to);
  };
  const std::vector<std::pair<std::string, std::string>> process_cases = {
      {in_process("\"driver\":\"process\"", "\"driver\":\"kubernetes\""), "driver: unknown driver"},
      {in_process("\"process\":{", "\"x\":{"), "process: missing"},
      {in_process("\"process\":{", "\"process\":[],\"x\":{"), "process: expected an object"},
      {in_process("\"command\":\"", "\"command\":1,\"x\":\""),
       "process.command: expected a string"},
      {in_process("\"replicas\":4", "\"replicas\":65"), "process.replicas: out of range"},
      {in_process("\"port_min\":18000", "\"port_min\":\"18000\""),
       "process.port_min: expected a non-negative integer"},
      {in_process("\"port_max\":18099", "\"port_max\":65536"), "process.port_max: out of range"},
      {in_process("\"health_path\":\"/ready\"", "\"health_path\":null"),
       "process.health_path: expected a string"},
      {in_process("\"haproxy\":{", "\"haproxy\":[],\"x\":{"), "haproxy: expected an object"},
      {in_process("\"backend\":\"checkout\"", "\"backend\":7"),
       "haproxy.backend: expected a string"},
      {in_process("\"socket\":\"", "\"sock\":\""), "haproxy.socket: missing"},
      {in_process("\"haproxy\":", "\"h\":"), "haproxy: missing"},
      {in_process("\"kind\":\"canary\"", "\"kind\":\"Rolling\""),
       "strategy.kind: unknown strategy"},
      {in_process("\"kind\":\"canary\"", "\"kind\":\"linear\""), "strategy.kind: unknown strategy"},
      {in_process("\"max_unavailable\":1", "\"max_unavailable\":65"),
       "strategy.max_unavailable: out of range"},
      {in_process("\"max_unavailable\":1", "\"max_unavailable\":-1"),
       "strategy.max_unavailable: expected a non-negative integer"},
      {in_process("\"max_unavailable\":1", "\"max_unavailable\":\"1\""),
       "strategy.max_unavailable: expected a non-negative integer"},
      {in_process("\"max_unavailable\":1,", ""), "strategy.max_unavailable: missing"},
      {in_process("\"max_surge\":1", "\"max_surge\":1.5"),
       "strategy.max_surge: expected a non-negative integer"},
      {in_process("\"max_surge\":1", "\"max_surge\":18446744073709551615"),
       "strategy.max_surge: out of range"},
      {in_process("\"max_surge\":1", "\"max_surge\":null"),
       "strategy.max_surge: expected a non-negative integer"},
      {in_process("\"max_surge\":1,", ""), "strategy.max_surge: missing"},
      {in_process("\"kind\":\"blue_green\",\"max_surge\":1",
                  "\"kind\":\"blue_green\",\"max_surge\":65"),
       "waves[1].strategy.max_surge: out of range"},
      {in_process("\"kind\":\"blue_green\",\"max_surge\":1,", "\"kind\":\"blue_green\","),
       "waves[1].strategy.max_surge: missing"},
      {in_process("[10,50,100]", "[10,101,100]"), "strategy.steps: expected percentages"},
      {in_process("[10,50,100]", "[10,-5,100]"), "strategy.steps: expected percentages"},
      {in_process("[10,50,100]", "[10,\"50\",100]"), "strategy.steps: expected percentages"},
      {in_process("[10,50,100]", "{}"), "strategy.steps: expected an array"},
      {in_process("\"pause_ms\":45000", "\"pause_ms\":-1"),
       "strategy.pause_ms: expected a non-negative integer"},
      {in_process("\"pause_ms\":45000", "\"pause_ms\":9223372036854775808"),
       "strategy.pause_ms: out of range"},
      {in_process("\"strategy\":{\"kind\":\"canary\"", "\"s\":{\"kind\":\"canary\""),
       "strategy: missing"},
      {in_process("\"strategy\":{\"kind\":\"canary\"",
                  "\"strategy\":null,\"s\":{\"kind\":\"canary\""),
       "strategy: expected an object"},
      {in_process("\"strategy\":null", "\"strategy\":7"), "waves[0].strategy: expected an object"},
      {in_process("\"kind\":\"blue_green\"", "\"kind\":\"x\""),
       "waves[1].strategy.kind: unknown strategy"},
      {in_process("\"bake_ms\":900000", "\"bake_ms\":1.5"),
       "waves[1].bake_ms: expected a non-negative integer"},
      {in_process("\"bake_ms\":0,", ""), "waves[0].bake_ms: missing"},
      {in_process("\"health\":", "\"x\":"), "health: missing"},
      {in_process("\"interval_ms\":500", "\"interval\":500"), "health.interval_ms: missing"},
      {in_process("\"timeout_ms\":250", "\"timeout_ms\":-250"),
       "health.timeout_ms: expected a non-negative integer"},
      {in_process("\"failure_threshold\":5", "\"failure_threshold\":1001"),
       "health.failure_threshold: out of range"},
      {in_process("\"path\":\"/live\"", "\"path\":false"), "health.path: expected a string"},
      {in_process("\"metrics\":{", "\"metrics\":[],\"x\":{"), "health.metrics: expected an object"},
      {in_process("\"error_rate_increase\":0.25", "\"error_rate_increase\":\"0.25\""),
       "health.metrics.error_rate_increase: expected a number"},
      {in_process("\"latency_p95_ratio\":1.5,", ""), "health.metrics.latency_p95_ratio: missing"},
      {in_process("\"min_requests\":50", "\"min_requests\":4294967296"),
       "health.metrics.min_requests: out of range"},
      {in_process("\"fail_when_inconclusive\":true", "\"fail_when_inconclusive\":1"),
       "health.metrics.fail_when_inconclusive: expected a boolean"},
  };
  std::vector<std::pair<std::string, std::string>> all_cases = cases;
  all_cases.insert(all_cases.end(), process_cases.begin(), process_cases.end());
  for (const auto& [text, context] : all_cases) {
    auto plan = planFromJson(text);
    ASSERT_FALSE(plan.ok()) << text;
    EXPECT_TRUE(plan.status().isCorruption()) << plan.status().toString();
    EXPECT_NE(plan.status().message().find(context), std::string::npos)
        << plan.status().toString() << " lacks " << context;
  }
}

TEST(PlanJson, OnStepFailureIsStoredOnlyWhenHold) {
  Plan plan = parsePlan(kMinimalPlan).plan.value();
  // The default adds nothing: a plan's hash (what approvals name) is what it was before.
  EXPECT_EQ(planToJson(plan).find("on_step_failure"), std::string::npos);
  EXPECT_EQ(expectRoundTrip(plan).on_step_failure, OnStepFailure::kRollback);
  plan.on_step_failure = OnStepFailure::kHold;
  EXPECT_NE(planToJson(plan).find("\"on_step_failure\":\"hold\""), std::string::npos);
  EXPECT_EQ(expectRoundTrip(plan).on_step_failure, OnStepFailure::kHold);
  // A stored value this coordinator does not know does not load.
  const std::string bad = replacedIn(planToJson(plan), "\"hold\"", "\"skip\"");
  EXPECT_FALSE(planFromJson(bad).ok());
}

TEST(PlanJson, HotfixAndItsRulesRoundTripAndOnlyAHotfixStoresThem) {
  Plan plan = parsePlan(kMinimalPlan).plan.value();
  EXPECT_EQ(planToJson(plan).find("hotfix"), std::string::npos);
  EXPECT_FALSE(expectRoundTrip(plan).hotfix.has_value());
  plan.hotfix =
      PlanHotfix{"INC-7", Hotfix{1, {"performance", "docs"}, std::chrono::seconds(30), 2.5, true}};
  const Plan back = expectRoundTrip(plan);
  ASSERT_TRUE(back.hotfix.has_value());
  EXPECT_EQ(back.hotfix->reason, "INC-7");
  EXPECT_EQ(back.hotfix->rules.skip_checks, (std::vector<std::string>{"performance", "docs"}));
  EXPECT_EQ(back.hotfix->rules.soak, std::chrono::seconds(30));
  EXPECT_EQ(back.hotfix->rules.watch_factor, 2.5);
  EXPECT_TRUE(back.hotfix->rules.allowed_during_freeze);
  const std::string bad = replacedIn(planToJson(plan), "\"allowed_during_freeze\":true",
                                     "\"allowed_during_freeze\":\"yes\"");
  EXPECT_FALSE(planFromJson(bad).ok());
}

TEST(PlanJson, TheWatchIsStoredOnlyWhenThereIsOne) {
  Plan plan = parsePlan(kMinimalPlan).plan.value();
  EXPECT_EQ(planToJson(plan).find("watch"), std::string::npos);
  plan.steps.watch = "./still-good.sh";
  plan.watch = {{"intense", 15min, 10s}, {"regular", 1h, 1min}};
  const Plan back = expectRoundTrip(plan);
  EXPECT_EQ(back.steps.watch, "./still-good.sh");
  EXPECT_EQ(back.watch, plan.watch);
  // A tier whose interval is longer than the tier does not load.
  const std::string bad =
      replacedIn(planToJson(plan), "\"interval_ms\":10000", "\"interval_ms\":0");
  EXPECT_FALSE(planFromJson(bad).ok());
}

TEST(PlanJson, TheWatchTiersNeverComeFromThePlanText) {
  // steps.watch is the plan's; the tiers are the policy's.
  PlanParseResult parsed =
      parsePlan(std::string(kMinimalPlan) + "watch: [{name: intense, for: 1m, interval: 1s}]\n");
  EXPECT_FALSE(parsed.plan.has_value());
  PlanParseResult with_command = parsePlan(replacedIn(
      kMinimalPlan, "  rollback: ./rollback.sh\n", "  rollback: ./rollback.sh\n  watch: ./w.sh\n"));
  ASSERT_TRUE(with_command.plan.has_value()) << describe(with_command);
  EXPECT_EQ(with_command.plan->steps.watch, "./w.sh");
}

}  // namespace
}  // namespace flotilla::common
