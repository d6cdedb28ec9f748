// Tests for the plan parser, durations, names and the stored JSON form (common/plan*.cpp).
#include "common/plan.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;

// The plan of DESIGN.md, without the fields this version does not support yet.
constexpr const char* kFullPlan = R"(service: checkout
version: "1.4.2"
driver: script
steps:
  build: "docker build -t registry.example.com/checkout:$FLOTILLA_VERSION ."
  apply: "kubectl apply -f k8s/$FLOTILLA_ENVIRONMENT/"
  verify: "./scripts/verify-deployment.sh $FLOTILLA_ENVIRONMENT"
  rollback: "kubectl rollout undo deployment/checkout -n $FLOTILLA_ENVIRONMENT"
  timeout: 300s
waves:
  - name: staging
    clusters: [staging-eu]
  - name: prod-canary
    clusters: [prod-eu-1]
    approval: required
  - name: prod
    selector: {environment: production}
    max_parallel: 2
rollback:
  scope: wave
)";

// The smallest valid plan; tests append or replace lines to make one problem at a time.
constexpr const char* kMinimalPlan = R"(service: checkout
version: "1.0"
steps:
  apply: ./apply.sh
  rollback: ./rollback.sh
waves:
  - name: staging
    clusters: [staging-eu]
)";

struct Where {
  int line;
  int column;
  bool operator==(const Where&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Where& where) {
  return out << where.line << ":" << where.column;
}

std::vector<Where> positions(const PlanParseResult& result) {
  std::vector<Where> out;
  for (const PlanProblem& problem : result.problems) out.push_back({problem.line, problem.column});
  return out;
}

// All problems on one string, for failure output and substring checks.
std::string describe(const PlanParseResult& result) {
  std::string out;
  for (const PlanProblem& problem : result.problems) out += problem.toString() + "\n";
  return out;
}

// Parses text expected to hold exactly one problem and returns it.
PlanProblem onlyProblem(const std::string& text) {
  PlanParseResult result = parsePlan(text);
  EXPECT_FALSE(result.plan.has_value());
  EXPECT_EQ(result.problems.size(), 1u) << describe(result);
  return result.problems.empty() ? PlanProblem{} : result.problems.front();
}

void expectSamePlan(const Plan& a, const Plan& b) {
  EXPECT_EQ(a.service, b.service);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.driver, b.driver);
  EXPECT_EQ(a.steps.build, b.steps.build);
  EXPECT_EQ(a.steps.apply, b.steps.apply);
  EXPECT_EQ(a.steps.verify, b.steps.verify);
  EXPECT_EQ(a.steps.rollback, b.steps.rollback);
  EXPECT_EQ(a.steps.timeout, b.steps.timeout);
  EXPECT_EQ(a.rollback_scope, b.rollback_scope);
  ASSERT_EQ(a.waves.size(), b.waves.size());
  for (size_t i = 0; i < a.waves.size(); ++i) {
    EXPECT_EQ(a.waves[i].name, b.waves[i].name);
    EXPECT_EQ(a.waves[i].clusters, b.waves[i].clusters);
    EXPECT_EQ(a.waves[i].selector, b.waves[i].selector);
    EXPECT_EQ(a.waves[i].approval_required, b.waves[i].approval_required);
    EXPECT_EQ(a.waves[i].max_parallel, b.waves[i].max_parallel);
  }
}

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

TEST(ParsePlan, UnknownFieldSuggestsTheNearestKnownOne) {
  std::string text = kMinimalPlan;
  text.insert(text.find("waves:"), "  verfy: ./check.sh\n");
  text += "    aproval: required\nsevice: x\nwibble: 1\n";
  PlanParseResult result = parsePlan(text);
  ASSERT_EQ(result.problems.size(), 4u) << describe(result);
  EXPECT_EQ(result.problems[0].toString(),
            "6:3: unknown field \"verfy\" in steps; did you mean \"verify\"?");
  EXPECT_EQ(result.problems[1].toString(),
            "10:5: unknown field \"aproval\" in waves[0]; did you mean \"approval\"?");
  EXPECT_EQ(result.problems[2].toString(),
            "11:1: unknown field \"sevice\"; did you mean \"service\"?");
  // Nothing close: no suggestion.
  EXPECT_EQ(result.problems[3].toString(), "12:1: unknown field \"wibble\"");
}

TEST(ParsePlan, DesignedButUnimplementedFieldsAreNotSupportedYet) {
  std::string text = kMinimalPlan;
  text +=
      "    strategy: {type: canary, steps: [10, 50, 100], pause: 60s}\n"  // 9
      "    bake: 15m\n"                                                   // 10
      "health:\n"                                                         // 11
      "  http: {path: /health}\n"
      "alerts: {cpu: 0.9}\n"          // 13
      "process: {command: x}\n"       // 14
      "traffic: {}\n"                 // 15
      "strategy: {type: rolling}\n";  // 16
  PlanParseResult result = parsePlan(text);
  const std::vector<Where> expected = {{9, 5},  {10, 5}, {11, 1}, {13, 1},
                                       {14, 1}, {15, 1}, {16, 1}};
  EXPECT_EQ(positions(result), expected) << describe(result);
  ASSERT_EQ(result.problems.size(), expected.size());
  EXPECT_EQ(result.problems[0].message, "field \"strategy\" in waves[0] is not supported yet");
  EXPECT_EQ(result.problems[1].message, "field \"bake\" in waves[0] is not supported yet");
  EXPECT_EQ(result.problems[2].message, "field \"health\" is not supported yet");
}

TEST(ParsePlan, OnlyTheScriptDriverIsSupported) {
  for (const char* driver : {"process", "kubernetes"}) {
    const PlanProblem problem = onlyProblem(std::string(kMinimalPlan) + "driver: " + driver + "\n");
    EXPECT_EQ(problem.line, 9);
    EXPECT_EQ(problem.column, 9);
    EXPECT_NE(problem.message.find("not supported yet"), std::string::npos) << problem.message;
  }
  const PlanProblem problem = onlyProblem(std::string(kMinimalPlan) + "driver: docker\n");
  EXPECT_EQ(problem.toString(), "9:9: unknown driver \"docker\"; valid values: script");
}

TEST(ParsePlan, StepsAreRequiredForTheScriptDriverOnly) {
  const std::string without_steps =
      "service: checkout\nversion: \"1\"\nwaves: [{name: a, clusters: [a]}]\n";
  EXPECT_NE(onlyProblem(without_steps).message.find("missing required field \"steps\""),
            std::string::npos);
  // With a driver that is refused anyway, a missing `steps` would only be noise.
  const PlanProblem problem = onlyProblem(without_steps + "driver: process\n");
  EXPECT_NE(problem.message.find("not supported yet"), std::string::npos);
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

TEST(ParsePlan, DuplicateKeysAreRefused) {
  std::string text = kMinimalPlan;
  text.insert(text.find("waves:"), "  apply: ./other.sh\n");
  text += "    name: again\nservice: other\n";
  PlanParseResult result = parsePlan(text);
  const std::vector<Where> expected = {{6, 3}, {10, 5}, {11, 1}};
  EXPECT_EQ(positions(result), expected) << describe(result);
  ASSERT_EQ(result.problems.size(), 3u);
  EXPECT_EQ(result.problems[0].message, "duplicate field \"apply\" in steps (first at 4:3)");
  EXPECT_EQ(result.problems[1].message, "duplicate field \"name\" in waves[0] (first at 8:5)");
  EXPECT_EQ(result.problems[2].message, "duplicate field \"service\" (first at 1:1)");

  const PlanProblem label = onlyProblem(std::string(kMinimalPlan) +
                                        "  - name: prod\n    selector: {env: prod, env: dev}\n");
  EXPECT_EQ(label.toString(), "10:27: duplicate label \"env\" in waves[1].selector");
}

TEST(ParsePlan, ClusterInTwoWavesIsRefused) {
  const std::string text = std::string(kMinimalPlan) +
                           "  - name: prod\n"
                           "    clusters: [prod-eu, staging-eu]\n";
  const PlanProblem problem = onlyProblem(text);
  EXPECT_EQ(problem.toString(), "10:25: cluster \"staging-eu\" is already in wave \"staging\"");
}

TEST(ParsePlan, WaveNeedsExactlyOneOfClustersAndSelector) {
  const std::string both = std::string(kMinimalPlan) + "    selector: {env: prod}\n";
  EXPECT_EQ(onlyProblem(both).toString(),
            "7:5: waves[0] has both \"clusters\" and \"selector\"; use one");

  const std::string neither = std::string(kMinimalPlan) + "  - name: prod\n    approval: none\n";
  EXPECT_EQ(onlyProblem(neither).toString(), "9:5: waves[1] needs \"clusters\" or \"selector\"");
}

TEST(ParsePlan, WaveFieldRules) {
  auto withWave = [](const std::string& wave) {
    return parsePlan(std::string(kMinimalPlan) + "  - name: prod\n" + wave);
  };
  EXPECT_TRUE(withWave("    clusters: [a]\n    approval: none\n").plan.has_value());
  EXPECT_TRUE(withWave("    clusters: [a]\n    max_parallel: 4\n").plan.has_value());

  EXPECT_EQ(describe(withWave("    clusters: []\n")),
            "10:15: waves[1].clusters must not be empty\n");
  EXPECT_EQ(describe(withWave("    clusters: [Prod_1]\n")),
            "10:16: cluster \"Prod_1\" is not a valid name: use 1 to 63 characters from "
            "[a-z0-9-], not starting or ending with '-'\n");
  EXPECT_EQ(describe(withWave("    clusters: a\n")),
            "10:15: waves[1].clusters must be a list, not a string\n");
  EXPECT_EQ(describe(withWave("    selector: {}\n")),
            "10:15: waves[1].selector must not be empty\n");
  EXPECT_EQ(describe(withWave("    selector: {Env: prod}\n")),
            "10:16: label key \"Env\" in waves[1].selector must be 1 to 63 characters from "
            "[a-z0-9._/-]\n");
  EXPECT_EQ(describe(withWave("    selector: {env: [a]}\n")),
            "10:21: label \"env\" in waves[1].selector must have a value of 1 to 63 printable "
            "ASCII characters\n");
  EXPECT_EQ(describe(withWave("    clusters: [a]\n    approval: maybe\n")),
            "11:15: waves[1].approval must be \"required\" or \"none\", not \"maybe\"\n");
  EXPECT_EQ(describe(withWave("    clusters: [a]\n    max_parallel: -1\n")),
            "11:19: waves[1].max_parallel must be a positive integer, not \"-1\"\n");
  EXPECT_EQ(describe(withWave("    clusters: [a]\n    max_parallel: 1.5\n")),
            "11:19: waves[1].max_parallel must be a positive integer, not \"1.5\"\n");
}

TEST(ParsePlan, WrongNodeTypesAreProblemsNotCrashes) {
  EXPECT_EQ(onlyProblem("- a\n- b\n").toString(),
            "1:1: a plan must be a map of fields, not a list");
  EXPECT_EQ(onlyProblem("just text\n").toString(),
            "1:1: a plan must be a map of fields, not a string");
  const std::string text =
      "service: [checkout]\n"  // 1:10
      "version:\n"             // 2:1, no value: the key's position
      "steps: [apply]\n"       // 3:8
      "waves: {name: a}\n"     // 4:8
      "rollback: fleet\n";     // 5:11
  PlanParseResult result = parsePlan(text);
  const std::vector<Where> expected = {{1, 10}, {2, 1}, {3, 8}, {4, 8}, {5, 11}};
  EXPECT_EQ(positions(result), expected) << describe(result);
  ASSERT_EQ(result.problems.size(), 5u);
  EXPECT_EQ(result.problems[0].message, "service must be a string, not a list");
  EXPECT_EQ(result.problems[1].message, "version has no value");
  EXPECT_EQ(result.problems[2].message, "steps must be a map, not a list");
  EXPECT_EQ(result.problems[3].message, "waves must be a list, not a map");
  EXPECT_EQ(result.problems[4].message, "rollback must be a map, not a string");

  EXPECT_EQ(
      describe(parsePlan(std::string(kMinimalPlan) + "  - [a]\n  - 7\n")),
      "9:5: waves[1] must be a map, not a list\n10:5: waves[2] must be a map, not a string\n");
  EXPECT_EQ(describe(parsePlan(std::string(kMinimalPlan) + "? [a]\n: b\n")),
            "9:3: field names must be strings, not a list\n");
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

TEST(Duration, ParsesSequencesOfUnits) {
  const std::vector<std::pair<std::string, std::chrono::milliseconds>> cases = {
      {"300s", 300s}, {"5m", 5min}, {"1h30m", 90min},         {"250ms", 250ms},
      {"2h", 2h},     {"0s", 0ms},  {"1h2m3s4ms", 3723004ms}, {"90s", 90s}};
  for (const auto& [text, expected] : cases) {
    auto parsed = parseDuration(text);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status().toString();
    EXPECT_EQ(*parsed, expected) << text;
  }
}

TEST(Duration, RefusesBadText) {
  for (const std::string text : {"", "300", "5", "m", "-5m", "5M", "1.5h", "5m5m", "30s1m",
                                 "1h 30m", " 5m", "5m ", "5d", "5mss", "9999999999999h", "ms"}) {
    auto parsed = parseDuration(text);
    EXPECT_FALSE(parsed.ok()) << "\"" << text << "\" was accepted";
    if (!parsed.ok()) {
      EXPECT_TRUE(parsed.status().isInvalidArgument());
    }
  }
  EXPECT_NE(parseDuration("300").status().message().find("unit is required"), std::string::npos);
}

TEST(Duration, FormatsTheShortestFormAndRoundTrips) {
  EXPECT_EQ(formatDuration(5min), "5m");
  EXPECT_EQ(formatDuration(90min), "1h30m");
  EXPECT_EQ(formatDuration(250ms), "250ms");
  EXPECT_EQ(formatDuration(90s), "1m30s");
  EXPECT_EQ(formatDuration(300s), "5m");
  EXPECT_EQ(formatDuration(0ms), "0s");
  EXPECT_EQ(formatDuration(1500ms), "1s500ms");
  EXPECT_EQ(formatDuration(-90s), "-1m30s");
  for (int64_t ms :
       {1LL, 999LL, 1000LL, 59999LL, 60000LL, 3600000LL, 3723004LL, 86400000LL, 123456789012LL}) {
    const std::chrono::milliseconds d(ms);
    auto parsed = parseDuration(formatDuration(d));
    ASSERT_TRUE(parsed.ok()) << formatDuration(d);
    EXPECT_EQ(*parsed, d);
  }
  for (const std::string text : {"5m", "1h30m", "250ms", "1m30s", "2h", "1h2m3s4ms"}) {
    EXPECT_EQ(formatDuration(*parseDuration(text)), text);
  }
}

TEST(Names, ValidNames) {
  for (const std::string& name :
       std::vector<std::string>{"a", "checkout", "prod-eu-1", "0", std::string(63, 'x')}) {
    EXPECT_TRUE(isValidName(name)) << name;
  }
  for (const std::string& name :
       std::vector<std::string>{"", "-a", "a-", "Prod", "a_b", "a.b", "a b", std::string(64, 'x'),
                                std::string("a\0b", 3)}) {
    EXPECT_FALSE(isValidName(name)) << name;
  }
  EXPECT_STREQ(driverName(DriverKind::kScript), "script");
  EXPECT_STREQ(rollbackScopeName(RollbackScope::kFleet), "fleet");
  EXPECT_STREQ(rollbackScopeName(RollbackScope::kWave), "wave");
}

TEST(PlanJson, RoundTripIsExact) {
  PlanParseResult parsed = parsePlan(kFullPlan);
  ASSERT_TRUE(parsed.plan.has_value()) << describe(parsed);
  Plan plan = *parsed.plan;
  plan.waves[0].selector = {{"a", "é ü"}, {"k8s.io/zone", "x y"}};  // non-ASCII survives
  plan.waves[1].max_parallel = 4294967295u;
  plan.steps.timeout = 86399999ms;

  const std::string json = planToJson(plan);
  auto back = planFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().toString();
  expectSamePlan(*back, plan);
  EXPECT_EQ(planToJson(*back), json);

  // A plan straight from the defaults round-trips too (empty optional commands).
  auto empty = planFromJson(planToJson(Plan{}));
  ASSERT_TRUE(empty.ok()) << empty.status().toString();
  expectSamePlan(*empty, Plan{});
}

TEST(PlanJson, StoredFormHasTheDocumentedKeys) {
  PlanParseResult parsed = parsePlan(kFullPlan);
  ASSERT_TRUE(parsed.plan.has_value());
  const std::string json = planToJson(*parsed.plan);
  for (const char* key :
       {"\"service\":\"checkout\"", "\"version\":\"1.4.2\"", "\"driver\":\"script\"",
        "\"timeout_ms\":300000", "\"approval_required\":true", "\"max_parallel\":2",
        "\"selector\":{\"environment\":\"production\"}", "\"rollback_scope\":\"wave\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " not in " << json;
  }
}

TEST(PlanJson, GarbageIsCorruption) {
  const std::string good = planToJson(*parsePlan(kMinimalPlan).plan);
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
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
      {replaced("\"driver\":\"script\"", "\"driver\":\"process\""), "driver: unknown driver"},
      {replaced("\"rollback_scope\":\"fleet\"", "\"rollback_scope\":\"all\""),
       "rollback_scope: unknown scope"},
      {replaced(",\"rollback_scope\":\"fleet\"", ""), "rollback_scope: missing"},
      {replaced("\"steps\":{", "\"steps\":[],\"x\":{"), "steps: expected an object"},
  };
  for (const auto& [text, context] : cases) {
    auto plan = planFromJson(text);
    ASSERT_FALSE(plan.ok()) << text;
    EXPECT_TRUE(plan.status().isCorruption()) << plan.status().toString();
    EXPECT_NE(plan.status().message().find(context), std::string::npos)
        << plan.status().toString() << " lacks " << context;
  }
}

}  // namespace
}  // namespace flotilla::common
