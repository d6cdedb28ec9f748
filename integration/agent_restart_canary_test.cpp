// An agent SIGKILLed in the middle of a canary analysis (process driver, real HAProxy, real
// traffic) and started again on the same state dir within a second: it re-adopts the replicas it
// had (the very processes, none started twice), reports the interrupted step as "unknown" rather
// than running it again, and the fleet rolls back onto the untouched old replicas while clients
// never see a failed request.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "integration/haproxy_fixture.hpp"
#include "integration/harness.hpp"

#ifndef FLOTILLA_DEMO_SERVICE_BIN
#error "FLOTILLA_DEMO_SERVICE_BIN must be defined by CMake"
#endif

namespace flotilla::integration {
namespace {

namespace fs = std::filesystem;

constexpr char kService[] = "checkout";
constexpr int kReplicas = 2;
constexpr int kPortBlock = 16;
// ~250 requests/s per cluster: a 10% canary answers a few dozen requests while it runs.
constexpr int kTrafficWorkers = 2;
constexpr auto kTrafficPace = 8ms;
constexpr size_t kMinAnswers = 40;
constexpr int kFinalRequests = 50;
// The killed cluster, the other one (a later wave), and how long the agent stays dead.
constexpr char kKilled[] = "staging-eu";
constexpr char kLater[] = "prod-eu-1";
constexpr auto kDeadFor = 300ms;
constexpr auto kSampleEvery = 10ms;

const std::map<std::string, std::map<std::string, std::string>> kLabels = {
    {kKilled, {{"environment", "staging"}}},
    {kLater, {{"environment", "production"}}},
};

// The pause is long: the agent is killed early in the first analysis, which must still be
// running then, whatever the load on the machine.
constexpr char kPlan[] = R"yaml(service: checkout
version: "@VERSION@"
driver: process
process:
  command: "exec @DEMO@ --port {port} --version {version}"
  replicas: 2
  ports: "@PORTS@"
traffic:
  haproxy: {socket: "@DIR@/{cluster}.sock", backend: checkout}
@STRATEGY@health:
  http: {path: /health, interval: 200ms, timeout: 500ms, failure_threshold: 3}
  metrics: {error_rate_increase: 0.5, latency_p95_ratio: 3.0, min_requests: 20}
waves:
  - name: staging
    selector: {environment: staging}
  - name: production
    selector: {environment: production}
)yaml";

constexpr char kCanary[] = "strategy: {type: canary, steps: [10, 50, 100], pause: 6s}\n";

struct Replica {
  int pid = 0;
  uint64_t start_ticks = 0;
  int port = 0;
};

std::vector<Replica> replicasIn(const json& set) {
  std::vector<Replica> out;
  if (!set.is_object() || !set.contains("replicas")) return out;
  for (const auto& r : set["replicas"]) {
    out.push_back({r.value("pid", 0), r.value("start_ticks", uint64_t{0}), r.value("port", 0)});
  }
  return out;
}

// Field 22 of /proc/PID/stat (start time in clock ticks); nullopt when the process is gone or a
// zombie.
std::optional<uint64_t> startTicksOf(int pid) {
  const std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return std::nullopt;
  std::istringstream rest(stat.substr(paren + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return std::nullopt;
  return std::stoull(fields[19]);
}

bool alive(const Replica& r) { return startTicksOf(r.pid) == r.start_ticks; }

std::set<int> pidsOf(const std::vector<Replica>& replicas) {
  std::set<int> out;
  for (const auto& r : replicas) out.insert(r.pid);
  return out;
}

std::set<int> portsOf(const std::vector<Replica>& replicas) {
  std::set<int> out;
  for (const auto& r : replicas) out.insert(r.port);
  return out;
}

std::string joined(const std::set<int>& numbers) {
  std::string out;
  for (int n : numbers) out += (out.empty() ? "" : " ") + std::to_string(n);
  return "{" + out + "}";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

SystemTime eventTime(const json& event) {
  auto t = parseRfc3339(event.value("time", ""));
  EXPECT_TRUE(t.has_value()) << event.dump();
  return t.value_or(SystemTime{});
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
    std::error_code error;
    for (const auto& entry : fs::directory_iterator("/proc", error)) {
      const std::string name = entry.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::istringstream cmdline(readFile(entry.path().string() + "/cmdline"));
      std::vector<std::string> argv;
      for (std::string arg; std::getline(cmdline, arg, '\0');) argv.push_back(arg);
      if (argv.empty() || argv[0] != FLOTILLA_DEMO_SERVICE_BIN) continue;
      std::error_code link_error;
      const std::string out = fs::read_symlink(entry.path() / "fd" / "1", link_error).string();
      if (out.compare(0, dir_.size(), dir_) != 0) continue;  // another test's replica
      const int pid = std::stoi(name);
      if (!startTicksOf(pid)) continue;  // a zombie: stopped already
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

class AgentRestartCanaryTest : public FleetTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(FleetTest::SetUp());
    ports_ = freePortBlock(kPortBlock);
    ASSERT_NE(ports_, 0) << "no block of " << kPortBlock << " free ports";
  }

  void TearDown() override {
    if (monitor_) monitor_->stop();
    for (auto& [name, traffic] : traffic_) traffic->stop();
    for (auto& [name, haproxy] : haproxies_) {
      if (haproxy) haproxy->stop();
    }
    FleetTest::TearDown();
  }

  std::string plan(const std::string& version, const std::string& strategy) const {
    std::string text = replaceAll(kPlan, "@VERSION@", version);
    text = replaceAll(text, "@DEMO@", FLOTILLA_DEMO_SERVICE_BIN);
    text = replaceAll(text, "@PORTS@",
                      std::to_string(ports_) + "-" + std::to_string(ports_ + kPortBlock - 1));
    return replaceAll(text, "@STRATEGY@", strategy);
  }

  std::string stateDir(const std::string& cluster) const {
    return dir() + "/agent-state/" + cluster;
  }
  std::string recordText(const std::string& cluster) const {
    return readFile(stateDir(cluster) + "/services/" + kService + ".json");
  }
  json record(const std::string& cluster) const {
    json r = json::parse(recordText(cluster), nullptr, false);
    return r.is_discarded() ? json(nullptr) : r;
  }
  std::string stageRecordPath(const std::string& id, const std::string& stage_file) const {
    return stateDir(kKilled) + "/stages/" + id + "/" + stage_file;
  }

  json clusterOf(const std::string& id, const std::string& cluster) {
    json d = deployment(id);
    if (!d.is_object() || !d.contains("waves")) return nullptr;
    for (const auto& w : d["waves"]) {
      for (const auto& c : w["clusters"]) {
        if (c.value("name", "") == cluster) return c;
      }
    }
    return nullptr;
  }

  // Ports of the servers the cluster's HAProxy sends requests to, and a printable table.
  std::set<int> servingPorts(const std::string& cluster, std::string* table) {
    std::set<int> out;
    auto servers = haproxies_[cluster]->servers();
    EXPECT_TRUE(servers.has_value()) << cluster << ": no answer from the stats socket";
    if (!servers) return out;
    for (const auto& s : *servers) {
      if (s.serving()) out.insert(s.port);
      *table += "  " + s.name + " " + s.address + ":" + std::to_string(s.port) + " admin " +
                std::to_string(s.admin_state) + " weight " + std::to_string(s.weight) + "\n";
    }
    return out;
  }

  std::map<std::string, std::unique_ptr<Haproxy>> haproxies_;
  std::map<std::string, std::unique_ptr<TrafficGenerator>> traffic_;
  std::unique_ptr<ReplicaMonitor> monitor_;
  int ports_ = 0;
};

TEST_F(AgentRestartCanaryTest, KilledDuringAnalysisReadoptsReplicasAndRollsBack) {
  // A coordinator, then per cluster a HAProxy and an agent; 1.0.0 everywhere; traffic.
  ASSERT_NO_FATAL_FAILURE(startCoordinator());
  for (const auto& [cluster, labels] : kLabels) {
    haproxies_[cluster] = Haproxy::start(dir(), cluster, kService);
    ASSERT_NE(haproxies_[cluster], nullptr);
    ASSERT_NO_FATAL_FAILURE(startAgent(cluster, labels));
  }
  ASSERT_NO_FATAL_FAILURE(waitForAgents({kKilled, kLater}));
  const std::string baseline = submit(writePlan("baseline.yaml", plan("1.0.0", "")));
  ASSERT_FALSE(baseline.empty());
  CommandResult done = cli({"wait", baseline, "--timeout", "60s"});
  ASSERT_EQ(done.exit_code, 0) << done.out << done.err << deployment(baseline).dump(2);
  std::map<std::string, std::vector<Replica>> old_replicas;
  std::map<std::string, std::string> old_record;
  for (const auto& [cluster, labels] : kLabels) {
    old_record[cluster] = recordText(cluster);
    old_replicas[cluster] = replicasIn(record(cluster)["stable"]);
    ASSERT_EQ(old_replicas[cluster].size(), static_cast<size_t>(kReplicas)) << old_record[cluster];
    traffic_[cluster] = std::make_unique<TrafficGenerator>(haproxies_[cluster]->url(),
                                                           kTrafficWorkers, kTrafficPace);
    traffic_[cluster]->start();
  }
  ASSERT_TRUE(waitUntil("traffic on both clusters", [&] {
    return traffic_[kKilled]->count() >= kMinAnswers && traffic_[kLater]->count() >= kMinAnswers;
  }));

  // 2.0.0 (a good version) as a canary; the agent is killed once its first analysis runs.
  const std::string id = submit(writePlan("canary.yaml", plan("2.0.0", kCanary)));
  ASSERT_FALSE(id.empty());
  const std::string analysis_record =
      stageRecordPath(id, std::string(kKilled) + "~analyze-2.1.json");
  ASSERT_TRUE(waitUntil("the agent to start the analysis at 10%",
                        [&] { return fileExists(analysis_record) || stateOf(id) != "running"; }));
  ASSERT_EQ(stateOf(id), "running") << deployment(id).dump(2);
  json before_kill = record(kKilled);
  ASSERT_TRUE(before_kill.is_object()) << recordText(kKilled);
  ASSERT_EQ(before_kill["candidate"].value("version", ""), "2.0.0") << before_kill.dump(2);
  ASSERT_EQ(before_kill["candidate"].value("share", -1), 10) << before_kill.dump(2);
  const auto candidates = replicasIn(before_kill["candidate"]);
  ASSERT_EQ(candidates.size(), static_cast<size_t>(kReplicas)) << before_kill.dump(2);
  ASSERT_EQ(pidsOf(replicasIn(before_kill["stable"])), pidsOf(old_replicas[kKilled]))
      << before_kill.dump(2);
  for (const auto& r : candidates) ASSERT_TRUE(alive(r)) << "2.0.0 pid " << r.pid;
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
  ASSERT_NO_FATAL_FAILURE(startAgent(kKilled, kLabels.at(kKilled)));
  const SystemTime restarted_at = std::chrono::system_clock::now();

  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  monitor_->stop();
  std::map<std::string, std::vector<Answer>> answers;
  for (auto& [cluster, traffic] : traffic_) {
    traffic->stop();
    answers[cluster] = traffic->answers();
  }

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
  for (const auto& f : fs::directory_iterator(stateDir(kKilled) + "/stages/" + id, error)) {
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
  const std::string agent_log = readFile(dir() + "/agent-" + k + ".log");
  EXPECT_TRUE(contains(agent_log, "re-adopted 2 of 1.0.0 (stable), 2 of 2.0.0 (candidate)"))
      << tailOf(dir() + "/agent-" + k + ".log", 40);
  const auto seen = monitor_->seen();
  std::set<int> expected_pids = pidsOf(candidates);
  for (const auto& [cluster, replicas] : old_replicas) {
    for (int pid : pidsOf(replicas)) expected_pids.insert(pid);
  }
  std::set<int> seen_pids;
  for (const auto& [pid, s] : seen) seen_pids.insert(pid);
  EXPECT_EQ(seen_pids, expected_pids) << "demo-service processes from the kill on";
  const SystemTime rollback_at = eventTime(rollbacks[0]);
  for (const auto& r : candidates) {
    auto it = seen.find(r.pid);
    ASSERT_NE(it, seen.end()) << "2.0.0 pid " << r.pid << " was gone at the kill";
    EXPECT_GT(it->second.last, restarted_at) << "2.0.0 pid " << r.pid << " died with the agent";
    // Sampled every 10 ms; the margin allows for a loaded machine delaying the sampler.
    EXPECT_GT(it->second.last + 2s, rollback_at)
        << "2.0.0 pid " << r.pid << " stopped before the rollback was ordered";
    EXPECT_FALSE(alive(r)) << "2.0.0 pid " << r.pid << " still runs after the rollback";
  }

  // Traffic: not one failed request on either cluster, before, during or after the restart;
  // the canary did answer; after the rollback only 1.0.0 did; the later wave never changed.
  for (const auto& [cluster, all] : answers) {
    Tally t = tally(all);
    EXPECT_EQ(t.failed, 0u) << cluster << ": " << t.describe();
    EXPECT_GE(t.total, kMinAnswers) << cluster << ": " << t.describe();
  }
  Tally killed = tally(answers[kKilled]);
  EXPECT_GT(killed.of("2.0.0"), 0u) << killed.describe();
  Tally while_dead = tallyBetween(answers[kKilled], restarted_at - kDeadFor, rollback_at);
  EXPECT_GT(while_dead.total, 0u) << "no traffic between the kill and the rollback";
  EXPECT_EQ(while_dead.failed, 0u) << while_dead.describe();
  const auto back_at = eventTime(eventsOf(ev, "rollback.succeeded", kKilled)[0]);
  Tally after = tallyBetween(answers[kKilled], back_at, SystemTime::max());
  EXPECT_EQ(after.of("1.0.0"), after.total) << "after the rollback: " << after.describe();
  Tally later = tally(answers[kLater]);
  EXPECT_EQ(later.of("1.0.0"), later.total) << later.describe();
  std::cerr << "[restart] " << k << " traffic: " << killed.describe() << "\n";

  // The end state: both clusters serve 1.0.0 only, from the original processes.
  for (const auto& [cluster, labels] : kLabels) {
    SCOPED_TRACE(cluster);
    Tally final_answers = tally(sendRequests(haproxies_[cluster]->url(), kFinalRequests));
    EXPECT_EQ(final_answers.failed, 0u) << final_answers.describe();
    EXPECT_EQ(final_answers.of("1.0.0"), static_cast<size_t>(kFinalRequests))
        << final_answers.describe();
    json rec = record(cluster);
    ASSERT_TRUE(rec.is_object()) << recordText(cluster);
    EXPECT_EQ(rec["stable"].value("version", ""), "1.0.0") << rec.dump(2);
    EXPECT_TRUE(rec["candidate"].is_null()) << rec.dump(2);
    const auto stable = replicasIn(rec["stable"]);
    EXPECT_EQ(pidsOf(stable), pidsOf(old_replicas[cluster])) << rec.dump(2);
    for (const auto& r : old_replicas[cluster]) {
      EXPECT_TRUE(alive(r)) << "1.0.0 pid " << r.pid << " on " << r.port;
    }
    std::string table;
    EXPECT_EQ(servingPorts(cluster, &table), portsOf(old_replicas[cluster])) << table;
  }
  EXPECT_EQ(recordText(kLater), old_record[kLater]) << "the untouched cluster's record changed";
  std::set<int> running;
  for (const auto& [pid, s] : seen) {
    if (startTicksOf(pid)) running.insert(pid);
  }
  std::set<int> old_pids = pidsOf(old_replicas[kKilled]);
  for (int pid : pidsOf(old_replicas[kLater])) old_pids.insert(pid);
  EXPECT_EQ(running, old_pids) << "running: " << joined(running);
}

}  // namespace
}  // namespace flotilla::integration
