// Operator actions other than approval (coordinator/deployment_approvals.cpp): pause, resume,
// cancel, and rollback on request, which also retries rollbacks that failed.
#include <string>

#include "coordinator/deployment.hpp"
#include "coordinator/deployment_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using deployment_internal::abortInFlightForward;
using deployment_internal::byActor;
using deployment_internal::emit;
using deployment_internal::skipUnreachedWaves;
using deployment_internal::startRollback;

Status pause(Deployment& d, const Actor& by, const std::string& reason, const Context&,
             Effects& fx) {
  if (d.state == DeploymentState::kFrozen) {
    // Paused on top of the freeze: resume returns it to where the freeze stopped it (and the
    // freeze, if still there, holds it again).
    d.state = DeploymentState::kPaused;
    d.reason = "paused " + byActor(by, reason);
    emit(fx, "deployment.paused", "", "", "", d.reason + " (it was frozen)");
    return Status::Ok();
  }
  if (d.state != DeploymentState::kRunning && d.state != DeploymentState::kAwaitingApproval &&
      d.state != DeploymentState::kPending) {
    return Status::FailedPrecondition("deployment " + d.id + " is " + deploymentStateName(d.state) +
                                      "; only a running deployment "
                                      "can be paused");
  }
  d.resume_to = d.state == DeploymentState::kPending ? DeploymentState::kRunning : d.state;
  d.state = DeploymentState::kPaused;
  d.reason = "paused " + byActor(by, reason);
  emit(fx, "deployment.paused", "", "", "",
       d.reason + " (steps in flight finish; no new step starts)");
  return Status::Ok();
}

Status resume(Deployment& d, const Actor& by, const std::string& reason, const Context& ctx,
              Effects& fx) {
  if (d.state != DeploymentState::kPaused) {
    return Status::FailedPrecondition("deployment " + d.id + " is " + deploymentStateName(d.state) +
                                      ", not paused");
  }
  // A failed step held (on_step_failure: hold) would stay failed: retry or rollback decide.
  for (const auto& w : d.waves) {
    for (const auto& c : w.clusters) {
      if (c.held) {
        return Status::FailedPrecondition("deployment " + d.id + " is " +
                                          deployment_internal::heldReason(d));
      }
    }
  }
  d.state = d.resume_to;
  d.paused_for_lost = false;
  d.reason.clear();
  emit(fx, "deployment.resumed", "", "", "", "resumed " + byActor(by, reason));
  advance(d, ctx, fx);
  return Status::Ok();
}

Status cancel(Deployment& d, const Actor& by, const std::string& reason, const Context& ctx,
              Effects& fx) {
  if (isFinal(d.state)) {
    return Status::FailedPrecondition("deployment " + d.id + " is already " +
                                      deploymentStateName(d.state));
  }
  if (d.state == DeploymentState::kRollingBack) {
    return Status::FailedPrecondition(
        "deployment " + d.id +
        (d.cancelling ? " is already being cancelled (its clusters are rolling back)"
                      : " is rolling back; a rollback cannot be cancelled"));
  }
  const std::string cause = "cancelled " + byActor(by, reason);
  if (d.state == DeploymentState::kQueued) {
    d.state = DeploymentState::kCancelled;
    d.reason = cause + " while queued behind " + d.waits_for + "; nothing ran";
    d.waits_for.clear();
    emit(fx, "deployment.cancelled", "", "", "", d.reason);
    return Status::Ok();
  }
  // Stop at a step boundary: the forward steps in flight are aborted (their results are waited
  // for), then every cluster the version reached goes back, whatever the plan's scope, so that
  // no cluster is left half-applied. finishRollback() ends it cancelled (or failed).
  emit(fx, "deployment.cancelling", "", "", "",
       cause + ": steps in flight are aborted, then every cluster it reached is rolled back");
  d.cancelling = true;
  startRollback(d, cause, /*whole_fleet=*/true, fx);
  advance(d, ctx, fx);
  return Status::Ok();
}

Status requestRollback(Deployment& d, const Actor& by, const std::string& reason,
                       const Context& ctx, Effects& fx) {
  const std::string cause = "rollback requested " + byActor(by, reason);
  switch (d.state) {
    case DeploymentState::kRollingBack:
      return Status::FailedPrecondition("deployment " + d.id + " is already rolling back");
    case DeploymentState::kRolledBack:
      return Status::FailedPrecondition("deployment " + d.id + " is " +
                                        deploymentStateName(d.state) + "; nothing to roll back");
    case DeploymentState::kQueued:
      return Status::FailedPrecondition("deployment " + d.id + " is queued behind " + d.waits_for +
                                        " and has not run; cancel it instead");
    case DeploymentState::kCancelled:
      // The clusters a cancel left on the new version (a cancel recorded before cancel rolled
      // back) go back now; when there are none it ends rolled_back at once.
      d.cancelling = false;
      startRollback(d, cause + " (after: " + d.reason + ")", true, fx);
      advance(d, ctx, fx);
      return Status::Ok();
    case DeploymentState::kFailed: {
      // Retry the rollbacks that failed (a human fixed the cluster or its agent is back).
      bool any = false;
      for (auto& w : d.waves) {
        for (auto& c : w.clusters) {
          if (c.state == ClusterState::kRollbackFailed) {
            c.state = ClusterState::kFailed;
            any = true;
          }
        }
        if (w.state == WaveState::kFailed) w.state = WaveState::kRollingBack;
      }
      if (!any) {
        return Status::FailedPrecondition("deployment " + d.id +
                                          " failed before reaching any cluster; nothing to retry");
      }
      d.state = DeploymentState::kRollingBack;
      emit(fx, "deployment.rolling_back", "", "", "", "retrying failed rollbacks: " + cause);
      d.rollback_failed.clear();
      advance(d, ctx, fx);
      return Status::Ok();
    }
    case DeploymentState::kSucceeded:
      // Every wave is done; roll back all of them.
      d.wave_index = d.waves.empty() ? 0 : d.waves.size() - 1;
      break;
    default:
      break;
  }
  startRollback(d, cause, true, fx);
  advance(d, ctx, fx);
  return Status::Ok();
}

}  // namespace flotilla::coordinator
