// The policy file's parser (common/policy.cpp): the DESIGN.md sketch read into the model, each
// rule's message at its line:column, several mistakes at once, the file's hash, hostile text.
#include "common/policy.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/crypto.hpp"

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;

// The sketch of DESIGN.md ("Policy"), verbatim.
constexpr const char* kDesignPolicy = R"(environments:
  development:
    clusters: {environment: development}
    deployers: [deployer]
    triggers: [{name: develop-merge, plan: plans/checkout-dev.yaml}]
  staging:
    clusters: {environment: staging}
    checks: [tests, lint]
  production:
    clusters: {environment: production}
    approval: {required: 1}
    promotion: {from: staging, soak: 30m}
    checks: [tests, "coverage >= 80", lint, security_scan, performance,
             docs, version_bumped, changelog, release_notes, migrations,
             config_changes, rollback_plan]
    watch:                          # after 100%: rollback stays armed
      - {name: intense, for: 15m, interval: 10s}
      - {name: regular, for: 1h, interval: 1m}
      - {name: standard, for: 24h, interval: 5m}
hotfix: {approvals: 1, skip_checks: [performance, docs], soak: 0s, watch_factor: 2,
         allowed_during_freeze: true}
)";

std::string describe(const PolicyParseResult& result) {
  std::string text;
  for (const PlanProblem& problem : result.problems) text += problem.toString() + "\n";
  return text;
}

// The problems of `text` as "line:column: message", in order.
std::vector<std::string> problemsOf(const std::string& text) {
  const PolicyParseResult result = parsePolicy(text);
  EXPECT_FALSE(result.policy.has_value());
  std::vector<std::string> problems;
  for (const PlanProblem& problem : result.problems) problems.push_back(problem.toString());
  return problems;
}

std::string onlyProblem(const std::string& text) {
  const std::vector<std::string> problems = problemsOf(text);
  EXPECT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  return problems.empty() ? std::string() : problems.front();
}

// One environment named `name` with `body` (lines indented four spaces) under it.
std::string withEnvironment(const std::string& body) {
  return "environments:\n  staging:\n    clusters: {environment: staging}\n" + body;
}

TEST(PolicyTest, DesignSketchParsesIntoTheModel) {
  const PolicyParseResult result = parsePolicy(kDesignPolicy);
  ASSERT_TRUE(result.policy.has_value()) << describe(result);
  const Policy& policy = *result.policy;
  EXPECT_EQ(policy.environment_order,
            (std::vector<std::string>{"development", "staging", "production"}));
  ASSERT_EQ(policy.environments.size(), 3u);
  EXPECT_EQ(policy.sha256, sha256Hex(kDesignPolicy));

  const Environment& dev = policy.environments.at("development");
  EXPECT_EQ(dev.name, "development");
  EXPECT_EQ(dev.clusters, (std::map<std::string, std::string>{{"environment", "development"}}));
  EXPECT_EQ(dev.deployers, std::vector<std::string>{"deployer"});
  EXPECT_FALSE(dev.approval.has_value());
  EXPECT_TRUE(dev.checks.empty());
  EXPECT_FALSE(dev.promotion.has_value());
  ASSERT_EQ(dev.triggers.size(), 1u);
  EXPECT_EQ(dev.triggers[0].name, "develop-merge");
  EXPECT_EQ(dev.triggers[0].plan, "plans/checkout-dev.yaml");
  EXPECT_TRUE(dev.watch.empty());

  const Environment& staging = policy.environments.at("staging");
  EXPECT_EQ(staging.clusters, (std::map<std::string, std::string>{{"environment", "staging"}}));
  EXPECT_TRUE(staging.deployers.empty());
  EXPECT_FALSE(staging.approval.has_value());
  ASSERT_EQ(staging.checks.size(), 2u);
  EXPECT_EQ(staging.checks[0].name, "tests");
  EXPECT_FALSE(staging.checks[0].threshold.has_value());
  EXPECT_EQ(staging.checks[1].name, "lint");
  EXPECT_FALSE(staging.promotion.has_value());
  EXPECT_TRUE(staging.triggers.empty());
  EXPECT_TRUE(staging.watch.empty());

  const Environment& prod = policy.environments.at("production");
  EXPECT_EQ(prod.clusters, (std::map<std::string, std::string>{{"environment", "production"}}));
  EXPECT_TRUE(prod.deployers.empty());
  ASSERT_TRUE(prod.approval.has_value());
  EXPECT_EQ(prod.approval->required, 1u);
  ASSERT_TRUE(prod.promotion.has_value());
  EXPECT_EQ(prod.promotion->from, "staging");
  EXPECT_EQ(prod.promotion->soak, 30min);
  std::vector<std::string> names;
  for (const Check& check : prod.checks) names.push_back(check.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"tests", "coverage", "lint", "security_scan", "performance",
                                      "docs", "version_bumped", "changelog", "release_notes",
                                      "migrations", "config_changes", "rollback_plan"}));
  ASSERT_TRUE(prod.checks[1].threshold.has_value());
  EXPECT_EQ(prod.checks[1].threshold->op, CheckOp::kAtLeast);
  EXPECT_EQ(prod.checks[1].threshold->value, 80);
  EXPECT_EQ(prod.checks[1].text(), "coverage >= 80");
  EXPECT_TRUE(prod.triggers.empty());
  ASSERT_EQ(prod.watch.size(), 3u);
  EXPECT_EQ(prod.watch[0].name, "intense");
  EXPECT_EQ(prod.watch[0].duration, 15min);
  EXPECT_EQ(prod.watch[0].interval, 10s);
  EXPECT_EQ(prod.watch[1].name, "regular");
  EXPECT_EQ(prod.watch[1].duration, 1h);
  EXPECT_EQ(prod.watch[1].interval, 1min);
  EXPECT_EQ(prod.watch[2].name, "standard");
  EXPECT_EQ(prod.watch[2].duration, 24h);
  EXPECT_EQ(prod.watch[2].interval, 5min);

  ASSERT_TRUE(policy.hotfix.has_value());
  EXPECT_EQ(policy.hotfix->approvals, 1u);
  EXPECT_EQ(policy.hotfix->skip_checks, (std::vector<std::string>{"performance", "docs"}));
  EXPECT_EQ(policy.hotfix->soak, 0ms);
  EXPECT_EQ(policy.hotfix->watch_factor, 2);
  EXPECT_TRUE(policy.hotfix->allowed_during_freeze);
}

TEST(PolicyTest, HotfixDefaultsAndThresholdForms) {
  const PolicyParseResult result = parsePolicy(withEnvironment(
      "    checks: [\"coverage>79.5\", \"latency_ms <= 250\", \"errors < 1\", \"score == -2\"]\n"
      "hotfix: {}\n"));
  ASSERT_TRUE(result.policy.has_value()) << describe(result);
  const std::vector<Check>& checks = result.policy->environments.at("staging").checks;
  ASSERT_EQ(checks.size(), 4u);
  EXPECT_EQ(checks[0].text(), "coverage > 79.5");
  EXPECT_EQ(checks[1].text(), "latency_ms <= 250");
  EXPECT_EQ(checks[2].threshold->op, CheckOp::kBelow);
  EXPECT_EQ(checks[3].threshold->op, CheckOp::kEqual);
  EXPECT_EQ(checks[3].threshold->value, -2);
  const Hotfix& hotfix = *result.policy->hotfix;
  EXPECT_EQ(hotfix.approvals, 1u);
  EXPECT_TRUE(hotfix.skip_checks.empty());
  EXPECT_EQ(hotfix.soak, 0ms);
  EXPECT_EQ(hotfix.watch_factor, 2);
  EXPECT_FALSE(hotfix.allowed_during_freeze);

  const PolicyParseResult no_hotfix = parsePolicy(withEnvironment(""));
  ASSERT_TRUE(no_hotfix.policy.has_value()) << describe(no_hotfix);
  EXPECT_FALSE(no_hotfix.policy->hotfix.has_value());
}

TEST(PolicyTest, ToJsonHasEnvironmentsInOrderChecksAsTextAndMilliseconds) {
  const PolicyParseResult result = parsePolicy(kDesignPolicy);
  ASSERT_TRUE(result.policy.has_value()) << describe(result);
  const nlohmann::json json = policyToJson(*result.policy);
  EXPECT_EQ(json["sha256"], sha256Hex(kDesignPolicy));
  ASSERT_EQ(json["environments"].size(), 3u);
  EXPECT_EQ(json["environments"][0]["name"], "development");
  EXPECT_EQ(json["environments"][0]["triggers"][0]["plan"], "plans/checkout-dev.yaml");
  EXPECT_TRUE(json["environments"][0]["approval"].is_null());
  const nlohmann::json& prod = json["environments"][2];
  EXPECT_EQ(prod["name"], "production");
  EXPECT_EQ(prod["clusters"]["environment"], "production");
  EXPECT_EQ(prod["checks"][1], "coverage >= 80");
  EXPECT_EQ(prod["approval"]["required"], 1);
  EXPECT_EQ(prod["promotion"]["from"], "staging");
  EXPECT_EQ(prod["promotion"]["soak_ms"], 30 * 60 * 1000);
  EXPECT_EQ(prod["watch"][0]["for_ms"], 15 * 60 * 1000);
  EXPECT_EQ(prod["watch"][0]["interval_ms"], 10000);
  EXPECT_EQ(json["hotfix"]["skip_checks"], (std::vector<std::string>{"performance", "docs"}));
  EXPECT_EQ(json["hotfix"]["soak_ms"], 0);
  EXPECT_EQ(json["hotfix"]["watch_factor"], 2.0);
  EXPECT_EQ(json["hotfix"]["allowed_during_freeze"], true);
}

TEST(PolicyTest, HashFollowsTheText) {
  const std::string a = withEnvironment("");
  const std::string b = a + "# a comment changes the file\n";
  const PolicyParseResult first = parsePolicy(a);
  const PolicyParseResult second = parsePolicy(b);
  ASSERT_TRUE(first.policy && second.policy);
  EXPECT_EQ(first.policy->sha256.size(), 64u);
  EXPECT_NE(first.policy->sha256, second.policy->sha256);
  EXPECT_EQ(parsePolicy(a).policy->sha256, first.policy->sha256);
}

TEST(PolicyTest, UnknownAndDuplicateFields) {
  EXPECT_EQ(onlyProblem(withEnvironment("    deployer: [ops]\n")),
            "4:5: unknown field \"deployer\" in environments.staging; did you mean "
            "\"deployers\"?");
  EXPECT_EQ(onlyProblem(withEnvironment("hotfix: {approvals: 1, approvals: 2}\n")),
            "4:24: duplicate field \"approvals\" in hotfix (first at 4:10)");
  EXPECT_EQ(onlyProblem(withEnvironment("environment: {}\n")),
            "4:1: unknown field \"environment\"; did you mean \"environments\"?");
}

TEST(PolicyTest, WrongKindsAndBadNames) {
  EXPECT_EQ(onlyProblem(withEnvironment("    checks: tests\n")),
            "4:13: environments.staging.checks must be a list, not a string");
  EXPECT_EQ(onlyProblem(withEnvironment("    deployers: [Ops]\n")),
            "4:17: name \"Ops\" in environments.staging.deployers is not a valid name: use 1 to "
            "63 characters from [a-z0-9-], not starting or ending with '-'");
  EXPECT_EQ(onlyProblem("environments:\n  Prod_1:\n    clusters: {environment: production}\n"),
            "2:3: environment name \"Prod_1\" is not a valid name: use 1 to 63 characters from "
            "[a-z0-9-], not starting or ending with '-'");
  EXPECT_EQ(onlyProblem(withEnvironment("    triggers: [{name: Merge_1, plan: p.yaml}]\n")),
            "4:23: trigger name \"Merge_1\" is not a valid name: use 1 to 63 characters from "
            "[a-z0-9-], not starting or ending with '-'");
  EXPECT_EQ(onlyProblem(withEnvironment("    approval: {required: 11}\n")),
            "4:26: environments.staging.approval.required must be an integer from 1 to 10, not "
            "\"11\"");
  EXPECT_EQ(onlyProblem(withEnvironment("hotfix: {allowed_during_freeze: yes}\n")),
            "4:33: hotfix.allowed_during_freeze must be true or false, not \"yes\"");
  EXPECT_EQ(onlyProblem(withEnvironment("hotfix: {watch_factor: 11}\n")),
            "4:24: hotfix.watch_factor must be a number from 1 to 10, not \"11\"");
}

TEST(PolicyTest, SelectorNeedsALabel) {
  EXPECT_EQ(onlyProblem("environments:\n  staging:\n    clusters: {}\n"),
            "3:15: environments.staging.clusters must not be empty");
  EXPECT_EQ(onlyProblem("environments:\n  staging:\n    checks: [tests]\n"),
            "3:5: missing required field \"clusters\" in environments.staging");
}

TEST(PolicyTest, EmptyEnvironments) {
  EXPECT_EQ(onlyProblem("environments: {}\n"),
            "1:15: environments must name at least one environment");
  EXPECT_EQ(onlyProblem("hotfix: {}\n"), "1:1: missing required field \"environments\"");
}

TEST(PolicyTest, PromotionSources) {
  EXPECT_EQ(onlyProblem(withEnvironment("    promotion: {from: qa, soak: 1h}\n")),
            "4:23: environments.staging.promotion.from names \"qa\", which is not an "
            "environment here");
  EXPECT_EQ(onlyProblem(withEnvironment("    promotion: {from: staging}\n")),
            "4:23: environments.staging.promotion.from names the environment itself");
  EXPECT_EQ(
      onlyProblem(withEnvironment("    promotion: {from: qa, soak: soon}\n") +
                  "  qa:\n    clusters: {environment: qa}\n"),
      "4:33: environments.staging.promotion.soak: invalid duration \"soon\": expected a number "
      "followed by h, m, s or ms");
}

TEST(PolicyTest, PromotionCycle) {
  EXPECT_EQ(onlyProblem("environments:\n"
                        "  a:\n    clusters: {env: a}\n    promotion: {from: c}\n"
                        "  b:\n    clusters: {env: b}\n    promotion: {from: a}\n"
                        "  c:\n    clusters: {env: c}\n    promotion: {from: b}\n"
                        "  d:\n    clusters: {env: d}\n    promotion: {from: c}\n"),
            "4:23: promotion cycle: a <- c <- b <- a (each is promoted from the next)");
}

TEST(PolicyTest, TriggerNamesAreUniqueAcrossEnvironments) {
  EXPECT_EQ(onlyProblem("environments:\n"
                        "  dev:\n    clusters: {env: dev}\n"
                        "    triggers: [{name: merge, plan: a.yaml}]\n"
                        "  staging:\n    clusters: {env: staging}\n"
                        "    triggers: [{name: merge, plan: b.yaml}]\n"),
            "7:23: duplicate trigger \"merge\" (first in environment \"dev\" at 4:23)");
}

TEST(PolicyTest, BadCheckExpressions) {
  EXPECT_EQ(onlyProblem(withEnvironment("    checks: [\"coverage >> 80\"]\n")),
            "4:14: check \"coverage >> 80\" in environments.staging.checks: unknown comparison "
            "\">>\"; write NAME or NAME OP NUMBER, with OP one of >=, >, <=, <, == (\"coverage >= "
            "80\")");
  EXPECT_EQ(onlyProblem(withEnvironment("    checks: [\"coverage >= abc\"]\n")),
            "4:14: check \"coverage >= abc\" in environments.staging.checks: the threshold "
            "\"abc\" is not a number");
  EXPECT_EQ(onlyProblem(withEnvironment("    checks: [\"coverage 80\"]\n")),
            "4:14: check \"coverage 80\" in environments.staging.checks: no comparison; write "
            "NAME or NAME OP NUMBER, with OP one of >=, >, <=, <, == (\"coverage >= 80\")");
  EXPECT_EQ(onlyProblem(withEnvironment("    checks: [Security-Scan]\n")),
            "4:14: check \"Security-Scan\" in environments.staging.checks: the name use 1 to 63 "
            "characters from [a-z0-9_]");
  EXPECT_EQ(onlyProblem(withEnvironment("    checks: [tests, lint, tests]\n")),
            "4:27: duplicate check \"tests\" in environments.staging.checks (first at 4:14)");
}

TEST(PolicyTest, WatchTiers) {
  EXPECT_EQ(onlyProblem(withEnvironment("    watch: [{name: intense, for: 1m, interval: 2m}]\n")),
            "4:48: environments.staging.watch[0].interval (2m) must not be longer than its "
            "tier's `for` (1m)");
  const std::vector<std::string> zero =
      problemsOf(withEnvironment("    watch: [{name: intense, for: 0s, interval: 0s}]\n"));
  ASSERT_EQ(zero.size(), 2u);
  EXPECT_EQ(zero[0], "4:34: environments.staging.watch[0].for must be between 1ms and 720h");
  EXPECT_EQ(zero[1], "4:48: environments.staging.watch[0].interval must be between 1ms and 720h");
}

TEST(PolicyTest, SkipChecksMustBeRequiredSomewhere) {
  EXPECT_EQ(onlyProblem(withEnvironment("    checks: [tests]\n"
                                        "hotfix: {skip_checks: [tests, docs]}\n")),
            "5:31: hotfix.skip_checks names \"docs\", which no environment requires");
}

TEST(PolicyTest, EveryMistakeIsListedSortedByPosition) {
  const std::vector<std::string> problems = problemsOf(R"(environments:
  staging:
    clusters: {}
    checks: ["coverage >> 80"]
    promotion: {from: nowhere}
  production:
    clusters: {environment: production}
    watch: [{name: intense, for: 1m, interval: 5m}]
    aproval: {required: 1}
hotfix: {skip_checks: [docs], approvals: 0}
)");
  EXPECT_EQ(problems,
            (std::vector<std::string>{
                "3:15: environments.staging.clusters must not be empty",
                "4:14: check \"coverage >> 80\" in environments.staging.checks: unknown "
                "comparison \">>\"; write NAME or NAME OP NUMBER, with OP one of >=, >, <=, <, == "
                "(\"coverage >= 80\")",
                "5:23: environments.staging.promotion.from names \"nowhere\", which is not an "
                "environment here",
                "8:48: environments.production.watch[0].interval (5m) must not be longer than "
                "its tier's `for` (1m)",
                "9:5: unknown field \"aproval\" in environments.production; did you mean "
                "\"approval\"?",
                "10:24: hotfix.skip_checks names \"docs\", which no environment requires",
                "10:42: hotfix.approvals must be an integer from 1 to 10, not \"0\"",
            }));
}

TEST(PolicyTest, HostileInputGivesProblemsNotCrashes) {
  // Not a map at the root.
  EXPECT_EQ(onlyProblem("- a\n- b\n"), "1:1: a policy file must be a map of fields, not a list");
  EXPECT_EQ(onlyProblem(""), "the policy file is empty");
  EXPECT_EQ(onlyProblem(withEnvironment("---\nenvironments: {}\n")),
            "5:1: a policy file is a single YAML document; found another one");

  // Deep nesting, anywhere.
  for (const std::string& deep :
       {std::string(100000, '['), std::string(1000, '{') + "a: 1" + std::string(1000, '}'),
        withEnvironment("    checks: " + std::string(5000, '[') + std::string(5000, ']') + "\n")}) {
    const PolicyParseResult result = parsePolicy(deep);
    EXPECT_FALSE(result.policy.has_value());
    EXPECT_FALSE(result.problems.empty());
  }

  // A billion laughs of aliases: the reader only walks the fixed shape, and lists are bounded.
  std::string laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 12; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    laughs += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev + ", " + prev +
              ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev +
              ", " + prev + ", " + prev + "]\n";
  }
  laughs +=
      "environments:\n  staging:\n    clusters: {environment: staging}\n"
      "    checks: *a11\n    deployers: *a11\n    watch: *a11\n    triggers: *a11\n";
  const PolicyParseResult bomb = parsePolicy(laughs);
  EXPECT_FALSE(bomb.policy.has_value());
  EXPECT_FALSE(bomb.problems.empty());

  // A cyclic alias where a map is expected.
  EXPECT_FALSE(parsePolicy("environments: &e {staging: *e}\n").policy.has_value());

  // A huge file of aliases, over the limit: refused before yaml-cpp reads it.
  std::string huge = "a: &a x\nb: [";
  while (huge.size() < (2u << 20)) huge += "*a, ";
  huge += "*a]\n";
  EXPECT_EQ(onlyProblem(huge),
            "the policy file is " + std::to_string(huge.size()) + " bytes; the limit is 1 MiB");

  // Binary junk, NUL bytes and invalid UTF-8.
  std::string binary;
  uint32_t seed = 4242;
  for (int i = 0; i < 4096; ++i) {
    seed = seed * 1103515245 + 12345;
    binary += static_cast<char>(seed >> 16);
  }
  for (const std::string& text :
       {binary, std::string("environments: \0\xff\xfe", 17), std::string("\x00\x01\x02", 3)}) {
    const PolicyParseResult result = parsePolicy(text);
    EXPECT_FALSE(result.policy.has_value());
    EXPECT_FALSE(result.problems.empty());
  }
}

}  // namespace
}  // namespace flotilla::common
