// A 3-wave plan across 4 agents succeeds, reaches every cluster, and its events come in order.
#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// Waves by selector, by name list (one at a time) and by a selector that must skip the clusters
// earlier waves took. The build sleeps a little so that overlapping clusters would show.
const ScriptPlan kPlan{
    .version = "2.0.0",
    .driver_line = true,
    .build = logStep("build") + "; sleep 0.2",
    .apply = logStep("apply") + " && " + kRecordVersion +
             " && echo \"$FLOTILLA_WAVE $FLOTILLA_ENVIRONMENT\" > @DIR@/$FLOTILLA_CLUSTER.env",
    .verify = logStep("verify") +
              " && test \"$(cat @DIR@/$FLOTILLA_CLUSTER.version)\" = \"$FLOTILLA_VERSION\"",
    .waves = {waveSelecting("staging", "environment: staging"),
              waveOf("prod-eu", {"prod-eu-1", "prod-eu-2"}, {"max_parallel: 1"}),
              waveSelecting("prod-rest", "environment: production")}};

const std::vector<std::string> kWaves = {"staging", "prod-eu", "prod-rest"};
const std::map<std::string, std::string> kWaveOf = {{"staging-eu", "staging"},
                                                    {"prod-eu-1", "prod-eu"},
                                                    {"prod-eu-2", "prod-eu"},
                                                    {"prod-us-1", "prod-rest"}};

class ThreeWavesTest : public FleetTest {};

TEST_F(ThreeWavesTest, SucceedsEverywhereWithEventsInOrder) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan("plan.yaml", kPlan.yaml());
  ASSERT_FALSE(id.empty());

  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err;
  EXPECT_NE(wait.out.find(id + " succeeded"), std::string::npos) << wait.out;

  // Every cluster ran each forward step exactly once, with the variables of its wave and labels.
  for (const auto& [cluster, wave] : kWaveOf) {
    SCOPED_TRACE(cluster);
    EXPECT_EQ(versionOf(cluster), "2.0.0");
    EXPECT_EQ(stepLog(id, cluster), (std::vector<std::string>{"build", "apply", "verify"}));
    const std::string environment = cluster == "staging-eu" ? "staging" : "production";
    EXPECT_EQ(readLines(dir() + "/" + cluster + ".env"),
              (std::vector<std::string>{wave + " " + environment}));
  }

  json detail = deployment(id);
  ASSERT_TRUE(detail.is_object()) << "GET /api/v1/deployments/" << id;
  EXPECT_EQ(detail["state"], "succeeded");
  ASSERT_EQ(detail["waves"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const json& wave = detail["waves"][i];
    EXPECT_EQ(wave["name"], kWaves[i]);
    EXPECT_EQ(wave["state"], "succeeded");
    for (const auto& c : wave["clusters"]) {
      EXPECT_EQ(c["state"], "succeeded") << c.dump();
      EXPECT_EQ(kWaveOf.at(c["name"].get<std::string>()), kWaves[i]) << c.dump();
    }
  }
  // The last selector matches every production cluster; the ones wave 2 took are left out.
  ASSERT_EQ(detail["waves"][2]["clusters"].size(), 1u);
  EXPECT_EQ(detail["waves"][2]["clusters"][0]["name"], "prod-us-1");

  const json ev = events(id);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.front()["type"], "deployment.submitted");
  EXPECT_EQ(ev.back()["type"], "deployment.succeeded");
  for (size_t i = 1; i < ev.size(); ++i) {
    EXPECT_GT(ev[i]["seq"].get<long long>(), ev[i - 1]["seq"].get<long long>())
        << "events " << ev[i - 1].dump() << " and " << ev[i].dump();
  }
  for (const char* bad : {"stage.failed", "cluster.failed", "deployment.rolling_back",
                          "rollback.started", "agent.lost"}) {
    EXPECT_EQ(findEvent(ev, bad), -1) << "unexpected " << bad;
  }

  // Waves started in plan order, each only after the one before it succeeded.
  std::vector<std::string> started;
  for (const auto& e : eventsOf(ev, "wave.started")) started.push_back(e["wave"]);
  EXPECT_EQ(started, kWaves);
  for (size_t i = 0; i < kWaves.size(); ++i) {
    int start = findEvent(ev, "wave.started", kWaves[i]);
    int done = findEvent(ev, "wave.succeeded", kWaves[i]);
    ASSERT_GE(start, 0) << kWaves[i];
    ASSERT_GT(done, start) << kWaves[i];
    if (i > 0) {
      EXPECT_GT(start, findEvent(ev, "wave.succeeded", kWaves[i - 1]))
          << kWaves[i] << " started before " << kWaves[i - 1] << " succeeded";
    }
    // Everything that happened on a wave's clusters happened inside the wave.
    for (size_t j = 0; j < ev.size(); ++j) {
      const std::string cluster = ev[j].value("cluster", "");
      if (cluster.empty() || kWaveOf.at(cluster) != kWaves[i]) continue;
      EXPECT_EQ(ev[j]["wave"], kWaves[i]) << ev[j].dump();
      EXPECT_GT(static_cast<int>(j), start) << ev[j].dump();
      EXPECT_LT(static_cast<int>(j), done) << ev[j].dump();
    }
  }

  // Per cluster: build, apply, verify, each started after the previous succeeded.
  for (const auto& [cluster, wave] : kWaveOf) {
    SCOPED_TRACE(cluster);
    int previous = findEvent(ev, "wave.started", wave);
    for (const char* step : {"build", "apply", "verify"}) {
      int start = findEvent(ev, "stage.started", wave, cluster, step);
      int done = findEvent(ev, "stage.succeeded", wave, cluster, step);
      EXPECT_GT(start, previous) << step;
      EXPECT_GT(done, start) << step;
      previous = done;
    }
    EXPECT_GT(findEvent(ev, "cluster.succeeded", wave, cluster), previous);
  }

  // max_parallel: 1 — the two clusters of prod-eu never overlap.
  auto span = [&](const std::string& cluster) {
    return std::pair(findEvent(ev, "stage.started", "prod-eu", cluster),
                     findEvent(ev, "cluster.succeeded", "prod-eu", cluster));
  };
  auto [first_start, first_end] = span("prod-eu-1");
  auto [second_start, second_end] = span("prod-eu-2");
  EXPECT_TRUE(first_end < second_start || second_end < first_start)
      << "prod-eu-1 ran in events [" << first_start << ", " << first_end << "], prod-eu-2 in ["
      << second_start << ", " << second_end << "]";
}

}  // namespace
}  // namespace flotilla::integration
