// Tests for the plan parser's generic reading (common/plan_reader.cpp): unknown and repeated
// fields, node kinds. Through parsePlan, the only way in.
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

}  // namespace
}  // namespace flotilla::common
