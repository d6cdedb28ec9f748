// Test support, the process driver's fleet.
#include "tests/support/service_fleet.hpp"

#include <cstdlib>
#include <filesystem>

#include "tests/support/net.hpp"

namespace flotilla::support {

namespace fs = std::filesystem;

const ServiceShape kTwoWaves = {
    {{"staging-eu", {{"environment", "staging"}}}, {"prod-eu-1", {{"environment", "production"}}}},
    {waveSelecting("staging", "environment: staging"),
     waveSelecting("production", "environment: production")},
};

const ServiceShape kThreeWaves = {
    {{"staging-eu", {{"environment", "staging"}}},
     {"prod-eu-1", {{"environment", "production"}, {"region", "eu"}}},
     {"prod-us-1", {{"environment", "production"}, {"region", "us"}}}},
    {waveSelecting("staging", "environment: staging"), waveOf("prod-eu", {"prod-eu-1"}),
     waveSelecting("prod-us", "region: us")},
};

std::vector<RecordedReplica> replicasOf(const json& set) {
  std::vector<RecordedReplica> out;
  if (!set.is_object() || !set.contains("replicas")) return out;
  for (const auto& r : set["replicas"]) {
    out.push_back({r.value("pid", 0), r.value("start_ticks", uint64_t{0}), r.value("port", 0)});
  }
  return out;
}

bool replicaAlive(const RecordedReplica& r) { return startTicksOf(r.pid) == r.start_ticks; }

std::set<int> portsOf(const std::vector<RecordedReplica>& replicas) {
  std::set<int> out;
  for (const auto& r : replicas) out.insert(r.port);
  return out;
}

std::set<int> pidsOf(const std::vector<RecordedReplica>& replicas) {
  std::set<int> out;
  for (const auto& r : replicas) out.insert(r.pid);
  return out;
}

std::string describe(const std::vector<DemoProcess>& processes) {
  std::string out;
  for (const auto& p : processes) {
    out += (out.empty() ? "" : ", ") + p.version + " on " + std::to_string(p.port) + " (pid " +
           std::to_string(p.pid) + ")";
  }
  return out.empty() ? "none" : out;
}

void ServiceFleetTest::SetUp() {
  ASSERT_NO_FATAL_FAILURE(FleetTest::SetUp());
  ports_ = freePortBlock(kPortBlock);
  ASSERT_NE(ports_, 0) << "no block of " << kPortBlock << " free ports";
}

void ServiceFleetTest::TearDown() {
  for (auto& [name, traffic] : traffic_) traffic->stop();
  // By PID, before the fleet fixture sweeps its remaining children (HAProxy is one of them).
  for (auto& [name, haproxy] : haproxies_) {
    if (haproxy) haproxy->stop();
  }
  FleetTest::TearDown();
}

void ServiceFleetTest::startClusters(const ServiceShape& shape, CoordinatorOptions options) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator(std::move(options)));
  std::vector<std::string> names;
  for (const auto& c : shape.clusters) {
    auto haproxy = Haproxy::start(dir(), c.cluster, kService);
    ASSERT_NE(haproxy, nullptr);
    haproxies_[c.cluster] = std::move(haproxy);
    ASSERT_NO_FATAL_FAILURE(startAgent(c.cluster, c.labels));
    names.push_back(c.cluster);
  }
  shape_ = shape;
  ASSERT_NO_FATAL_FAILURE(waitForAgents(names));
}

ProcessPlan ServiceFleetTest::processPlan(ProcessPlan plan) const {
  plan.replicas = kReplicas;
  plan.ports = std::to_string(ports_) + "-" + std::to_string(ports_ + kPortBlock - 1);
  plan.waves = shape_.waves;
  return plan;
}

ProcessPlan ServiceFleetTest::processPlan(const std::string& version) const {
  return processPlan(ProcessPlan{.version = version});
}

void ServiceFleetTest::deployBaseline(std::chrono::seconds timeout) {
  const std::string id = submitPlan("baseline.yaml", processPlan("1.0.0").yaml());
  ASSERT_FALSE(id.empty());
  CommandResult wait =
      cli({"wait", id, "--timeout", std::to_string(timeout.count()) + "s"}, timeout + 10s);
  ASSERT_EQ(wait.exit_code, 0) << "the baseline did not succeed:\n"
                               << wait.out << wait.err << deployment(id).dump(2);
  for (const auto& c : shape_.clusters) {
    Tally answers = tally(sendRequests(haproxy(c.cluster).url(), 20));
    ASSERT_EQ(answers.of("1.0.0"), 20u) << c.cluster << ": " << answers.describe();
    ASSERT_EQ(answers.failed, 0u) << c.cluster << ": " << answers.describe();
    baseline_record_[c.cluster] = serviceRecordText(c.cluster);
    baseline_replicas_[c.cluster] = replicasOf(serviceRecord(c.cluster)["stable"]);
    ASSERT_EQ(baseline_replicas_[c.cluster].size(), static_cast<size_t>(kReplicas))
        << c.cluster << ": " << baseline_record_[c.cluster];
  }
}

void ServiceFleetTest::startTraffic() {
  for (const auto& c : shape_.clusters) {
    auto traffic =
        std::make_unique<TrafficGenerator>(haproxy(c.cluster).url(), kTrafficWorkers, kTrafficPace);
    traffic->start();
    traffic_[c.cluster] = std::move(traffic);
  }
  ASSERT_TRUE(waitUntil("traffic on every cluster", [&] {
    for (const auto& [name, traffic] : traffic_) {
      if (traffic->count() < kMinAnswersInPhase) return false;
    }
    return true;
  }));
}

std::map<std::string, std::vector<Answer>> ServiceFleetTest::stopTraffic() {
  std::map<std::string, std::vector<Answer>> out;
  for (auto& [name, traffic] : traffic_) {
    traffic->stop();
    out[name] = traffic->answers();
  }
  return out;
}

std::string ServiceFleetTest::serviceRecordPath(const std::string& cluster) const {
  return agentStateDir(cluster) + "/services/" + kService + ".json";
}

std::string ServiceFleetTest::serviceRecordText(const std::string& cluster) const {
  return readFile(serviceRecordPath(cluster));
}

json ServiceFleetTest::serviceRecord(const std::string& cluster) const {
  json record = json::parse(serviceRecordText(cluster), nullptr, false);
  return record.is_discarded() ? json(nullptr) : record;
}

std::vector<DemoProcess> ServiceFleetTest::demoProcesses() const {
  std::vector<DemoProcess> out;
  for (const ProcessInfo& info : allProcesses()) {
    if (info.state == 'Z') continue;
    const std::vector<std::string> argv = commandLineOf(info.pid);
    if (argv.empty() || argv[0] != kDemoServiceBinary) continue;
    DemoProcess p;
    p.pid = info.pid;
    for (size_t i = 0; i + 1 < argv.size(); ++i) {
      if (argv[i] == "--port") p.port = std::atoi(argv[i + 1].c_str());
      if (argv[i] == "--version") p.version = argv[i + 1];
    }
    if (p.port >= ports_ && p.port < ports_ + kPortBlock) out.push_back(p);
  }
  return out;
}

std::set<int> ServiceFleetTest::servingPorts(const std::string& cluster) {
  std::set<int> serving;
  auto servers = haproxy(cluster).servers();
  EXPECT_TRUE(servers.has_value()) << cluster << ": no answer from the stats socket";
  if (!servers) return serving;
  for (const auto& s : *servers) {
    if (s.serving()) serving.insert(s.port);
  }
  return serving;
}

void ServiceFleetTest::expectServing(const std::string& cluster, const std::set<int>& ports) {
  EXPECT_EQ(servingPorts(cluster), ports) << cluster << "'s backend:\n"
                                          << haproxy(cluster).describeServers();
}

void ServiceFleetTest::expectOnlyVersion(const std::string& cluster, const std::string& version) {
  Tally answers = tally(sendRequests(haproxy(cluster).url(), kFinalRequests));
  EXPECT_EQ(answers.failed, 0u) << cluster << ": " << answers.describe();
  EXPECT_EQ(answers.of(version), static_cast<size_t>(kFinalRequests))
      << cluster << ": " << answers.describe();
}

}  // namespace flotilla::support
