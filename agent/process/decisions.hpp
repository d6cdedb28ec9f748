// What a strategy does next, as pure functions of the service's record and the last
// observations: no processes, no HAProxy, no clock. The steps (agent/process/*_steps.cpp) call
// them at each turn and carry the answer out; tests/agent/process/decisions_test.cpp checks
// them, and simulates whole rolling updates with them, in microseconds.
#pragma once

#include <string>

#include "agent/analysis.hpp"
#include "agent/process/service_record.hpp"

namespace flotilla::agent {

// ---- Canary: after an analysis window

// An inconclusive window (too little traffic) is watched again at most this many times, when
// the plan's metrics say wait_when_inconclusive.
inline constexpr int kMaxInconclusiveExtensions = 3;

enum class AnalysisNext {
  kPass,        // the candidate holds up against the stable set: the step succeeds
  kFail,        // a threshold was crossed: the step fails (the coordinator rolls back)
  kWatchAgain,  // too little to judge: another window of the same length
  kGiveUp,      // too little to judge, and no more waiting: the step fails
};
// `extensions`: windows already added to the first.
AnalysisNext afterWindow(Verdict verdict, int extensions, bool wait_when_inconclusive);

// ---- Canary and blue-green: a rollback

enum class RollbackAction {
  kRollBackTheRoll,        // a rolling update ran (or runs): roll back the way it came
  kFinishEarlierRollback,  // a candidate of the previous version is an earlier rollback's
                           // half-way point: promote it
  kRetireCandidate,        // the new version is still the candidate: the stable set takes all
                           // the traffic back and the candidate stops
  kRestorePrevious,        // the new version is the stable set (after finalize): the previous
                           // version starts again and takes over
  kNothing,                // nothing of the new version runs, or nothing earlier is known
};
// `version`: the version being rolled back; `previous`: what ran before it ("" = unknown).
RollbackAction planRollback(const ServiceRecord& record, const std::string& version,
                            const std::string& previous);

// ---- Rolling: one round

struct RollBounds {
  int wanted = 1;           // replicas of the new version at the end
  int max_unavailable = 1;  // serving replicas may drop this far below `wanted`
  int max_surge = 1;        // running processes may rise this far above `wanted`
  int floor() const;        // fewest serving: wanted - max_unavailable, at least 0
  int ceiling() const;      // most running: wanted + max_surge
};

// What runs at the moment of the decision.
struct RollCounts {
  int new_running = 0;  // processes of the new version, serving or not
  int old_running = 0;  // processes of the old version
  int new_serving = 0;  // new replicas in service and passing their checks
  int old_serving = 0;  // old replicas in service
};

// New replicas to start now: up to `wanted`, never past the ceiling.
int replicasToStart(const RollBounds& bounds, const RollCounts& now);
// Serving old replicas to take out now: as many as keeps the serving ones at the floor.
int oldReplicasToStop(const RollBounds& bounds, const RollCounts& now);

}  // namespace flotilla::agent
