// The process driver: runs a service's replicas as local processes on the
// agent's host (bare-metal and VM fleets) and moves traffic between the
// stable and the new set through HAProxy's runtime API.
//
// Each step arrives as a StageCommand with a ProcessSpec (schema/flotilla.capnp), which the
// agent checks and reads into a Spec (agent/process/spec.hpp) before the step starts.
//
// kRoll (the plan's rolling strategy) replaces whatever runs with process.replicas (N)
// replicas of `version`, in rounds: up to max_surge (S) new replicas start beyond N, become
// healthy (deploy's readiness rules), go into HAProxy at the per-server weight the old ones
// have (all serving replicas share equally), then old replicas drain (~1 s), leave HAProxy and
// stop, never so many that fewer than N - max_unavailable (U) replicas serve (alive, ready in
// HAProxy, not draining, new ones passing their health checks). Health checks run on the new
// replicas throughout: one failing holds the roll, more than failure_threshold failures in a row
// fail it where it stands. One log line per round ("round 2: 2.0.0 3/4, 1.0.0 0/4 serving").
// U >= 0, S >= 0, not both 0; U = 1, S = 1 when the spec has no `rolling`. Without a traffic config
// HAProxy is skipped, the process bounds hold all the same. After a roll the new set is the
// stable set: finalize has nothing to do, bake watches the stable set. A rollback after or
// during a roll rolls back the same way (the previous version's replicas start and swap in
// under the same bounds, the bounds from the spec or else the record's); deploy, shift and
// finalize are refused while a roll is half done. Other steps ignore a non-rolling strategy.
//
// State directory (beside the stage records): one record per service,
// <state-dir>/services/<service>.json (agent/process/service_record.hpp).
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
#include "agent/driver.hpp"
#include "agent/process/spec.hpp"
#include "agent/stage_record.hpp"
#include "agent/thread_run.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

class ProcessDriver : public Driver {
 public:
  // `state_dir`: the agent's state directory; `cluster`: for {cluster} in paths; `launch`: how
  // replicas start (the agent's --pass-env and --run-as).
  ProcessDriver(std::string state_dir, std::string cluster, LaunchPolicy launch = {});

  // Re-adopts replicas recorded in the state dir that are still alive.
  // Called once at agent start, before any step.
  common::Status recover(const LineSink& log) override;

  const char* name() const override { return "process"; }

  // Reads and checks the command's spec, then runs the step on a thread of its own (it waits on
  // health checks and timers). A bad spec fails the step (it is not refused: the coordinator
  // sent it, and retrying will not mend it).
  common::StatusOr<std::unique_ptr<StepRun>> start(const StepCommand& command,
                                                   const std::function<void()>& wake) override;

  // Runs one step to the end. Blocking: the agent calls it on a worker
  // thread. `cancel` becomes true when the coordinator aborts the step; the
  // step then stops as soon as it safely can and reports kAborted.
  // Alerts found while the step watches go to `alerts`, each analysis window's or bake slice's
  // figures to `figures` (both from the step's thread).
  StepReport run(Step step, const Spec& spec, const std::atomic<bool>& cancel, const LineSink& log,
                 const AlertSink& alerts = {}, const FiguresSink& figures = {});

 private:
  std::string state_dir_;
  std::string cluster_;
  LaunchPolicy launch_;
};

}  // namespace flotilla::agent
