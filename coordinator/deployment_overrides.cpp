// Operator overrides of the machine's own judgement: promote (skip the analysis or bake a
// cluster has in flight) and, for plans with on_step_failure: hold, holding a failed step and
// retrying it as a new attempt.
#include <algorithm>
#include <string>
#include <vector>

#include "coordinator/deployment.hpp"
#include "coordinator/deployment_internal.hpp"
#include "coordinator/freeze.hpp"

namespace flotilla::coordinator {

using common::Status;
using deployment_internal::byActor;
using deployment_internal::dispatch;
using deployment_internal::emit;
using deployment_internal::heldReason;

namespace {

// The clusters whose failed step is held, in wave order.
std::vector<const ClusterProgress*> heldClusters(const Deployment& d) {
  std::vector<const ClusterProgress*> out;
  for (const auto& w : d.waves) {
    for (const auto& c : w.clusters) {
      if (c.held) out.push_back(&c);
    }
  }
  return out;
}

std::string waveNames(const Deployment& d) {
  std::string out;
  for (const auto& w : d.waves) out += (out.empty() ? "" : ", ") + w.name;
  return out;
}

// "apply" for the step a cluster has (had) in flight.
std::string stepOf(const ClusterProgress& c) { return c.step ? stepName(*c.step) : "dispatch"; }

}  // namespace

namespace deployment_internal {

bool holdsFailedStep(const Deployment& d, Step step, Outcome outcome) {
  if (d.plan.on_step_failure != common::OnStepFailure::kHold) return false;
  if (outcome != Outcome::FAILED && outcome != Outcome::TIMED_OUT) return false;
  if (d.state == DeploymentState::kRollingBack || isFinal(d.state)) return false;
  // Analysis, bake and watch verdicts are the workflow's rollback triggers, not failed steps.
  return step != Step::ANALYZE && step != Step::BAKE && step != Step::WATCH &&
         step != Step::ROLLBACK;
}

std::string heldReason(const Deployment& d) {
  constexpr size_t kNamed = 3;  // a reason names a few; `status` shows them all
  const std::vector<const ClusterProgress*> held = heldClusters(d);
  std::string out = "held: ";
  for (size_t i = 0; i < held.size() && i < kNamed; ++i) {
    const ClusterProgress& c = *held[i];
    out += (i == 0 ? "" : "; ") + std::string("cluster ") + c.name + " failed at " + stepOf(c) +
           ": " + c.message;
  }
  if (held.size() > kNamed) out += "; and " + std::to_string(held.size() - kNamed) + " more";
  const std::string first = held.empty() ? "CLUSTER" : held.front()->name;
  out += " (on_step_failure: hold). Run `flotilla retry " + d.id + " " + first +
         "` to run the step again, or `flotilla rollback " + d.id + "` to roll back";
  return out;
}

void holdFailedStep(Deployment& d, size_t wave, ClusterProgress& c, const std::string& message,
                    Effects& fx) {
  c.state = ClusterState::kFailed;
  c.held = true;
  c.message = message;
  if (d.state != DeploymentState::kPaused) {
    // A frozen deployment keeps where the freeze stopped it.
    if (d.state != DeploymentState::kFrozen) d.resume_to = d.state;
    d.state = DeploymentState::kPaused;
  }
  // A deployment paused for lost agents no longer resumes by itself: a human must choose.
  d.paused_for_lost = false;
  d.reason = heldReason(d);
  emit(fx, "cluster.held", d.waves[wave].name, c.name, stepOf(c),
       message + " (on_step_failure: hold: no rollback yet)");
  emit(fx, "deployment.paused", "", "", "", d.reason);
}

void applyPromotion(ClusterProgress& c, StageResult& r) {
  const std::string who = "promoted by " + c.promoted_by;
  c.promoted_by.clear();
  if (r.outcome == Outcome::ABORTED || r.outcome == Outcome::SUCCEEDED) {
    r.outcome = Outcome::SUCCEEDED;
    r.message = who;
    return;
  }
  const std::string what = r.message.empty() ? std::string(outcomeName(r.outcome)) : r.message;
  r.message = what + " (the agent reported this before the promote (" + who + ") reached it)";
}

}  // namespace deployment_internal

Status promote(Deployment& d, const std::string& wave, const Actor& by, const std::string& reason,
               const Context&, Effects& fx) {
  switch (d.state) {
    case DeploymentState::kRunning:
    case DeploymentState::kPaused:  // its stages in flight still finish: they may be promoted
    case DeploymentState::kFrozen:
      break;
    case DeploymentState::kAwaitingApproval:
      return Status::FailedPrecondition(
          "deployment " + d.id + " waits for approval of wave " + d.waves[d.wave_index].name +
          "; promote never passes an approval gate (run `flotilla approve " + d.id + "`)");
    default:
      return Status::FailedPrecondition("deployment " + d.id + " is " +
                                        deploymentStateName(d.state) + "; nothing to promote");
  }
  if (d.wave_index >= d.waves.size()) {
    return Status::FailedPrecondition("deployment " + d.id + " has no running wave");
  }
  WaveProgress& w = d.waves[d.wave_index];
  if (!wave.empty() && wave != w.name) {
    const bool known = std::any_of(d.waves.begin(), d.waves.end(),
                                   [&](const WaveProgress& x) { return x.name == wave; });
    if (!known) {
      return Status::FailedPrecondition("deployment " + d.id + " has no wave named " + wave +
                                        " (its waves: " + waveNames(d) + ")");
    }
    return Status::FailedPrecondition("wave " + wave + " is not the running wave of deployment " +
                                      d.id + " (the running wave is " + w.name +
                                      "); only the running wave can be promoted");
  }
  const std::string name = by.name.empty() ? std::string("an unnamed caller") : by.name;
  size_t promoted = 0;
  std::string states;
  for (auto& c : w.clusters) {
    const bool judging = c.step && (*c.step == Step::ANALYZE || *c.step == Step::BAKE);
    if (c.in_flight && judging && !c.abort_sent) {
      // Durable first: the engine writes this record before the abort goes out, so a restart in
      // between still counts the stage as promoted (the abort is sent again on reconnect).
      c.promoted_by = name;
      c.abort_sent = true;
      fx.aborts.push_back(AbortRequest{c.name, c.stageId(), c.attempt, "promoted by " + name});
      emit(fx, "cluster.promoted", w.name, c.name, stepName(*c.step),
           byActor(by, reason) + " (" + stepName(*c.step) + " skipped; counted as passed)");
      ++promoted;
      continue;
    }
    states += (states.empty() ? "" : ", ") + c.name + " " + clusterStateName(c.state);
  }
  if (promoted == 0) {
    return Status::FailedPrecondition("nothing to promote: no cluster of wave " + w.name +
                                      " is analyzing or baking" +
                                      (states.empty() ? std::string() : " (" + states + ")"));
  }
  return Status::Ok();
}

Status retry(Deployment& d, const std::string& cluster, const Actor& by, const std::string& reason,
             const Context& ctx, Effects& fx) {
  if (isFinal(d.state)) {
    return Status::FailedPrecondition("deployment " + d.id + " is " + deploymentStateName(d.state) +
                                      "; nothing to retry");
  }
  if (d.plan.on_step_failure != common::OnStepFailure::kHold) {
    return Status::FailedPrecondition(
        "the plan of deployment " + d.id +
        " does not hold failed steps (on_step_failure: rollback, the default): a failed step "
        "rolls back and cannot be retried; plans with `on_step_failure: hold` can be");
  }
  size_t wave = 0;
  ClusterProgress* c = d.findCluster(cluster, &wave);
  if (c == nullptr) {
    return Status::NotFound("deployment " + d.id + " has no cluster named " + cluster);
  }
  if (d.state == DeploymentState::kRollingBack) {
    return Status::FailedPrecondition("deployment " + d.id + " is rolling back; nothing to retry");
  }
  if (!c->held) {
    return Status::FailedPrecondition("cluster " + cluster +
                                      " has no failed step to retry (it is " +
                                      clusterStateName(c->state) + ")");
  }
  const uint32_t retries = c->attempt > 0 ? c->attempt - 1 : 0;  // attempt 1 was the first run
  if (retries >= kMaxStepRetries) {
    return Status::FailedPrecondition(
        "step " + stepOf(*c) + " on " + cluster + " was already retried " +
        std::to_string(retries) + " times, the most allowed; roll back with `flotilla rollback " +
        d.id + "`");
  }
  if (ctx.registry.find(cluster) == nullptr || ctx.registry.isLost(cluster)) {
    return Status::FailedPrecondition("the agent of cluster " + cluster +
                                      " is lost; retry once it is back");
  }
  // A retry starts a step: not while a freeze holds the deployment.
  if (const Freeze* freeze = ctx.freezes == nullptr
                                 ? nullptr
                                 : coveringFreeze(*ctx.freezes, d, ctx.registry.agents())) {
    return Status::FailedPrecondition("deployment " + d.id + " is frozen (" +
                                      describeFreeze(*freeze) + "); retry after the unfreeze");
  }
  // Same step, same place: dispatch() makes it the next attempt, a stage the agent has no record
  // of (its records are keyed by deployment, stage and attempt), so it runs again.
  dispatch(d, wave, *c, *c->step, c->step_index, fx);
  emit(fx, "cluster.retried", d.waves[wave].name, c->name, stepOf(*c),
       byActor(by, reason) + " (attempt " + std::to_string(c->attempt) + ", retry " +
           std::to_string(retries + 1) + " of " + std::to_string(kMaxStepRetries) + ")");
  if (!heldClusters(d).empty()) {
    d.reason = heldReason(d);  // still held on another cluster
    return Status::Ok();
  }
  d.state = d.resume_to;
  d.reason.clear();
  emit(fx, "deployment.resumed", "", "", "", "resumed by the retry on " + c->name);
  advance(d, ctx, fx);
  return Status::Ok();
}

}  // namespace flotilla::coordinator
