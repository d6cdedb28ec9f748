// The post-deploy watch (issue 13, DESIGN.md "Policy"): once a deployment reached 100% on every
// wave, the tiers of its environment's watch (Plan::watch, from the policy at submission) run
// one after the other. Each tier sends every cluster the deployment reached one watch stage
// lasting the tier, in which its agent checks health (and, with metrics, the analysis and the
// alerts) at the tier's interval, and the script driver runs the plan's steps.watch. A watch
// stage that fails rolls the whole fleet back, whatever the plan's rollback scope: the new
// version reached every wave. The deployment succeeds when the last tier ends, or when an
// operator ends the watch early (endWatch).
#include <algorithm>
#include <chrono>
#include <string>

#include "common/time_format.hpp"
#include "coordinator/deployment.hpp"
#include "coordinator/deployment_internal.hpp"

namespace flotilla::coordinator {

using common::Status;

namespace deployment_internal {

namespace {

bool isWatchStage(const ClusterProgress& c) { return c.step && *c.step == Step::WATCH; }

// Whether cluster `c` ran tier `tier` to its end (or past it, by an early end).
bool tierDone(const ClusterProgress& c, int tier) {
  return isWatchStage(c) && c.step_index == tier && !c.in_flight &&
         c.state == ClusterState::kSucceeded;
}

std::string tierText(const common::WatchTier& tier) {
  return tier.name + " for " + common::formatDuration(tier.duration) + ", checks every " +
         common::formatDuration(tier.interval);
}

void succeedAfterWatch(Deployment& d, const std::string& how, Effects& fx) {
  d.watch_tier = static_cast<int>(d.plan.watch.size());
  d.state = DeploymentState::kSucceeded;
  d.reason.clear();
  emit(fx, "deployment.succeeded", "", "", "",
       d.plan.service + " " + d.plan.version + " is live on every wave; " + how);
}

bool anyWatchInFlight(const Deployment& d) {
  for (const auto& w : d.waves) {
    for (const auto& c : w.clusters) {
      if (c.in_flight && isWatchStage(c)) return true;
    }
  }
  return false;
}

void startTier(Deployment& d, int tier, const Context& ctx, Effects& fx) {
  d.watch_tier = tier;
  d.watch_tier_started_ms = common::toUnixMillis(ctx.now);
  const common::WatchTier& t = d.plan.watch[static_cast<size_t>(tier)];
  if (tier == 0) {
    std::string tiers;
    for (const auto& each : d.plan.watch) {
      tiers += (tiers.empty() ? "" : ", then ") + tierText(each);
    }
    emit(fx, "deployment.watching", "", "", "",
         d.plan.service + " " + d.plan.version + " is at 100% everywhere; watching: " + tiers +
             " (the automatic rollback stays armed; `flotilla watch-end " + d.id +
             "` ends it early)");
  } else {
    emit(fx, "deployment.watch_tier", "", "", "",
         "tier " + std::to_string(tier + 1) + " of " + std::to_string(d.plan.watch.size()) + ": " +
             tierText(t));
  }
}

}  // namespace

bool watchPending(const Deployment& d) {
  return !d.plan.watch.empty() && d.watch_tier < static_cast<int>(d.plan.watch.size());
}

void runWatch(Deployment& d, const Context& ctx, Effects& fx) {
  if (d.state != DeploymentState::kWatching) {
    d.state = DeploymentState::kWatching;
    d.reason.clear();
    fx.changed = true;
  }
  if (!d.watch_ended_by.empty()) {
    if (!anyWatchInFlight(d)) {
      emit(fx, "deployment.watch_ended", "", "", "", "watch ended early " + d.watch_ended_by);
      succeedAfterWatch(d, "the watch was ended early " + d.watch_ended_by, fx);
    }
    return;
  }
  if (d.watch_tier < 0) startTier(d, 0, ctx, fx);
  while (true) {
    const int tier = d.watch_tier;
    bool all_done = true;
    for (size_t wi = 0; wi < d.waves.size(); ++wi) {
      WaveProgress& w = d.waves[wi];
      for (auto& c : w.clusters) {
        if (d.state != DeploymentState::kWatching) return;
        if (tierDone(c, tier)) continue;
        all_done = false;
        // Only clusters on the new version and between two watch stages get the next one.
        if (c.in_flight || c.state != ClusterState::kSucceeded) continue;
        if (isWatchStage(c) && c.step_index >= tier) continue;
        const AgentInfo* agent = ctx.registry.find(c.name);
        if (agent == nullptr || agent->state == AgentState::kLost) {
          if (!agentLostBeforeStep(d, wi, c, agent != nullptr, fx)) return;
          continue;
        }
        dispatch(d, wi, c, Step::WATCH, tier, fx);
      }
    }
    if (!all_done) return;
    if (static_cast<size_t>(tier + 1) >= d.plan.watch.size()) {
      std::chrono::milliseconds sum{0};
      for (const auto& t : d.plan.watch) sum += t.duration;
      succeedAfterWatch(
          d, "watched for " + common::formatDuration(sum) + " after 100% with no " + "failure", fx);
      return;
    }
    startTier(d, tier + 1, ctx, fx);
  }
}

void recordWatchResult(Deployment& d, size_t wave, ClusterProgress& c, const StageResult& r,
                       Effects& fx) {
  const std::string& wname = d.waves[wave].name;
  const bool ended_early = !d.watch_ended_by.empty();
  if (r.outcome == Outcome::SUCCEEDED) {
    c.state = ClusterState::kSucceeded;
    emit(fx, "stage.succeeded", wname, c.name, stepName(Step::WATCH), r.message);
    return;
  }
  // The abort the early end asked for is a pass; any other abort is not.
  if (r.outcome == Outcome::ABORTED && ended_early && c.abort_sent) {
    c.state = ClusterState::kSucceeded;
    emit(fx, "stage.succeeded", wname, c.name, stepName(Step::WATCH),
         "watch ended early " + d.watch_ended_by);
    return;
  }
  if (r.outcome == Outcome::ABORTED) {
    c.state = ClusterState::kAborted;
    emit(fx, "stage.aborted", wname, c.name, stepName(Step::WATCH), r.message);
    return;
  }
  std::string what = r.message;
  if (what.empty()) {
    what = std::string(outcomeName(r.outcome)) + " (exit code " + std::to_string(r.exit_code) + ")";
  }
  emit(fx, "stage.failed", wname, c.name, stepName(Step::WATCH), what);
  c.state = ClusterState::kFailed;
  c.message = what;
  const size_t tier = static_cast<size_t>(std::max(c.step_index, 0));
  const std::string tier_name = tier < d.plan.watch.size() ? d.plan.watch[tier].name : "?";
  emit(fx, "cluster.failed", wname, c.name, stepName(Step::WATCH), what);
  if (d.state == DeploymentState::kRollingBack || isFinal(d.state)) return;
  if (!d.failure) d.failure = Failure{c.name, stepName(Step::WATCH), what};
  startRollback(
      d, "cluster " + c.name + " failed the post-deploy watch (tier " + tier_name + "): " + what,
      /*whole_fleet=*/true, fx);
}

}  // namespace deployment_internal

Status endWatch(Deployment& d, const Actor& by, const std::string& reason, const Context& ctx,
                Effects& fx) {
  using namespace deployment_internal;
  if (d.state != DeploymentState::kWatching) {
    return Status::FailedPrecondition("deployment " + d.id + " is " + deploymentStateName(d.state) +
                                      ", not watching");
  }
  if (!d.watch_ended_by.empty()) {
    return Status::FailedPrecondition("the watch of " + d.id + " is already ending (" +
                                      d.watch_ended_by + ")");
  }
  d.watch_ended_by = byActor(by, reason);
  emit(fx, "deployment.watch_ending", "", "", "",
       d.watch_ended_by + "; the watch stages in flight are stopped");
  for (auto& w : d.waves) {
    for (auto& c : w.clusters) {
      if (c.in_flight && isWatchStage(c) && !c.abort_sent) {
        c.abort_sent = true;
        fx.aborts.push_back(
            AbortRequest{c.name, c.stageId(), c.attempt, "watch ended " + d.watch_ended_by});
      }
    }
  }
  advance(d, ctx, fx);
  return Status::Ok();
}

}  // namespace flotilla::coordinator
