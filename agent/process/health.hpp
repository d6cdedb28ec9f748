// Health checks of replicas: one probe of many ports at once, a watch over a window (fails on
// the check that makes more than failure_threshold failures in a row), and a monitor on its own
// thread for a rolling update.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/analysis.hpp"
#include "agent/process/service_record.hpp"
#include "agent/process/spec.hpp"
#include "agent/process/step_context.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

Probe probe(int port, const std::string& path, std::chrono::milliseconds timeout);
// One check of every port at once, so a slow replica does not delay the others' checks.
std::vector<Probe> probeAll(const std::vector<int>& ports, const std::string& path,
                            std::chrono::milliseconds timeout);

// Checks a set's replicas every `interval` over a window.
class HealthWatch {
 public:
  HealthWatch(StepContext& ops, const ReplicaSet& set, const HealthSpec& health,
              std::chrono::milliseconds interval);

  // Checks every replica every interval for `duration`, by the context's clock and probes. Fails on
  // the check that makes more than failure_threshold failures in a row on any replica.
  common::Status watch(std::chrono::steady_clock::duration duration);
  int checks() const { return checks_; }
  // Consecutive failed checks now, of the replica with the longest run.
  int failing() const;

 private:
  StepContext& ops_;
  std::string version_;
  std::vector<int> ports_;
  HealthSpec health_;
  std::chrono::milliseconds interval_;
  std::map<int, ConsecutiveFailures> failures_;
  int checks_ = 0;
};

// Checks the replicas a rolling update has put into service, at the plan's interval, on a thread
// of its own: the checks go on while the step waits for starts, drains and stops. The step's
// thread reads the outcome (and the lines to log: the sink is called from the step's thread
// only) at every turn of its loop.
class HealthMonitor {
 public:
  HealthMonitor(const HealthSpec& health, std::string version);
  ~HealthMonitor();
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  void watch(int port);
  void forget(int port);
  // Its last check passed (or it has not been checked since it became healthy).
  bool healthy(int port) const;
  // Logs what the checks found since the last call; an error once a replica failed more than
  // failure_threshold checks in a row.
  common::Status verdict(StepContext& ops);

 private:
  void loop();

  const HealthSpec health_;
  const std::string version_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::map<int, ConsecutiveFailures> failures_;  // by port
  std::vector<std::string> lines_;
  std::optional<std::string> failure_;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace flotilla::agent
