// The post-deploy watch against real processes: a coordinator with a policy whose production
// watches in two tiers of a few seconds, real agents running the plan's steps.watch at each
// interval, the CLI. A version that turns bad after reaching 100% is rolled back everywhere it
// went; a good one succeeds when the last tier ends; watch-end ends a watch early (audited).
#include <algorithm>
#include <fstream>
#include <thread>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

const char* kPolicy = R"(environments:
  staging:
    clusters: {environment: staging}
  production:
    clusters: {environment: production}
    watch:
      - {name: intense, for: 3s, interval: 300ms}
      - {name: regular, for: 2s, interval: 500ms}
  long:
    clusters: {environment: long}
)";

const std::vector<std::string> kAll = {"staging-eu", "prod-eu-1", "prod-eu-2", "prod-us-1"};

class WatchTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(startFleet(withPolicy(kPolicy)));
  }

  // staging, then production. steps.watch counts its runs in @DIR@/<deployment>.<cluster>.watch
  // and fails once @DIR@/<version>.bad exists.
  std::string planText(const std::string& version) {
    const ScriptPlan plan{
        .service = "ledger",
        .version = version,
        .verify = "",
        .watch =
            "echo $FLOTILLA_WATCH_TIER >> @DIR@/$FLOTILLA_DEPLOYMENT.$FLOTILLA_CLUSTER.watch"
            " && test ! -f @DIR@/$FLOTILLA_VERSION.bad",
        .waves = {waveOf("staging", {"staging-eu"}),
                  waveSelecting("production", "environment: production")}};
    return replaceAll(plan.yaml(), "@DIR@", dir());
  }

  // The tiers steps.watch ran in on `cluster`, one line a run.
  std::vector<std::string> watchRuns(const std::string& id, const std::string& cluster) {
    std::ifstream in(dir() + "/" + id + "." + cluster + ".watch");
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
};

TEST_F(WatchTest, AGoodVersionSucceedsWhenTheLastTierEnds) {
  const std::string id = submitPlan("ledger.yaml", planText("2.0.0"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "watching"));
  for (const auto& cluster : kAll) EXPECT_EQ(versionOf(cluster), "2.0.0") << cluster;
  CommandResult status = cli({"status", id});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("watching"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("Watch       tier intense (1 of 2): "), std::string::npos)
      << status.out;
  EXPECT_NE(status.out.find("left, checks every 300ms; then regular 2s"), std::string::npos)
      << status.out;
  json watch = deployment(id)["watch"];
  EXPECT_EQ(watch["tier_name"], "intense") << watch.dump();
  EXPECT_LE(watch["tier_left_ms"].get<int64_t>(), 3000);

  ASSERT_TRUE(waitForState(id, "succeeded"));
  const json ev = events(id);
  const int watching = findEvent(ev, "deployment.watching", "");
  const int tier = findEvent(ev, "deployment.watch_tier", "");
  const int succeeded = findEvent(ev, "deployment.succeeded", "");
  ASSERT_GE(watching, 0);
  ASSERT_GT(tier, watching);
  ASSERT_GT(succeeded, tier);
  // Every cluster, staging's too, ran steps.watch in both tiers, several times in each.
  for (const auto& cluster : kAll) {
    const std::vector<std::string> runs = watchRuns(id, cluster);
    EXPECT_GE(std::count(runs.begin(), runs.end(), "intense"), 4) << cluster;
    EXPECT_GE(std::count(runs.begin(), runs.end(), "regular"), 2) << cluster;
    EXPECT_EQ(versionOf(cluster), "2.0.0") << cluster;
  }
  CommandResult done = cli({"status", id});
  EXPECT_NE(done.out.find("Watch       done: intense 3s (every 300ms), regular 2s"),
            std::string::npos)
      << done.out;
}

TEST_F(WatchTest, AVersionThatTurnsBadAfterReachingEverywhereIsRolledBackEverywhere) {
  // 1.0.0 first, so that the rollback has a version to go back to.
  const std::string first = submitPlan("ledger-1.yaml", planText("1.0.0"));
  ASSERT_FALSE(first.empty());
  ASSERT_TRUE(waitForState(first, "succeeded"));

  const std::string id = submitPlan("ledger-2.yaml", planText("2.0.0"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "watching"));
  for (const auto& cluster : kAll) EXPECT_EQ(versionOf(cluster), "2.0.0") << cluster;
  // Good for 2 s at 100%, then bad.
  std::this_thread::sleep_for(2s);
  writeFile(dir() + "/2.0.0.bad", "");
  ASSERT_TRUE(waitForState(id, "rolled_back"));
  json detail = deployment(id);
  EXPECT_NE(detail["reason"].get<std::string>().find("failed the post-deploy watch (tier "),
            std::string::npos)
      << detail["reason"];
  EXPECT_NE(detail["reason"].get<std::string>().find("steps.watch failed 4 times in a row"),
            std::string::npos)
      << detail["reason"];
  // Every cluster it went to ran its rollback once, staging's too.
  for (const auto& cluster : kAll) {
    const std::vector<std::string> steps = stepLog(id, cluster);
    EXPECT_EQ(std::count(steps.begin(), steps.end(), "rollback"), 1) << cluster;
    EXPECT_EQ(clusterState(id, cluster), "rolled_back") << cluster;
  }
  EXPECT_GE(findEvent(events(id), "deployment.rolling_back", ""), 0);
}

TEST_F(WatchTest, WatchEndEndsItEarlyAndIsAudited) {
  // Hours of watching: only watch-end ends it within the test.
  writeFile(dir() + "/policy.yaml",
            replaceAll(kPolicy, "for: 2s, interval: 500ms", "for: 5h, interval: 500ms"));
  ASSERT_EQ(cli({"policy", "reload"}).exit_code, 0);
  const std::string id = submitPlan("ledger.yaml", planText("3.0.0"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "watching"));

  const std::string viewer = createToken("watcher", "viewer");
  HttpResponse denied = request("POST", "/api/v1/deployments/" + id + "/watch-end", viewer, "{}");
  EXPECT_EQ(denied.status, 403) << denied.body;
  EXPECT_EQ(stateOf(id), "watching");
  // A body that is not {"reason": "<text>"} is refused, and the watch goes on.
  for (const char* bad : {"[1]", R"({"reason": 5})", "not json"}) {
    EXPECT_EQ(
        request("POST", "/api/v1/deployments/" + id + "/watch-end", deployerToken(), bad).status,
        400)
        << bad;
  }
  EXPECT_EQ(stateOf(id), "watching");

  CommandResult ended = cli({"watch-end", id, "--reason", "seen enough"});
  ASSERT_EQ(ended.exit_code, 0) << ended.err;
  EXPECT_NE(ended.out.find("end of the watch accepted"), std::string::npos) << ended.out;
  ASSERT_TRUE(waitForState(id, "succeeded", 20s));
  const json ev = events(id);
  const int at = findEvent(ev, "deployment.watch_ended", "");
  ASSERT_GE(at, 0) << ev.dump();
  EXPECT_NE(ev[at]["message"].get<std::string>().find(": seen enough"), std::string::npos)
      << ev[at].dump();
  CommandResult again = cli({"watch-end", id});
  EXPECT_EQ(again.exit_code, 1) << again.out;
  EXPECT_NE(again.err.find("not watching"), std::string::npos) << again.err;

  CommandResult audit = cli({"audit", "--json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_NE(audit.out.find("POST /api/v1/deployments/{id}/watch-end"), std::string::npos)
      << audit.out;
}

}  // namespace
}  // namespace flotilla::integration
