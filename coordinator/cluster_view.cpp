// Where a cluster is in its wave's strategy, from the forward steps the plan makes.
#include "coordinator/cluster_view.hpp"

#include <vector>

namespace flotilla::coordinator {

namespace {

// Forward states only: a rollback undoes the weight, and a pending cluster has none yet.
bool onForwardPath(ClusterState s) {
  switch (s) {
    case ClusterState::kPending:
    case ClusterState::kRollingBack:
    case ClusterState::kRolledBack:
    case ClusterState::kRollbackFailed:
      return false;
    default:
      return true;
  }
}

// A step of the strategy's traffic: a shift, or the script driver's first `apply` of a canary
// without a `switch` step (it sets the first weight itself).
bool movesTraffic(const common::Plan& plan, size_t wave, const StepSpec& step) {
  if (step.kind == Step::SHIFT) return true;
  return step.kind == Step::APPLY && plan.driver == common::DriverKind::kScript &&
         plan.strategyFor(wave).kind == common::StrategyKind::kCanary &&
         plan.steps.switch_traffic.empty();
}

}  // namespace

ClusterView viewCluster(const Deployment& d, size_t wave, const ClusterProgress& c) {
  ClusterView v;
  v.from_version = c.previous_version;
  v.to_version = d.plan.version;
  if (wave >= d.plan.waves.size()) return v;
  const std::vector<StepSpec> steps = forwardSteps(d.plan, wave);
  int shifts_so_far = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (!movesTraffic(d.plan, wave, steps[i])) continue;
    ++v.strategy_steps;
    if (c.step_index >= 0 && i <= static_cast<size_t>(c.step_index)) ++shifts_so_far;
  }
  if (v.strategy_steps == 0 || c.step_index < 0 || !onForwardPath(c.state) ||
      static_cast<size_t>(c.step_index) >= steps.size()) {
    return v;
  }
  v.strategy_step = shifts_so_far;
  v.weight = steps[static_cast<size_t>(c.step_index)].weight;
  return v;
}

}  // namespace flotilla::coordinator
