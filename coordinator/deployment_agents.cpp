// Agents lost and back: a cluster whose agent fell silent with a step out is waited for within
// the plan's max_unavailable_clusters; past it, on_agent_lost rolls back or pauses. A returning
// agent converges to the fleet's decision first.
#include <algorithm>
#include <cstdint>
#include <string>

#include "coordinator/deployment.hpp"
#include "coordinator/deployment_internal.hpp"

namespace flotilla::coordinator {

using deployment_internal::emit;
using deployment_internal::forwardFailed;

namespace {

// Clusters of `w` whose agent is lost with a step out.
uint32_t lostIn(const WaveProgress& w) {
  return static_cast<uint32_t>(std::count_if(w.clusters.begin(), w.clusters.end(),
                                             [](const auto& c) { return c.agent_lost; }));
}

uint32_t lostInFleet(const Deployment& d) {
  uint32_t n = 0;
  for (const auto& w : d.waves) n += lostIn(w);
  return n;
}

uint32_t waveBudget(const Deployment& d, size_t wave) {
  return d.plan.waves[wave].max_unavailable_clusters.value_or(d.plan.max_unavailable_clusters);
}

// Within both budgets: "" ; otherwise which one is exceeded, for people.
std::string overBudget(const Deployment& d, size_t wave) {
  const uint32_t in_wave = lostIn(d.waves[wave]);
  const uint32_t in_fleet = lostInFleet(d);
  if (in_wave > waveBudget(d, wave)) {
    return std::to_string(in_wave) + " clusters of wave " + d.waves[wave].name +
           " lost, over its max_unavailable_clusters " + std::to_string(waveBudget(d, wave));
  }
  if (in_fleet > d.plan.max_unavailable_clusters) {
    return std::to_string(in_fleet) + " clusters lost, over the fleet's max_unavailable_clusters " +
           std::to_string(d.plan.max_unavailable_clusters);
  }
  return "";
}

}  // namespace

void agentLost(Deployment& d, const std::string& cluster, const Context& ctx, Effects& fx) {
  size_t wave = 0;
  ClusterProgress* c = d.findCluster(cluster, &wave);
  if (c == nullptr || !c->in_flight || c->agent_lost || isFinal(d.state)) return;
  std::string step = stepName(*c->step);
  if (*c->step == Step::ROLLBACK) {
    c->in_flight = false;
    emit(fx, "agent.lost", d.waves[wave].name, cluster, step, "agent silent past the deadline");
    c->state = ClusterState::kRollbackFailed;
    c->rollback_lost = true;
    c->message = "agent lost during rollback (retried as soon as its agent is back)";
    emit(fx, "rollback.failed", d.waves[wave].name, cluster, step, c->message);
    advance(d, ctx, fx);
    return;
  }
  c->agent_lost = true;
  if (d.state == DeploymentState::kRollingBack) {
    emit(fx, "agent.lost", d.waves[wave].name, cluster, step, "agent silent past the deadline");
    advance(d, ctx, fx);  // its step can no longer be aborted: the rollback marks it
    return;
  }
  const std::string over = overBudget(d, wave);
  if (over.empty()) {
    emit(fx, "agent.lost", d.waves[wave].name, cluster, step,
         "agent silent past the deadline; waiting for it (" + std::to_string(lostInFleet(d)) +
             " lost, max_unavailable_clusters " + std::to_string(waveBudget(d, wave)) +
             " in the wave, " + std::to_string(d.plan.max_unavailable_clusters) + " in the fleet)");
    return;
  }
  if (d.plan.on_agent_lost == common::OnAgentLost::kWait) {
    emit(fx, "agent.lost", d.waves[wave].name, cluster, step,
         "agent silent past the deadline; " + over);
    if (d.state == DeploymentState::kRunning || d.state == DeploymentState::kAwaitingApproval) {
      d.resume_to = d.state;
      d.state = DeploymentState::kPaused;
      d.paused_for_lost = true;
      d.reason = over + " (on_agent_lost: wait); resumes when enough are back";
      emit(fx, "deployment.paused", "", "", "", d.reason);
    }
    return;
  }
  c->in_flight = false;
  emit(fx, "agent.lost", d.waves[wave].name, cluster, step, "agent silent past the deadline");
  forwardFailed(
      d, wave, *c,
      "agent lost during " + step +
          (d.plan.max_unavailable_clusters > 0 || waveBudget(d, wave) > 0 ? " (" + over + ")" : ""),
      fx);
  advance(d, ctx, fx);
}

namespace deployment_internal {

bool agentLostBeforeStep(Deployment& d, size_t wave, ClusterProgress& c, bool known, Effects& fx) {
  if (c.agent_lost) return true;  // already waited for
  c.agent_lost = true;
  const std::string step = c.step ? stepName(*c.step) : "";
  const std::string gone =
      known ? "agent lost before its " + std::string(c.step ? "next" : "first") + " step"
            : "no agent registered for the cluster any more";
  const std::string over = overBudget(d, wave);
  if (over.empty()) {
    emit(fx, "agent.lost", d.waves[wave].name, c.name, step,
         gone + "; waiting for it (" + std::to_string(lostInFleet(d)) +
             " lost, max_unavailable_clusters " + std::to_string(waveBudget(d, wave)) +
             " in the wave, " + std::to_string(d.plan.max_unavailable_clusters) + " in the fleet)");
    return true;
  }
  emit(fx, "agent.lost", d.waves[wave].name, c.name, step, gone + "; " + over);
  if (d.plan.on_agent_lost == common::OnAgentLost::kWait) {
    d.resume_to = d.state;
    d.state = DeploymentState::kPaused;
    d.paused_for_lost = true;
    d.reason = over + " (on_agent_lost: wait); resumes when enough are back";
    emit(fx, "deployment.paused", "", "", "", d.reason);
    return false;
  }
  c.agent_lost = false;  // counted no longer: the rollback decides about it
  forwardFailed(d, wave, c, gone + " (" + over + "; on_agent_lost: rollback)", fx);
  return false;
}

}  // namespace deployment_internal

void agentReturned(Deployment& d, const std::string& cluster, const Context& ctx, Effects& fx) {
  size_t wave = 0;
  ClusterProgress* c = d.findCluster(cluster, &wave);
  if (c == nullptr) return;
  WaveProgress& w = d.waves[wave];
  // Waited for before a step was sent to it: the step goes out now.
  const bool step_due = c->agent_lost && !c->in_flight;
  if (c->agent_lost) {
    c->agent_lost = false;
    emit(fx, "agent.returned", w.name, cluster, c->step ? stepName(*c->step) : "",
         c->in_flight ? "its step goes on" : "back");
  }
  if (c->rollback_lost && c->state == ClusterState::kRollbackFailed &&
      (d.state == DeploymentState::kFailed || d.state == DeploymentState::kRollingBack)) {
    // The fleet rolled back while this cluster could not: it rolls back now, first.
    c->rollback_lost = false;
    c->state = ClusterState::kFailed;
    if (w.state == WaveState::kFailed) w.state = WaveState::kRollingBack;
    if (d.state == DeploymentState::kFailed) {
      d.state = DeploymentState::kRollingBack;
      d.rollback_failed.clear();
      emit(fx, "deployment.rolling_back", "", "", "",
           "cluster " + cluster + " is back: rolling it back (after: " + d.rollback_cause + ")");
    }
    advance(d, ctx, fx);
    return;
  }
  if (d.paused_for_lost && d.state == DeploymentState::kPaused && overBudget(d, wave).empty()) {
    bool within = true;
    for (size_t i = 0; i < d.waves.size(); ++i) within &= overBudget(d, i).empty();
    if (within) {
      d.paused_for_lost = false;
      d.state = d.resume_to;
      d.reason.clear();
      emit(fx, "deployment.resumed", "", "", "", "enough lost clusters are back");
      advance(d, ctx, fx);
      return;
    }
  }
  if (step_due && d.state == DeploymentState::kRunning) advance(d, ctx, fx);
}

bool awaitsAgents(const Deployment& d) {
  for (const auto& w : d.waves) {
    for (const auto& c : w.clusters) {
      if (c.in_flight || c.rollback_lost) return true;
    }
  }
  return false;
}

}  // namespace flotilla::coordinator
