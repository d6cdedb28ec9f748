// The way back: a rollback starts (a forward step failed, an agent was lost past the budget, or
// an operator asked), runs newest wave first, and ends rolled back, or failed when a cluster
// could not be rolled back (a human must look).
#include <algorithm>
#include <string>

#include "coordinator/deployment.hpp"
#include "coordinator/deployment_internal.hpp"

namespace flotilla::coordinator::deployment_internal {

namespace {

size_t lastReachedWave(const Deployment& d) {
  return std::min(d.wave_index, d.waves.empty() ? 0 : d.waves.size() - 1);
}

void finishRollback(Deployment& d, Effects& fx) {
  d.rollback_failed.clear();
  for (auto& w : d.waves) {
    for (auto& c : w.clusters) {
      if (c.state == ClusterState::kRollbackFailed) d.rollback_failed.push_back(c.name);
    }
  }
  const bool cancelled = d.cancelling;
  d.cancelling = false;
  if (d.rollback_failed.empty() && cancelled) {
    d.state = DeploymentState::kCancelled;
    d.reason = d.rollback_cause + "; every cluster it reached is back on its previous version";
    emit(fx, "deployment.cancelled", "", "", "", d.reason);
  } else if (d.rollback_failed.empty()) {
    d.state = DeploymentState::kRolledBack;
    d.reason = d.rollback_cause;
    emit(fx, "deployment.rolled_back", "", "", "", d.reason);
  } else {
    std::string names;
    for (const auto& n : d.rollback_failed) names += (names.empty() ? "" : ", ") + n;
    d.state = DeploymentState::kFailed;
    d.reason = "rollback failed on " + names + " (after: " + d.rollback_cause + ")";
    emit(fx, "deployment.failed", "", "", "", d.reason);
  }
}

}  // namespace

void skipUnreachedWaves(Deployment& d, Effects& fx) {
  for (size_t i = 0; i < d.waves.size(); ++i) {
    WaveProgress& w = d.waves[i];
    if (w.state == WaveState::kPending || w.state == WaveState::kAwaitingApproval) {
      w.state = WaveState::kSkipped;
      fx.changed = true;
    }
  }
}

void abortInFlightForward(Deployment& d, const std::string& reason, Effects& fx) {
  for (auto& w : d.waves) {
    for (auto& c : w.clusters) {
      if (c.in_flight && c.step && *c.step != Step::ROLLBACK && !c.abort_sent) {
        c.abort_sent = true;
        fx.aborts.push_back(AbortRequest{c.name, c.stageId(), c.attempt, reason});
        emit(fx, "stage.aborting", w.name, c.name, stepName(*c.step), reason);
      }
    }
  }
}

void startRollback(Deployment& d, const std::string& reason, bool whole_fleet, Effects& fx) {
  d.state = DeploymentState::kRollingBack;
  d.reason = reason;
  d.rollback_cause = reason;
  d.rollback_whole_fleet = whole_fleet;
  emit(fx, "deployment.rolling_back", "", "", "", reason);
  abortInFlightForward(d, "deployment is rolling back: " + reason, fx);
  skipUnreachedWaves(d, fx);
}

// A forward step failed on cluster `c` of wave `wave`.
void forwardFailed(Deployment& d, size_t wave, ClusterProgress& c, const std::string& message,
                   Effects& fx) {
  c.state = ClusterState::kFailed;
  c.message = message;
  std::string step = c.step ? stepName(*c.step) : "";
  emit(fx, "cluster.failed", d.waves[wave].name, c.name, step, message);
  if (d.state == DeploymentState::kRollingBack || isFinal(d.state)) return;
  if (!d.failure) d.failure = Failure{c.name, step, message};
  startRollback(
      d, "cluster " + c.name + " failed at " + (step.empty() ? "dispatch" : step) + ": " + message,
      d.plan.rollback_scope == common::RollbackScope::kFleet, fx);
}

void runRollback(Deployment& d, const Context& ctx, Effects& fx) {
  if (d.waves.empty()) {
    finishRollback(d, fx);
    return;
  }
  size_t top = lastReachedWave(d);
  size_t bottom = d.rollback_whole_fleet ? 0 : top;
  for (size_t i = top + 1; i-- > bottom;) {
    WaveProgress& w = d.waves[i];
    if (w.state == WaveState::kPending || w.state == WaveState::kSkipped ||
        w.state == WaveState::kAwaitingApproval || w.state == WaveState::kRolledBack ||
        w.state == WaveState::kFailed) {
      continue;
    }
    bool needs_work = false;
    for (auto& c : w.clusters) {
      if (c.in_flight && c.agent_lost && c.step && *c.step != Step::ROLLBACK) {
        // A forward step waited for on a lost agent: no abort can reach it.
        c.in_flight = false;
        c.state = ClusterState::kFailed;
        c.message = "agent lost during " + std::string(stepName(*c.step));
      }
      if (c.in_flight) {
        needs_work = true;  // a forward step being aborted, or a rollback running
        continue;
      }
      bool done = c.state == ClusterState::kRolledBack || c.state == ClusterState::kRollbackFailed;
      if (!c.applied || done) continue;
      if (w.state != WaveState::kRollingBack) {
        w.state = WaveState::kRollingBack;
        emit(fx, "wave.rolling_back", w.name, "", "", "");
      }
      if (ctx.registry.isLost(c.name)) {
        c.state = ClusterState::kRollbackFailed;
        c.rollback_lost = true;
        c.message = "agent lost; the cluster may still run " + d.plan.version +
                    " (rolled back as soon as its agent is back)";
        emit(fx, "rollback.failed", w.name, c.name, "rollback", c.message);
        continue;
      }
      dispatch(d, i, c, Step::ROLLBACK, -1, fx);
      needs_work = true;
    }
    if (needs_work) return;  // newest wave first: lower waves wait
    bool any_failed = std::any_of(w.clusters.begin(), w.clusters.end(), [](const auto& c) {
      return c.state == ClusterState::kRollbackFailed;
    });
    w.state = any_failed ? WaveState::kFailed : WaveState::kRolledBack;
    emit(fx, any_failed ? "wave.rollback_failed" : "wave.rolled_back", w.name, "", "", "");
  }
  finishRollback(d, fx);
}

}  // namespace flotilla::coordinator::deployment_internal
