// One deployment per service at a time: which deployments conflict, what a deployment waits
// for, the queue it waits in, and a newer submission superseding an older one. The engine
// (coordinator/engine.cpp) holds every unfinished deployment and asks these rules; they only
// change the deployments they are given.
#include <algorithm>
#include <charconv>
#include <set>
#include <string>

#include "coordinator/deployment.hpp"
#include "coordinator/deployment_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using deployment_internal::byActor;
using deployment_internal::emit;
using deployment_internal::startRollback;

std::optional<std::vector<std::string>> namedClusters(const common::Plan& plan) {
  std::set<std::string> names;
  for (const auto& w : plan.waves) {
    if (!w.selector.empty()) return std::nullopt;
    names.insert(w.clusters.begin(), w.clusters.end());
  }
  return std::vector<std::string>(names.begin(), names.end());
}

std::optional<std::string> conflictBetween(const common::Plan& a, const common::Plan& b) {
  if (a.service != b.service) return std::nullopt;
  auto in_a = namedClusters(a);
  auto in_b = namedClusters(b);
  if (!in_a || !in_b) {
    return std::string(
        "(a wave picks its clusters by selector, so any cluster of the service "
        "counts)");
  }
  std::vector<std::string> both;
  std::set_intersection(in_a->begin(), in_a->end(), in_b->begin(), in_b->end(),
                        std::back_inserter(both));
  if (both.empty()) return std::nullopt;
  std::string names;
  for (const auto& n : both) names += (names.empty() ? "" : ", ") + n;
  return "on " + names;
}

uint64_t submissionOrder(const Deployment& d) {
  const size_t dash = d.id.rfind('-');
  if (dash == std::string::npos) return 0;
  uint64_t seq = 0;
  const char* first = d.id.data() + dash + 1;
  const char* last = d.id.data() + d.id.size();
  auto [end, error] = std::from_chars(first, last, seq);
  if (error != std::errc() || end != last) return 0;
  return seq;
}

const Deployment* blockerOf(const Deployment& d, const std::vector<const Deployment*>& others) {
  const uint64_t mine = submissionOrder(d);
  const Deployment* ahead = nullptr;
  for (const Deployment* o : others) {
    if (o->id == d.id || isFinal(o->state)) continue;
    const uint64_t theirs = submissionOrder(*o);
    if (theirs >= mine || !conflictBetween(d.plan, o->plan)) continue;
    if (ahead == nullptr || theirs > submissionOrder(*ahead)) ahead = o;
  }
  return ahead;
}

Status refuseQueued(const common::Plan& plan, const Deployment& ahead) {
  const std::string where = conflictBetween(plan, ahead.plan).value_or("");
  return Status::FailedPrecondition(
      "deployment " + ahead.id + " of " + plan.service + " is in flight (" +
      deploymentStateName(ahead.state) + ") " + where +
      "; one deployment per service at a time, and queueing was turned off, so nothing was "
      "stored. Wait for it, cancel it, or submit with supersede to roll it back first");
}

void waitFor(Deployment& d, const Deployment& ahead, Effects& fx) {
  if (d.state == DeploymentState::kQueued && d.waits_for == ahead.id) return;
  d.state = DeploymentState::kQueued;
  d.waits_for = ahead.id;
  d.reason = "queued behind " + ahead.id + " (" + deploymentStateName(ahead.state) + ") " +
             conflictBetween(d.plan, ahead.plan).value_or("") +
             ": one deployment per service at a time; starts when it finishes";
  emit(fx, "deployment.queued", "", "", "", d.reason);
}

void leaveQueue(Deployment& d, const Context& ctx, Effects& fx) {
  if (d.state != DeploymentState::kQueued) return;
  const std::string ahead = d.waits_for;
  d.state = DeploymentState::kPending;
  d.waits_for.clear();
  d.reason.clear();
  emit(fx, "deployment.dequeued", "", "", "",
       (ahead.empty() ? std::string("nothing ahead") : ahead + " finished") + "; starting");
  advance(d, ctx, fx);
}

void supersede(Deployment& d, const std::string& by_id, const Actor& by, const Context& ctx,
               Effects& fx) {
  const std::string cause = "superseded by " + by_id + " (" + byActor(by, "") + ")";
  if (isFinal(d.state)) return;
  if (d.state == DeploymentState::kQueued) {
    d.state = DeploymentState::kCancelled;
    d.waits_for.clear();
    d.reason = cause + "; it was queued and nothing ran";
    emit(fx, "deployment.cancelled", "", "", "", d.reason);
    return;
  }
  if (d.state == DeploymentState::kRollingBack) {
    emit(fx, "deployment.superseded", "", "", "", cause + "; its rollback in progress goes on");
    return;
  }
  emit(fx, "deployment.superseded", "", "", "",
       cause + ": steps in flight are aborted, then every cluster it reached is rolled back");
  d.cancelling = false;
  startRollback(d, cause, /*whole_fleet=*/true, fx);
  advance(d, ctx, fx);
}

}  // namespace flotilla::coordinator
