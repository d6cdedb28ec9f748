// Tests for verification checklists in the plan (common/plan_verify.cpp): steps.verify as a list
// of named checks, every mistake with its position, and the stored form.
#include <gtest/gtest.h>

#include <string>

#include "common/plan.hpp"
#include "tests/common/plan_test_support.hpp"

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;
using namespace plan_testing;

// kMinimalPlan with `verify` (lines from the 6th on) after the steps' rollback.
std::string withVerify(const std::string& verify) {
  return std::string(R"(service: checkout
version: "1.0"
steps:
  apply: ./apply.sh
  rollback: ./rollback.sh
)") + verify +
         R"(  timeout: 2m
waves:
  - name: staging
    clusters: [staging-eu]
)";
}

TEST(ParseVerifyChecks, ListOfNamedChecksParsesInOrder) {
  PlanParseResult result = parsePlan(withVerify(R"(  verify:
    - {name: health, command: "curl -fsS http://x/health", timeout: 10s}
    - {name: smoke, command: ./smoke.sh}
    - name: integration
      command: ./it.sh
      timeout: 5m
)"));
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  const ScriptSteps& steps = result.plan->steps;
  EXPECT_EQ(steps.verify, "");
  ASSERT_EQ(steps.verify_checks.size(), 3u);
  EXPECT_EQ(steps.verify_checks[0], (VerifyCheck{"health", "curl -fsS http://x/health", 10s}));
  EXPECT_EQ(steps.verify_checks[1], (VerifyCheck{"smoke", "./smoke.sh", std::nullopt}));
  EXPECT_EQ(steps.verify_checks[2], (VerifyCheck{"integration", "./it.sh", 5min}));
  EXPECT_EQ(steps.timeout, 2min);
}

TEST(ParseVerifyChecks, SingleCommandStaysOneCheck) {
  PlanParseResult result = parsePlan(withVerify("  verify: ./verify.sh\n"));
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  EXPECT_EQ(result.plan->steps.verify, "./verify.sh");
  EXPECT_TRUE(result.plan->steps.verify_checks.empty());
}

TEST(ParseVerifyChecks, NamesFollowTheRule) {
  EXPECT_TRUE(isVerifyCheckName("smoke"));
  EXPECT_TRUE(isVerifyCheckName("security_scan-2"));
  EXPECT_TRUE(isVerifyCheckName(std::string(63, 'a')));
  EXPECT_FALSE(isVerifyCheckName(""));
  EXPECT_FALSE(isVerifyCheckName(std::string(64, 'a')));
  EXPECT_FALSE(isVerifyCheckName("Smoke"));
  EXPECT_FALSE(isVerifyCheckName("smoke test"));
  EXPECT_FALSE(isVerifyCheckName("a/b"));
}

struct Mistake {
  const char* verify;  // the lines of `verify`, from line 6
  int line;
  int column;
  const char* says;
};

TEST(ParseVerifyChecks, EveryMistakeIsReportedWhereItIs) {
  const Mistake mistakes[] = {
      {"  verify: []\n", 6, 11, "steps.verify has no checks"},
      {"  verify: {name: smoke}\n", 6, 11, "must be a command or a list of checks"},
      {"  verify:\n    - ./smoke.sh\n", 7, 7, "steps.verify[0] must be a map"},
      {"  verify:\n    - {command: ./smoke.sh}\n", 7, 7,
       "missing required field \"name\" in steps.verify[0]"},
      {"  verify:\n    - {name: smoke}\n", 7, 7,
       "missing required field \"command\" in steps.verify[0]"},
      {"  verify:\n    - {name: Smoke, command: x}\n", 7, 14,
       "steps.verify[0].name \"Smoke\" is not a valid check name"},
      {"  verify:\n    - {name: [a], command: x}\n", 7, 14, "steps.verify[0].name must be"},
      {"  verify:\n    - {name: smoke, command: x}\n    - {name: smoke, command: y}\n", 8, 14,
       "steps.verify[1].name: check \"smoke\" is already named at 7:14"},
      {"  verify:\n    - {name: smoke, command: \"  \"}\n", 7, 30,
       "steps.verify[0].command must not be empty"},
      {"  verify:\n    - {name: smoke, command: x, timeout: 0s}\n", 7, 42,
       "steps.verify[0].timeout must be between"},
      {"  verify:\n    - {name: smoke, command: x, timeout: 25h}\n", 7, 42,
       "steps.verify[0].timeout must be between"},
      {"  verify:\n    - {name: smoke, command: x, timeout: soon}\n", 7, 42,
       "steps.verify[0].timeout:"},
      {"  verify:\n    - {name: smoke, command: x, timout: 5s}\n", 7, 33,
       "unknown field \"timout\" in steps.verify[0]; did you mean \"timeout\"?"},
      {"  verify:\n    - {name: smoke, command: x, name: other}\n", 7, 33,
       "duplicate field \"name\" in steps.verify[0]"},
  };
  for (const Mistake& m : mistakes) {
    SCOPED_TRACE(m.verify);
    const PlanProblem problem = onlyProblem(withVerify(m.verify));
    EXPECT_EQ(problem.line, m.line) << problem.toString();
    EXPECT_EQ(problem.column, m.column) << problem.toString();
    EXPECT_NE(problem.message.find(m.says), std::string::npos) << problem.toString();
  }
}

TEST(ParseVerifyChecks, AtMostSixteenChecks) {
  std::string sixteen = "  verify:\n";
  for (int i = 0; i < 16; ++i) {
    sixteen += "    - {name: c" + std::to_string(i) + ", command: x}\n";
  }
  PlanParseResult ok = parsePlan(withVerify(sixteen));
  ASSERT_TRUE(ok.plan.has_value()) << describe(ok);
  EXPECT_EQ(ok.plan->steps.verify_checks.size(), kMaxVerifyChecks);

  const PlanProblem problem = onlyProblem(withVerify(sixteen + "    - {name: c16, command: x}\n"));
  EXPECT_EQ(problem.line, 6 + 17);
  EXPECT_EQ(problem.column, 7);
  EXPECT_NE(problem.message.find("more than 16 checks"), std::string::npos) << problem.toString();
}

TEST(ParseVerifyChecks, EveryCheckMistakeIsListedAtOnce) {
  PlanParseResult result = parsePlan(withVerify(R"(  verify:
    - {name: "bad name", command: x}
    - {name: smoke}
    - {name: it, command: y, timeout: -1s}
)"));
  EXPECT_FALSE(result.plan.has_value());
  EXPECT_EQ(positions(result), (std::vector<Where>{{7, 14}, {8, 7}, {9, 39}})) << describe(result);
}

TEST(VerifyChecksJson, StoredFormRoundTrips) {
  PlanParseResult result = parsePlan(withVerify(R"(  verify:
    - {name: health, command: ./health.sh, timeout: 10s}
    - {name: smoke, command: ./smoke.sh}
)"));
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  const std::string json = planToJson(*result.plan);
  auto back = planFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().toString();
  expectSamePlan(*back, *result.plan);
  EXPECT_EQ(planToJson(*back), json);
}

TEST(VerifyChecksJson, OlderRecordsWithACommandStillLoad) {
  PlanParseResult result = parsePlan(withVerify("  verify: ./verify.sh\n"));
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  const std::string json = planToJson(*result.plan);
  // The single command is stored as it always was: a string.
  EXPECT_NE(json.find(R"("verify":"./verify.sh")"), std::string::npos) << json;
  auto back = planFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->steps.verify, "./verify.sh");
  EXPECT_TRUE(back->steps.verify_checks.empty());
}

TEST(VerifyChecksJson, CorruptChecklistsAreRefused) {
  PlanParseResult result = parsePlan(withVerify("  verify:\n    - {name: smoke, command: x}\n"));
  ASSERT_TRUE(result.plan.has_value()) << describe(result);
  const std::string json = planToJson(*result.plan);
  const std::string good = R"("verify":[{"command":"x","name":"smoke"}])";
  ASSERT_NE(json.find(good), std::string::npos) << json;
  for (const std::string bad :
       {R"("verify":[])", R"("verify":[{"command":"x","name":"A B"}])",
        R"("verify":[{"command":"x"}])",
        R"("verify":[{"command":"x","name":"a"},{"command":"y","name":"a"}])",
        R"("verify":[{"command":"x","name":"a","timeout_ms":-1}])"}) {
    std::string text = json;
    text.replace(text.find(good), good.size(), bad);
    EXPECT_FALSE(planFromJson(text).ok()) << bad;
  }
}

}  // namespace
}  // namespace flotilla::common
