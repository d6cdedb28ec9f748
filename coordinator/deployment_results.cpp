// Stage results from agents: each moves its cluster on (or starts the rollback), one at a time
// or a turn's batch at once, then the deployment advances.
#include <algorithm>
#include <string>
#include <vector>

#include "coordinator/deployment.hpp"
#include "coordinator/deployment_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using deployment_internal::applyPromotion;
using deployment_internal::emit;
using deployment_internal::finishCheckRun;
using deployment_internal::forwardFailed;
using deployment_internal::holdFailedStep;
using deployment_internal::holdsFailedStep;
using deployment_internal::isActiveForward;
using deployment_internal::recordArtifact;
using deployment_internal::recordWatchResult;

namespace {

// Whether the forward step after the one `c` ran last is `kind`.
bool nextStepIs(const Deployment& d, size_t wave, const ClusterProgress& c, Step kind) {
  const std::vector<StepSpec> steps = forwardSteps(d.plan, wave);
  size_t next = static_cast<size_t>(c.step_index + 1);
  return c.step_index >= 0 && next < steps.size() && steps[next].kind == kind;
}

// A result's effect on its cluster, without moving the deployment on (the caller advances).
Status recordResult(Deployment& d, const StageResult& result, const Context& ctx, Effects& fx) {
  size_t wave = 0;
  ClusterProgress* c = d.findCluster(result.cluster, &wave);
  if (c == nullptr || !c->in_flight || c->stageId() != result.stage_id ||
      c->attempt != result.attempt) {
    return Status::NotFound("no stage " + result.stage_id + " attempt " +
                            std::to_string(result.attempt) + " in flight for " + d.id);
  }
  StageResult r = result;
  if (!c->promoted_by.empty()) applyPromotion(*c, r);
  c->in_flight = false;
  c->exit_code = r.exit_code;
  c->message = r.message;
  fx.changed = true;
  ++fx.results;
  const std::string& wname = d.waves[wave].name;
  Step step = *c->step;
  bool ok = r.outcome == Outcome::SUCCEEDED;
  if (step == Step::VERIFY) finishCheckRun(*c, wname, r, fx);

  if (step == Step::WATCH) {
    recordWatchResult(d, wave, *c, r, fx);
  } else if (step == Step::ROLLBACK) {
    if (ok) {
      c->state = ClusterState::kRolledBack;
      fx.releases.push_back(ReleaseChange{d.plan.service, c->name, c->previous_version});
      emit(fx, "rollback.succeeded", wname, c->name, "rollback",
           c->previous_version.empty() ? "rolled back" : "back on " + c->previous_version);
    } else {
      c->state = ClusterState::kRollbackFailed;
      emit(fx, "rollback.failed", wname, c->name, "rollback",
           std::string(outcomeName(r.outcome)) + ": " + r.message);
    }
  } else if (ok) {
    emit(fx, "stage.succeeded", wname, c->name, stepName(step), r.message);
    if (step == Step::BUILD && !r.artifact.empty()) {
      recordArtifact(d, wname, c->name, r.artifact, ctx, fx);
    }
    if (static_cast<size_t>(c->step_index + 1) >= forwardSteps(d.plan, wave).size()) {
      c->state = ClusterState::kSucceeded;
      fx.releases.push_back(ReleaseChange{d.plan.service, c->name, d.plan.version});
      emit(fx, "cluster.succeeded", wname, c->name, "", "on " + d.plan.version);
    }
    // Between steps: the cluster keeps its in-flight state name; advance() sends the next step
    // unless the deployment stopped meanwhile.
    if (d.state == DeploymentState::kRollingBack || isFinal(d.state)) {
      if (c->state != ClusterState::kSucceeded) c->state = ClusterState::kAborted;
    }
  } else if (r.outcome == Outcome::ABORTED) {
    c->state = ClusterState::kAborted;
    emit(fx, "stage.aborted", wname, c->name, stepName(step), r.message);
  } else if (r.outcome == Outcome::UNKNOWN && step == Step::APPLY &&
             nextStepIs(d, wave, *c, Step::VERIFY)) {
    // The agent died while apply ran: the cluster may or may not run the new version. Apply is
    // never sent again; the plan's verify, next anyway, decides: success means the apply took,
    // failure rolls back (c->applied is already set, so this cluster is rolled back too).
    emit(fx, "stage.unknown", wname, c->name, stepName(step),
         (r.message.empty() ? std::string("effect unknown") : r.message) +
             "; re-checking with verify");
    if (d.state == DeploymentState::kRollingBack || isFinal(d.state)) {
      c->state = ClusterState::kAborted;
    }
  } else {
    // The agent's message already says how the step ended ("exit code 3: <last line>").
    std::string what = r.message;
    if (what.empty()) {
      what =
          std::string(outcomeName(r.outcome)) + " (exit code " + std::to_string(r.exit_code) + ")";
    }
    emit(fx, "stage.failed", wname, c->name, stepName(step), what);
    if (holdsFailedStep(d, step, r.outcome)) {
      holdFailedStep(d, wave, *c, what, fx);
    } else {
      forwardFailed(d, wave, *c, what, fx);
    }
  }
  return Status::Ok();
}

}  // namespace

Status applyResult(Deployment& d, const StageResult& r, const Context& ctx, Effects& fx) {
  Status s = recordResult(d, r, ctx, fx);
  if (!s.ok()) return s;
  advance(d, ctx, fx);
  return Status::Ok();
}

size_t applyResults(Deployment& d, const std::vector<StageResult>& results, const Context& ctx,
                    Effects& fx) {
  size_t stale = 0;
  for (const auto& r : results) {
    if (!recordResult(d, r, ctx, fx).ok()) ++stale;
  }
  if (stale == results.size()) return stale;
  if (d.state == DeploymentState::kRollingBack || isFinal(d.state)) {
    // A cluster whose step succeeded earlier in the batch than the failure that stopped the
    // deployment is between steps: it goes no further (one result at a time it would have been
    // sent its next step and had it aborted).
    for (auto& w : d.waves) {
      for (auto& c : w.clusters) {
        if (!c.in_flight && isActiveForward(c)) c.state = ClusterState::kAborted;
      }
    }
  }
  // A failure among them aborted the stages in flight, some of which answered in this batch.
  fx.aborts.erase(std::remove_if(fx.aborts.begin(), fx.aborts.end(),
                                 [&](const AbortRequest& a) {
                                   const ClusterProgress* c = d.findCluster(a.cluster);
                                   return c == nullptr || !c->in_flight ||
                                          c->stageId() != a.stage_id || c->attempt != a.attempt;
                                 }),
                  fx.aborts.end());
  advance(d, ctx, fx);
  return stale;
}

}  // namespace flotilla::coordinator
