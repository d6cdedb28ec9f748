// An agent SIGKILLed in the middle of a canary analysis (process driver, real HAProxy, real
// traffic) and started again on the same state dir within a second: it re-adopts the replicas it
// had (the very processes, none started twice), reports the interrupted step as "unknown" rather
// than running it again, and the fleet rolls back onto the untouched old replicas while clients
// never see a failed request.
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/support/service_fleet.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

namespace fs = std::filesystem;

// The killed cluster, the other one (a later wave), and how long the agent stays dead.
constexpr char kKilled[] = "staging-eu";
constexpr char kLater[] = "prod-eu-1";
constexpr auto kDeadFor = 300ms;
constexpr auto kSampleEvery = 10ms;

// The pause is long: the agent is killed early in the first analysis, which must still be
// running then, whatever the load on the machine.
const std::string kCanary = canarySteps("6s");
constexpr char kMetrics[] = "{error_rate_increase: 0.5, latency_p95_ratio: 3.0, min_requests: 20}";

std::string joined(const std::set<int>& numbers) {
  std::string out;
  for (int n : numbers) out += (out.empty() ? "" : " ") + std::to_string(n);
  return "{" + out + "}";
}

// A demo-service process seen running.
struct Seen {
  std::string version;
  int port = 0;
  SystemTime first;
  SystemTime last;
};

// Samples the live demo-service processes of this test every kSampleEvery (those whose output
// goes to a log under `dir`, on a port of the test's range), remembering every pid it ever saw,
// with when it was first and last seen.
class ReplicaMonitor {
 public:
  ReplicaMonitor(std::string dir, int port_min, int port_max)
      : dir_(std::move(dir) + "/"), port_min_(port_min), port_max_(port_max) {}
  ~ReplicaMonitor() { stop(); }

  void start() {
    sample();
    thread_ = std::thread([this] {
      while (!stop_) {
        std::this_thread::sleep_for(kSampleEvery);
        sample();
      }
    });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::map<int, Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  void sample() {
    const SystemTime now = std::chrono::system_clock::now();
    for (pid_t pid : allPids()) {
      const std::vector<std::string> argv = commandLineOf(pid);
      if (argv.empty() || argv[0] != kDemoServiceBinary) continue;
      std::error_code link_error;
      const std::string out =
          fs::read_symlink("/proc/" + std::to_string(pid) + "/fd/1", link_error).string();
      if (out.compare(0, dir_.size(), dir_) != 0) continue;  // another test's replica
      if (!startTicksOf(pid)) continue;                      // a zombie: stopped already
      Seen s;
      for (size_t i = 0; i + 1 < argv.size(); ++i) {
        if (argv[i] == "--port") s.port = std::atoi(argv[i + 1].c_str());
        if (argv[i] == "--version") s.version = argv[i + 1];
      }
      if (s.port < port_min_ || s.port > port_max_) continue;
      std::lock_guard lock(mu_);
      auto [it, fresh] = seen_.try_emplace(pid, s);
      if (fresh) it->second.first = now;
      it->second.last = now;
    }
  }

  const std::string dir_;
  const int port_min_;
  const int port_max_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::map<int, Seen> seen_;
};

class AgentRestartCanaryTest : public ServiceFleetTest {
 protected:
  void TearDown() override {
    if (monitor_) monitor_->stop();
    ServiceFleetTest::TearDown();
  }

  std::string stageRecordPath(const std::string& id, const std::string& stage_file) const {
    return agentStateDir(kKilled) + "/stages/" + id + "/" + stage_file;
  }

  std::unique_ptr<ReplicaMonitor> monitor_;
};

TEST_F(AgentRestartCanaryTest, KilledDuringAnalysisReadoptsReplicasAndRollsBack) {
  // A coordinator, then per cluster a HAProxy and an agent; 1.0.0 everywhere; traffic.
  ASSERT_NO_FATAL_FAILURE(startClusters(kTwoWaves));
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  const auto& old_replicas = baseline_replicas_;
  const auto& old_record = baseline_record_;
  ASSERT_NO_FATAL_FAILURE(startTraffic());

  // 2.0.0 (a good version) as a canary; the agent is killed once its first analysis runs.
  const std::string id = submitPlan(
      "canary.yaml",
      processPlan({.version = "2.0.0", .strategy = kCanary, .metrics = kMetrics}).yaml());
  ASSERT_FALSE(id.empty());
  const std::string analysis_record =
      stageRecordPath(id, std::string(kKilled) + "~analyze-2.1.json");
  ASSERT_TRUE(waitUntil("the agent to start the analysis at 10%",
                        [&] { return fileExists(analysis_record) || stateOf(id) != "running"; }));
  ASSERT_EQ(stateOf(id), "running") << deployment(id).dump(2);
  json before_kill = serviceRecord(kKilled);
  ASSERT_TRUE(before_kill.is_object()) << serviceRecordText(kKilled);
  ASSERT_EQ(before_kill["candidate"].value("version", ""), "2.0.0") << before_kill.dump(2);
  ASSERT_EQ(before_kill["candidate"].value("share", -1), 10) << before_kill.dump(2);
  const auto candidates = replicasOf(before_kill["candidate"]);
  ASSERT_EQ(candidates.size(), static_cast<size_t>(kReplicas)) << before_kill.dump(2);
  ASSERT_EQ(pidsOf(replicasOf(before_kill["stable"])), pidsOf(old_replicas.at(kKilled)))
      << before_kill.dump(2);
  for (const auto& r : candidates) ASSERT_TRUE(replicaAlive(r)) << "2.0.0 pid " << r.pid;
  {
    json c = clusterOf(id, kKilled);
    ASSERT_TRUE(c.is_object()) << deployment(id).dump(2);
    ASSERT_EQ(c.value("state", ""), "analyzing") << c.dump();
  }
  const std::string started_record = readFile(analysis_record);
  EXPECT_TRUE(contains(started_record, "\"started\"")) << started_record;

  monitor_ = std::make_unique<ReplicaMonitor>(dir(), ports_, ports_ + kPortBlock - 1);
  monitor_->start();
  ASSERT_NO_FATAL_FAILURE(killAgent(kKilled));
  std::this_thread::sleep_for(kDeadFor);
  ASSERT_NO_FATAL_FAILURE(restartAgent(kKilled));
  const SystemTime restarted_at = std::chrono::system_clock::now();

  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  monitor_->stop();
  std::map<std::string, std::vector<Answer>> answers = stopTraffic();

  // The interrupted analysis is reported "unknown" and the fleet rolls back.
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_TRUE(contains(wait.out, id + " rolled_back")) << wait.out;
  ASSERT_EQ(stateOf(id), "rolled_back") << deployment(id).dump(2);
  json detail = deployment(id);
  ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
  EXPECT_EQ(detail["failure"]["cluster"], kKilled);
  EXPECT_EQ(detail["failure"]["step"], "analyze");
  EXPECT_TRUE(contains(detail["failure"].value("message", ""), "unknown")) << detail.dump(2);
  ASSERT_EQ(detail["waves"].size(), 2u);
  EXPECT_EQ(detail["waves"][0]["state"], "rolled_back");
  EXPECT_EQ(detail["waves"][1]["state"], "skipped");
  EXPECT_TRUE(detail["rollback_failed_clusters"].empty()) << detail.dump(2);

  // No step ran twice: the coordinator started deploy, the 10% shift and its analysis once
  // each, on attempt 1, then one rollback; the agent holds one record per stage and attempt.
  const json ev = events(id);
  EXPECT_EQ(ev.back()["type"], "deployment.rolled_back") << ev.dump(1);
  std::vector<std::string> started;
  for (const auto& e : eventsOf(ev, "stage.started", kKilled)) {
    started.push_back(e.value("step", "") + " (" + e.value("message", "") + ")");
  }
  EXPECT_EQ(started, (std::vector<std::string>{"deploy (attempt 1)", "shift (attempt 1)",
                                               "analyze (attempt 1)"}))
      << ev.dump(1);
  const auto rollbacks = eventsOf(ev, "rollback.started", kKilled);
  ASSERT_EQ(rollbacks.size(), 1u) << ev.dump(1);
  ASSERT_EQ(eventsOf(ev, "rollback.succeeded", kKilled).size(), 1u) << ev.dump(1);
  for (const auto& e : ev) {
    EXPECT_NE(e.value("cluster", ""), kLater) << "event for an unreached cluster: " << e.dump();
  }
  std::set<std::string> stage_files;
  std::error_code error;
  for (const auto& f : fs::directory_iterator(agentStateDir(kKilled) + "/stages/" + id, error)) {
    if (f.path().extension() == ".json") stage_files.insert(f.path().filename().string());
  }
  const std::string k = kKilled;
  EXPECT_EQ(stage_files, (std::set<std::string>{k + "~deploy.1.json", k + "~shift-1.1.json",
                                                k + "~analyze-2.1.json", k + "~rollback.1.json"}));
  json analysis = json::parse(readFile(analysis_record), nullptr, false);
  ASSERT_TRUE(analysis.is_object()) << readFile(analysis_record);
  EXPECT_EQ(analysis.value("state", ""), "finished") << analysis.dump(2);
  EXPECT_EQ(analysis.value("outcome", ""), "unknown") << analysis.dump(2);

  // Re-adopted: the restarted agent said so, and from the kill to the end no demo-service
  // process was started at all; the 2.0.0 replicas ran on until the rollback took them out.
  const std::string agent_log = readFile(agentLog(k));
  EXPECT_TRUE(contains(agent_log, "re-adopted 2 of 1.0.0 (stable), 2 of 2.0.0 (candidate)"))
      << tailOf(agentLog(k), 40);
  const auto seen = monitor_->seen();
  std::set<int> expected_pids = pidsOf(candidates);
  for (const auto& [cluster, replicas] : old_replicas) {
    for (int pid : pidsOf(replicas)) expected_pids.insert(pid);
  }
  std::set<int> seen_pids;
  for (const auto& [pid, s] : seen) seen_pids.insert(pid);
  EXPECT_EQ(seen_pids, expected_pids) << "demo-service processes from the kill on";
  const SystemTime rollback_at = timeOf(rollbacks[0]);
  for (const auto& r : candidates) {
    auto it = seen.find(r.pid);
    ASSERT_NE(it, seen.end()) << "2.0.0 pid " << r.pid << " was gone at the kill";
    EXPECT_GT(it->second.last, restarted_at) << "2.0.0 pid " << r.pid << " died with the agent";
    // Sampled every 10 ms; the margin allows for a loaded machine delaying the sampler.
    EXPECT_GT(it->second.last + 2s, rollback_at)
        << "2.0.0 pid " << r.pid << " stopped before the rollback was ordered";
    EXPECT_FALSE(replicaAlive(r)) << "2.0.0 pid " << r.pid << " still runs after the rollback";
  }

  // Traffic: not one failed request on either cluster, before, during or after the restart;
  // the canary did answer; after the rollback only 1.0.0 did; the later wave never changed.
  for (const auto& [cluster, all] : answers) {
    Tally t = tally(all);
    EXPECT_EQ(t.failed, 0u) << cluster << ": " << t.describe();
    EXPECT_GE(t.total, kMinAnswersInPhase) << cluster << ": " << t.describe();
  }
  Tally killed = tally(answers[kKilled]);
  EXPECT_GT(killed.of("2.0.0"), 0u) << killed.describe();
  Tally while_dead = tallyBetween(answers[kKilled], restarted_at - kDeadFor, rollback_at);
  EXPECT_GT(while_dead.total, 0u) << "no traffic between the kill and the rollback";
  EXPECT_EQ(while_dead.failed, 0u) << while_dead.describe();
  const auto back_at = timeOf(eventsOf(ev, "rollback.succeeded", kKilled)[0]);
  Tally after = tallyBetween(answers[kKilled], back_at, SystemTime::max());
  EXPECT_EQ(after.of("1.0.0"), after.total) << "after the rollback: " << after.describe();
  Tally later = tally(answers[kLater]);
  EXPECT_EQ(later.of("1.0.0"), later.total) << later.describe();
  std::cerr << "[restart] " << k << " traffic: " << killed.describe() << "\n";

  // The end state: both clusters serve 1.0.0 only, from the original processes.
  for (const auto& [cluster, labels] : kTwoWaves.clusters) {
    SCOPED_TRACE(cluster);
    expectOnlyVersion(cluster, "1.0.0");
    json rec = serviceRecord(cluster);
    ASSERT_TRUE(rec.is_object()) << serviceRecordText(cluster);
    EXPECT_EQ(rec["stable"].value("version", ""), "1.0.0") << rec.dump(2);
    EXPECT_TRUE(rec["candidate"].is_null()) << rec.dump(2);
    const auto stable = replicasOf(rec["stable"]);
    EXPECT_EQ(pidsOf(stable), pidsOf(old_replicas.at(cluster))) << rec.dump(2);
    for (const auto& r : old_replicas.at(cluster)) {
      EXPECT_TRUE(replicaAlive(r)) << "1.0.0 pid " << r.pid << " on " << r.port;
    }
    expectServing(cluster, portsOf(old_replicas.at(cluster)));
  }
  EXPECT_EQ(serviceRecordText(kLater), old_record.at(kLater))
      << "the untouched cluster's record changed";
  std::set<int> running;
  for (const auto& [pid, s] : seen) {
    if (startTicksOf(pid)) running.insert(pid);
  }
  std::set<int> old_pids = pidsOf(old_replicas.at(kKilled));
  for (int pid : pidsOf(old_replicas.at(kLater))) old_pids.insert(pid);
  EXPECT_EQ(running, old_pids) << "running: " << joined(running);
}

}  // namespace
}  // namespace flotilla::integration
