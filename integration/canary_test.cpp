// Progressive delivery end to end: the process driver runs flotilla-demo-service replicas, a
// real HAProxy per cluster splits real traffic between them, and the canary, blue-green, health
// and metric rules decide, as the test watches every answer its clients get.
#include <httplib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "integration/haproxy_fixture.hpp"
#include "integration/harness.hpp"
#include "integration/prometheus_fixture.hpp"

#ifndef FLOTILLA_DEMO_SERVICE_BIN
#error "FLOTILLA_DEMO_SERVICE_BIN must be defined by CMake"
#endif

namespace flotilla::integration {
namespace {

namespace fs = std::filesystem;

constexpr char kService[] = "checkout";
constexpr int kReplicas = 2;
// Replica ports of one test: every cluster's stable and candidate sets fit, with room to spare
// for a port the agent finds taken.
constexpr int kPortBlock = 16;
// Per cluster: two clients, each at most one request every 8 ms (~250 requests/s in all), so a
// 10% canary gets ~50 requests in a 2 s analysis window (the plans ask for 20).
constexpr int kTrafficWorkers = 2;
constexpr auto kTrafficPace = 8ms;
constexpr int kFinalRequests = 50;
// A step's phase is judged only with this many answers in it.
constexpr size_t kMinAnswersInPhase = 40;

struct Cluster {
  std::string name;
  std::map<std::string, std::string> labels;
};

const std::vector<Cluster> kTwoClusters = {
    {"staging-eu", {{"environment", "staging"}}},
    {"prod-eu-1", {{"environment", "production"}}},
};
constexpr char kTwoWaves[] = R"yaml(waves:
  - name: staging
    selector: {environment: staging}@BAKE@
  - name: production
    selector: {environment: production}@BAKE@
)yaml";

const std::vector<Cluster> kThreeClusters = {
    {"staging-eu", {{"environment", "staging"}}},
    {"prod-eu-1", {{"environment", "production"}, {"region", "eu"}}},
    {"prod-us-1", {{"environment", "production"}, {"region", "us"}}},
};
constexpr char kThreeWaves[] = R"yaml(waves:
  - name: staging
    selector: {environment: staging}@BAKE@
  - name: prod-eu
    clusters: [prod-eu-1]@BAKE@
  - name: prod-us
    selector: {region: us}@BAKE@
)yaml";

// @EXTRA@ ends the replica command line; @STRATEGY@ and @METRICS@ are whole lines or nothing.
constexpr char kPlan[] = R"yaml(service: checkout
version: "@VERSION@"
driver: process
process:
  command: "exec @DEMO@ --port {port} --version {version}@EXTRA@"
  replicas: @REPLICAS@
  ports: "@PORTS@"
traffic:
  haproxy: {socket: "@DIR@/{cluster}.sock", backend: checkout}
@STRATEGY@health:
  http: {path: /health, interval: 200ms, timeout: 500ms, failure_threshold: 3}
@METRICS@@ALERTS@@WAVES@)yaml";

constexpr char kCanarySteps[] = "{type: canary, steps: [10, 50, 100], pause: 2s}";

struct PlanOptions {
  std::string version;
  std::string extra;     // appended to the command line, e.g. " --error-rate 0.2"
  std::string strategy;  // YAML flow mapping; empty: none (all at once)
  std::string metrics;   // YAML flow mapping for health.metrics; empty: none
  std::string bake;      // every wave's bake; empty: none
  std::string alerts;    // YAML flow mapping for alerts; empty: none

  PlanOptions& withExtra(std::string text) {
    extra = std::move(text);
    return *this;
  }
  PlanOptions& withStrategy(std::string text) {
    strategy = std::move(text);
    return *this;
  }
  PlanOptions& withMetrics(std::string text) {
    metrics = std::move(text);
    return *this;
  }
  PlanOptions& withBake(std::string text) {
    bake = std::move(text);
    return *this;
  }
  PlanOptions& withAlerts(std::string text) {
    alerts = std::move(text);
    return *this;
  }
};

PlanOptions release(std::string version) {
  PlanOptions options;
  options.version = std::move(version);
  return options;
}

// Only the new version misbehaves, also when a rollback restarts the old one with this plan.
std::string onlyFor(const std::string& version, const std::string& flags) {
  return " $(test {version} = " + version + " && echo " + flags + ")";
}

// A replica as the agent records it in <state-dir>/services/<service>.json.
struct RecordedReplica {
  int pid = 0;
  uint64_t start_ticks = 0;
  int port = 0;
};

std::vector<RecordedReplica> replicasOf(const json& set) {
  std::vector<RecordedReplica> out;
  if (!set.is_object() || !set.contains("replicas")) return out;
  for (const auto& r : set["replicas"]) {
    out.push_back({r.value("pid", 0), r.value("start_ticks", uint64_t{0}), r.value("port", 0)});
  }
  return out;
}

// The process still runs with the recorded start time (a reused pid is another process).
bool replicaAlive(const RecordedReplica& r) {
  const std::string stat = readFile("/proc/" + std::to_string(r.pid) + "/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  std::istringstream rest(stat.substr(close + 2));
  std::vector<std::string> fields;  // from field 3 (state) on
  for (std::string f; rest >> f;) fields.push_back(f);
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return false;
  return std::stoull(fields[19]) == r.start_ticks;  // field 22, starttime
}

std::set<int> portsOf(const std::vector<RecordedReplica>& replicas) {
  std::set<int> out;
  for (const auto& r : replicas) out.insert(r.port);
  return out;
}

// A demo-service process that runs now, from its command line.
struct DemoProcess {
  int pid = 0;
  int port = 0;
  std::string version;
};

std::string describe(const std::vector<DemoProcess>& processes) {
  std::string out;
  for (const auto& p : processes) {
    out += (out.empty() ? "" : ", ") + p.version + " on " + std::to_string(p.port) + " (pid " +
           std::to_string(p.pid) + ")";
  }
  return out.empty() ? "none" : out;
}

SystemTime timeOf(const json& event) {
  auto t = parseRfc3339(event.value("time", ""));
  EXPECT_TRUE(t.has_value()) << "event time not RFC 3339: " << event.dump();
  return t.value_or(SystemTime{});
}

std::vector<SystemTime> timesOf(const std::vector<json>& events) {
  std::vector<SystemTime> out;
  out.reserve(events.size());
  for (const auto& e : events) out.push_back(timeOf(e));
  return out;
}

// Events of `type` for `cluster` and `step`, in order.
std::vector<json> stepEvents(const json& events, const std::string& type,
                             const std::string& cluster, const std::string& step) {
  std::vector<json> out;
  for (const auto& e : eventsOf(events, type, cluster)) {
    if (e.value("step", "") == step) out.push_back(e);
  }
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool isFinalState(const std::string& state) {
  return state == "succeeded" || state == "rolled_back" || state == "failed" ||
         state == "cancelled";
}

class CanaryTest : public FleetTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(FleetTest::SetUp());
    ports_ = freePortBlock(kPortBlock);
    ASSERT_NE(ports_, 0) << "no block of " << kPortBlock << " free ports";
  }

  void TearDown() override {
    for (auto& [name, traffic] : traffic_) traffic->stop();
    // By PID, before the harness sweeps its remaining children (HAProxy is one of them).
    for (auto& [name, haproxy] : haproxies_) {
      if (haproxy) haproxy->stop();
    }
    FleetTest::TearDown();
  }

  // The coordinator, then per cluster its HAProxy and its agent; waits for the agents.
  void startClusters(const std::vector<Cluster>& clusters) {
    // The alert webhook test's receiver listens on loopback.
    CoordinatorOptions options;
    options.extra_args = {"--webhook-allow", "http://127.0.0.1:"};
    ASSERT_NO_FATAL_FAILURE(startCoordinator(options));
    std::vector<std::string> names;
    for (const auto& c : clusters) {
      auto haproxy = Haproxy::start(dir(), c.name, kService);
      ASSERT_NE(haproxy, nullptr);
      haproxies_[c.name] = std::move(haproxy);
      ASSERT_NO_FATAL_FAILURE(startAgent(c.name, c.labels));
      names.push_back(c.name);
    }
    clusters_ = clusters;
    ASSERT_NO_FATAL_FAILURE(waitForAgents(names));
  }

  std::string planText(const PlanOptions& o) const {
    std::string text = kPlan;
    text = replaceAll(text, "@VERSION@", o.version);
    text = replaceAll(text, "@DEMO@", FLOTILLA_DEMO_SERVICE_BIN);
    text = replaceAll(text, "@EXTRA@", o.extra);
    text = replaceAll(text, "@REPLICAS@", std::to_string(kReplicas));
    text = replaceAll(text, "@PORTS@",
                      std::to_string(ports_) + "-" + std::to_string(ports_ + kPortBlock - 1));
    text =
        replaceAll(text, "@STRATEGY@", o.strategy.empty() ? "" : "strategy: " + o.strategy + "\n");
    text = replaceAll(text, "@METRICS@", o.metrics.empty() ? "" : "  metrics: " + o.metrics + "\n");
    text = replaceAll(text, "@ALERTS@", o.alerts.empty() ? "" : "alerts: " + o.alerts + "\n");
    text = replaceAll(text, "@WAVES@", clusters_.size() == 3 ? kThreeWaves : kTwoWaves);
    text = replaceAll(text, "@BAKE@", o.bake.empty() ? "" : "\n    bake: " + o.bake);
    return text;
  }

  // Submits the plan; "" (and a failure) when refused.
  std::string submitPlan(const std::string& file, const PlanOptions& o) {
    return submit(writePlan(file, planText(o)));
  }

  // 1.0.0 everywhere, all at once, before any traffic; then checks that each cluster's HAProxy
  // answers 1.0.0 only.
  void deployBaseline() {
    const std::string id = submitPlan("baseline.yaml", release("1.0.0"));
    ASSERT_FALSE(id.empty());
    CommandResult wait = cli({"wait", id, "--timeout", "60s"});
    ASSERT_EQ(wait.exit_code, 0) << "the baseline did not succeed:\n"
                                 << wait.out << wait.err << deployment(id).dump(2);
    for (const auto& c : clusters_) {
      Tally answers = tally(sendRequests(haproxies_[c.name]->url(), 20));
      ASSERT_EQ(answers.of("1.0.0"), 20u) << c.name << ": " << answers.describe();
      ASSERT_EQ(answers.failed, 0u) << c.name << ": " << answers.describe();
      baseline_record_[c.name] = serviceRecordText(c.name);
      baseline_replicas_[c.name] = replicasOf(serviceRecord(c.name)["stable"]);
      ASSERT_EQ(baseline_replicas_[c.name].size(), static_cast<size_t>(kReplicas)) << c.name;
    }
  }

  // Clients on every cluster; returns once each has had a few answers, so that traffic runs
  // from before the rollout begins.
  void startTraffic() {
    for (const auto& c : clusters_) {
      auto traffic = std::make_unique<TrafficGenerator>(haproxies_[c.name]->url(), kTrafficWorkers,
                                                        kTrafficPace);
      traffic->start();
      traffic_[c.name] = std::move(traffic);
    }
    ASSERT_TRUE(waitUntil("traffic on every cluster", [&] {
      for (const auto& [name, traffic] : traffic_) {
        if (traffic->count() < kMinAnswersInPhase) return false;
      }
      return true;
    }));
  }

  // Stops every client; the answers by cluster.
  std::map<std::string, std::vector<Answer>> stopTraffic() {
    std::map<std::string, std::vector<Answer>> out;
    for (auto& [name, traffic] : traffic_) {
      traffic->stop();
      out[name] = traffic->answers();
    }
    return out;
  }

  std::string serviceRecordPath(const std::string& cluster) const {
    return dir() + "/agent-state/" + cluster + "/services/" + kService + ".json";
  }
  std::string serviceRecordText(const std::string& cluster) const {
    return readFile(serviceRecordPath(cluster));
  }
  json serviceRecord(const std::string& cluster) const {
    json record = json::parse(serviceRecordText(cluster), nullptr, false);
    return record.is_discarded() ? json(nullptr) : record;
  }

  // Live demo-service processes on this test's ports (any cluster).
  std::vector<DemoProcess> demoProcesses() const {
    std::vector<DemoProcess> out;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator("/proc", error)) {
      const std::string name = entry.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      const std::string stat = readFile(entry.path().string() + "/stat");
      const size_t close = stat.rfind(')');
      if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] == 'Z') {
        continue;
      }
      std::vector<std::string> argv;
      std::istringstream cmdline(readFile(entry.path().string() + "/cmdline"));
      for (std::string arg; std::getline(cmdline, arg, '\0');) argv.push_back(arg);
      if (argv.empty() || argv[0] != FLOTILLA_DEMO_SERVICE_BIN) continue;
      DemoProcess p;
      p.pid = std::stoi(name);
      for (size_t i = 0; i + 1 < argv.size(); ++i) {
        if (argv[i] == "--port") p.port = std::atoi(argv[i + 1].c_str());
        if (argv[i] == "--version") p.version = argv[i + 1];
      }
      if (p.port >= ports_ && p.port < ports_ + kPortBlock) out.push_back(p);
    }
    return out;
  }

  // The cluster's HAProxy serves exactly the replicas on `ports` (ready, weight above 0); every
  // other slot is out of the backend.
  void expectServing(const std::string& cluster, const std::set<int>& ports) {
    auto servers = haproxies_[cluster]->servers();
    ASSERT_TRUE(servers.has_value()) << cluster << ": no answer from the stats socket";
    std::set<int> serving;
    std::string table;
    for (const auto& s : *servers) {
      if (s.serving()) serving.insert(s.port);
      table += "  " + s.name + " " + s.address + ":" + std::to_string(s.port) + " admin " +
               std::to_string(s.admin_state) + " weight " + std::to_string(s.weight) + "\n";
    }
    EXPECT_EQ(serving, ports) << cluster << "'s backend:\n" << table;
  }

  // kFinalRequests requests through the cluster's HAProxy, all answered 200 by `version`.
  void expectOnlyVersion(const std::string& cluster, const std::string& version) {
    Tally answers = tally(sendRequests(haproxies_[cluster]->url(), kFinalRequests));
    EXPECT_EQ(answers.failed, 0u) << cluster << ": " << answers.describe();
    EXPECT_EQ(answers.of(version), static_cast<size_t>(kFinalRequests))
        << cluster << ": " << answers.describe();
  }

  // The cluster's state in deployment `id` ("" when not found).
  std::string clusterState(const std::string& id, const std::string& cluster) {
    json d = deployment(id);
    if (!d.is_object() || !d.contains("waves")) return "";
    for (const auto& w : d["waves"]) {
      for (const auto& c : w["clusters"]) {
        if (c.value("name", "") == cluster) return c.value("state", "");
      }
    }
    return "";
  }

  // After a rollback that touched `rolled`: each cluster answers 1.0.0 only and holds only
  // 1.0.0 replicas; those are the very baseline processes, except on `restarted` (clusters
  // that had finished with the new version, whose old set had to be started again); the
  // untouched clusters still have the record the baseline left; no 2.0.0 process is left.
  void expectBackOnBaseline(const std::set<std::string>& rolled,
                            const std::set<std::string>& restarted = {}) {
    for (const auto& c : clusters_) {
      SCOPED_TRACE(c.name);
      expectOnlyVersion(c.name, "1.0.0");
      json record = serviceRecord(c.name);
      ASSERT_TRUE(record.is_object()) << serviceRecordText(c.name);
      EXPECT_EQ(record["stable"].value("version", ""), "1.0.0") << record.dump(2);
      EXPECT_TRUE(record["candidate"].is_null()) << record.dump(2);
      const auto stable = replicasOf(record["stable"]);
      EXPECT_EQ(stable.size(), static_cast<size_t>(kReplicas)) << record.dump(2);
      for (const auto& r : stable) EXPECT_TRUE(replicaAlive(r)) << "pid " << r.pid;
      expectServing(c.name, portsOf(stable));
      const auto& baseline = baseline_replicas_[c.name];
      if (restarted.count(c.name)) {
        for (const auto& r : baseline) {
          EXPECT_FALSE(replicaAlive(r)) << "baseline replica pid " << r.pid << " still runs";
        }
      } else {
        EXPECT_EQ(portsOf(stable), portsOf(baseline)) << "the stable set was restarted";
        for (const auto& r : baseline) {
          EXPECT_TRUE(replicaAlive(r)) << "baseline replica pid " << r.pid << " on " << r.port;
        }
      }
      if (!rolled.count(c.name)) {
        EXPECT_EQ(serviceRecordText(c.name), baseline_record_[c.name])
            << "the record of an untouched cluster changed";
      }
    }
    const auto running = demoProcesses();
    EXPECT_EQ(running.size(), static_cast<size_t>(kReplicas) * clusters_.size())
        << describe(running);
    for (const auto& p : running) EXPECT_EQ(p.version, "1.0.0") << describe(running);
  }

  std::map<std::string, std::unique_ptr<Haproxy>> haproxies_;
  std::map<std::string, std::unique_ptr<TrafficGenerator>> traffic_;
  std::vector<Cluster> clusters_;
  std::map<std::string, std::string> baseline_record_;
  std::map<std::string, std::vector<RecordedReplica>> baseline_replicas_;
  int ports_ = 0;
};

// ---- A good version: 10% -> 50% -> 100% on two clusters, one wave after the other -----------

TEST_F(CanaryTest, GoodCanary) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kTwoClusters));
  ASSERT_NO_FATAL_FAILURE(deployBaseline());

  ASSERT_NO_FATAL_FAILURE(startTraffic());
  const std::string id =
      submitPlan("good.yaml", release("2.0.0")
                                  .withStrategy(kCanarySteps)
                                  .withMetrics("{error_rate_increase: 0.5, latency_p95_ratio: 3.0, "
                                               "min_requests: 20}"));
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  auto answers = stopTraffic();
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err << deployment(id).dump(2);
  EXPECT_TRUE(contains(wait.out, id + " succeeded")) << wait.out;

  const json ev = events(id);
  for (const char* bad :
       {"stage.failed", "cluster.failed", "deployment.rolling_back", "rollback.started"}) {
    EXPECT_EQ(findEvent(ev, bad), -1) << "unexpected " << bad << " in " << ev.dump(1);
  }
  // The production wave started only once staging was done.
  EXPECT_GT(findEvent(ev, "wave.started", "production"),
            findEvent(ev, "wave.succeeded", "staging"));

  for (const auto& c : kTwoClusters) {
    SCOPED_TRACE(c.name);
    const std::vector<Answer>& all = answers[c.name];
    Tally whole = tally(all);
    // Not one request failed while the version changed under it.
    EXPECT_EQ(whole.failed, 0u) << whole.describe();
    EXPECT_GT(whole.of("2.0.0"), 0u) << whole.describe();

    // Each analysis passed (the new version's metrics against the old one's).
    const auto analyses = stepEvents(ev, "stage.succeeded", c.name, "analyze");
    ASSERT_EQ(analyses.size(), 2u) << ev.dump(1);
    for (const auto& a : analyses) {
      EXPECT_TRUE(contains(a.value("message", ""), "analysis passed")) << a.dump();
    }

    // The phases, from the coordinator's events: the answers sent after a shift had succeeded
    // and before the next shift started saw that shift's weights.
    const auto deploy = timesOf(stepEvents(ev, "stage.started", c.name, "deploy"));
    const auto shift_started = timesOf(stepEvents(ev, "stage.started", c.name, "shift"));
    const auto shift_done = timesOf(stepEvents(ev, "stage.succeeded", c.name, "shift"));
    ASSERT_EQ(deploy.size(), 1u);
    ASSERT_EQ(shift_started.size(), 3u);
    ASSERT_EQ(shift_done.size(), 3u);

    Tally before = tallyBetween(all, SystemTime::min(), deploy[0]);
    EXPECT_EQ(before.of("1.0.0"), before.total) << "before the deploy: " << before.describe();
    Tally at10 = tallyBetween(all, shift_done[0], shift_started[1]);
    Tally at50 = tallyBetween(all, shift_done[1], shift_started[2]);
    Tally at100 = tallyBetween(all, shift_done[2], SystemTime::max());
    ASSERT_GE(at10.total, kMinAnswersInPhase) << "at 10%: " << at10.describe();
    ASSERT_GE(at50.total, kMinAnswersInPhase) << "at 50%: " << at50.describe();
    ASSERT_GE(at100.total, kMinAnswersInPhase) << "at 100%: " << at100.describe();
    // Both versions answered at 10% and at 50%, the new one more at 50% ...
    EXPECT_GT(at10.of("2.0.0"), 0u) << "at 10%: " << at10.describe();
    EXPECT_GT(at10.of("1.0.0"), 0u) << "at 10%: " << at10.describe();
    EXPECT_GT(at50.of("1.0.0"), 0u) << "at 50%: " << at50.describe();
    EXPECT_GT(at50.share("2.0.0"), at10.share("2.0.0"))
        << "at 10%: " << at10.describe() << "; at 50%: " << at50.describe();
    // ... near the weights asked for (HAProxy's roundrobin follows weights closely) ...
    EXPECT_GE(at10.share("2.0.0"), 0.04) << at10.describe();
    EXPECT_LE(at10.share("2.0.0"), 0.20) << at10.describe();
    EXPECT_GE(at50.share("2.0.0"), 0.35) << at50.describe();
    EXPECT_LE(at50.share("2.0.0"), 0.65) << at50.describe();
    // ... and only the new one from the shift to 100% on.
    EXPECT_EQ(at100.of("2.0.0"), at100.total) << "at 100%: " << at100.describe();
    std::cerr << "[canary] " << c.name << ": at 10%: " << at10.describe()
              << "; at 50%: " << at50.describe() << "; at 100%: " << at100.describe() << "\n";

    // The end: every answer is 2.0.0, the agent holds 2.0.0 only, 1.0.0 is stopped.
    expectOnlyVersion(c.name, "2.0.0");
    json record = serviceRecord(c.name);
    ASSERT_TRUE(record.is_object()) << serviceRecordText(c.name);
    EXPECT_EQ(record["stable"].value("version", ""), "2.0.0") << record.dump(2);
    EXPECT_TRUE(record["candidate"].is_null()) << record.dump(2);
    const auto stable = replicasOf(record["stable"]);
    EXPECT_EQ(stable.size(), static_cast<size_t>(kReplicas)) << record.dump(2);
    for (const auto& r : stable) EXPECT_TRUE(replicaAlive(r)) << "pid " << r.pid;
    for (const auto& r : baseline_replicas_[c.name]) {
      EXPECT_FALSE(replicaAlive(r)) << "1.0.0 replica pid " << r.pid << " still runs";
    }
    expectServing(c.name, portsOf(stable));
  }
  const auto running = demoProcesses();
  EXPECT_EQ(running.size(), static_cast<size_t>(kReplicas * kTwoClusters.size()))
      << describe(running);
  for (const auto& p : running) EXPECT_EQ(p.version, "2.0.0") << describe(running);

  // The production cluster served the old version only until its own wave began.
  const auto prod_deploy = timesOf(stepEvents(ev, "stage.started", "prod-eu-1", "deploy"));
  const auto staging_done = timesOf(eventsOf(ev, "cluster.succeeded", "staging-eu"));
  ASSERT_EQ(prod_deploy.size(), 1u);
  ASSERT_EQ(staging_done.size(), 1u);
  EXPECT_LE(staging_done[0], prod_deploy[0]);
  Tally prod_before = tallyBetween(answers["prod-eu-1"], SystemTime::min(), prod_deploy[0]);
  EXPECT_EQ(prod_before.of("1.0.0"), prod_before.total) << prod_before.describe();
  EXPECT_GE(prod_before.total, kMinAnswersInPhase) << prod_before.describe();
}

// ---- Bad versions: caught at the first canary step, rolled back, later waves untouched ------

class BadCanaryTest : public CanaryTest {
 protected:
  // Between the baseline and the bad version's traffic.
  virtual void beforeRollout() {}

  // Baseline on three clusters in three waves, then 2.0.0 (its command line ending in `extra`)
  // with traffic on all three; returns the deployment id once it ended, which must be rolled
  // back (checked here).
  std::string rollOutBadVersion(const std::string& extra, const std::string& metrics,
                                const std::string& alerts = "") {
    EXPECT_NO_FATAL_FAILURE(startClusters(kThreeClusters));
    if (HasFatalFailure()) return "";
    EXPECT_NO_FATAL_FAILURE(deployBaseline());
    if (HasFatalFailure()) return "";
    EXPECT_NO_FATAL_FAILURE(beforeRollout());
    if (HasFatalFailure()) return "";
    EXPECT_NO_FATAL_FAILURE(startTraffic());
    if (HasFatalFailure()) return "";
    std::string id = submitPlan("bad.yaml", release("2.0.0")
                                                .withExtra(extra)
                                                .withStrategy(kCanarySteps)
                                                .withMetrics(metrics)
                                                .withAlerts(alerts));
    if (id.empty()) return "";
    const auto submitted = std::chrono::steady_clock::now();
    CommandResult wait = cli({"wait", id, "--timeout", "60s"});
    took_ = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  submitted);
    answers_ = stopTraffic();
    EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
    EXPECT_TRUE(contains(wait.out, id + " rolled_back")) << wait.out;
    EXPECT_EQ(stateOf(id), "rolled_back") << deployment(id).dump(2);
    return id;
  }

  // The failure is staging-eu's first analysis, whose message contains every `words`; only
  // staging-eu ran anything and rolled back; waves 2 and 3 never started; traffic elsewhere
  // never noticed; everything is back on the untouched 1.0.0 replicas.
  void expectCaughtAtFirstAnalysis(const std::string& id, const std::vector<std::string>& words) {
    json detail = deployment(id);
    ASSERT_TRUE(detail.is_object());
    ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
    EXPECT_EQ(detail["failure"]["cluster"], "staging-eu") << detail.dump(2);
    EXPECT_EQ(detail["failure"]["step"], "analyze") << detail.dump(2);
    const std::string message = detail["failure"].value("message", "");
    for (const auto& w : words) EXPECT_TRUE(contains(message, w)) << w << " in: " << message;
    EXPECT_TRUE(contains(detail.value("reason", ""), "analyze")) << detail.dump(2);
    ASSERT_EQ(detail["waves"].size(), 3u);
    EXPECT_EQ(detail["waves"][0]["state"], "rolled_back");
    EXPECT_EQ(detail["waves"][1]["state"], "skipped");
    EXPECT_EQ(detail["waves"][2]["state"], "skipped");
    EXPECT_TRUE(detail["rollback_failed_clusters"].empty()) << detail.dump(2);

    const json ev = events(id);
    EXPECT_EQ(ev.back()["type"], "deployment.rolled_back");
    // Caught at 10%: one shift, then the analysis that failed.
    EXPECT_EQ(stepEvents(ev, "stage.started", "staging-eu", "shift").size(), 1u) << ev.dump(1);
    const auto failed = stepEvents(ev, "stage.failed", "staging-eu", "analyze");
    ASSERT_EQ(failed.size(), 1u) << ev.dump(1);
    for (const auto& w : words) {
      EXPECT_TRUE(contains(failed[0].value("message", ""), w)) << w << " in " << failed[0].dump();
    }
    const auto rolled = eventsOf(ev, "rollback.succeeded", "staging-eu");
    ASSERT_EQ(rolled.size(), 1u) << ev.dump(1);
    for (const char* untouched : {"prod-eu-1", "prod-us-1"}) {
      for (const auto& e : ev) {
        EXPECT_NE(e.value("cluster", ""), untouched)
            << "event for an unreached cluster: " << e.dump();
      }
    }
    EXPECT_EQ(findEvent(ev, "wave.started", "prod-eu"), -1);
    EXPECT_EQ(findEvent(ev, "wave.started", "prod-us"), -1);

    // Traffic. staging-eu: the new version did answer some requests, and after the rollback
    // only the old one did.
    const auto back = timesOf(rolled);
    Tally staging = tally(answers_["staging-eu"]);
    EXPECT_GT(staging.of("2.0.0"), 0u) << staging.describe();
    EXPECT_GE(staging.of("1.0.0"), kMinAnswersInPhase) << staging.describe();
    Tally after = tallyBetween(answers_["staging-eu"], back[0], SystemTime::max());
    EXPECT_EQ(after.of("1.0.0"), after.total) << "after the rollback: " << after.describe();
    EXPECT_EQ(after.failed, 0u) << "after the rollback: " << after.describe();
    // The later waves' clusters served 1.0.0 throughout, without a single failure.
    for (const char* untouched : {"prod-eu-1", "prod-us-1"}) {
      Tally t = tally(answers_[untouched]);
      EXPECT_GE(t.total, kMinAnswersInPhase) << untouched << ": " << t.describe();
      EXPECT_EQ(t.of("1.0.0"), t.total) << untouched << ": " << t.describe();
      EXPECT_EQ(t.failed, 0u) << untouched << ": " << t.describe();
    }

    expectBackOnBaseline({"staging-eu"});
  }

  std::map<std::string, std::vector<Answer>> answers_;
  std::chrono::milliseconds took_{0};
};

TEST_F(BadCanaryTest, BadCanaryRolledBack) {
  const std::string id =
      rollOutBadVersion(onlyFor("2.0.0", "--error-rate 0.2"),
                        "{error_rate_increase: 0.5, latency_p95_ratio: 2.0, min_requests: 20}");
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(expectCaughtAtFirstAnalysis(id, {"error rate"}));

  // Every request that failed was answered by 2.0.0 with a 500: the old version and HAProxy
  // never failed one.
  for (const auto& a : answers_["staging-eu"]) {
    if (!a.failed()) continue;
    EXPECT_EQ(a.status, 500) << a.describe();
    EXPECT_EQ(a.version, "2.0.0") << a.describe();
  }
  Tally staging = tally(answers_["staging-eu"]);
  EXPECT_GT(staging.failed, 0u) << "the bad version never failed a request: " << staging.describe();
  std::cerr << "[canary] bad version rolled back " << took_.count() << " ms after submission; "
            << "staging-eu traffic: " << staging.describe() << "\n";
}

TEST_F(BadCanaryTest, SlowVersionRolledBackByLatency) {
  const std::string id =
      rollOutBadVersion(onlyFor("2.0.0", "--latency-ms 60"),
                        "{error_rate_increase: 0.5, latency_p95_ratio: 2.0, min_requests: 20}");
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(expectCaughtAtFirstAnalysis(id, {"latency"}));
  // Slow is not failed: every request was answered.
  Tally staging = tally(answers_["staging-eu"]);
  EXPECT_EQ(staging.failed, 0u) << staging.describe();
  const std::string message = deployment(id)["failure"].value("message", "");
  EXPECT_FALSE(contains(message, "error rate 0.")) << "rolled back for errors: " << message;
  std::cerr << "[canary] slow version rolled back " << took_.count() << " ms after submission; "
            << message << "\n";
}

// The new version is bad only on prod-eu-1 (wave 2): staging-eu had already finished with it,
// so the rollback starts 1.0.0 there again, after prod-eu-1, newest wave first; prod-us-1
// (wave 3) is never touched.
TEST_F(BadCanaryTest, BadCanaryInSecondWaveRollsBackEveryClusterItReached) {
  const std::string id =
      rollOutBadVersion(" $(test {version}-{cluster} = 2.0.0-prod-eu-1 && echo --error-rate 0.2)",
                        "{error_rate_increase: 0.5, latency_p95_ratio: 3.0, min_requests: 20}");
  ASSERT_FALSE(id.empty());

  json detail = deployment(id);
  ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
  EXPECT_EQ(detail["failure"]["cluster"], "prod-eu-1");
  EXPECT_EQ(detail["failure"]["step"], "analyze");
  EXPECT_TRUE(contains(detail["failure"].value("message", ""), "error rate")) << detail.dump(2);
  ASSERT_EQ(detail["waves"].size(), 3u);
  EXPECT_EQ(detail["waves"][0]["state"], "rolled_back");
  EXPECT_EQ(detail["waves"][1]["state"], "rolled_back");
  EXPECT_EQ(detail["waves"][2]["state"], "skipped");

  const json ev = events(id);
  EXPECT_EQ(ev.back()["type"], "deployment.rolled_back");
  const auto staging_done = timesOf(eventsOf(ev, "cluster.succeeded", "staging-eu"));
  ASSERT_EQ(staging_done.size(), 1u) << "staging-eu never finished with 2.0.0: " << ev.dump(1);
  const int prod_back = findEvent(ev, "rollback.succeeded", "prod-eu", "prod-eu-1");
  const int staging_start = findEvent(ev, "rollback.started", "staging", "staging-eu");
  const int staging_back = findEvent(ev, "rollback.succeeded", "staging", "staging-eu");
  ASSERT_GE(prod_back, 0) << ev.dump(1);
  ASSERT_GE(staging_back, 0) << ev.dump(1);
  EXPECT_LT(prod_back, staging_start) << "wave 1 rolled back before wave 2";
  for (const auto& e : ev) {
    EXPECT_NE(e.value("cluster", ""), "prod-us-1")
        << "event for an unreached cluster: " << e.dump();
  }

  // staging-eu: all 2.0.0 once it finished, all 1.0.0 once rolled back, not one failure on the
  // way there or back.
  const auto staging_back_at = timeOf(ev[staging_back]);
  const auto staging_rollback_at = timeOf(ev[staging_start]);
  Tally staging = tally(answers_["staging-eu"]);
  EXPECT_EQ(staging.failed, 0u) << staging.describe();
  Tally staging_on_new = tallyBetween(answers_["staging-eu"], staging_done[0], staging_rollback_at);
  EXPECT_GE(staging_on_new.total, kMinAnswersInPhase) << staging_on_new.describe();
  EXPECT_EQ(staging_on_new.of("2.0.0"), staging_on_new.total) << staging_on_new.describe();
  Tally staging_after = tallyBetween(answers_["staging-eu"], staging_back_at, SystemTime::max());
  EXPECT_EQ(staging_after.of("1.0.0"), staging_after.total) << staging_after.describe();
  // prod-eu-1: only the bad canary failed requests; 1.0.0 answered all after its rollback.
  for (const auto& a : answers_["prod-eu-1"]) {
    if (!a.failed()) continue;
    EXPECT_EQ(a.status, 500) << a.describe();
    EXPECT_EQ(a.version, "2.0.0") << a.describe();
  }
  const auto prod_back_at = timeOf(ev[prod_back]);
  Tally prod_after = tallyBetween(answers_["prod-eu-1"], prod_back_at, SystemTime::max());
  EXPECT_EQ(prod_after.of("1.0.0"), prod_after.total) << prod_after.describe();
  // prod-us-1: 1.0.0 throughout.
  Tally us = tally(answers_["prod-us-1"]);
  EXPECT_EQ(us.failed, 0u) << us.describe();
  EXPECT_EQ(us.of("1.0.0"), us.total) << us.describe();

  expectBackOnBaseline({"staging-eu", "prod-eu-1"}, {"staging-eu"});
}

// ---- Health checks ---------------------------------------------------------------------------

// /health fails from the first moment: the deploy never gets the new replicas into traffic and
// the failure threshold (3 tolerated, the 4th triggers) ends it.
TEST_F(CanaryTest, HealthFailsOnFourth) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kTwoClusters));
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  ASSERT_NO_FATAL_FAILURE(startTraffic());
  const std::string id =
      submitPlan("unhealthy.yaml", release("2.0.0")
                                       .withExtra(onlyFor("2.0.0", "--health-fail-after 0s"))
                                       .withStrategy(kCanarySteps));
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "50s"});
  auto answers = stopTraffic();
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_EQ(stateOf(id), "rolled_back");

  json detail = deployment(id);
  ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
  EXPECT_EQ(detail["failure"]["cluster"], "staging-eu");
  EXPECT_EQ(detail["failure"]["step"], "deploy");
  const std::string message = detail["failure"].value("message", "");
  EXPECT_TRUE(contains(message, "health")) << message;
  EXPECT_TRUE(contains(message, "503")) << message;

  const json ev = events(id);
  const auto started = timesOf(stepEvents(ev, "stage.started", "staging-eu", "deploy"));
  const auto failed = stepEvents(ev, "stage.failed", "staging-eu", "deploy");
  ASSERT_EQ(started.size(), 1u) << ev.dump(1);
  ASSERT_EQ(failed.size(), 1u) << ev.dump(1);
  EXPECT_TRUE(contains(failed[0].value("message", ""), "503")) << failed[0].dump();
  // The plan's failure_threshold decides, not a start-up allowance of half a minute.
  EXPECT_TRUE(contains(failed[0].value("message", ""), "4 times in a row")) << failed[0].dump();
  EXPECT_EQ(findEvent(ev, "stage.started", "production"), -1);
  EXPECT_TRUE(eventsOf(ev, "stage.started", "prod-eu-1").empty());

  // The unhealthy replicas never got a request; the old ones answered all of them.
  for (const auto& c : kTwoClusters) {
    Tally t = tally(answers[c.name]);
    EXPECT_EQ(t.failed, 0u) << c.name << ": " << t.describe();
    EXPECT_EQ(t.of("1.0.0"), t.total) << c.name << ": " << t.describe();
  }
  expectBackOnBaseline({"staging-eu"});
}

// /health starts failing after the new version took its first share of traffic: the analysis
// tolerates three failed checks in a row and rolls back on the fourth.
TEST_F(CanaryTest, HealthFailsOnFourthDuringAnalysis) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kTwoClusters));
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  ASSERT_NO_FATAL_FAILURE(startTraffic());
  const std::string id =
      submitPlan("fails-later.yaml", release("2.0.0")
                                         .withExtra(onlyFor("2.0.0", "--health-fail-after 2s"))
                                         .withStrategy(kCanarySteps));
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  auto answers = stopTraffic();
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_EQ(stateOf(id), "rolled_back");

  json detail = deployment(id);
  ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
  EXPECT_EQ(detail["failure"]["cluster"], "staging-eu");
  EXPECT_EQ(detail["failure"]["step"], "analyze");
  const std::string message = detail["failure"].value("message", "");
  EXPECT_TRUE(contains(message, "health check failed 4 times in a row")) << message;
  EXPECT_TRUE(contains(message, "503")) << message;
  // The third failure in a row was reported and tolerated; the fourth ended the step.
  const json ev = events(id);
  const auto failed = stepEvents(ev, "stage.failed", "staging-eu", "analyze");
  ASSERT_EQ(failed.size(), 1u) << ev.dump(1);
  int third = -1;
  for (size_t i = 0; i < ev.size(); ++i) {
    if (ev[i].value("type", "") == "stage.output" && ev[i].value("cluster", "") == "staging-eu" &&
        contains(ev[i].value("message", ""), "3 in a row")) {
      third = static_cast<int>(i);
      break;
    }
  }
  ASSERT_GE(third, 0) << "no output of the tolerated third failure: " << ev.dump(1);
  EXPECT_LT(ev[third]["seq"].get<long long>(), failed[0]["seq"].get<long long>());
  EXPECT_EQ(ev[third].value("step", ""), "analyze") << ev[third].dump();

  // /health is not /: traffic never failed, and after the rollback only 1.0.0 answered.
  const auto back = timesOf(eventsOf(ev, "rollback.succeeded", "staging-eu"));
  ASSERT_EQ(back.size(), 1u) << ev.dump(1);
  for (const auto& c : kTwoClusters) {
    Tally t = tally(answers[c.name]);
    EXPECT_EQ(t.failed, 0u) << c.name << ": " << t.describe();
  }
  Tally staging = tally(answers["staging-eu"]);
  EXPECT_GT(staging.of("2.0.0"), 0u) << staging.describe();
  Tally after = tallyBetween(answers["staging-eu"], back[0], SystemTime::max());
  EXPECT_EQ(after.of("1.0.0"), after.total) << after.describe();
  Tally prod = tally(answers["prod-eu-1"]);
  EXPECT_EQ(prod.of("1.0.0"), prod.total) << prod.describe();
  EXPECT_TRUE(eventsOf(ev, "stage.started", "prod-eu-1").empty());
  expectBackOnBaseline({"staging-eu"});
}

// ---- Blue-green ------------------------------------------------------------------------------

TEST_F(CanaryTest, BlueGreenSwitch) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kTwoClusters));
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  ASSERT_NO_FATAL_FAILURE(startTraffic());
  const std::string id = submitPlan(
      "blue-green.yaml", release("2.0.0").withStrategy("{type: blue_green}").withBake("3s"));
  ASSERT_FALSE(id.empty());

  // During the bake the new set has all the traffic and the old set still runs, out of
  // traffic, so that switching back would be instant.
  ASSERT_TRUE(waitUntil("staging-eu to bake", [&] {
    const std::string state = clusterState(id, "staging-eu");
    return state == "baking" || state == "succeeded" || isFinalState(stateOf(id));
  }));
  ASSERT_EQ(clusterState(id, "staging-eu"), "baking") << "the bake was over before it was seen";
  {
    json record = serviceRecord("staging-eu");
    ASSERT_TRUE(record.is_object()) << serviceRecordText("staging-eu");
    EXPECT_EQ(record["candidate"].value("version", ""), "2.0.0") << record.dump(2);
    EXPECT_EQ(record["candidate"].value("share", -1), 100) << record.dump(2);
    EXPECT_EQ(record["stable"].value("version", ""), "1.0.0") << record.dump(2);
    EXPECT_EQ(record["stable"].value("share", -1), 0) << record.dump(2);
    for (const auto& r : baseline_replicas_["staging-eu"]) {
      EXPECT_TRUE(replicaAlive(r)) << "1.0.0 replica pid " << r.pid << " stopped before the bake"
                                   << " ended";
    }
    expectServing("staging-eu", portsOf(replicasOf(record["candidate"])));
  }

  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  auto answers = stopTraffic();
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err << deployment(id).dump(2);
  EXPECT_TRUE(contains(wait.out, id + " succeeded")) << wait.out;

  const json ev = events(id);
  for (const auto& c : kTwoClusters) {
    SCOPED_TRACE(c.name);
    const std::vector<Answer>& all = answers[c.name];
    Tally whole = tally(all);
    EXPECT_EQ(whole.failed, 0u) << whole.describe();
    // One switch, all at once: old only before it, new only after it.
    const auto shift_started = timesOf(stepEvents(ev, "stage.started", c.name, "shift"));
    const auto shift_done = timesOf(stepEvents(ev, "stage.succeeded", c.name, "shift"));
    ASSERT_EQ(shift_started.size(), 1u) << ev.dump(1);
    ASSERT_EQ(shift_done.size(), 1u) << ev.dump(1);
    EXPECT_EQ(stepEvents(ev, "stage.succeeded", c.name, "bake").size(), 1u) << ev.dump(1);
    Tally before = tallyBetween(all, SystemTime::min(), shift_started[0]);
    Tally after = tallyBetween(all, shift_done[0], SystemTime::max());
    EXPECT_GE(before.total, kMinAnswersInPhase) << before.describe();
    EXPECT_GE(after.total, kMinAnswersInPhase) << after.describe();
    EXPECT_EQ(before.of("1.0.0"), before.total) << "before the switch: " << before.describe();
    EXPECT_EQ(after.of("2.0.0"), after.total) << "after the switch: " << after.describe();

    expectOnlyVersion(c.name, "2.0.0");
    json record = serviceRecord(c.name);
    EXPECT_EQ(record["stable"].value("version", ""), "2.0.0") << record.dump(2);
    EXPECT_TRUE(record["candidate"].is_null()) << record.dump(2);
    for (const auto& r : baseline_replicas_[c.name]) {
      EXPECT_FALSE(replicaAlive(r)) << "1.0.0 replica pid " << r.pid << " still runs";
    }
    expectServing(c.name, portsOf(replicasOf(record["stable"])));
  }
  for (const auto& p : demoProcesses()) EXPECT_EQ(p.version, "2.0.0") << describe(demoProcesses());
}

// Rolling through the coordinator: one `roll` step per cluster replaces the replicas a few
// at a time; traffic never fails and only the new version is left.
TEST_F(CanaryTest, RollingUpdate) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kTwoClusters));
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  ASSERT_NO_FATAL_FAILURE(startTraffic());
  const std::string id = submitPlan(
      "rolling.yaml",
      release("2.0.0").withStrategy("{type: rolling, max_unavailable: 1, max_surge: 1}"));
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  auto answers = stopTraffic();
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err << deployment(id).dump(2);

  const json ev = events(id);
  for (const auto& c : kTwoClusters) {
    SCOPED_TRACE(c.name);
    Tally whole = tally(answers[c.name]);
    EXPECT_EQ(whole.failed, 0u) << whole.describe();
    EXPECT_EQ(stepEvents(ev, "stage.started", c.name, "roll").size(), 1u) << ev.dump(1);
    EXPECT_TRUE(stepEvents(ev, "stage.started", c.name, "shift").empty()) << ev.dump(1);
    expectOnlyVersion(c.name, "2.0.0");
    json record = serviceRecord(c.name);
    EXPECT_EQ(record["stable"].value("version", ""), "2.0.0") << record.dump(2);
    for (const auto& r : baseline_replicas_[c.name]) {
      EXPECT_FALSE(replicaAlive(r)) << "1.0.0 replica pid " << r.pid << " still runs";
    }
  }
  for (const auto& p : demoProcesses()) EXPECT_EQ(p.version, "2.0.0") << describe(demoProcesses());
}

// A trigger during the bake switches back to the old set, which never stopped: no request
// fails on the way there or back.
TEST_F(CanaryTest, BlueGreenSwitchesBackOnBakeTrigger) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kTwoClusters));
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  ASSERT_NO_FATAL_FAILURE(startTraffic());
  const std::string id =
      submitPlan("blue-green-bad.yaml", release("2.0.0")
                                            .withExtra(onlyFor("2.0.0", "--health-fail-after 3s"))
                                            .withStrategy("{type: blue_green}")
                                            .withBake("8s"));
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  auto answers = stopTraffic();
  EXPECT_EQ(wait.exit_code, 1) << wait.out << wait.err;
  EXPECT_EQ(stateOf(id), "rolled_back");

  json detail = deployment(id);
  ASSERT_TRUE(detail["failure"].is_object()) << detail.dump(2);
  EXPECT_EQ(detail["failure"]["cluster"], "staging-eu");
  EXPECT_EQ(detail["failure"]["step"], "bake");
  EXPECT_TRUE(contains(detail["failure"].value("message", ""), "4 times in a row"))
      << detail.dump(2);

  const json ev = events(id);
  const auto switched = timesOf(stepEvents(ev, "stage.succeeded", "staging-eu", "shift"));
  const auto back = timesOf(eventsOf(ev, "rollback.succeeded", "staging-eu"));
  ASSERT_EQ(switched.size(), 1u) << ev.dump(1);
  ASSERT_EQ(back.size(), 1u) << ev.dump(1);
  EXPECT_TRUE(eventsOf(ev, "stage.started", "prod-eu-1").empty());

  const std::vector<Answer>& staging = answers["staging-eu"];
  Tally whole = tally(staging);
  EXPECT_EQ(whole.failed, 0u) << whole.describe();
  Tally on_new = tallyBetween(staging, switched[0], back[0]);
  EXPECT_GT(on_new.of("2.0.0"), 0u) << "after the switch: " << on_new.describe();
  Tally after = tallyBetween(staging, back[0], SystemTime::max());
  EXPECT_GE(after.total, 1u);
  EXPECT_EQ(after.of("1.0.0"), after.total) << "after switching back: " << after.describe();
  Tally prod = tally(answers["prod-eu-1"]);
  EXPECT_EQ(prod.failed, 0u) << prod.describe();
  EXPECT_EQ(prod.of("1.0.0"), prod.total) << prod.describe();

  expectBackOnBaseline({"staging-eu"});
}

// ---- Analysis through a real Prometheus server: the same decisions as the direct scrape -----

class PrometheusCanaryTest : public BadCanaryTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(BadCanaryTest::SetUp());
    prometheus_ = Prometheus::start(dir(), ports_, kPortBlock);
    ASSERT_NE(prometheus_, nullptr);
  }
  void TearDown() override {
    if (prometheus_) prometheus_->stop();
    BadCanaryTest::TearDown();
  }
  std::string metrics(const std::string& latency_ratio = "2.0") const {
    return "{source: prometheus, prometheus: \"" + prometheus_->url() +
           "\", error_rate_increase: 0.5, latency_p95_ratio: " + latency_ratio +
           ", min_requests: 20}";
  }
  void beforeRollout() override { waitForScrapes(); }
  // Prometheus has scraped the baseline replicas of every cluster: it sees what the agents see.
  void waitForScrapes() {
    std::string instances;
    for (const auto& [cluster, replicas] : baseline_replicas_) {
      for (const auto& r : replicas) {
        instances +=
            (instances.empty() ? "" : "|") + std::string("127.0.0.1:") + std::to_string(r.port);
      }
    }
    ASSERT_TRUE(waitUntil("Prometheus scraping the baseline replicas",
                          [&] { return prometheus_->scrapes(instances); }));
  }
  std::unique_ptr<Prometheus> prometheus_;
};

TEST_F(PrometheusCanaryTest, BadCanaryRolledBack) {
  const std::string id = rollOutBadVersion(onlyFor("2.0.0", "--error-rate 0.2"), metrics());
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(expectCaughtAtFirstAnalysis(id, {"error rate"}));
  std::cerr << "[canary] through Prometheus: " << deployment(id)["failure"].value("message", "")
            << "\n";
}

TEST_F(PrometheusCanaryTest, SlowVersionRolledBackByLatency) {
  const std::string id = rollOutBadVersion(onlyFor("2.0.0", "--latency-ms 60"), metrics());
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(expectCaughtAtFirstAnalysis(id, {"latency"}));
  const std::string message = deployment(id)["failure"].value("message", "");
  EXPECT_FALSE(contains(message, "error rate 0.")) << "rolled back for errors: " << message;
}

TEST_F(PrometheusCanaryTest, GoodCanaryPasses) {
  ASSERT_NO_FATAL_FAILURE(startClusters(kTwoClusters));
  ASSERT_NO_FATAL_FAILURE(deployBaseline());
  ASSERT_NO_FATAL_FAILURE(waitForScrapes());
  ASSERT_NO_FATAL_FAILURE(startTraffic());
  const std::string id = submitPlan(
      "good.yaml", release("2.0.0").withStrategy(kCanarySteps).withMetrics(metrics("3.0")));
  ASSERT_FALSE(id.empty());
  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  auto answers = stopTraffic();
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err << deployment(id).dump(2);
  const json ev = events(id);
  for (const auto& c : kTwoClusters) {
    SCOPED_TRACE(c.name);
    const auto analyses = stepEvents(ev, "stage.succeeded", c.name, "analyze");
    ASSERT_EQ(analyses.size(), 2u) << ev.dump(1);
    for (const auto& a : analyses) {
      EXPECT_TRUE(contains(a.value("message", ""), "analysis passed")) << a.dump();
    }
    Tally whole = tally(answers[c.name]);
    EXPECT_EQ(whole.failed, 0u) << whole.describe();
    expectOnlyVersion(c.name, "2.0.0");
  }
}

// ---- Alerts: an event and a JSON POST to the plan's webhook, retried ------------------------

// A webhook receiver on 127.0.0.1: answers 503 to the first POST (so the coordinator must
// retry), 200 to the others, and keeps every body.
class WebhookReceiver {
 public:
  WebhookReceiver() {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      bodies_.push_back(req.body);
      content_types_.push_back(req.get_header_value("Content-Type"));
      res.status = bodies_.size() == 1 ? 503 : 200;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~WebhookReceiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mu_);
    return bodies_;
  }
  std::vector<std::string> contentTypes() {
    std::lock_guard lock(mu_);
    return content_types_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::vector<std::string> content_types_;
  std::thread thread_;
};

TEST_F(BadCanaryTest, AlertReachesTheWebhook) {
  WebhookReceiver receiver;
  const std::string id = rollOutBadVersion(
      onlyFor("2.0.0", "--error-rate 0.2"),
      "{error_rate_increase: 0.5, latency_p95_ratio: 2.0, min_requests: 20}",
      "{error_rate: 0.05, webhook: \"" + receiver.url() + "\", webhook_timeout: 2s}");
  ASSERT_FALSE(id.empty());

  // The alert is in the deployment's log, with the figures.
  const json ev = events(id);
  const auto alerts = eventsOf(ev, "alert", "staging-eu");
  ASSERT_GE(alerts.size(), 1u) << ev.dump(1);
  EXPECT_TRUE(contains(alerts[0].value("message", ""), "error_rate: 2.0.0: error rate"))
      << alerts[0].dump();
  EXPECT_TRUE(contains(alerts[0].value("message", ""), "alert threshold")) << alerts[0].dump();

  // The first POST was refused with 503; the retry got through with the same body.
  ASSERT_TRUE(waitUntil("the webhook retried", [&] { return receiver.bodies().size() >= 2; }))
      << receiver.bodies().size() << " POST(s)";
  const auto bodies = receiver.bodies();
  EXPECT_EQ(bodies[0], bodies[1]);
  EXPECT_EQ(receiver.contentTypes()[0], "application/json");
  json body = json::parse(bodies[1], nullptr, false);
  ASSERT_TRUE(body.is_object()) << bodies[1];
  EXPECT_EQ(body.value("rule", ""), "error_rate") << body.dump(2);
  EXPECT_EQ(body.value("cluster", ""), "staging-eu") << body.dump(2);
  EXPECT_EQ(body.value("deployment", ""), id) << body.dump(2);
  EXPECT_EQ(body.value("version", ""), "2.0.0") << body.dump(2);
  EXPECT_EQ(body.value("service", ""), "checkout") << body.dump(2);
  EXPECT_GT(body.value("value", 0.0), 0.05) << body.dump(2);
  EXPECT_DOUBLE_EQ(body.value("threshold", 0.0), 0.05) << body.dump(2);
  // Slack-compatible: a `text` a person can read.
  EXPECT_TRUE(contains(body.value("text", ""), "checkout 2.0.0 on staging-eu")) << body.dump(2);
  EXPECT_TRUE(contains(body.value("text", ""), "error rate")) << body.dump(2);
  // And the coordinator counted it.
  const std::string metrics = get("/metrics").body;
  EXPECT_TRUE(contains(metrics, "flotilla_alerts_total{rule=\"error_rate\"}")) << metrics;
  EXPECT_TRUE(contains(metrics, "flotilla_webhook_posts_total{result=\"delivered\"} 1")) << metrics;
}

}  // namespace
}  // namespace flotilla::integration
