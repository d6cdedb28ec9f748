// Argument values: a DURATION follows the plan's one rule (a bare number is refused, which the
// CLI used to read as seconds), and `audit --since` turns a duration into a time.
#include "cli/args.hpp"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <algorithm>

#include "cli/admin.hpp"
#include "cli/follow.hpp"

namespace flotilla::cli {
namespace {

using namespace std::chrono_literals;

// What CLI11 says about `args` parsed by an app with `add` registered; "" when it accepts them.
std::string parseError(void (*add)(CLI::App&, Commands&), std::vector<std::string> args) {
  CLI::App app{"test", "flotilla"};
  Commands commands;
  add(app, commands);
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& error) {
    return error.what();
  }
  return "";
}

TEST(DurationCheck, ABareNumberIsRefusedWithTheRule) {
  // `flotilla wait ID --timeout 90` waited 90 seconds; now it is refused, as in a plan.
  EXPECT_EQ(parseError(addWaitCommand, {"wait", "d-1", "--timeout", "90"}),
            "--timeout: invalid duration \"90\": a unit is required (h, m, s or ms)");
  EXPECT_EQ(parseError(addAgentsCommands, {"agents", "enroll", "eu", "--ttl", "3600"}),
            "--ttl: invalid duration \"3600\": a unit is required (h, m, s or ms)");
}

TEST(DurationCheck, TheRuleIsThePlans) {
  for (const char* ok : {"500ms", "90s", "15m", "2h", "1h30m", "1h0m5s250ms"}) {
    EXPECT_EQ(parseError(addWaitCommand, {"wait", "d-1", "--timeout", ok}), "") << ok;
  }
  EXPECT_EQ(parseError(addWaitCommand, {"wait", "d-1", "--timeout", "30m1h"}),
            "--timeout: invalid duration \"30m1h\": units must go from largest to smallest, "
            "each once");
  EXPECT_EQ(parseError(addWaitCommand, {"wait", "d-1", "--timeout", "1d"}),
            "--timeout: invalid duration \"1d\": unknown unit; use h, m, s or ms");
  EXPECT_EQ(parseError(addWaitCommand, {"wait", "d-1", "--timeout", "soon"}),
            "--timeout: invalid duration \"soon\": expected a number followed by h, m, s or ms");
}

TEST(DurationOf, ReadsWhatTheCheckPassed) {
  EXPECT_EQ(durationOf("1h30m"), 90min);
  EXPECT_EQ(durationOf("250ms"), 250ms);
}

TEST(SinceParam, ADurationIsThatLongBeforeNowInWholeSeconds) {
  const common::SystemTime now =
      common::fromUnixMillis(*common::parseRfc3339("2026-11-27T02:00:00.750Z"));
  EXPECT_EQ(sinceParam("1h", now), "2026-11-27T01:00:00.000Z");
  EXPECT_EQ(sinceParam("90s", now), "2026-11-27T01:58:30.000Z");
  // Anything else goes as written: the coordinator judges times.
  EXPECT_EQ(sinceParam("2026-11-01T00:00:00Z", now), "2026-11-01T00:00:00Z");
  EXPECT_EQ(sinceParam("90", now), "90");
  // Further back than 1970 is everything.
  EXPECT_EQ(sinceParam("999999999h", now), "1970-01-01T00:00:00.000Z");
}

}  // namespace
}  // namespace flotilla::cli
