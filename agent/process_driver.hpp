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
//                "inconclusive": "wait" | "fail",
//                "source": "scrape" | "prometheus",         // absent: scrape
//                "prometheus": "http://127.0.0.1:9090",      // source prometheus only
//                "queries": {"request_rate": "...", "error_rate": "...", "latency_p95": "..."}}
//               or null,   (PromQL with {instances}, {window}, {version}: agent/prometheus.hpp)
//    "alerts": {"error_rate": 0.05, "latency_p95_ratio": 2.0, "cpu": 0.9, "memory": 0.9}
//              or null,    (checked at every analysis window and during bake; AlertSink)
//    "strategy": {"type": "rolling", "max_unavailable": 1, "max_surge": 1} or absent,
//    "weight": 10,          // shift: percent of traffic for the new set
//    "duration_ms": 30000}  // analyze / bake: how long to watch
//
// kRoll (the plan's rolling strategy) replaces whatever runs with process.replicas (N)
// replicas of `version`, in rounds: up to max_surge (S) new replicas start beyond N, become
// healthy (deploy's readiness rules), go into HAProxy at the per-server weight the old ones
// have (all serving replicas share equally), then old replicas drain (~1 s), leave HAProxy and
// stop, never so many that fewer than N - max_unavailable (U) replicas serve (alive, ready in
// HAProxy, not draining, new ones passing their health checks). Health checks run on the new
// replicas throughout: one failing holds the roll, more than failure_threshold failures in a row
// fail it where it stands. One log line per round ("round 2: 2.0.0 3/4, 1.0.0 0/4 serving").
// U >= 0, S >= 0, not both 0; U = 1, S = 1 when "strategy" is absent. Without a traffic config
// HAProxy is skipped, the process bounds hold all the same. After a roll the new set is the
// stable set: finalize has nothing to do, bake watches the stable set. A rollback after or
// during a roll rolls back the same way (the previous version's replicas start and swap in
// under the same bounds, the strategy from the spec or else the record's); deploy, shift and
// finalize are refused while a roll is half done. Other steps ignore a non-rolling strategy.
//
// State directory (beside the stage records):
//   <state-dir>/services/<service>.json
//     {"stable": {"version", "replicas": [{"pid", "start_ticks", "port", "slot"}]},
//      "candidate": {"version", "replicas": [...]}, "deployment": "<id>",
//      "rolling": {"from", "to", "replicas", "max_unavailable", "max_surge", "weight", "done"}
//                 or null}
// While a roll is under way ("done": false) the stable and the candidate set hold the two
// versions side by side, every replica in the set of its version, its "weight" > 0 once it
// serves; the record is saved after every change, so recover(), a retried roll and a rollback
// take over from any point. A deploy clears a finished roll.
// Replicas are detached processes (own session) so they outlive an agent
// restart; a restarted agent re-adopts the ones still alive (same pid and
// start time) without restarting them.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "agent/child_process.hpp"
#include "agent/stage_record.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

enum class ProcessStep { kDeploy, kShift, kAnalyze, kBake, kFinalize, kRollback, kRoll };

struct StepReport {
  Outcome outcome = Outcome::kFailed;  // kSucceeded, kFailed (verdict or error), kAborted
  std::string message;                 // the reason, with measured values and thresholds
};

// Output lines as the step goes (thread-safe callback, called from the step's thread).
using LineSink = std::function<void(const std::string& line)>;

// A crossed alert threshold (the spec's "alerts"), raised once per rule and step.
struct AlertReport {
  std::string rule;  // "error_rate", "latency_p95", "cpu", "memory"
  double value = 0;
  double threshold = 0;
  double baseline = 0;  // 0 when the rule has none
  std::string version;  // the version measured
  std::string message;
};
using AlertSink = std::function<void(const AlertReport& alert)>;

class ProcessDriver {
 public:
  // `state_dir`: the agent's state directory; `cluster`: for {cluster} in paths; `launch`: how
  // replicas start (the agent's --pass-env and --run-as).
  ProcessDriver(std::string state_dir, std::string cluster, LaunchPolicy launch = {});

  // Re-adopts replicas recorded in the state dir that are still alive.
  // Called once at agent start, before any step.
  common::Status recover(const LineSink& log);

  // Runs one step to the end. Blocking: the agent calls it on a worker
  // thread. `cancel` becomes true when the coordinator aborts the step; the
  // step then stops as soon as it safely can and reports kAborted.
  // Alerts found while the step watches go to `alerts` (from the step's thread).
  StepReport run(ProcessStep step, const std::string& spec_json, const std::atomic<bool>& cancel,
                 const LineSink& log, const AlertSink& alerts = {});

 private:
  std::string state_dir_;
  std::string cluster_;
  LaunchPolicy launch_;
};

}  // namespace flotilla::agent
