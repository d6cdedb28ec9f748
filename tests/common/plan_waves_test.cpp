// Tests for the waves of a plan (common/plan_waves.cpp), through parsePlan.
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

TEST(ParsePlan, ClusterInTwoWavesIsRefused) {
  const std::string text = std::string(kMinimalPlan) +
                           "  - name: prod\n"
                           "    clusters: [prod-eu, staging-eu]\n";
  const PlanProblem problem = onlyProblem(text);
  EXPECT_EQ(problem.toString(), "10:25: cluster \"staging-eu\" is already in wave \"staging\"");
}

// Submission's registry checks report a wave by where it starts.
TEST(ParsePlan, WavesKeepWhereTheyStart) {
  const std::string text = std::string(kMinimalPlan) +
                           "  - name: prod\n"
                           "    selector: {environment: production}\n"
                           "  - {name: last, clusters: [prod-us]}\n";
  PlanParseResult parsed = parsePlan(text);
  ASSERT_TRUE(parsed.plan.has_value());
  ASSERT_EQ(parsed.plan->waves.size(), 3u);
  EXPECT_EQ(std::make_pair(parsed.plan->waves[0].line, parsed.plan->waves[0].column),
            std::make_pair(7, 5));
  EXPECT_EQ(std::make_pair(parsed.plan->waves[1].line, parsed.plan->waves[1].column),
            std::make_pair(9, 5));
  EXPECT_EQ(std::make_pair(parsed.plan->waves[2].line, parsed.plan->waves[2].column),
            std::make_pair(11, 5));
  // The stored form has no text to point into.
  auto stored = planFromJson(planToJson(*parsed.plan));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->waves[1].line, 0);
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
            "11:15: waves[1].approval must be \"required\", \"none\" or {required: N}, not "
            "\"maybe\"\n");
  EXPECT_EQ(describe(withWave("    clusters: [a]\n    max_parallel: -1\n")),
            "11:19: waves[1].max_parallel must be a positive integer, not \"-1\"\n");
  EXPECT_EQ(describe(withWave("    clusters: [a]\n    max_parallel: 1.5\n")),
            "11:19: waves[1].max_parallel must be a positive integer, not \"1.5\"\n");
}

TEST(ParsePlan, ApprovalForms) {
  auto wave = [](const std::string& approval) {
    return parsePlan(std::string(kMinimalPlan) + "  - name: prod\n    clusters: [a]\n" +
                     "    approval: " + approval + "\n");
  };
  // The plain form: one approver, valid for the default (and longest) 24 hours.
  PlanParseResult plain = wave("required");
  ASSERT_TRUE(plain.plan.has_value()) << describe(plain);
  EXPECT_TRUE(plain.plan->waves[1].approval_required);
  EXPECT_EQ(plain.plan->waves[1].approvals_required, 1u);
  EXPECT_EQ(plain.plan->waves[1].approval_expires, std::chrono::hours(24));
  EXPECT_FALSE(plain.plan->waves[0].approval_required);

  PlanParseResult two = wave("{required: 2}");
  ASSERT_TRUE(two.plan.has_value()) << describe(two);
  EXPECT_TRUE(two.plan->waves[1].approval_required);
  EXPECT_EQ(two.plan->waves[1].approvals_required, 2u);
  EXPECT_EQ(two.plan->waves[1].approval_expires, std::chrono::hours(24));

  PlanParseResult shorter = wave("{required: 3, expires: 90m}");
  ASSERT_TRUE(shorter.plan.has_value()) << describe(shorter);
  EXPECT_EQ(shorter.plan->waves[1].approvals_required, 3u);
  EXPECT_EQ(shorter.plan->waves[1].approval_expires, std::chrono::minutes(90));

  // Block style, and the stored form keeps both numbers.
  PlanParseResult block = parsePlan(std::string(kMinimalPlan) +
                                    "  - name: prod\n    clusters: [a]\n    approval:\n"
                                    "      required: 10\n      expires: 24h\n");
  ASSERT_TRUE(block.plan.has_value()) << describe(block);
  EXPECT_EQ(block.plan->waves[1].approvals_required, 10u);
  auto stored = planFromJson(planToJson(*shorter.plan));
  ASSERT_TRUE(stored.ok()) << stored.status().toString();
  expectSamePlan(*shorter.plan, *stored);

  // JSON plans take the same map.
  PlanParseResult json = parsePlan(
      R"({"service": "checkout", "version": "1", "steps": {"apply": "a", "rollback": "b"},
          "waves": [{"name": "prod", "clusters": ["a"],
                     "approval": {"required": 2, "expires": "1h"}}]})");
  ASSERT_TRUE(json.plan.has_value()) << describe(json);
  EXPECT_EQ(json.plan->waves[0].approvals_required, 2u);
  EXPECT_EQ(json.plan->waves[0].approval_expires, std::chrono::hours(1));
}

TEST(ParsePlan, ApprovalRules) {
  auto wave = [](const std::string& approval) {
    return describe(parsePlan(std::string(kMinimalPlan) + "  - name: prod\n    clusters: [a]\n" +
                              "    approval: " + approval + "\n"));
  };
  EXPECT_EQ(wave("{required: 0}"),
            "11:26: waves[1].approval.required must be an integer from 1 to 10, not \"0\"\n");
  EXPECT_EQ(wave("{required: 11}"),
            "11:26: waves[1].approval.required must be an integer from 1 to 10, not \"11\"\n");
  EXPECT_EQ(wave("{required: two}"),
            "11:26: waves[1].approval.required must be an integer from 1 to 10, not \"two\"\n");
  EXPECT_EQ(wave("{required: 2, expires: 25h}"),
            "11:38: waves[1].approval.expires must be between 1s and 24h\n");
  EXPECT_EQ(wave("{required: 2, expires: 0s}"),
            "11:38: waves[1].approval.expires must be between 1s and 24h\n");
  EXPECT_EQ(wave("{required: 2, expires: soon}"),
            "11:38: waves[1].approval.expires: " + parseDuration("soon").status().message() + "\n");
  EXPECT_EQ(wave("{expires: 1h}"),
            "11:15: missing required field \"required\" in "
            "waves[1].approval\n");
  EXPECT_EQ(wave("{required: 2, expire: 1h}"),
            "11:29: unknown field \"expire\" in waves[1].approval; did you mean \"expires\"?\n");
  EXPECT_EQ(wave("[required]"),
            "11:15: waves[1].approval must be \"required\", \"none\" or a map "
            "such as {required: 2, expires: 12h}, not a list\n");
  // Every problem at once, each where it is.
  EXPECT_EQ(wave("{required: 0, expires: 2d, by: me}"),
            "11:26: waves[1].approval.required must be an integer from 1 to 10, not \"0\"\n"
            "11:38: waves[1].approval.expires: " +
                parseDuration("2d").status().message() +
                "\n"
                "11:42: unknown field \"by\" in waves[1].approval\n");
}

TEST(ParsePlan, WaveStrategyAndBakeRules) {
  // Lines appended to the only wave start at line 10, column 5; traffic follows them.
  auto withWaveLine = [](const std::string& line) {
    return describe(
        parsePlan(std::string(kMinimalProcessPlan) + "    " + line + "\n" + kTrafficLine));
  };
  EXPECT_EQ(withWaveLine("strategy: {type: canary, steps: [25, 100], pause: 1m}"), "");
  EXPECT_EQ(withWaveLine("bake: 24h"), "");

  EXPECT_EQ(withWaveLine("strategy: x"), "10:15: waves[0].strategy must be a map, not a string\n");
  EXPECT_EQ(withWaveLine("strategy: {type: canary}"),
            "10:15: waves[0].strategy needs \"steps\", e.g. [10, 50, 100]\n");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling}"), "");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling, max_unavailable: 0, max_surge: 64}"), "");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling, max_unavailable: 0, max_surge: 0}"),
            "10:15: waves[0].strategy: max_unavailable and max_surge cannot both be 0 (nothing "
            "could ever be replaced)\n");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling, max_unavailable: 65}"),
            "10:48: waves[0].strategy.max_unavailable must be an integer from 0 to 64, not "
            "\"65\"\n");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling, max_surge: -1}"),
            "10:42: waves[0].strategy.max_surge must be an integer from 0 to 64, not \"-1\"\n");
  EXPECT_EQ(withWaveLine("strategy: {type: rolling, steps: [100], pause: 1s, switch: all}"),
            "10:31: waves[0].strategy.steps is not used by type: rolling\n"
            "10:45: waves[0].strategy.pause is not used by type: rolling\n"
            "10:56: waves[0].strategy.switch is not used by type: rolling\n");
  EXPECT_EQ(withWaveLine("strategy: {type: blue_green, max_unavailable: 1}"),
            "10:34: waves[0].strategy.max_unavailable is for type: rolling\n");
  EXPECT_EQ(withWaveLine("strategy: {type: canary, steps: [10, 90]}"),
            "10:37: waves[0].strategy.steps must end at 100\n");
  EXPECT_EQ(withWaveLine("strategy: {type: blue_green, steps: [50, 100]}"),
            "10:34: waves[0].strategy.steps needs switch: steps\n");
  EXPECT_EQ(withWaveLine("strategy: {type: canary, steps: [100], max_surge: 1}"),
            "10:44: waves[0].strategy.max_surge is for type: rolling\n");
  EXPECT_EQ(withWaveLine("bake: 25h"), "10:11: waves[0].bake must be between 0s and 24h\n");
  EXPECT_EQ(withWaveLine("bake: 15x"),
            "10:11: waves[0].bake: invalid duration \"15x\": unknown unit; use h, m, s or ms\n");
  EXPECT_EQ(withWaveLine("bake: [1m]"), "10:11: waves[0].bake must be a string, not a list\n");
  EXPECT_EQ(withWaveLine("bak: 1m"),
            "10:5: unknown field \"bak\" in waves[0]; did you mean \"bake\"?\n");
}

}  // namespace
}  // namespace flotilla::common
