// Test support, the process driver's fleet: per cluster one real HAProxy and one agent in front
// of flotilla-demo-service replicas on a block of free ports, traffic through each HAProxy, and
// what the agents record about the replicas they run (<state-dir>/services/checkout.json).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/support/fleet.hpp"
#include "tests/support/haproxy.hpp"
#include "tests/support/plans.hpp"
#include "tests/support/traffic.hpp"

namespace flotilla::support {

// Clusters and the waves a process plan rolls through them in.
struct ServiceShape {
  std::vector<FleetAgent> clusters;
  std::vector<PlanWave> waves;
};
// staging-eu [environment=staging], prod-eu-1 [environment=production]; one wave each, by
// environment.
extern const ServiceShape kTwoWaves;
// staging-eu [environment=staging], prod-eu-1 [environment=production, region=eu], prod-us-1
// [environment=production, region=us]; waves staging (by environment), prod-eu (by name),
// prod-us (by region).
extern const ServiceShape kThreeWaves;

// A replica as the agent records it.
struct RecordedReplica {
  int pid = 0;
  uint64_t start_ticks = 0;
  int port = 0;
};
// The replicas of a set ("stable" or "candidate") of the record.
std::vector<RecordedReplica> replicasOf(const json& set);
// The process still runs with the recorded start time (a reused pid is another process).
bool replicaAlive(const RecordedReplica& r);
std::set<int> portsOf(const std::vector<RecordedReplica>& replicas);
std::set<int> pidsOf(const std::vector<RecordedReplica>& replicas);

// A demo-service process that runs now, from its command line.
struct DemoProcess {
  int pid = 0;
  int port = 0;
  std::string version;
};
std::string describe(const std::vector<DemoProcess>& processes);

class ServiceFleetTest : public FleetTest {
 protected:
  static constexpr char kService[] = "checkout";
  static constexpr int kReplicas = 2;
  // Replica ports of one test: every cluster's stable and candidate sets fit, with room to
  // spare for a port the agent finds taken.
  static constexpr int kPortBlock = 16;
  // Per cluster: two clients, each at most one request every 8 ms (~250 requests/s in all), so
  // a 10% canary gets ~50 requests in a 2 s analysis window.
  static constexpr int kTrafficWorkers = 2;
  static constexpr std::chrono::milliseconds kTrafficPace = 8ms;
  // A phase of traffic is judged only with this many answers in it.
  static constexpr size_t kMinAnswersInPhase = 40;
  static constexpr int kFinalRequests = 50;

  // FleetTest's, and the block of replica ports.
  void SetUp() override;
  // Traffic and HAProxy first (by PID), then FleetTest's.
  void TearDown() override;

  // The coordinator, then per cluster its HAProxy and its agent; waits for the agents.
  void startClusters(const ServiceShape& shape, CoordinatorOptions options = {});
  // `plan` on this test's ports and replica count, through its waves.
  ProcessPlan processPlan(ProcessPlan plan) const;
  ProcessPlan processPlan(const std::string& version) const;
  // 1.0.0 everywhere, all at once, before any traffic; checks that each cluster's HAProxy
  // answers 1.0.0 only, and keeps each cluster's record and replicas (baseline_record_,
  // baseline_replicas_).
  void deployBaseline(std::chrono::seconds timeout = 60s);

  Haproxy& haproxy(const std::string& cluster) { return *haproxies_.at(cluster); }
  // Clients on every cluster; returns once each has had kMinAnswersInPhase answers, so that
  // traffic runs from before a rollout begins.
  void startTraffic();
  // Stops every client; the answers by cluster.
  std::map<std::string, std::vector<Answer>> stopTraffic();

  std::string serviceRecordPath(const std::string& cluster) const;
  std::string serviceRecordText(const std::string& cluster) const;
  json serviceRecord(const std::string& cluster) const;  // null when unreadable

  // Live demo-service processes on this test's ports (any cluster).
  std::vector<DemoProcess> demoProcesses() const;
  // Ports of the servers the cluster's HAProxy sends new requests to.
  std::set<int> servingPorts(const std::string& cluster);
  // The cluster's HAProxy serves exactly the replicas on `ports` (ready, weight above 0);
  // every other slot is out of the backend.
  void expectServing(const std::string& cluster, const std::set<int>& ports);
  // kFinalRequests requests through the cluster's HAProxy, all answered 200 by `version`.
  void expectOnlyVersion(const std::string& cluster, const std::string& version);

  int ports_ = 0;  // the first of kPortBlock
  ServiceShape shape_;
  std::map<std::string, std::unique_ptr<Haproxy>> haproxies_;
  std::map<std::string, std::unique_ptr<TrafficGenerator>> traffic_;
  std::map<std::string, std::string> baseline_record_;
  std::map<std::string, std::vector<RecordedReplica>> baseline_replicas_;
};

}  // namespace flotilla::support
