// Pre-deploy checks against real processes: CI reports checks on a release through the CLI;
// a wave whose environment requires checks the release has not met holds in blocked_by_checks
// (nothing runs there), each unmet check named with what it needs, until they are reported;
// a plan blocked in every wave is refused at submission.
#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

const char* kPolicy = R"(environments:
  staging:
    clusters: {environment: staging}
    checks: [tests]
  production:
    clusters: {environment: production}
    checks: [tests, "coverage >= 80", lint]
)";

const std::vector<std::string> kProduction = {"prod-eu-1", "prod-eu-2", "prod-us-1"};

class ChecksTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(startFleet(withPolicy(kPolicy)));
  }

  std::string planText(const std::string& version) {
    const ScriptPlan plan{.service = "ledger",
                          .version = version,
                          .apply = logStep("apply"),
                          .verify = "",
                          .waves = {waveOf("staging", {"staging-eu"}),
                                    waveSelecting("production", "environment: production")}};
    return replaceAll(plan.yaml(), "@DIR@", dir());
  }

  // `flotilla checks report ledger VERSION ARGS...` as CI would (a deployer token).
  CommandResult report(const std::string& version, std::vector<std::string> args) {
    std::vector<std::string> argv = {"checks", "report", "ledger", version};
    argv.insert(argv.end(), args.begin(), args.end());
    return cli(argv);
  }

  bool productionUntouched(const std::string& id) {
    for (const auto& cluster : kProduction) {
      if (hasStepLog(id, cluster)) return false;
    }
    return stateOf(id) == "blocked_by_checks";
  }
};

TEST_F(ChecksTest, MissingAndFailingChecksHoldTheWaveUntilReported) {
  CommandResult tests = report("2.0.0", {"tests", "--passed", "--url", "https://ci.example/812"});
  ASSERT_EQ(tests.exit_code, 0) << tests.err;
  EXPECT_NE(tests.out.find("production still needs: coverage >= 80, lint"), std::string::npos)
      << tests.out;

  const std::string id = submitPlan("ledger.yaml", planText("2.0.0"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "blocked_by_checks"));
  EXPECT_EQ(stepLog(id, "staging-eu"), (std::vector<std::string>{"build", "apply"}));
  json detail = deployment(id);
  EXPECT_EQ(detail["reason"],
            "wave production (production) waits for checks: coverage >= 80 (not reported); lint "
            "(not reported)");
  EXPECT_TRUE(holdsFor(
      "production waits for its checks", [&] { return productionUntouched(id); }, 1000ms));

  // Coverage 79 against >= 80: still held, and the reason says why.
  CommandResult low = report("2.0.0", {"coverage", "--passed", "--value", "79"});
  ASSERT_EQ(low.exit_code, 0) << low.err;
  ASSERT_TRUE(waitUntil("the reason names the coverage", [&] {
    return deployment(id)["reason"].get<std::string>().find(
               "coverage >= 80 (79 does not meet "
               "it)") != std::string::npos;
  }));
  EXPECT_TRUE(productionUntouched(id));
  CommandResult status = cli({"status", id});
  EXPECT_NE(status.out.find("blocked_by_checks"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("lint (not reported)"), std::string::npos) << status.out;

  CommandResult shown = cli({"release", "show", "ledger", "2.0.0"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("✓ tests passed"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("https://ci.example/812"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("staging: ready"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("production: blocked"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("✗ coverage >= 80 (79 does not meet it)"), std::string::npos)
      << shown.out;
  EXPECT_NE(shown.out.find("✗ lint (not reported)"), std::string::npos) << shown.out;

  ASSERT_EQ(report("2.0.0", {"coverage", "--passed", "--value", "84.2"}).exit_code, 0);
  EXPECT_TRUE(productionUntouched(id));
  ASSERT_EQ(report("2.0.0", {"lint", "--passed"}).exit_code, 0);
  ASSERT_TRUE(waitForState(id, "succeeded"));
  for (const auto& cluster : kProduction) {
    EXPECT_EQ(stepLog(id, cluster), (std::vector<std::string>{"build", "apply"})) << cluster;
  }
  const json ev = events(id);
  EXPECT_GE(findEvent(ev, "wave.blocked_by_checks", "production"), 0);
  EXPECT_GE(findEvent(ev, "wave.checks_passed", "production"), 0);
}

TEST_F(ChecksTest, APlanBlockedInEveryWaveIsRefusedAtOnce) {
  const std::string path = writePlan("ledger.yaml", planText("3.0.0"));
  CommandResult refused = cli({"submit", path});
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_NE(refused.err.find("blocked by checks in every wave"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("wave staging (staging) needs tests (not reported)"),
            std::string::npos)
      << refused.err;
  EXPECT_TRUE(get("/api/v1/deployments").parsed()["deployments"].empty());

  // With tests reported, staging can run: accepted, and production waits.
  ASSERT_EQ(report("3.0.0", {"tests", "--passed"}).exit_code, 0);
  const std::string id = submit(path);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "blocked_by_checks"));
}

TEST_F(ChecksTest, ReportsAreCheckedAndNeedTheDeployRole) {
  const std::string viewer = createToken("watcher", "viewer");
  HttpResponse denied = request("POST", "/api/v1/releases/ledger/1.0.0/checks", viewer,
                                json{{"name", "tests"}, {"passed", true}}.dump());
  EXPECT_EQ(denied.status, 403) << denied.body;
  for (const json& bad : {json{{"name", "Tests"}, {"passed", true}}, json{{"name", "tests"}},
                          json{{"name", "tests"}, {"passed", "yes"}},
                          json{{"name", "tests"}, {"passed", true}, {"url", "javascript:alert(1)"}},
                          json{{"name", "tests"}, {"passed", true}, {"extra", 1}}}) {
    HttpResponse r = post("/api/v1/releases/ledger/1.0.0/checks", bad.dump());
    EXPECT_EQ(r.status, 400) << bad.dump() << " " << r.body;
  }
  EXPECT_EQ(post("/api/v1/releases/Ledger!/1.0.0/checks",
                 json{{"name", "tests"}, {"passed", true}}.dump())
                .status,
            400);
  CommandResult neither = cli({"checks", "report", "ledger", "1.0.0", "tests"});
  EXPECT_NE(neither.exit_code, 0);
  // Nothing was recorded.
  json release = get("/api/v1/releases/ledger/1.0.0").parsed();
  EXPECT_TRUE(release["checks"].empty()) << release.dump();
}

}  // namespace
}  // namespace flotilla::integration
