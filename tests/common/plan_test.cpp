// Tests for the plan parser as a whole (common/plan.cpp): the document, the top-level fields,
// the checks across sections. Sections have their own files (plan_waves_test.cpp, ...).
#include "common/plan.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/common/plan_test_support.hpp"

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;
using namespace plan_testing;

TEST(ParsePlan, FullPlanParsesToTheModel) {
  PlanParseResult result = parsePlan(kFullPlan);
  ASSERT_TRUE(result.problems.empty()) << describe(result);
  ASSERT_TRUE(result.plan.has_value());
  const Plan& plan = *result.plan;
  EXPECT_EQ(plan.service, "checkout");
  EXPECT_EQ(plan.version, "1.4.2");
  EXPECT_EQ(plan.driver, DriverKind::kScript);
  EXPECT_EQ(plan.steps.build, "docker build -t registry.example.com/checkout:$FLOTILLA_VERSION .");
  EXPECT_EQ(plan.steps.apply, "kubectl apply -f k8s/$FLOTILLA_ENVIRONMENT/");
  EXPECT_EQ(plan.steps.verify, "./scripts/verify-deployment.sh $FLOTILLA_ENVIRONMENT");
  EXPECT_EQ(plan.steps.rollback,
            "kubectl rollout undo deployment/checkout -n $FLOTILLA_ENVIRONMENT");
  EXPECT_EQ(plan.steps.timeout, 300s);
  ASSERT_EQ(plan.waves.size(), 3u);
  EXPECT_EQ(plan.waves[0].name, "staging");
  EXPECT_EQ(plan.waves[0].clusters, std::vector<std::string>{"staging-eu"});
  EXPECT_TRUE(plan.waves[0].selector.empty());
  EXPECT_FALSE(plan.waves[0].approval_required);
  EXPECT_EQ(plan.waves[0].max_parallel, 0u);
  EXPECT_EQ(plan.waves[1].name, "prod-canary");
  EXPECT_EQ(plan.waves[1].clusters, std::vector<std::string>{"prod-eu-1"});
  EXPECT_TRUE(plan.waves[1].approval_required);
  EXPECT_EQ(plan.waves[2].name, "prod");
  EXPECT_TRUE(plan.waves[2].clusters.empty());
  EXPECT_EQ(plan.waves[2].selector,
            (std::map<std::string, std::string>{{"environment", "production"}}));
  EXPECT_EQ(plan.waves[2].max_parallel, 2u);
  EXPECT_EQ(plan.rollback_scope, RollbackScope::kWave);
}

TEST(ParsePlan, MinimalPlanTakesTheDefaults) {
  PlanParseResult result = parsePlan(kMinimalPlan);
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  EXPECT_EQ(result.plan->driver, DriverKind::kScript);
  EXPECT_EQ(result.plan->steps.build, "");
  EXPECT_EQ(result.plan->steps.verify, "");
  EXPECT_EQ(result.plan->steps.timeout, 5min);
  EXPECT_EQ(result.plan->rollback_scope, RollbackScope::kFleet);
}

TEST(ParsePlan, JsonFormIsAccepted) {
  const std::string json = R"({
	"service": "checkout",
	"version": 1.4,
	"steps": {"apply": "./apply.sh", "rollback": "./rollback.sh", "timeout": "1h30m"},
	"waves": [
		{"name": "staging", "clusters": ["staging-eu", "staging-us"], "approval": false},
		{"name": "prod", "selector": {"environment": "production", "tier": "1"},
		 "approval": true, "max_parallel": 3}
	],
	"rollback": {"scope": "fleet"}
})";
  PlanParseResult result = parsePlan(json);
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  const Plan& plan = *result.plan;
  EXPECT_EQ(plan.version, "1.4");  // an unquoted number is taken as its text
  EXPECT_EQ(plan.steps.timeout, 90min);
  ASSERT_EQ(plan.waves.size(), 2u);
  EXPECT_EQ(plan.waves[0].clusters, (std::vector<std::string>{"staging-eu", "staging-us"}));
  EXPECT_FALSE(plan.waves[0].approval_required);
  EXPECT_TRUE(plan.waves[1].approval_required);
  EXPECT_EQ(plan.waves[1].selector.at("tier"), "1");
  EXPECT_EQ(plan.waves[1].max_parallel, 3u);
}

TEST(ParsePlan, UnquotedNumericVersionKeepsItsText) {
  std::string text = kMinimalPlan;
  text.replace(text.find("\"1.0\""), 5, "1.10");
  PlanParseResult result = parsePlan(text);
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  EXPECT_EQ(result.plan->version, "1.10");
}

// The version rule is common/rules.hpp's, the one the agent's drivers apply: a version the plan
// accepts works at every step. Before, any printable ASCII passed here and failed at the first
// step of the process driver.
TEST(ParsePlan, VersionFollowsTheCommonRule) {
  for (const std::string& version : std::vector<std::string>{
           "2026.12.04_rc-1+build.7", "v2.0.0-beta.1", std::string(128, '7')}) {
    std::string text = kMinimalPlan;
    text.replace(text.find("\"1.0\""), 5, "\"" + version + "\"");
    PlanParseResult result = parsePlan(text);
    ASSERT_TRUE(result.plan.has_value()) << version << ": " << describe(result);
    EXPECT_EQ(result.plan->version, version);
  }
}

TEST(ParsePlan, VersionWithASlashIsRefusedAtParseTime) {
  std::string text = kMinimalPlan;
  text.replace(text.find("\"1.0\""), 5, "\"1.0/../x\"");
  EXPECT_EQ(onlyProblem(text).toString(),
            "2:10: version \"1.0/../x\" is not a valid version: use 1 to 128 characters from "
            "[A-Za-z0-9._+-], not starting with '.' or '-'");
  for (const std::string& version :
       std::vector<std::string>{"a/b", "$(id)", "-1", ".1", "1.4 beta"}) {
    text = kMinimalPlan;
    text.replace(text.find("\"1.0\""), 5, "'" + version + "'");
    const PlanProblem problem = onlyProblem(text);
    EXPECT_EQ(problem.line, 2) << version;
    EXPECT_EQ(problem.column, 10) << version;
    EXPECT_NE(problem.message.find(kVersionRule), std::string::npos) << problem.message;
  }
}

TEST(ParsePlan, ListsEveryProblemWithItsPosition) {
  const std::string text =
      "service: Checkout\n"           // 1:10 not a valid name
      "version: \"1.4 beta\"\n"       // 2:10 whitespace in version
      "steps:\n"                      //
      "  apply: \"\"\n"               // 4:10 empty command
      "  rollback: undo\n"            //
      "  timeout: 0s\n"               // 6:12 not greater than 0
      "  verfy: ./check.sh\n"         // 7:3 unknown field, suggestion
      "waves:\n"                      //
      "  - name: staging\n"           //
      "    clusters: [eu-1, eu-1]\n"  // 10:22 listed twice
      "  - name: staging\n"           // 11:11 wave name already used
      "    clusters: [eu-1]\n"        // 12:16 cluster already in another wave
      "    max_parallel: 0\n";        // 13:19 not positive
  PlanParseResult result = parsePlan(text);
  EXPECT_FALSE(result.plan.has_value());
  const std::vector<Where> expected = {{1, 10},  {2, 10},  {4, 10},  {6, 12}, {7, 3},
                                       {10, 22}, {11, 11}, {12, 16}, {13, 19}};
  EXPECT_EQ(positions(result), expected) << describe(result);
  ASSERT_EQ(result.problems.size(), expected.size());
  EXPECT_EQ(result.problems[0].toString(),
            "1:10: service \"Checkout\" is not a valid name: use 1 to 63 characters from "
            "[a-z0-9-], not starting or ending with '-'");
  EXPECT_NE(result.problems[3].message.find("greater than 0"), std::string::npos);
  EXPECT_NE(result.problems[5].message.find("listed twice"), std::string::npos);
  EXPECT_NE(result.problems[6].message.find("already used at 9:11"), std::string::npos);
  EXPECT_EQ(result.problems[7].message, "cluster \"eu-1\" is already in wave \"staging\"");
  EXPECT_NE(result.problems[8].message.find("positive integer"), std::string::npos);
}

TEST(ParsePlan, MissingRequiredFieldsPointAtTheirMap) {
  const std::string text =
      "# a comment first\n"
      "driver: script\n"
      "steps:\n"
      "  build: make\n"
      "waves:\n"
      "  - clusters: [a]\n";
  PlanParseResult result = parsePlan(text);
  // Top-level misses are reported where the top-level map starts; the others at their own map.
  const std::vector<Where> expected = {{2, 1}, {2, 1}, {4, 3}, {4, 3}, {6, 5}};
  EXPECT_EQ(positions(result), expected) << describe(result);
  const std::string all = describe(result);
  EXPECT_NE(all.find("2:1: missing required field \"service\""), std::string::npos);
  EXPECT_NE(all.find("2:1: missing required field \"version\""), std::string::npos);
  EXPECT_NE(all.find("4:3: missing required field \"apply\" in steps"), std::string::npos);
  EXPECT_NE(all.find("4:3: missing required field \"rollback\" in steps"), std::string::npos);
  EXPECT_NE(all.find("6:5: missing required field \"name\" in waves[0]"), std::string::npos);
}

TEST(ParsePlan, DesignedButUnimplementedFieldsAreNotSupportedYet) {
  // The kubernetes driver is designed but not there.
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "driver: kubernetes\n").toString(),
            "9:9: driver \"kubernetes\" is not supported yet; use \"script\" or \"process\"");
}

TEST(ParsePlan, ScriptAndProcessDriversAreSupported) {
  PlanParseResult script = parsePlan(std::string(kMinimalPlan) + "driver: script\n");
  ASSERT_TRUE(script.plan.has_value()) << describe(script);
  EXPECT_EQ(script.plan->driver, DriverKind::kScript);
  PlanParseResult process = parsePlan(kMinimalProcessPlan);
  ASSERT_TRUE(process.plan.has_value()) << describe(process);
  EXPECT_EQ(process.plan->driver, DriverKind::kProcess);

  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "driver: kubernetes\n").toString(),
            "9:9: driver \"kubernetes\" is not supported yet; use \"script\" or \"process\"");
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "driver: docker\n").toString(),
            "9:9: unknown driver \"docker\"; valid values: script, process");
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "driver: [script]\n").toString(),
            "9:9: driver must be a string, not a list");
  // Valid values are case-sensitive.
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "driver: Process\n").toString(),
            "9:9: unknown driver \"Process\"; valid values: script, process");
}

TEST(ParsePlan, StepsAreRequiredForTheScriptDriverOnly) {
  const std::string without_steps =
      "service: checkout\nversion: \"1\"\nwaves: [{name: a, clusters: [a]}]\n";
  EXPECT_EQ(onlyProblem(without_steps).toString(),
            "1:1: missing required field \"steps\" (the script driver needs it)");
  EXPECT_EQ(onlyProblem(without_steps + "driver: script\n").toString(),
            "1:1: missing required field \"steps\" (the script driver needs it)");
  // The process driver needs `process` instead.
  EXPECT_EQ(onlyProblem(without_steps + "driver: process\n").toString(),
            "1:1: missing required field \"process\" (the process driver needs it)");
  EXPECT_TRUE(parsePlan(without_steps + "driver: process\nprocess: {command: \"x {port}\", ports: "
                                        "\"18000-18001\"}\n")
                  .plan.has_value());
  // With a driver that is refused anyway, a missing `steps` or `process` would only be noise.
  EXPECT_EQ(onlyProblem(without_steps + "driver: kubernetes\n").toString(),
            "4:9: driver \"kubernetes\" is not supported yet; use \"script\" or \"process\"");
}

TEST(ParsePlan, FieldsOfTheOtherDriverAreRefused) {
  // A script plan (no driver given: script is the default) with the process driver's own fields.
  // (Strategies, health, alerts and bake belong to both drivers: plan_script_fields_test.)
  const std::string script = std::string(kMinimalPlan) +
                             "process: {command: \"x {port}\", ports: \"18000-18099\"}\n"  // 9
                             + kTrafficLine;                                               // 10
  for (const std::string& text : {script, "driver: script\n" + script}) {
    const int shift = text == script ? 0 : 1;
    PlanParseResult result = parsePlan(text);
    EXPECT_FALSE(result.plan.has_value());
    const std::vector<Where> expected = {{9 + shift, 1}, {10 + shift, 1}};
    EXPECT_EQ(positions(result), expected) << describe(result);
    ASSERT_EQ(result.problems.size(), expected.size());
    EXPECT_EQ(result.problems[0].message,
              "field \"process\" is for the process driver; this plan uses driver \"script\"");
    EXPECT_EQ(result.problems[1].message,
              "field \"traffic\" is for the process driver; this plan uses driver \"script\"");
  }

  // A process plan with script steps (line 10).
  EXPECT_EQ(
      onlyProblem(std::string(kMinimalProcessPlan) + "steps: {apply: a, rollback: b}\n").toString(),
      "10:1: field \"steps\" is for the script driver; the process driver runs the replicas "
      "itself");
  // kMinimalPlan with driver: process has steps and lacks process.
  EXPECT_EQ(describe(parsePlan(std::string(kMinimalPlan) + "driver: process\n")),
            "1:1: missing required field \"process\" (the process driver needs it)\n"
            "3:1: field \"steps\" is for the script driver; the process driver runs the "
            "replicas itself\n");
}

TEST(ParsePlan, CanaryAndBlueGreenNeedHaproxy) {
  constexpr char kNeedsHaproxy[] =
      "canary and blue_green need traffic.haproxy in this version (weights by share of replicas "
      "are not supported yet)";
  // Plan-level strategy (line 10): reported at its key.
  for (const char* strategy : {"{type: canary, steps: [10, 100]}", "{type: blue_green}",
                               "{type: blue_green, switch: steps, steps: [50, 100]}"}) {
    EXPECT_EQ(
        onlyProblem(std::string(kMinimalProcessPlan) + "strategy: " + strategy + "\n").toString(),
        std::string("10:1: ") + kNeedsHaproxy)
        << strategy;
  }
  // A wave-level strategy needs it too.
  for (const char* strategy : {"{type: canary, steps: [10, 100]}", "{type: blue_green}"}) {
    const PlanProblem problem =
        onlyProblem(std::string(kMinimalProcessPlan) + "    strategy: " + strategy + "\n");
    EXPECT_EQ(problem.message, kNeedsHaproxy) << strategy;
  }
  // Without a strategy (all at once), traffic is optional.
  EXPECT_TRUE(parsePlan(kMinimalProcessPlan).plan.has_value());
}

// When only a wave has a canary or blue_green strategy and the plan has no traffic.haproxy, the
// problem points at that wave's `strategy` key (RollingNeedsNoHaproxy checks the same with a
// plan-level strategy present that needs no traffic).

TEST(ParsePlan, WaveStrategyWithoutHaproxyPointsAtTheWave) {
  EXPECT_EQ(onlyProblem(std::string(kMinimalProcessPlan) +
                        "    strategy: {type: canary, steps: [10, 100]}\n")
                .toString(),
            "10:5: canary and blue_green need traffic.haproxy in this version (weights by share "
            "of replicas are not supported yet)");
}

TEST(ParsePlan, SyntaxErrorIsOneProblemAtItsPosition) {
  const std::string text =
      "service: checkout\n"
      "version: \"1.0\"\n"
      "waves: [staging, prod\n"
      "steps: {}\n";
  const PlanProblem problem = onlyProblem(text);
  EXPECT_EQ(problem.line, 4);
  EXPECT_EQ(problem.column, 6);
  EXPECT_EQ(problem.message, "syntax error: end of sequence flow not found");

  const PlanProblem tab = onlyProblem("service: checkout\n\tversion: 1\n");
  EXPECT_EQ(tab.line, 2);
  EXPECT_NE(tab.message.find("syntax error"), std::string::npos);
}

TEST(ParsePlan, EmptyInputsAreProblems) {
  EXPECT_EQ(onlyProblem("").toString(), "the plan is empty");
  EXPECT_EQ(onlyProblem("# nothing here\n").toString(), "the plan is empty");
  EXPECT_EQ(onlyProblem("---\n...\n").toString(), "the plan is empty");
  EXPECT_EQ(onlyProblem("service: x\nwaves: []\nversion: '1'\nsteps: {apply: a, rollback: b}\n")
                .toString(),
            "2:8: waves must not be empty");
}

TEST(ParsePlan, RollbackScope) {
  PlanParseResult fleet = parsePlan(std::string(kMinimalPlan) + "rollback: {scope: fleet}\n");
  ASSERT_TRUE(fleet.plan.has_value()) << describe(fleet);
  EXPECT_EQ(fleet.plan->rollback_scope, RollbackScope::kFleet);
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "rollback: {scope: all}\n").toString(),
            "9:19: rollback.scope must be \"fleet\" or \"wave\", not \"all\"");
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "rollback: {}\n").toString(),
            "9:11: missing required field \"scope\" in rollback");
}

TEST(ParsePlan, HotfixTakesAReasonOnly) {
  PlanParseResult plain = parsePlan(kMinimalPlan);
  ASSERT_TRUE(plain.plan.has_value()) << describe(plain);
  EXPECT_FALSE(plain.plan->hotfix.has_value());
  PlanParseResult hotfix =
      parsePlan(std::string(kMinimalPlan) + "hotfix: {reason: \"INC-7: carts fail\"}\n");
  ASSERT_TRUE(hotfix.plan.has_value()) << describe(hotfix);
  ASSERT_TRUE(hotfix.plan->hotfix.has_value());
  EXPECT_EQ(hotfix.plan->hotfix->reason, "INC-7: carts fail");
  // The rules are the policy's, filled in by the coordinator; here the defaults.
  EXPECT_EQ(hotfix.plan->hotfix->rules.approvals, 1u);
  EXPECT_FALSE(hotfix.plan->hotfix->rules.allowed_during_freeze);

  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "hotfix: {}\n").toString(),
            "9:9: missing required field \"reason\" in hotfix");
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "hotfix: {reason: \"  \"}\n").toString(),
            "9:18: hotfix.reason is empty: a hotfix needs a reason (the incident, the fix)");
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "hotfix: {reason: \"a\\nb\"}\n").toString(),
            "9:18: hotfix.reason must be one line");
  EXPECT_EQ(
      onlyProblem(std::string(kMinimalPlan) + "hotfix: {reason: " + std::string(501, 'x') + "}\n")
          .toString(),
      "9:18: hotfix.reason is 501 bytes; at most 500");
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "hotfix: yes\n").line, 9);
  // A plan cannot set the rules.
  EXPECT_NE(onlyProblem(std::string(kMinimalPlan) + "hotfix: {reason: x, approvals: 0}\n")
                .message.find("unknown field \"approvals\""),
            std::string::npos);
}

TEST(ParsePlan, StepTimeoutRules) {
  auto withTimeout = [](const std::string& timeout) {
    std::string text = kMinimalPlan;
    text.insert(text.find("waves:"), "  timeout: " + timeout + "\n");
    return parsePlan(text);
  };
  ASSERT_TRUE(withTimeout("24h").plan.has_value());
  EXPECT_EQ(withTimeout("250ms").plan->steps.timeout, 250ms);
  EXPECT_EQ(describe(withTimeout("300")),
            "6:12: steps.timeout: invalid duration \"300\": a unit is required (h, m, s or ms)\n");
  EXPECT_EQ(describe(withTimeout("24h1ms")), "6:12: steps.timeout must be at most 24h\n");
  EXPECT_EQ(describe(withTimeout("0ms")), "6:12: steps.timeout must be greater than 0\n");
  EXPECT_EQ(
      describe(withTimeout("5 minutes")),
      "6:12: steps.timeout: invalid duration \"5 minutes\": unknown unit; use h, m, s or ms\n");
}

TEST(ParsePlan, ProblemsAreSortedAndToStringOmitsMissingPosition) {
  // The wave problem is found before the top-level one but comes after it in the text.
  PlanParseResult result = parsePlan(
      "waves: [{name: A, clusters: [a]}]\nservice: checkout\nversion: '1'\n"
      "steps: {apply: a, rollback: b}\nsevice: x\n");
  EXPECT_EQ(positions(result), (std::vector<Where>{{1, 16}, {5, 1}})) << describe(result);
  EXPECT_EQ(PlanProblem{}.toString(), "");
  EXPECT_EQ((PlanProblem{0, 0, "no position"}).toString(), "no position");
  EXPECT_EQ((PlanProblem{3, 7, "here"}).toString(), "3:7: here");
}

TEST(ParsePlan, ExtraDocumentIsRefused) {
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "---\nservice: other\n").toString(),
            "10:1: a plan is a single YAML document; found another one");
  EXPECT_TRUE(parsePlan(std::string(kMinimalPlan) + "---\n").plan.has_value());
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "---\n---\n...\n[a]\n").toString(),
            "12:1: a plan is a single YAML document; found another one");
}

TEST(ParsePlan, StrayCommaIsASyntaxError) {
  // yaml-cpp 0.7 does not consume a ',' outside a flow collection (its LoadAll loops forever).
  EXPECT_EQ(onlyProblem(",").toString(), "1:1: syntax error: unexpected \",\"");
  EXPECT_EQ(onlyProblem(",service: checkout\n").toString(), "1:1: syntax error: unexpected \",\"");
  EXPECT_EQ(onlyProblem(std::string(kMinimalPlan) + "---\n,\n").toString(),
            "10:1: syntax error: unexpected \",\"");
}

TEST(ParsePlan, HostileInputsAreProblemsNotCrashes) {
  // Deep nesting: yaml-cpp refuses it before it can exhaust the stack.
  for (const std::string& deep :
       {std::string(100000, '['), std::string(5000, '[') + std::string(5000, ']'),
        std::string(1000, '{') + "a: 1" + std::string(1000, '}')}) {
    PlanParseResult result = parsePlan(deep);
    EXPECT_FALSE(result.plan.has_value());
    EXPECT_EQ(result.problems.size(), 1u) << describe(result);
  }

  // Over the size limit: one problem without a position, whatever the content.
  const PlanProblem big = onlyProblem(std::string(2 << 20, 'a'));
  EXPECT_EQ(big.line, 0);
  EXPECT_NE(big.message.find("1 MiB"), std::string::npos);

  // Binary bytes, including NUL and invalid UTF-8.
  std::string binary;
  uint32_t seed = 12345;
  for (int i = 0; i < 4096; ++i) {
    seed = seed * 1103515245 + 12345;
    binary += static_cast<char>(seed >> 16);
  }
  for (const std::string& text : {binary, std::string("service: \0\xff\xfe", 12),
                                  std::string("\xef\xbb\xbf\x00\x01\x02", 6)}) {
    PlanParseResult result = parsePlan(text);
    EXPECT_FALSE(result.plan.has_value());
    EXPECT_FALSE(result.problems.empty());
  }

  // An anchor that contains its own alias makes a cyclic tree.
  EXPECT_FALSE(parsePlan("service: &a [*a]\nwaves: &w [*w]\n").plan.has_value());

  // yaml-cpp names the offending byte in some messages: it comes back escaped.
  EXPECT_EQ(onlyProblem("service: \"\\\xff\"\n").toString(),
            "1:13: syntax error: unknown escape character: \\xff");

  // A huge value is quoted back cut short.
  const PlanProblem huge =
      onlyProblem(std::string(kMinimalPlan) + std::string(500000, 'k') + ": 1\n");
  EXPECT_LT(huge.message.size(), 200u);

  // Very many problems are cut to a readable list, still sorted, with the cut said.
  std::string many = std::string(kMinimalPlan) + "  - name: many\n    clusters: [";
  for (int i = 0; i < 5000; ++i) many += "X,";
  many += "X]\n";
  PlanParseResult result = parsePlan(many);
  ASSERT_GT(result.problems.size(), 1u);
  EXPECT_LT(result.problems.size(), 1000u);
  EXPECT_NE(result.problems.back().message.find("more problems not listed"), std::string::npos);
  EXPECT_EQ(result.problems.back().line, 10);
}

TEST(PlanNames, DriverStrategyAndScopeNames) {
  EXPECT_STREQ(driverName(DriverKind::kScript), "script");
  EXPECT_STREQ(driverName(DriverKind::kProcess), "process");
  EXPECT_STREQ(strategyName(StrategyKind::kAllAtOnce), "all_at_once");
  EXPECT_STREQ(strategyName(StrategyKind::kCanary), "canary");
  EXPECT_STREQ(strategyName(StrategyKind::kBlueGreen), "blue_green");
  EXPECT_STREQ(strategyName(StrategyKind::kRolling), "rolling");
  EXPECT_STREQ(rollbackScopeName(RollbackScope::kFleet), "fleet");
  EXPECT_STREQ(rollbackScopeName(RollbackScope::kWave), "wave");
}

TEST(ParsePlan, OnStepFailureIsRollbackUnlessTheStepsAreHeld) {
  PlanParseResult plain = parsePlan(kMinimalPlan);
  ASSERT_TRUE(plain.plan.has_value()) << describe(plain);
  EXPECT_EQ(plain.plan->on_step_failure, OnStepFailure::kRollback);

  PlanParseResult hold = parsePlan(std::string(kMinimalPlan) + "on_step_failure: hold\n");
  ASSERT_TRUE(hold.plan.has_value()) << describe(hold);
  EXPECT_EQ(hold.plan->on_step_failure, OnStepFailure::kHold);
  PlanParseResult rollback = parsePlan(std::string(kMinimalPlan) + "on_step_failure: rollback\n");
  ASSERT_TRUE(rollback.plan.has_value()) << describe(rollback);
  EXPECT_EQ(rollback.plan->on_step_failure, OnStepFailure::kRollback);
}

TEST(ParsePlan, OnStepFailureMistakesHaveTheirPosition) {
  // kMinimalPlan has 8 lines: the field is on line 9.
  PlanParseResult unknown = parsePlan(std::string(kMinimalPlan) + "on_step_failure: retry\n");
  EXPECT_FALSE(unknown.plan.has_value());
  ASSERT_EQ(unknown.problems.size(), 1u) << describe(unknown);
  EXPECT_EQ(unknown.problems[0].toString(),
            "9:18: on_step_failure must be \"rollback\" or \"hold\", not \"retry\"");

  PlanParseResult not_text = parsePlan(std::string(kMinimalPlan) + "on_step_failure: [hold]\n");
  EXPECT_FALSE(not_text.plan.has_value());
  ASSERT_EQ(not_text.problems.size(), 1u) << describe(not_text);
  EXPECT_EQ(not_text.problems[0].line, 9);
  EXPECT_EQ(not_text.problems[0].column, 18);
}

}  // namespace
}  // namespace flotilla::common
