// The process driver: runs a service's replicas as local processes on the
// agent's host (bare-metal and VM fleets) and moves traffic between the
// stable and the new set through HAProxy's runtime API.
//
// Each step arrives as a StageCommand whose `spec` is JSON:
//
//   {"service": "checkout", "version": "2.0.0", "previous_version": "1.0.0",
//    "cluster": "prod-eu-1",
//    "process": {"command": "/opt/checkout/{version}/bin/checkout --port {port}",
//                "replicas": 2, "port_min": 18000, "port_max": 18099,
//                "health_path": "/health"},
//    "traffic": {"haproxy": {"socket": "/run/haproxy/{cluster}.sock", "backend": "checkout"}}
//               or null,
//    "health": {"path": "/health", "interval_ms": 2000, "timeout_ms": 1000,
//               "failure_threshold": 3},
//    "metrics": {"error_rate_increase": 0.5, "latency_p95_ratio": 2.0, "min_requests": 20,
//                "inconclusive": "wait" | "fail"} or null,
//    "weight": 10,          // shift: percent of traffic for the new set
//    "duration_ms": 30000}  // analyze / bake: how long to watch
//
// State directory (beside the stage records):
//   <state-dir>/services/<service>.json
//     {"stable": {"version", "replicas": [{"pid", "start_ticks", "port", "slot"}]},
//      "candidate": {"version", "replicas": [...]}, "deployment": "<id>"}
// Replicas are detached processes (own session) so they outlive an agent
// restart; a restarted agent re-adopts the ones still alive (same pid and
// start time) without restarting them.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "agent/stage_record.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

enum class ProcessStep { kDeploy, kShift, kAnalyze, kBake, kFinalize, kRollback };

struct StepReport {
  Outcome outcome = Outcome::kFailed;  // kSucceeded, kFailed (verdict or error), kAborted
  std::string message;                 // the reason, with measured values and thresholds
};

// Output lines as the step goes (thread-safe callback, called from the step's thread).
using LineSink = std::function<void(const std::string& line)>;

class ProcessDriver {
 public:
  // `state_dir`: the agent's state directory; `cluster`: for {cluster} in paths.
  ProcessDriver(std::string state_dir, std::string cluster);

  // Re-adopts replicas recorded in the state dir that are still alive.
  // Called once at agent start, before any step.
  common::Status recover(const LineSink& log);

  // Runs one step to the end. Blocking: the agent calls it on a worker
  // thread. `cancel` becomes true when the coordinator aborts the step; the
  // step then stops as soon as it safely can and reports kAborted.
  StepReport run(ProcessStep step, const std::string& spec_json, const std::atomic<bool>& cancel,
                 const LineSink& log);

 private:
  std::string state_dir_;
  std::string cluster_;
};

}  // namespace flotilla::agent
