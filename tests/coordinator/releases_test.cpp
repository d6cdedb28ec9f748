// Tests for coordinator/releases.cpp (check reports, their validation and what a required
// check needs) and the checks gate of the deployment state machine (coordinator/deployment.cpp
// checksHold): a wave whose environment requires checks holds in blocked_by_checks until the
// release meets them.
#include "coordinator/releases.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using common::Check;
using common::CheckOp;
using common::CheckThreshold;

Check named(const std::string& name) { return Check{name, std::nullopt}; }
Check atLeast(const std::string& name, double value) {
  return Check{name, CheckThreshold{CheckOp::kAtLeast, value}};
}

CheckReport report(const std::string& name, bool passed, std::optional<double> value = {}) {
  CheckReport r;
  r.name = name;
  r.passed = passed;
  r.value = value;
  r.by = "ci";
  r.at_ms = 1000;
  return r;
}

ReleaseRecord release(std::vector<CheckReport> reports) {
  ReleaseRecord r;
  r.service = "web";
  r.version = "1.0.0";
  for (auto& c : reports) EXPECT_TRUE(addCheckReport(r, std::move(c)).ok());
  return r;
}

TEST(ReleaseChecks, EachUnmetCheckSaysWhatItNeeds) {
  const std::vector<Check> required = {named("tests"), atLeast("coverage", 80), named("lint"),
                                       named("docs"), atLeast("performance", 1)};
  const ReleaseRecord r = release({report("tests", true), report("coverage", true, 79),
                                   report("lint", false), report("performance", true)});
  const std::vector<UnmetCheck> unmet = unmetChecks(required, &r);
  ASSERT_EQ(unmet.size(), 4u);
  EXPECT_EQ(unmet[0].check, "coverage >= 80");
  EXPECT_EQ(unmet[0].why, "79 does not meet it");
  EXPECT_EQ(unmet[1].check, "lint");
  EXPECT_EQ(unmet[1].why, "reported failed");
  EXPECT_EQ(unmet[2].check, "docs");
  EXPECT_EQ(unmet[2].why, "not reported");
  EXPECT_EQ(unmet[3].why, "passed without a value");
  EXPECT_EQ(unmetText({unmet[0], unmet[2]}),
            "coverage >= 80 (79 does not meet it); docs (not reported)");
  // Nothing reported at all.
  EXPECT_EQ(unmetChecks({named("tests")}, nullptr).size(), 1u);
  // The latest report of a check counts.
  ReleaseRecord later = r;
  ASSERT_TRUE(addCheckReport(later, report("coverage", true, 84.2)).ok());
  ASSERT_TRUE(addCheckReport(later, report("lint", true)).ok());
  ASSERT_TRUE(addCheckReport(later, report("docs", true)).ok());
  ASSERT_TRUE(addCheckReport(later, report("performance", true, 1.5)).ok());
  EXPECT_TRUE(unmetChecks(required, &later).empty());
}

TEST(ReleaseChecks, ThresholdsCompareAsWritten) {
  EXPECT_TRUE(common::thresholdMet({CheckOp::kAtLeast, 80}, 80));
  EXPECT_FALSE(common::thresholdMet({CheckOp::kAbove, 80}, 80));
  EXPECT_TRUE(common::thresholdMet({CheckOp::kAtMost, 0}, 0));
  EXPECT_FALSE(common::thresholdMet({CheckOp::kBelow, 0}, 0));
  EXPECT_TRUE(common::thresholdMet({CheckOp::kEqual, 1}, 1));
}

TEST(ReleaseChecks, BadReportsAreRefused) {
  EXPECT_TRUE(validateCheckReport(report("coverage", true, 80)).ok());
  EXPECT_TRUE(validateCheckReport(report("Coverage", true)).isInvalidArgument());
  EXPECT_TRUE(validateCheckReport(report("", true)).isInvalidArgument());
  EXPECT_TRUE(validateCheckReport(report(std::string(64, 'a'), true)).isInvalidArgument());
  EXPECT_TRUE(validateCheckReport(report("x", true, std::numeric_limits<double>::infinity()))
                  .isInvalidArgument());
  EXPECT_TRUE(validateCheckReport(report("x", true, std::nan(""))).isInvalidArgument());
  CheckReport link = report("tests", true);
  link.url = "https://ci.example/run/812";
  EXPECT_TRUE(validateCheckReport(link).ok());
  const std::vector<std::string> bads = {"javascript:alert(1)", "ftp://x", "https://a b",
                                         "https://x/\x1b[31m", "https://" + std::string(3000, 'a')};
  for (const std::string& bad : bads) {
    link.url = bad;
    EXPECT_TRUE(validateCheckReport(link).isInvalidArgument()) << bad;
  }
}

TEST(ReleaseChecks, DistinctCheckNamesAreBounded) {
  ReleaseRecord r = release({});
  for (size_t i = 0; i < kMaxChecksPerRelease; ++i) {
    ASSERT_TRUE(addCheckReport(r, report("c" + std::to_string(i), true)).ok());
  }
  EXPECT_EQ(addCheckReport(r, report("one_more", true)).code(),
            common::Status::Code::kResourceExhausted);
  // A known name may still be reported again.
  EXPECT_TRUE(addCheckReport(r, report("c0", false)).ok());
}

TEST(ReleaseChecks, StoredFormRoundTrips) {
  ReleaseRecord r = release({report("tests", true), report("coverage", false, 79.5)});
  r.checks["tests"].url = "https://ci.example/1";
  auto back = releaseFromJson(releaseToJson(r));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->service, "web");
  ASSERT_EQ(back->checks.size(), 2u);
  EXPECT_EQ(back->checks.at("coverage").value, 79.5);
  EXPECT_FALSE(back->checks.at("coverage").passed);
  EXPECT_EQ(back->checks.at("tests").url, "https://ci.example/1");
  EXPECT_FALSE(releaseFromJson("{\"service\": 1}").ok());
}

TEST(ReleaseChecks, TheChecklistPerEnvironment) {
  const ReleaseRecord r = release({report("tests", true), report("coverage", true, 79)});
  nlohmann::json shown = releaseJson(
      r,
      {{"staging", {named("tests")}}, {"production", {named("tests"), atLeast("coverage", 80)}}});
  ASSERT_EQ(shown["environments"].size(), 2u);
  EXPECT_TRUE(shown["environments"][0]["ready"].get<bool>());
  EXPECT_FALSE(shown["environments"][1]["ready"].get<bool>());
  EXPECT_EQ(shown["environments"][1]["checks"][1]["check"], "coverage >= 80");
  EXPECT_FALSE(shown["environments"][1]["checks"][1]["met"].get<bool>());
  EXPECT_EQ(shown["checks"].size(), 2u);
}

using DeploymentChecks = DeploymentTest;

TEST_F(DeploymentChecks, AWaveHoldsUntilItsEnvironmentsChecksAreMet) {
  common::Plan p = threeWaves();
  p.waves[1].environment = "production";
  p.waves[1].checks = {named("tests"), atLeast("coverage", 80)};
  Deployment d = start(p);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  // The fixture's context has no release: nothing reported.
  EXPECT_EQ(d.state, DeploymentState::kBlockedByChecks);
  EXPECT_EQ(d.waves[1].state, WaveState::kPending);
  EXPECT_TRUE(dispatched().empty());
  ASSERT_NE(findEvent("wave.blocked_by_checks"), nullptr);
  EXPECT_EQ(d.reason,
            "wave prod-eu (production) waits for checks: tests (not reported); coverage >= 80 "
            "(not reported)");

  // A report that leaves coverage short: the reason changes, one event; the same again: none.
  ReleaseRecord r = release({report("tests", true), report("coverage", true, 79)});
  Context with = ctx();
  with.release = &r;
  fx_ = Effects{};
  advance(d, with, fx_);
  EXPECT_EQ(d.state, DeploymentState::kBlockedByChecks);
  EXPECT_NE(d.reason.find("coverage >= 80 (79 does not meet it)"), std::string::npos) << d.reason;
  EXPECT_NE(findEvent("wave.blocked_by_checks"), nullptr);
  fx_ = Effects{};
  advance(d, with, fx_);
  EXPECT_FALSE(fx_.changed);
  EXPECT_TRUE(fx_.events.empty());

  ASSERT_TRUE(addCheckReport(r, report("coverage", true, 84.2)).ok());
  fx_ = Effects{};
  advance(d, with, fx_);
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_TRUE(d.reason.empty());
  EXPECT_NE(findEvent("wave.checks_passed"), nullptr);
  EXPECT_EQ(dispatched(), (std::vector<std::string>{"prod-eu-1/build", "prod-eu-2/build"}));
}

TEST_F(DeploymentChecks, ABlockedDeploymentCanBeCancelled) {
  common::Plan p = threeWaves();
  p.waves[0].checks = {named("tests")};
  Deployment d = start(p);
  EXPECT_EQ(d.state, DeploymentState::kBlockedByChecks);
  Effects fx;
  ASSERT_TRUE(cancel(d, alice_, "not this one", ctx(), fx).ok());
  EXPECT_EQ(d.state, DeploymentState::kCancelled);
}

// A wave promoted from an environment an earlier wave of the plan deployed to: the earlier
// wave's success is recorded on the release (Effects::release), and the later wave holds in
// blocked_by_checks, with a reason that does not change as the clock moves, until the soak has
// passed.
TEST_F(DeploymentChecks, AWavePromotedFromAnEarlierOneHoldsUntilTheSoakPasses) {
  common::Plan p = threeWaves();
  p.waves[0].environment = "staging";
  p.waves[1].environment = "production";
  p.waves[1].promote_from = "staging";
  p.waves[1].promote_soak = std::chrono::seconds(30);
  Deployment d = start(p);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kBlockedByChecks);
  EXPECT_TRUE(dispatched().empty());
  ASSERT_TRUE(fx_.release.has_value());
  ASSERT_EQ(fx_.release->succeeded.count("staging"), 1u);
  EXPECT_EQ(fx_.release->succeeded.at("staging").deployment, d.id);
  EXPECT_NE(findEvent("release.environment_succeeded"), nullptr);
  EXPECT_NE(findEvent("wave.blocked_by_promotion"), nullptr);
  EXPECT_NE(d.reason.find("wave prod-eu (production) waits for promotion: succeeded in staging"),
            std::string::npos)
      << d.reason;

  // The engine would now hold the release as the transition left it.
  const ReleaseRecord r = *fx_.release;
  const int64_t at = r.succeeded.at("staging").at_ms;
  Context soon = ctxAt(at + 10'000);
  soon.release = &r;
  fx_ = Effects{};
  advance(d, soon, fx_);
  EXPECT_FALSE(fx_.changed);  // same reason: no event, no write
  EXPECT_EQ(d.state, DeploymentState::kBlockedByChecks);

  Context later = ctxAt(at + 30'000);
  later.release = &r;
  fx_ = Effects{};
  advance(d, later, fx_);
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_NE(findEvent("wave.promotion_met"), nullptr);
  EXPECT_EQ(dispatched(), (std::vector<std::string>{"prod-eu-1/build", "prod-eu-2/build"}));
}

}  // namespace
}  // namespace flotilla::coordinator::testing
