// One deployment per service at a time, and cancel, with a real coordinator, agents and CLI:
// a second submission of a service waits and then runs; --no-queue refuses; --supersede rolls
// the first back and runs the second; another service runs in parallel; cancel mid-wave leaves
// every cluster on a known version and a later rollback works.
//
// Every step appends "<deployment> <step> start|end <ns>" to @DIR@/<cluster>.steps, so the
// test proves from what ran on each cluster that no two deployments of one service had steps
// there at once.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// `body` between a start and an end line in @DIR@/$FLOTILLA_CLUSTER.steps.
std::string timed(const std::string& body) {
  const std::string mark =
      "echo \"$FLOTILLA_DEPLOYMENT $FLOTILLA_STEP %s $(date +%s%N)\" >> "
      "@DIR@/$FLOTILLA_CLUSTER.steps";
  auto line = [&](const std::string& what) {
    std::string out = mark;
    out.replace(out.find("%s"), 2, what);
    return out;
  };
  return line("start") + " && " + body + " && " + line("end");
}

// Service `service` at `version`: staging (staging-eu), then prod (prod-eu-1, prod-eu-2);
// apply records the version and then takes `apply_seconds`; rollback restores the previous one.
std::string plan(const std::string& service, const std::string& version,
                 const std::string& apply_seconds) {
  const ScriptPlan p{
      .service = service,
      .version = version,
      .build = "",
      .apply = timed(logStep("apply") + " && " + kRecordVersion + " && sleep " + apply_seconds),
      .verify = timed(logStep("verify")),
      .rollback = timed(logStep("rollback") +
                        " && echo $FLOTILLA_PREVIOUS_VERSION > @DIR@/$FLOTILLA_CLUSTER.version"),
      .timeout = "30s",
      .waves = {waveOf("staging", {"staging-eu"}), waveOf("prod", {"prod-eu-1", "prod-eu-2"})}};
  return p.yaml();
}

struct Interval {
  std::string deployment;
  std::string step;
  int64_t start = 0;
  int64_t end = -1;  // -1: no end line (an aborted step)
};

class OnePerServiceTest : public FleetTest {
 protected:
  // The steps that ran on `cluster`, in order. A step with no end line was aborted; it ended
  // before its deployment's next step on that cluster started (the coordinator sends that one
  // only after the agent reported the abort done), or now when there is none.
  std::vector<Interval> intervals(const std::string& cluster) {
    std::ifstream in(dir() + "/" + cluster + ".steps");
    std::vector<Interval> out;
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string id, step, what;
      int64_t ns = 0;
      if (!(fields >> id >> step >> what >> ns)) continue;
      if (what == "start") {
        out.push_back(Interval{id, step, ns, -1});
        continue;
      }
      for (auto it = out.rbegin(); it != out.rend(); ++it) {
        if (it->deployment == id && it->step == step && it->end < 0) {
          it->end = ns;
          break;
        }
      }
    }
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i].end >= 0) continue;
      out[i].end = INT64_MAX;
      for (size_t k = i + 1; k < out.size(); ++k) {
        if (out[k].deployment == out[i].deployment) {
          out[i].end = out[k].start;
          break;
        }
      }
    }
    return out;
  }

  // No step of `a` overlaps a step of `b` on `cluster`; how many steps of each ran there.
  void expectNoOverlap(const std::string& cluster, const std::string& a, const std::string& b) {
    const auto all = intervals(cluster);
    size_t of_a = 0, of_b = 0;
    for (const auto& x : all) {
      if (x.deployment == a) ++of_a;
      if (x.deployment == b) ++of_b;
      for (const auto& y : all) {
        if (x.deployment != a || y.deployment != b) continue;
        EXPECT_TRUE(x.end <= y.start || y.end <= x.start)
            << cluster << ": " << a << " " << x.step << " [" << x.start << ", " << x.end
            << "] overlaps " << b << " " << y.step << " [" << y.start << ", " << y.end << "]";
      }
    }
    EXPECT_GT(of_a, 0u) << cluster << " ran nothing of " << a;
    EXPECT_GT(of_b, 0u) << cluster << " ran nothing of " << b;
  }

  // Whether some step of `a` ran on some cluster while a step of `b` ran there.
  bool overlapsSomewhere(const std::string& a, const std::string& b) {
    for (const auto& cluster : {"staging-eu", "prod-eu-1", "prod-eu-2"}) {
      const auto all = intervals(cluster);
      for (const auto& x : all) {
        for (const auto& y : all) {
          if (x.deployment == a && y.deployment == b && x.start < y.end && y.start < x.end) {
            return true;
          }
        }
      }
    }
    return false;
  }
};

TEST_F(OnePerServiceTest, ASecondSubmissionWaitsThenRunsAndAnotherServiceRunsAlongside) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string first = submitPlan("first.yaml", plan("web", "1.0.0", "1"));
  ASSERT_FALSE(first.empty());
  // Another service on the same clusters starts at once, in parallel.
  const std::string cart = submitPlan("cart.yaml", plan("cart", "1.0.0", "1"));
  ASSERT_FALSE(cart.empty());

  const std::string second_path = writePlan("second.yaml", plan("web", "2.0.0", "1"));
  CommandResult queued = cli({"submit", second_path});
  ASSERT_EQ(queued.exit_code, 0) << queued.out << queued.err;
  const std::string second = queued.out.substr(0, queued.out.find('\n'));
  EXPECT_NE(queued.err.find(second + " is queued behind " + first), std::string::npos)
      << queued.err;
  EXPECT_EQ(stateOf(second), "queued");
  EXPECT_EQ(deployment(second)["waits_for"], first);
  EXPECT_NE(stateOf(cart), "queued");

  // --no-queue refuses, naming the deployment running; nothing stored.
  CommandResult refused = cli({"submit", "--no-queue", second_path});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("deployment " + first + " of web is in flight (running) on "),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(get("/api/v1/deployments").parsed()["deployments"].size(), 3u);

  ASSERT_TRUE(waitForState(first, "succeeded"));
  ASSERT_TRUE(waitForState(second, "succeeded"));
  ASSERT_TRUE(waitForState(cart, "succeeded"));
  for (const char* cluster : {"staging-eu", "prod-eu-1", "prod-eu-2"}) {
    expectNoOverlap(cluster, first, second);
  }
  EXPECT_TRUE(overlapsSomewhere(first, cart)) << "the other service did not run in parallel";
  std::vector<std::string> types;
  for (const auto& e : events(second)) types.push_back(e.value("type", ""));
  EXPECT_NE(std::find(types.begin(), types.end(), "deployment.queued"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "deployment.dequeued"), types.end());
}

TEST_F(OnePerServiceTest, SupersedeRollsTheFirstBackAndRunsTheSecond) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string baseline = submitPlan("baseline.yaml", plan("web", "1.0.0", "0"));
  ASSERT_TRUE(waitForState(baseline, "succeeded"));
  const std::string first = submitPlan("first.yaml", plan("web", "2.0.0", "3"));
  ASSERT_FALSE(first.empty());
  ASSERT_TRUE(waitUntil("the first one's prod apply running",
                        [&] { return versionOf("prod-eu-1") == "2.0.0"; }));

  CommandResult hotfix =
      cli({"submit", "--supersede", writePlan("hotfix.yaml", plan("web", "2.0.1", "0"))});
  ASSERT_EQ(hotfix.exit_code, 0) << hotfix.out << hotfix.err;
  const std::string second = hotfix.out.substr(0, hotfix.out.find('\n'));
  ASSERT_TRUE(waitForState(first, "rolled_back"));
  EXPECT_EQ(deployment(first)["reason"].get<std::string>().rfind("superseded by " + second, 0), 0u)
      << deployment(first)["reason"];
  ASSERT_TRUE(waitForState(second, "succeeded"));
  for (const char* cluster : {"staging-eu", "prod-eu-1", "prod-eu-2"}) {
    EXPECT_EQ(versionOf(cluster), "2.0.1") << cluster;
    expectNoOverlap(cluster, first, second);
  }
  // The clusters the first one reached were rolled back before the second one started.
  const auto steps = stepLog(first, "prod-eu-1");
  EXPECT_EQ(steps.back(), "rollback");
}

TEST_F(OnePerServiceTest, CancelMidWaveLeavesEveryClusterOnAKnownVersionAndRollbackWorks) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string baseline = submitPlan("baseline.yaml", plan("web", "1.0.0", "0"));
  ASSERT_TRUE(waitForState(baseline, "succeeded"));
  const std::string id = submitPlan("slow.yaml", plan("web", "2.0.0", "5"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitUntil("prod applying 2.0.0", [&] {
    return versionOf("prod-eu-1") == "2.0.0" && versionOf("prod-eu-2") == "2.0.0";
  }));

  CommandResult cancelled = cli({"cancel", id});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.out << cancelled.err;
  ASSERT_TRUE(waitForState(id, "cancelled"));
  for (const char* cluster : {"staging-eu", "prod-eu-1", "prod-eu-2"}) {
    EXPECT_EQ(versionOf(cluster), "1.0.0") << cluster;
    EXPECT_EQ(clusterState(id, cluster), "rolled_back") << cluster;
  }
  EXPECT_EQ(versionOf("prod-us-1"), "");  // never part of the plan
  for (const auto& w : deployment(id)["waves"]) EXPECT_EQ(w["state"], "rolled_back") << w;

  CommandResult rollback = cli({"rollback", id});
  EXPECT_EQ(rollback.exit_code, 0) << rollback.out << rollback.err;
  ASSERT_TRUE(waitForState(id, "rolled_back"));
  for (const char* cluster : {"staging-eu", "prod-eu-1", "prod-eu-2"}) {
    EXPECT_EQ(versionOf(cluster), "1.0.0") << cluster;
  }
  // The next deployment of the service is not held by the cancelled one.
  const std::string next = submitPlan("next.yaml", plan("web", "2.0.1", "0"));
  ASSERT_TRUE(waitForState(next, "succeeded"));
}

}  // namespace
}  // namespace flotilla::integration
