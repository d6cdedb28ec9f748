// The post-deploy watch with the process driver: real agents run flotilla-demo-service replicas
// behind real HAProxy instances; a version whose /health turns bad a few seconds after it
// started passes its rollout, reaches 100% and is finalized (the old replicas are gone), and
// is then rolled back by the watch on every cluster: after promotion, where Argo Rollouts and
// Flagger no longer can.
#include "tests/support/service_fleet.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

const char* kPolicy = R"(environments:
  staging:
    clusters: {environment: staging}
  production:
    clusters: {environment: production}
)";

class ProcessWatchTest : public ServiceFleetTest {};

TEST_F(ProcessWatchTest, AVersionThatTurnsUnhealthyAfterPromotionIsRolledBackByTheWatch) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kTwoWaves, withPolicy(kPolicy)));
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  // From now on production is watched after 100%, checks every 200 ms.
  writeFile(dir() + "/policy.yaml",
            std::string(kPolicy) + "    watch: [{name: intense, for: 30s, interval: 200ms}]\n");
  CommandResult reload = cli({"policy", "reload"});
  ASSERT_EQ(reload.exit_code, 0) << reload.err;

  const std::string id = submitPlan(
      "bad.yaml",
      processPlan({.version = "2.0.0", .command_extra = onlyFor("2.0.0", "--health-fail-after 8s")})
          .yaml());
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "watching"));
  for (const std::string cluster : {"staging-eu", "prod-eu-1"}) {
    expectOnlyVersion(cluster, "2.0.0");
  }
  ASSERT_TRUE(waitForState(id, "rolled_back", 60s));
  const std::string reason = deployment(id)["reason"].get<std::string>();
  EXPECT_NE(reason.find("failed the post-deploy watch (tier intense)"), std::string::npos)
      << reason;
  EXPECT_NE(reason.find("health"), std::string::npos) << reason;
  // Both clusters serve the previous version again, restarted by the rollback.
  for (const std::string cluster : {"staging-eu", "prod-eu-1"}) {
    EXPECT_EQ(clusterState(id, cluster), "rolled_back") << cluster;
    expectOnlyVersion(cluster, "1.0.0");
  }
}

}  // namespace
}  // namespace flotilla::integration
