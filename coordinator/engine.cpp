// The engine: durable transitions first, then commands. Here: start and resume, the turn's
// queued results, time, operator actions, and durable change then delivery. What agents'
// frames mean is in engine_messages.cpp.
#include "coordinator/engine.hpp"

#include <capnp/message.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/failpoint.hpp"
#include "common/rules.hpp"
#include "common/user_text.hpp"
#include "coordinator/promotion.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;

namespace {

constexpr auto kRetryEvery = std::chrono::seconds(1);
// Silent agents are looked for this often (a pass over every agent; the deadline is seconds
// long), and the agents' snapshot republished at most this often.
constexpr auto kExpireEvery = std::chrono::milliseconds(500);
constexpr auto kPublishAgentsEvery = std::chrono::milliseconds(100);
// Heartbeats only move last-seen times: the API counts silence from the snapshot's, so that is
// republished at most this often, and at least every half heartbeat, so that a live agent's
// silence as the API counts it stays well inside three heartbeats.
constexpr auto kPublishSeenEvery = std::chrono::milliseconds(500);

}  // namespace

Engine::Engine(Store& store, Metrics& metrics, Outbox& outbox, const common::Clock& clock,
               EngineOptions options)
    : store_(store),
      metrics_(metrics),
      outbox_(outbox),
      clock_(clock),
      options_(options),
      trust_(store),
      gate_(trust_, outbox, metrics, clock, options.insecure_agents) {}

Status Engine::start() {
  auto epoch = store_.bumpEpoch();
  if (!epoch.ok()) return epoch.status();
  epoch_ = *epoch;
  Status trusted = trust_.load();
  if (!trusted.ok()) return trusted;
  nonces_ = StageNonce(trust_.nonceSecret());
  auto agents = store_.loadAgents();
  if (!agents.ok()) return agents.status();
  for (auto& a : *agents) {
    registry_.restore(a.cluster, a.labels, a.agent_version, clock_.now(), clock_.wallNow());
  }
  // Before the deployments move: a freeze survives a restart.
  Status frozen = loadFreezes();
  if (!frozen.ok()) return frozen;
  auto deployments = store_.loadDeployments();
  if (!deployments.ok()) return deployments.status();
  size_t resumed = 0;
  for (auto& d : *deployments) {
    if (isFinal(d.state) && !awaitsAgents(d)) continue;
    if (!isFinal(d.state)) ++resumed;
    std::string id = d.id;
    deployments_.emplace(id, std::move(d));
  }
  spdlog::info("epoch {}: {} agents known, {} unfinished deployments resumed", epoch_,
               agents->size(), resumed);
  // In-flight commands are resent when each agent registers again (it is
  // told to by its first heartbeat under the new epoch); anything that can
  // move without an agent moves now.
  for (auto& [id, d] : deployments_) {
    Status s = mutate(id, [](Deployment& dep, const Context& ctx, Effects& fx) {
      advance(dep, ctx, fx);
      return Status::Ok();
    });
    if (!s.ok()) spdlog::error("resuming {}: {}", id, s.toString());
  }
  // A deployment queued behind one that finished while the coordinator was down starts now.
  releaseQueue();
  // Now, not at the first tick: a submission that comes at once is checked against the
  // clusters the registry restored.
  publishAgents();
  publishAgentsNow();
  publishGauges();
  return Status::Ok();
}

// ---- Stage results: a turn's at once, per deployment ----------------------------------------

void Engine::endTurn() {
  while (!queued_results_.empty()) {
    const std::string id = queued_results_.begin()->first;  // a copy: the entry is erased
    applyQueuedResults(id);
  }
}

void Engine::applyQueuedResults(const std::string& id) {
  auto queued = queued_results_.find(id);
  if (queued == queued_results_.end()) return;
  const std::vector<StageResult> results = std::move(queued->second);
  queued_results_.erase(queued);
  size_t stale = 0;
  Status s = transition(id, [&](Deployment& d, const Context& ctx, Effects& fx) {
    stale = applyResults(d, results, ctx, fx);
    return Status::Ok();
  });
  if (s.isNotFound()) stale = results.size();
  for (size_t i = 0; i < stale; ++i) metrics_.staleResult();
  if (stale > 0) spdlog::debug("{} stale results for {}", stale, id);
  if (!s.ok() && !s.isNotFound()) {
    spdlog::error("applying {} results for {}: {}", results.size(), id, s.toString());
  }
}

// ---- Time -------------------------------------------------------------------------------

void Engine::tick() {
  endTurn();
  const auto now = clock_.now();
  std::vector<std::string> newly_lost;
  if (!last_expire_ || now - *last_expire_ >= kExpireEvery) {
    last_expire_ = now;
    // Three missed heartbeats make an agent unknown; the deadline makes it lost.
    bool changed = false;
    newly_lost = registry_.expire(now, options_.agent_lost_after, &changed);
    if (changed) publishAgents();
  }
  if (!newly_lost.empty()) {
    for (const std::string& cluster : newly_lost) {
      spdlog::warn("agent {} lost: silent for over {} ms", cluster,
                   options_.agent_lost_after.count());
      // Its connection is dead or stuck: close it, so that the agent (when it is there) comes
      // back on a new one, which is refused while this one is open.
      gate_.disconnect(cluster);
    }
    // One transition per deployment for everything lost in this pass (a rack of agents can
    // fall silent at once).
    std::vector<std::string> ids;
    for (auto& [id, d] : deployments_) ids.push_back(id);
    for (const auto& id : ids) {
      Status s = mutate(id, [&](Deployment& d, const Context& ctx, Effects& fx) {
        for (const std::string& cluster : newly_lost) agentLost(d, cluster, ctx, fx);
        return Status::Ok();
      });
      if (!s.ok()) spdlog::error("marking agents lost in {}: {}", id, s.toString());
    }
    publishAgents();
  }
  if (now - last_retry_ >= kRetryEvery) {
    last_retry_ = now;
    // advance() is idempotent: this only writes when something can move,
    // e.g. after a failed write or a wave whose agents were not there yet.
    std::vector<std::string> ids;
    for (auto& [id, d] : deployments_) ids.push_back(id);
    for (const auto& id : ids) {
      Status s = mutate(id, [](Deployment& d, const Context& ctx, Effects& fx) {
        advance(d, ctx, fx);
        return Status::Ok();
      });
      s.ignoreError();  // logged inside mutate
    }
    releaseQueue();  // after a failed write, or a finish whose release failed
    // Forget finished deployments with nothing in flight; they live on in the store.
    for (auto it = deployments_.begin(); it != deployments_.end();) {
      // Not while its last change is only gathered (a flush that fails keeps it there): the
      // store would hand back the older durable state to whoever loads it next.
      const bool forget =
          isFinal(it->second.state) && !awaitsAgents(it->second) && !store_.hasPending(it->first);
      if (forget) store_.forget(it->first);
      it = forget ? deployments_.erase(it) : std::next(it);
    }
    publishGauges();
  }
  // The HTTP snapshot is a copy of the whole registry: at most ten copies a second.
  const auto since_publish =
      last_agents_publish_ ? now - *last_agents_publish_ : common::SteadyTime::duration::max();
  if ((agents_dirty_ && since_publish >= kPublishAgentsEvery) ||
      (agents_seen_dirty_ &&
       since_publish >= std::min<std::chrono::milliseconds>(kPublishSeenEvery,
                                                            options_.heartbeat_interval / 2))) {
    last_agents_publish_ = now;
    agents_dirty_ = true;
    publishAgentsNow();
  }
}

// ---- Operator actions -------------------------------------------------------------------

StatusOr<std::string> Engine::submit(common::Plan plan, const Actor& actor,
                                     const SubmitOptions& options) {
  // An incident freeze refuses it before anything is stored (the HTTP layer checked too, on
  // what was durable then; this is the check that counts).
  Status allowed = checkSubmissionAllowed(plan, freezes_, registry_.agents());
  if (!allowed.ok()) return allowed;
  // One deployment per service: what is in flight for it, checked before anything is stored.
  std::vector<std::string> in_flight;
  const Deployment* ahead = nullptr;    // the latest: what a queued submission waits for
  const Deployment* started = nullptr;  // the latest that is not itself queued
  for (const auto& [other_id, other] : deployments_) {
    if (isFinal(other.state) || !conflictBetween(plan, other.plan)) continue;
    in_flight.push_back(other_id);
    if (ahead == nullptr || submissionOrder(other) > submissionOrder(*ahead)) ahead = &other;
    if (other.state != DeploymentState::kQueued &&
        (started == nullptr || submissionOrder(other) > submissionOrder(*started))) {
      started = &other;
    }
  }
  if (ahead != nullptr && !options.queue && !options.supersede) {
    return refuseQueued(plan, started != nullptr ? *started : *ahead);
  }
  if (options.supersede && options.may_supersede) {
    for (const auto& other_id : in_flight) {
      Status allowed = options.may_supersede(deployments_.at(other_id));
      if (!allowed.ok()) return allowed;
    }
  }
  // Promotion: a wave that enters an environment the plan has not deployed to first must find
  // the release already promoted (the HTTP layer said so too, on what was durable then).
  auto release = releaseRecord(plan);
  if (!release.ok()) return release.status();
  Status promoted =
      promotionRefusal(plan, promotionGaps(plan, *release, common::toUnixMillis(clock_.wallNow())));
  if (!promoted.ok()) return promoted;
  auto seq = store_.nextDeploymentSeq();
  if (!seq.ok()) return seq.status();
  std::string id = plan.service + "-" + std::to_string(*seq);
  Effects fx;
  Deployment d = newDeployment(id, std::move(plan), actor, clock_.wallNow(), fx);
  d.changes = options.changes;
  d.release_notes_url = options.release_notes_url;
  if (!options.trigger.empty()) {
    fx.events.push_back(
        Event{"deployment.triggered", "", "", "",
              "by trigger " + options.trigger + " (token " + actor.name + "), no human involved"});
    fx.changed = true;
  }
  auto releases = releasesFor(d.plan.service);
  if (!releases.ok()) return releases.status();
  Context ctx{registry_, clock_.wallNow(), **releases, *release, &freezes_};
  if (ahead != nullptr) {
    waitFor(d, *ahead, fx);
  } else {
    advance(d, ctx, fx);
  }
  if (isFinal(d.state)) d.finished_ms = common::toUnixMillis(ctx.now);
  Status s = commitAndRemember(d, fx);
  if (!s.ok()) return s;
  // Crash test: committed (synced, or gathered for the loop's group commit), and neither its
  // client nor any agent has heard of it.
  FLOTILLA_FAILPOINT("coordinator.after_submit_commit_before_reply");
  metrics_.deploymentSubmitted();
  spdlog::info("deployment {} accepted: {} {}{}", id, d.plan.service, d.plan.version,
               ahead != nullptr ? " (queued behind " + ahead->id + ")" : "");
  auto [it, inserted] = deployments_.emplace(id, std::move(d));
  deliver(it->second, fx);
  if (listener_) listener_(id);
  if (options.supersede) {
    // Stored first: if the coordinator stops here, the new deployment waits in the queue
    // behind the old ones instead of being lost. Newest first, and the queue held until all
    // are stopped, so that none of them starts in between only to be rolled back.
    std::sort(in_flight.begin(), in_flight.end(), [&](const std::string& a, const std::string& b) {
      return submissionOrder(deployments_.at(a)) > submissionOrder(deployments_.at(b));
    });
    const bool held = releasing_queue_;
    releasing_queue_ = true;
    for (const auto& other_id : in_flight) {
      Status stopped = mutate(other_id, [&](Deployment& other, const Context& c, Effects& f) {
        supersede(other, id, actor, c, f);
        return Status::Ok();
      });
      if (!stopped.ok()) spdlog::error("superseding {}: {}", other_id, stopped.toString());
    }
    releasing_queue_ = held;
    releaseQueue();
  }
  return id;
}

Status Engine::act(const std::string& id, Action action, const std::string& argument,
                   const Actor& actor, const std::string& reason) {
  if (!deployments_.count(id)) {
    // Finished deployments are not kept in memory; a rollback after success needs them.
    auto stored = store_.loadDeployment(id);
    if (!stored.ok()) return stored.status();
    deployments_.emplace(id, std::move(stored).value());
  }
  return mutate(id, [&](Deployment& d, const Context& ctx, Effects& fx) {
    switch (action) {
      case Action::kApprove:
        return approve(d, argument, actor, ctx, fx);
      case Action::kRollback:
        return requestRollback(d, actor, argument, ctx, fx);
      case Action::kPause:
        return pause(d, actor, argument, ctx, fx);
      case Action::kResume:
        return resume(d, actor, argument, ctx, fx);
      case Action::kCancel:
        return cancel(d, actor, argument, ctx, fx);
      case Action::kPromote:
        return promote(d, argument, actor, reason, ctx, fx);
      case Action::kRetry:
        return retry(d, argument, actor, reason, ctx, fx);
      case Action::kNote:
        return addNote(d, argument, actor, ctx, fx);
      case Action::kWatchEnd:
        return endWatch(d, actor, argument, ctx, fx);
    }
    return Status::Internal("unknown action");
  });
}

// ---- Agent trust --------------------------------------------------------------------------

StatusOr<Enrollment> Engine::createEnrollment(const std::string& cluster,
                                              std::chrono::milliseconds ttl, const Actor& actor) {
  return gate_.createEnrollment(cluster, ttl.count(), actor);
}

Status Engine::revokeAgent(const std::string& cluster, const Actor& actor) {
  return gate_.revoke(cluster, actor);
}

Status Engine::removeAgent(const std::string& cluster, const Actor& actor) {
  for (const auto& [id, d] : deployments_) {
    if (!isFinal(d.state) && d.findCluster(cluster) != nullptr) {
      return Status::FailedPrecondition("cluster " + cluster +
                                        " is part of unfinished deployment " + id +
                                        ": cancel or finish it first");
    }
  }
  const bool known = registry_.find(cluster) != nullptr;
  Status revoked = gate_.revoke(cluster, actor);
  if (!revoked.ok() && !revoked.isNotFound()) return revoked;
  if (!known && revoked.isNotFound()) return Status::NotFound("no cluster named " + cluster);
  gate_.disconnect(cluster);
  Status s = store_.removeAgent(cluster);
  if (!s.ok()) return s;
  registry_.remove(cluster);
  publishAgents();
  spdlog::info("cluster {} removed by {}", cluster, actor.name);
  gate_.recordRemoval(cluster, actor);
  return Status::Ok();
}

// ---- Durable change, then delivery ------------------------------------------------------

StatusOr<const ReleaseRecord*> Engine::releaseRecord(const common::Plan& plan) {
  // Every deployment's: a build may report an artifact, a wave succeed in an environment.
  const std::string key = releaseKey(plan.service, plan.version);
  auto cached = release_records_.find(key);
  if (cached != release_records_.end()) return &cached->second;
  auto stored = store_.getRecord(key);
  if (!stored.ok()) return stored.status();
  ReleaseRecord record;
  record.service = plan.service;
  record.version = plan.version;
  if (*stored) {
    auto parsed = releaseFromJson(**stored);
    if (!parsed.ok()) return parsed.status();
    record = std::move(*parsed);
  }
  return &release_records_.emplace(key, std::move(record)).first->second;
}

StatusOr<ReleaseRecord> Engine::reportCheck(const std::string& service, const std::string& version,
                                            CheckReport report) {
  if (!common::isValidName(service)) {
    return Status::InvalidArgument("service " + common::quote(service) + ": " + common::kNameRule);
  }
  if (!common::isValidVersion(version)) {
    return Status::InvalidArgument("version " + common::quote(version) + ": " +
                                   common::kVersionRule);
  }
  Status valid = validateCheckReport(report);
  if (!valid.ok()) return valid;
  const std::string key = releaseKey(service, version);
  ReleaseRecord release;
  if (auto cached = release_records_.find(key); cached != release_records_.end()) {
    release = cached->second;
  } else {
    auto stored = store_.getRecord(key);
    if (!stored.ok()) return stored.status();
    if (*stored) {
      auto parsed = releaseFromJson(**stored);
      if (!parsed.ok()) return parsed.status();
      release = std::move(*parsed);
    }
  }
  release.service = service;
  release.version = version;
  Status added = addCheckReport(release, std::move(report));
  if (!added.ok()) return added;
  Status s = store_.putRecord(key, releaseToJson(release));
  if (!s.ok()) return s;
  release_records_[key] = release;
  // Every deployment of this release that waits for checks looks again.
  std::vector<std::string> blocked;
  for (const auto& [id, d] : deployments_) {
    if (d.state == DeploymentState::kBlockedByChecks && d.plan.service == service &&
        d.plan.version == version) {
      blocked.push_back(id);
    }
  }
  for (const std::string& id : blocked) {
    Status moved = mutate(id, [](Deployment& d, const Context& ctx, Effects& fx) {
      advance(d, ctx, fx);
      return Status::Ok();
    });
    if (!moved.ok()) spdlog::warn("deployment {}: {}", id, moved.toString());
  }
  return release;
}

Status Engine::mutate(const std::string& id, const Mutation& fn) {
  // Results that arrived earlier in this turn come first: whatever `fn` decides is decided on
  // the latest state, and a failing `fn` does not take the results' transition with it.
  applyQueuedResults(id);
  return transition(id, fn);
}

Status Engine::transition(const std::string& id, const Mutation& fn) {
  auto it = deployments_.find(id);
  if (it == deployments_.end()) return Status::NotFound("no deployment named " + id);
  auto releases = releasesFor(it->second.plan.service);
  if (!releases.ok()) return releases.status();
  auto release = releaseRecord(it->second.plan);
  if (!release.ok()) return release.status();
  Context ctx{registry_, clock_.wallNow(), **releases, *release, &freezes_};
  Deployment next = it->second;
  Effects fx;
  Status s = fn(next, ctx, fx);
  if (!s.ok()) return s;
  if (!fx.changed) return Status::Ok();
  const bool finished = isFinal(next.state) && !isFinal(it->second.state);
  if (finished) next.finished_ms = common::toUnixMillis(ctx.now);
  s = commitAndRemember(next, fx);
  if (!s.ok()) {
    // Nothing was sent and memory still holds the last durable state; the
    // retry in tick() tries again.
    spdlog::error("deployment {} not written, change dropped: {}", id, s.toString());
    return s;
  }
  // Crash test: the transition is committed (synced, or gathered for the loop's group commit),
  // its commands are not sent yet.
  if (!fx.dispatches.empty()) FLOTILLA_FAILPOINT("coordinator.after_commit_before_send");
  if (std::any_of(fx.dispatches.begin(), fx.dispatches.end(),
                  [](const Dispatch& x) { return x.step == Step::ROLLBACK; })) {
    FLOTILLA_FAILPOINT("coordinator.after_rollback_commit_before_send");
  }
  it->second = std::move(next);
  deliver(it->second, fx);
  if (listener_) listener_(id);
  if (finished) releaseQueue();
  return Status::Ok();
}

std::vector<const Deployment*> Engine::unfinished() const {
  std::vector<const Deployment*> out;
  for (const auto& [id, d] : deployments_) {
    if (!isFinal(d.state)) out.push_back(&d);
  }
  return out;
}

void Engine::releaseQueue() {
  if (releasing_queue_) return;  // a transition of this pass finished a deployment: looked at
  releasing_queue_ = true;
  // Oldest first, and again while a pass starts one: a start can end at once and free another,
  // and a deployment started here is what the later ones now wait for.
  for (bool again = true; again;) {
    again = false;
    std::vector<std::pair<uint64_t, std::string>> queued;
    for (const auto& [id, d] : deployments_) {
      if (d.state == DeploymentState::kQueued) queued.emplace_back(submissionOrder(d), id);
    }
    std::sort(queued.begin(), queued.end());
    for (const auto& entry : queued) {
      const std::string& id = entry.second;
      // Stays valid: the transitions below change only `id`'s entry (no nested pass).
      const Deployment* ahead = blockerOf(deployments_.at(id), unfinished());
      if (ahead != nullptr && ahead->id == deployments_.at(id).waits_for) continue;
      Status s = mutate(id, [&](Deployment& d, const Context& ctx, Effects& fx) {
        if (ahead == nullptr) {
          leaveQueue(d, ctx, fx);
        } else {
          waitFor(d, *ahead, fx);
        }
        return Status::Ok();
      });
      if (!s.ok()) {
        spdlog::error("queue of {}: {}", id, s.toString());
        continue;
      }
      if (ahead == nullptr) again = true;
    }
  }
  releasing_queue_ = false;
}

StatusOr<const std::map<std::string, std::string>*> Engine::releasesFor(
    const std::string& service) {
  auto it = releases_.find(service);
  if (it == releases_.end()) {
    auto stored = store_.releases(service);
    if (!stored.ok()) return stored.status();
    it = releases_.emplace(service, std::move(stored).value()).first;
  }
  return &it->second;
}

Status Engine::commitAndRemember(Deployment& d, const Effects& fx) {
  // The release first: under group commit both land in the same batch.
  const std::string release_key =
      fx.release ? releaseKey(fx.release->service, fx.release->version) : "";
  if (fx.release) {
    Status put = store_.putRecord(release_key, releaseToJson(*fx.release));
    if (!put.ok()) return put;
  }
  Status s = store_.commit(d, fx.events, fx.releases, common::toUnixMillis(clock_.wallNow()));
  metrics_.commit(s.ok());
  if (!s.ok()) return s;
  if (fx.release) release_records_[release_key] = *fx.release;
  metrics_.transitions(std::max<size_t>(1, fx.results));
  for (const auto& r : fx.releases) {
    auto it = releases_.find(r.service);
    if (it == releases_.end()) continue;  // not cached yet: the next read loads it whole
    if (r.version.empty()) {
      it->second.erase(r.cluster);
    } else {
      it->second[r.cluster] = r.version;
    }
  }
  return Status::Ok();
}

void Engine::deliver(const Deployment& d, const Effects& fx) {
  for (const auto& a : fx.aborts) sendAbort(a.cluster, d.id, a.stage_id, a.attempt, a.reason);
  for (const auto& dispatch : fx.dispatches) {
    sendCommand(d, dispatch);
    // Crash test: one rollback command is handed to the outbox, the rest of the rollback is not.
    if (dispatch.step == Step::ROLLBACK) FLOTILLA_FAILPOINT("coordinator.mid_rollback");
  }
}

void Engine::sendCommand(const Deployment& d, const Dispatch& dispatch) {
  const std::string& deployment_id = d.id;
  capnp::MallocMessageBuilder message;
  auto cmd = message.initRoot<schema::Envelope>().initStageCommand();
  auto ref = cmd.initRef();
  ref.setDeploymentId(deployment_id);
  ref.setStageId(dispatch.stage_id);
  ref.setAttempt(dispatch.attempt);
  ref.setNonce(nonces_.of(deployment_id, dispatch.stage_id, dispatch.attempt));
  cmd.setEpoch(epoch_);
  cmd.setStep(dispatch.step);
  cmd.setCommand(dispatch.command);
  cmd.setTimeoutMs(dispatch.timeout_ms);
  if (dispatch.process) buildProcessSpec(cmd.initProcess(), d.plan, *dispatch.process);
  if (dispatch.watch) buildProcessSpec(cmd.initWatch(), d.plan, *dispatch.watch);
  auto list = cmd.initEnv(static_cast<unsigned>(dispatch.env.size()));
  unsigned i = 0;
  for (const auto& [k, v] : dispatch.env) {
    list[i].setKey(k);
    list[i].setValue(v);
    ++i;
  }
  outbox_.send(dispatch.cluster, message);
}

void Engine::sendAbort(const std::string& cluster, const std::string& deployment_id,
                       const std::string& stage_id, uint32_t attempt, const std::string& reason) {
  capnp::MallocMessageBuilder message;
  auto abort = message.initRoot<schema::Envelope>().initAbort();
  auto ref = abort.initRef();
  ref.setDeploymentId(deployment_id);
  ref.setStageId(stage_id);
  ref.setAttempt(attempt);
  ref.setNonce(nonces_.of(deployment_id, stage_id, attempt));
  abort.setEpoch(epoch_);
  abort.setReason(reason);
  outbox_.send(cluster, message);
}

void Engine::sendReregister(const std::string& connection) {
  capnp::MallocMessageBuilder message;
  message.initRoot<schema::Envelope>().initReregister().setEpoch(epoch_);
  outbox_.sendTo(connection, message);
}

// ---- Snapshots for other threads --------------------------------------------------------

void Engine::publishAgents() { agents_dirty_ = true; }

void Engine::publishAgentsNow() {
  if (!agents_dirty_) return;
  agents_dirty_ = false;
  agents_seen_dirty_ = false;
  std::vector<AgentInfo> snapshot;
  for (const auto& [name, a] : registry_.agents()) snapshot.push_back(a);
  std::lock_guard<std::mutex> lock(agents_mu_);
  agents_snapshot_ = std::move(snapshot);
}

std::vector<AgentInfo> Engine::agentsSnapshot() const {
  std::lock_guard<std::mutex> lock(agents_mu_);
  return agents_snapshot_;
}

std::vector<AgentView> Engine::agentsNow() const {
  std::vector<AgentInfo> agents = agentsSnapshot();
  const auto now = clock_.now();
  std::vector<AgentView> out;
  out.reserve(agents.size());
  for (const auto& a : agents) out.push_back(viewAgent(a, now, options_.agent_lost_after));
  return out;
}

void Engine::publishGauges() {
  std::map<std::string, int64_t> deployments;
  for (const auto& [id, d] : deployments_) {
    if (!isFinal(d.state)) deployments[deploymentStateName(d.state)]++;
  }
  std::map<std::string, int64_t> agents;
  for (const auto& [name, a] : registry_.agents()) agents[agentStateName(a.state)]++;
  metrics_.setGauges(std::move(deployments), std::move(agents), epoch_);
  std::map<std::string, bool> frozen;  // environment ("" = the fleet) -> an active freeze
  frozen[""] = false;
  for (const Freeze& f : freezes_) frozen[f.environment] = frozen[f.environment] || f.active();
  metrics_.setFreezes(std::move(frozen));
}

}  // namespace flotilla::coordinator
