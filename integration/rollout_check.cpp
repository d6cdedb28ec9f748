// The crash tests' rollout plan and the invariants checked after it ends.
#include "integration/rollout_check.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "tests/support/plans.hpp"

namespace flotilla::integration {

using namespace support;

namespace {

// A step command's first part: it appends "<deployment> <cluster> <step>" to the cluster's
// counter file, so that a step that started shows up once even when its agent is killed in the
// middle of it.
std::string counted(const std::string& step) {
  return "echo \"$FLOTILLA_DEPLOYMENT $FLOTILLA_CLUSTER " + step +
         "\" >> @DIR@/$FLOTILLA_CLUSTER.counter";
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out.empty() ? "(nothing)" : out;
}

}  // namespace

std::string RolloutTest::writeRollout(const RolloutShape& shape) {
  // Each rollout of a test brings its own version, so a verify can tell whether this one's
  // apply took.
  const std::string version = "7.0." + std::to_string(rollouts_++);
  std::string hold_before;
  std::string hold_after;
  if (!shape.hold_apply_on.empty()) {
    const std::string wait =
        shape.hold_until_released
            ? "i=0; while [ ! -e @DIR@/$FLOTILLA_CLUSTER.release ] && [ $i -lt 1200 ]; do "
              "sleep 0.05; i=$((i+1)); done"
            : "sleep 60";
    const std::string hold = "if [ $FLOTILLA_CLUSTER = " + shape.hold_apply_on +
                             " ]; then touch @DIR@/$FLOTILLA_CLUSTER.apply-started; " + wait +
                             "; fi";
    if (shape.hold_after_version_written) {
      hold_after = "; " + hold;
    } else {
      hold_before = hold + "; ";
    }
  }
  const std::string verify_extra =
      shape.verify_fails_in_wave_2 ? " && [ $FLOTILLA_CLUSTER != prod-eu-2 ]" : "";
  const ScriptPlan plan{
      .version = version,
      .build = counted("build") + "; sleep 0.1",
      .apply = counted("apply") + "; " + hold_before + "sleep 0.3; " + kRecordVersion + hold_after,
      .verify = counted("verify") +
                "; sleep 0.1; grep -qx \"$FLOTILLA_VERSION\" @DIR@/$FLOTILLA_CLUSTER.version" +
                verify_extra,
      .rollback =
          counted("rollback") + "; sleep 0.1; echo previous > @DIR@/$FLOTILLA_CLUSTER.version",
      .timeout = "60s",
      .waves = {waveOf("staging", {"staging-eu"}), waveOf("europe", {"prod-eu-1", "prod-eu-2"}),
                waveOf("america", {"prod-us-1"})}};
  return writePlan("rollout-" + std::to_string(rollouts_) + ".yaml", plan.yaml());
}

std::vector<std::string> RolloutTest::counter(const std::string& cluster, const std::string& id) {
  std::vector<std::string> steps;
  for (const auto& line : readLines(dir() + "/" + cluster + ".counter")) {
    std::istringstream words(line);
    std::string deployment, who, step;
    words >> deployment >> who >> step;
    EXPECT_EQ(who, cluster) << "a step of another cluster wrote to " << cluster << "'s counter";
    if (deployment == id) steps.push_back(step);
  }
  return steps;
}

std::vector<std::string> RolloutTest::listedIds() {
  std::vector<std::string> ids;
  json list = get("/api/v1/deployments").parsed();
  if (!list.is_object() || !list.contains("deployments")) {
    ADD_FAILURE() << "GET /api/v1/deployments did not answer a list";
    return ids;
  }
  for (const auto& d : list["deployments"]) ids.push_back(d.value("id", ""));
  return ids;
}

std::string RolloutTest::waitForFinal(const std::string& id, std::chrono::milliseconds deadline) {
  std::string state;
  bool ended = waitUntil(
      id + " to end",
      [&] {
        state = stateOf(id);
        return isFinalState(state);
      },
      deadline);
  if (!ended) {
    ADD_FAILURE() << id << " was last seen " << (state.empty() ? "(no answer)" : state) << ":\n"
                  << deployment(id).dump(2);
    return "";
  }
  return state;
}

std::string RolloutTest::checkRollout(const std::string& id, const std::string& expected) {
  const std::string state = waitForFinal(id);
  if (!expected.empty()) {
    EXPECT_EQ(state, expected) << deployment(id).dump(2);
  } else {
    EXPECT_TRUE(state == "succeeded" || state == "rolled_back" || state == "failed")
        << deployment(id).dump(2);
  }

  const std::vector<std::string> ids = listedIds();
  EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end())
      << id << " is missing from GET /api/v1/deployments";

  const json detail = deployment(id);
  const std::string version = detail.is_object() ? detail.value("version", "") : "";
  std::map<std::string, std::string> cluster_state;
  if (detail.is_object() && detail.contains("waves")) {
    for (const auto& w : detail["waves"]) {
      for (const auto& c : w["clusters"]) {
        cluster_state[c["name"].get<std::string>()] = c["state"].get<std::string>();
      }
    }
  }

  const std::vector<std::string> forward = {"build", "apply", "verify"};
  for (const auto& cluster : kUsualClusters) {
    const std::vector<std::string> steps = counter(cluster, id);
    SCOPED_TRACE(cluster + " ran: " + joined(steps));
    std::set<std::string> seen;
    for (const auto& s : steps) EXPECT_TRUE(seen.insert(s).second) << s << " ran twice";
    // Forward steps in plan order (one may be missing: an apply that never started); rollback,
    // if any, last.
    size_t next = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      if (steps[i] == "rollback") {
        EXPECT_EQ(i + 1, steps.size()) << "a step ran after the rollback";
        continue;
      }
      auto at = std::find(forward.begin() + static_cast<long>(next), forward.end(), steps[i]);
      EXPECT_NE(at, forward.end()) << steps[i] << " out of order";
      if (at != forward.end()) next = static_cast<size_t>(at - forward.begin()) + 1;
    }
    const size_t rollbacks =
        static_cast<size_t>(std::count(steps.begin(), steps.end(), "rollback"));
    auto found = cluster_state.find(cluster);
    if (state == "succeeded") {
      EXPECT_EQ(steps, forward);
      EXPECT_EQ(versionOf(cluster), version);
      EXPECT_TRUE(found != cluster_state.end() && found->second == "succeeded");
    } else if (state == "rolled_back" || state == "failed") {
      if (found == cluster_state.end()) {
        EXPECT_TRUE(steps.empty()) << "a cluster the rollout never reached ran something";
        continue;
      }
      if (found->second == "rolled_back") {
        EXPECT_EQ(rollbacks, 1u);
        EXPECT_EQ(versionOf(cluster), "previous");
      } else if (found->second == "rollback_failed") {
        // Its rollback was interrupted (its effect unknown): not run again on its own.
        EXPECT_LE(rollbacks, 1u);
        EXPECT_EQ(state, "failed");
      } else {
        // Never sent apply, so nothing to take back.
        EXPECT_EQ(rollbacks, 0u) << "state " << found->second;
        EXPECT_EQ(std::count(steps.begin(), steps.end(), "apply"), 0) << "state " << found->second;
        EXPECT_NE(versionOf(cluster), version);
      }
    }
  }

  // The history: strictly increasing, one start and one end, no stage result taken twice.
  const json ev = events(id);
  long long last_seq = -1;
  std::map<std::string, int> ends;
  std::map<std::string, int> succeeded_stages;
  for (const auto& e : ev) {
    long long seq = e["seq"].get<long long>();
    EXPECT_GT(seq, last_seq);
    last_seq = seq;
    const std::string type = e["type"].get<std::string>();
    if (type == "deployment.submitted" || type == "deployment.succeeded" ||
        type == "deployment.rolled_back" || type == "deployment.failed") {
      ++ends[type];
    }
    if (type == "stage.succeeded" || type == "rollback.succeeded") {
      ++succeeded_stages[e["cluster"].get<std::string>() + "/" + e["step"].get<std::string>()];
    }
  }
  EXPECT_EQ(ends["deployment.submitted"], 1);
  if (!state.empty()) {
    EXPECT_EQ(ends["deployment." + state], 1);
    if (!ev.empty()) {
      EXPECT_EQ(ev.back()["type"], "deployment." + state);
    }
  }
  for (const auto& [stage, n] : succeeded_stages) EXPECT_EQ(n, 1) << stage << " succeeded twice";
  return state;
}

bool RolloutTest::waitForCoordinatorCrash(const std::string& name) {
  if (!waitUntil("the coordinator to crash at " + name, [&] { return !coordinatorRunning(); })) {
    return false;
  }
  const std::string log = readFile(coordinatorLog());
  EXPECT_NE(log.find("FAILPOINT " + name), std::string::npos)
      << "the coordinator exited, but not at " << name << ":\n"
      << tailOf(coordinatorLog(), 20);
  return true;
}

bool RolloutTest::waitForAgentCrash(const std::string& cluster, const std::string& name) {
  if (!waitUntil("agent " + cluster + " to crash at " + name,
                 [&] { return !agentRunning(cluster); })) {
    return false;
  }
  const std::string log = readFile(agentLog(cluster));
  EXPECT_NE(log.find("FAILPOINT " + name), std::string::npos)
      << "agent " << cluster << " exited, but not at " << name << ":\n"
      << tailOf(agentLog(cluster), 20);
  return true;
}

void RolloutTest::reportKills(int kills, const std::string& how) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::cout << "[crash] " << info->test_suite_name() << "." << info->name() << ": survived "
            << kills << (kills == 1 ? " kill" : " kills") << " (" << how << ")" << std::endl;
  RecordProperty("kills_survived", kills);
}

uint32_t RolloutTest::crashSeed(uint32_t fallback) {
  uint32_t seed = fallback;
  if (const char* env = std::getenv("FLOTILLA_CRASH_SEED")) {
    seed = static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  std::cout << "[crash] seed " << seed << " (rerun with FLOTILLA_CRASH_SEED=" << seed << ")"
            << std::endl;
  return seed;
}

}  // namespace flotilla::integration
