// The deployment state machine and its stored form.
#include "coordinator/deployment.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "common/crypto.hpp"
#include "coordinator/records.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using nlohmann::json;

const char* deploymentStateName(DeploymentState s) {
  switch (s) {
    case DeploymentState::kPending:
      return "pending";
    case DeploymentState::kRunning:
      return "running";
    case DeploymentState::kAwaitingApproval:
      return "awaiting_approval";
    case DeploymentState::kPaused:
      return "paused";
    case DeploymentState::kRollingBack:
      return "rolling_back";
    case DeploymentState::kSucceeded:
      return "succeeded";
    case DeploymentState::kRolledBack:
      return "rolled_back";
    case DeploymentState::kFailed:
      return "failed";
    case DeploymentState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

const char* waveStateName(WaveState s) {
  switch (s) {
    case WaveState::kPending:
      return "pending";
    case WaveState::kAwaitingApproval:
      return "awaiting_approval";
    case WaveState::kRunning:
      return "running";
    case WaveState::kSucceeded:
      return "succeeded";
    case WaveState::kRollingBack:
      return "rolling_back";
    case WaveState::kRolledBack:
      return "rolled_back";
    case WaveState::kFailed:
      return "failed";
    case WaveState::kSkipped:
      return "skipped";
  }
  return "unknown";
}

const char* clusterStateName(ClusterState s) {
  switch (s) {
    case ClusterState::kPending:
      return "pending";
    case ClusterState::kBuilding:
      return "building";
    case ClusterState::kApplying:
      return "applying";
    case ClusterState::kVerifying:
      return "verifying";
    case ClusterState::kDeploying:
      return "deploying";
    case ClusterState::kShifting:
      return "shifting";
    case ClusterState::kAnalyzing:
      return "analyzing";
    case ClusterState::kBaking:
      return "baking";
    case ClusterState::kFinalizing:
      return "finalizing";
    case ClusterState::kSucceeded:
      return "succeeded";
    case ClusterState::kFailed:
      return "failed";
    case ClusterState::kAborted:
      return "aborted";
    case ClusterState::kRollingBack:
      return "rolling_back";
    case ClusterState::kRolledBack:
      return "rolled_back";
    case ClusterState::kRollbackFailed:
      return "rollback_failed";
  }
  return "unknown";
}

bool isFinal(DeploymentState s) {
  return s == DeploymentState::kSucceeded || s == DeploymentState::kRolledBack ||
         s == DeploymentState::kFailed || s == DeploymentState::kCancelled;
}

std::string ClusterProgress::stageId() const {
  if (!step) return name + "/none";
  if (common::stepRepeats(*step)) {
    return name + "/" + stepName(*step) + "-" + std::to_string(step_index);
  }
  return name + "/" + stepName(*step);
}

std::vector<StepSpec> forwardSteps(const common::Plan& plan, size_t wave) {
  std::vector<StepSpec> out;
  if (plan.driver == common::DriverKind::kScript) {
    if (!plan.steps.build.empty()) out.push_back({Step::BUILD, 100, {}});
    out.push_back({Step::APPLY, 100, {}});
    if (!plan.steps.verify.empty()) out.push_back({Step::VERIFY, 100, {}});
    return out;
  }
  const common::Strategy& strategy = plan.strategyFor(wave);
  if (strategy.kind == common::StrategyKind::kRolling) {
    // The agent replaces the replicas in rounds; there is no second set to retire.
    out.push_back({Step::ROLL, 100, {}});
    if (wave < plan.waves.size() && plan.waves[wave].bake.count() > 0) {
      out.push_back({Step::BAKE, 100, plan.waves[wave].bake});
    }
    return out;
  }
  out.push_back({Step::DEPLOY, 0, {}});
  std::vector<uint32_t> weights =
      strategy.steps.empty() ? std::vector<uint32_t>{100} : strategy.steps;
  for (uint32_t w : weights) {
    out.push_back({Step::SHIFT, w, {}});
    // Below 100% there is a stable set to compare against.
    if (w < 100 && strategy.pause.count() > 0) {
      out.push_back({Step::ANALYZE, w, strategy.pause});
    }
  }
  if (wave < plan.waves.size() && plan.waves[wave].bake.count() > 0) {
    out.push_back({Step::BAKE, 100, plan.waves[wave].bake});
  }
  out.push_back({Step::FINALIZE, 100, {}});
  return out;
}

const Deployment::ClusterIndex& Deployment::clusterIndex() const {
  size_t count = 0;
  for (const auto& w : waves) count += w.clusters.size();
  if (!index_ || indexed_clusters_ != count) {
    auto index = std::make_shared<ClusterIndex>();
    index->reserve(count);
    for (size_t i = 0; i < waves.size(); ++i) {
      for (size_t k = 0; k < waves[i].clusters.size(); ++k) {
        index->emplace(waves[i].clusters[k].name,
                       std::make_pair(static_cast<uint32_t>(i), static_cast<uint32_t>(k)));
      }
    }
    index_ = std::move(index);
    indexed_clusters_ = count;
  }
  return *index_;
}

const ClusterProgress* Deployment::findCluster(const std::string& cluster, size_t* wave) const {
  const ClusterIndex& index = clusterIndex();
  auto it = index.find(cluster);
  if (it == index.end()) return nullptr;
  const auto [w, k] = it->second;
  if (wave) *wave = w;
  return &waves[w].clusters[k];
}

ClusterProgress* Deployment::findCluster(const std::string& cluster, size_t* wave) {
  return const_cast<ClusterProgress*>(std::as_const(*this).findCluster(cluster, wave));
}

namespace {

void emit(Effects& fx, std::string type, std::string wave, std::string cluster, std::string step,
          std::string message) {
  fx.events.push_back(Event{std::move(type), std::move(wave), std::move(cluster), std::move(step),
                            std::move(message)});
  fx.changed = true;
}

// Operator text carried into events and the deployment's reason (and from there to terminals
// and logs): bounded, and without control characters.
constexpr size_t kMaxReasonBytes = 500;

std::string cleanReason(const std::string& reason) {
  size_t length = std::min(reason.size(), kMaxReasonBytes);
  while (length > 0 && length < reason.size() &&
         (static_cast<unsigned char>(reason[length]) & 0xC0) == 0x80) {
    --length;  // cut on a UTF-8 boundary
  }
  std::string out = reason.substr(0, length);
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) c = ' ';
  }
  if (length < reason.size()) out += "...";
  return out;
}

// "by alice", or "by alice: <reason>".
std::string byActor(const Actor& by, const std::string& reason) {
  std::string out = "by " + (by.name.empty() ? std::string("an unnamed caller") : by.name);
  if (!reason.empty()) out += ": " + cleanReason(reason);
  return out;
}

std::string rfc3339(int64_t ms) { return common::formatRfc3339(common::fromUnixMillis(ms)); }

bool approvalExpired(const Approval& a, const common::Wave& pw, int64_t now_ms) {
  return now_ms - a.at_ms > pw.approval_expires.count();
}

// Drops the approvals of wave `index` that no longer count at `now_ms`, each with an event that
// says whose it was and why.
void dropStaleApprovals(Deployment& d, size_t index, int64_t now_ms, Effects& fx) {
  WaveProgress& w = d.waves[index];
  const common::Wave& pw = d.plan.waves[index];
  std::vector<Approval> kept;
  for (const auto& a : w.approvals) {
    if (approvalExpired(a, pw, now_ms)) {
      emit(fx, "wave.approval_expired", w.name, "", "",
           "approval by " + a.by + " at " + rfc3339(a.at_ms) + " expired (approvals of wave " +
               w.name + " count for " + common::formatDuration(pw.approval_expires) + ")");
    } else if (a.plan_sha256 != d.plan_sha256) {
      emit(fx, "wave.approval_expired", w.name, "", "",
           "approval by " + a.by + " was for plan " + a.plan_sha256 + ", not " + d.plan_sha256);
    } else {
      kept.push_back(a);
    }
  }
  if (kept.size() != w.approvals.size()) {
    w.approvals = std::move(kept);
    fx.changed = true;
  }
}

// Whether wave `index` may start now as far as approvals go. A wave approved ahead is held
// again when its approvals expired before the deployment reached it.
bool approvalHolds(Deployment& d, size_t index, const Context& ctx, Effects& fx) {
  WaveProgress& w = d.waves[index];
  const common::Wave& pw = d.plan.waves[index];
  if (!pw.approval_required) return true;
  if (!w.approved) return false;
  // Approved by a coordinator that kept no approval records: its word stands.
  if (w.approvals.empty()) return true;
  dropStaleApprovals(d, index, common::toUnixMillis(ctx.now), fx);
  if (w.approvals.size() >= pw.approvals_required) return true;
  w.approved = false;
  fx.changed = true;
  return false;
}

std::string approvalProgress(const WaveProgress& w, const common::Wave& pw) {
  return std::to_string(w.approvals.size()) + " of " + std::to_string(pw.approvals_required) +
         " approvals";
}

const std::string& commandFor(const common::Plan& plan, Step step) {
  switch (step) {
    case Step::BUILD:
      return plan.steps.build;
    case Step::APPLY:
      return plan.steps.apply;
    case Step::VERIFY:
      return plan.steps.verify;
    case Step::ROLLBACK:
      return plan.steps.rollback;
    default:
      break;
  }
  static const std::string kNone;
  return kNone;  // process steps have no command: the agent's driver knows what to do
}

ClusterState inFlightState(Step step) {
  switch (step) {
    case Step::BUILD:
      return ClusterState::kBuilding;
    case Step::APPLY:
      return ClusterState::kApplying;
    case Step::VERIFY:
      return ClusterState::kVerifying;
    case Step::ROLLBACK:
      return ClusterState::kRollingBack;
    case Step::DEPLOY:
      return ClusterState::kDeploying;
    case Step::SHIFT:
      return ClusterState::kShifting;
    case Step::ANALYZE:
      return ClusterState::kAnalyzing;
    case Step::BAKE:
      return ClusterState::kBaking;
    case Step::FINALIZE:
      return ClusterState::kFinalizing;
    case Step::ROLL:
      return ClusterState::kDeploying;
  }
  return ClusterState::kBuilding;
}

// Whether the forward step after the one `c` ran last is `kind`.
bool nextStepIs(const Deployment& d, size_t wave, const ClusterProgress& c, Step kind) {
  const std::vector<StepSpec> steps = forwardSteps(d.plan, wave);
  size_t next = static_cast<size_t>(c.step_index + 1);
  return c.step_index >= 0 && next < steps.size() && steps[next].kind == kind;
}

bool isActiveForward(const ClusterProgress& c) {
  switch (c.state) {
    case ClusterState::kBuilding:
    case ClusterState::kApplying:
    case ClusterState::kVerifying:
    case ClusterState::kDeploying:
    case ClusterState::kShifting:
    case ClusterState::kAnalyzing:
    case ClusterState::kBaking:
    case ClusterState::kFinalizing:
      return true;
    default:
      return false;
  }
}

// `index`: the step's place in forwardSteps(), or -1 for rollback.
void dispatch(Deployment& d, size_t wave, ClusterProgress& c, Step step, int index, Effects& fx) {
  c.attempt = (c.step == step && c.step_index == index) ? c.attempt + 1 : 1;
  c.step = step;
  c.step_index = index;
  c.state = inFlightState(step);
  c.in_flight = true;
  c.abort_sent = false;
  c.exit_code.reset();
  c.message.clear();
  // From here the cluster may run the new version: it is rolled back on the way back.
  if (step == Step::APPLY || step == Step::DEPLOY || step == Step::ROLL) {
    c.applied = true;
  }

  fx.dispatches.push_back(makeDispatch(d, c));
  emit(fx, step == Step::ROLLBACK ? "rollback.started" : "stage.started", d.waves[wave].name,
       c.name, stepName(step), "attempt " + std::to_string(c.attempt));
}

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

size_t lastReachedWave(const Deployment& d) {
  return std::min(d.wave_index, d.waves.empty() ? 0 : d.waves.size() - 1);
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

void finishRollback(Deployment& d, Effects& fx) {
  d.rollback_failed.clear();
  for (auto& w : d.waves) {
    for (auto& c : w.clusters) {
      if (c.state == ClusterState::kRollbackFailed) d.rollback_failed.push_back(c.name);
    }
  }
  if (d.rollback_failed.empty()) {
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

// Chooses the clusters of the current wave. False when it could not (the
// deployment is then rolling back).
bool resolveWave(Deployment& d, const Context& ctx, Effects& fx) {
  WaveProgress& w = d.waves[d.wave_index];
  const common::Wave& pw = d.plan.waves[d.wave_index];
  std::set<std::string> earlier;
  for (size_t i = 0; i < d.wave_index; ++i) {
    for (const auto& c : d.waves[i].clusters) earlier.insert(c.name);
  }
  std::vector<std::string> names;
  if (!pw.clusters.empty()) {
    names = pw.clusters;
  } else {
    for (auto& n : ctx.registry.select(pw.selector)) {
      if (!earlier.count(n)) names.push_back(n);
    }
  }
  w.resolved = true;
  fx.changed = true;
  if (names.empty()) {
    std::string sel;
    for (const auto& [k, v] : pw.selector) sel += (sel.empty() ? "" : ",") + k + "=" + v;
    std::string reason = "wave " + w.name + ": selector {" + sel + "} matches no connected cluster";
    w.state = WaveState::kRunning;
    emit(fx, "wave.failed", w.name, "", "", reason);
    if (!d.failure) d.failure = Failure{"", "", reason};
    startRollback(d, reason, d.plan.rollback_scope == common::RollbackScope::kFleet, fx);
    return false;
  }
  for (const auto& n : names) {
    ClusterProgress c;
    c.name = n;
    auto it = ctx.current_versions.find(n);
    if (it != ctx.current_versions.end()) c.previous_version = it->second;
    w.clusters.push_back(std::move(c));
  }
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  w.state = WaveState::kRunning;
  emit(fx, "wave.started", w.name, "", "", "clusters: " + list);
  return true;
}

void runForward(Deployment& d, const Context& ctx, Effects& fx) {
  while (d.state == DeploymentState::kRunning) {
    if (d.wave_index >= d.waves.size()) {
      d.state = DeploymentState::kSucceeded;
      d.reason.clear();
      emit(fx, "deployment.succeeded", "", "", "",
           d.plan.service + " " + d.plan.version + " is live on every wave");
      return;
    }
    WaveProgress& w = d.waves[d.wave_index];
    const common::Wave& pw = d.plan.waves[d.wave_index];
    if (w.state == WaveState::kPending || w.state == WaveState::kAwaitingApproval) {
      if (!approvalHolds(d, d.wave_index, ctx, fx)) {
        if (w.state != WaveState::kAwaitingApproval) {
          w.state = WaveState::kAwaitingApproval;
          std::string needs;
          if (pw.approvals_required > 1 || !w.approvals.empty()) {
            needs = "needs " + std::to_string(pw.approvals_required) + " approvals from people " +
                    "other than its submitter (" + approvalProgress(w, pw) + "); ";
          }
          emit(fx, "wave.awaiting_approval", w.name, "", "",
               needs + "run `flotilla approve " + d.id + "` to start it");
        }
        d.state = DeploymentState::kAwaitingApproval;
        fx.changed = true;
        return;
      }
      if (!resolveWave(d, ctx, fx)) return;
    }
    // Start or continue clusters, bounded by max_parallel.
    size_t active = 0;
    for (const auto& c : w.clusters) active += isActiveForward(c) ? 1 : 0;
    const std::vector<StepSpec> steps = forwardSteps(d.plan, d.wave_index);
    for (auto& c : w.clusters) {
      if (d.state != DeploymentState::kRunning) return;
      if (c.in_flight) continue;
      bool between_steps = isActiveForward(c);
      bool fresh = c.state == ClusterState::kPending;
      if (!between_steps && !fresh) continue;
      if (fresh && pw.max_parallel != 0 && active >= pw.max_parallel) continue;
      size_t next = fresh ? 0 : static_cast<size_t>(c.step_index + 1);
      if (next >= steps.size()) {  // cannot happen: results finish the last step
        c.state = ClusterState::kSucceeded;
        continue;
      }
      const AgentInfo* agent = ctx.registry.find(c.name);
      if (agent == nullptr || agent->state == AgentState::kLost) {
        forwardFailed(d, d.wave_index, c, agent ? "agent lost" : "no agent registered for cluster",
                      fx);
        return;
      }
      if (fresh) ++active;
      dispatch(d, d.wave_index, c, steps[next].kind, static_cast<int>(next), fx);
    }
    bool all_done = std::all_of(w.clusters.begin(), w.clusters.end(),
                                [](const auto& c) { return c.state == ClusterState::kSucceeded; });
    if (!all_done) return;
    w.state = WaveState::kSucceeded;
    emit(fx, "wave.succeeded", w.name, "", "", "");
    ++d.wave_index;
  }
}

}  // namespace

Dispatch makeDispatch(const Deployment& d, const ClusterProgress& c) {
  size_t wave = 0;
  d.findCluster(c.name, &wave);
  Step step = c.step.value_or(Step::BUILD);
  Dispatch out;
  out.cluster = c.name;
  out.stage_id = c.stageId();
  out.attempt = c.attempt;
  out.step = step;
  out.command = commandFor(d.plan, step);
  out.timeout_ms = static_cast<uint64_t>(d.plan.steps.timeout.count());
  uint32_t weight = 100;
  if (d.plan.driver == common::DriverKind::kProcess) {
    StepSpec spec{step, step == Step::ROLLBACK ? 0u : 100u, {}};
    const auto steps = forwardSteps(d.plan, wave);
    if (c.step_index >= 0 && static_cast<size_t>(c.step_index) < steps.size()) {
      spec = steps[static_cast<size_t>(c.step_index)];
    }
    weight = spec.weight;
    // Analysis may watch up to four windows (three more when inconclusive).
    out.timeout_ms = static_cast<uint64_t>(
        std::max<int64_t>(d.plan.steps.timeout.count(), 4 * spec.duration.count() + 60000));
    out.process =
        ProcessStepParams{d.id, c.name, c.previous_version, wave, spec.weight, spec.duration};
  }
  out.env = {
      {"FLOTILLA_SERVICE", d.plan.service},
      {"FLOTILLA_VERSION", d.plan.version},
      {"FLOTILLA_PREVIOUS_VERSION", c.previous_version},
      {"FLOTILLA_CLUSTER", c.name},
      {"FLOTILLA_WAVE", d.waves[wave].name},
      {"FLOTILLA_DEPLOYMENT", d.id},
      {"FLOTILLA_WEIGHT", std::to_string(weight)},
      {"FLOTILLA_STEP", stepName(step)},
  };
  return out;
}

Deployment newDeployment(std::string id, common::Plan plan, const Actor& by, common::SystemTime now,
                         Effects& fx) {
  Deployment d;
  d.id = std::move(id);
  d.plan = std::move(plan);
  d.submitted_by = by.name;
  d.plan_sha256 = common::sha256Hex(common::planToJson(d.plan));
  d.created_ms = d.updated_ms = common::toUnixMillis(now);
  for (const auto& w : d.plan.waves) {
    WaveProgress wp;
    wp.name = w.name;
    d.waves.push_back(std::move(wp));
  }
  emit(fx, "deployment.submitted", "", "", "",
       d.plan.service + " " + d.plan.version + " in " + std::to_string(d.waves.size()) + " waves " +
           byActor(by, ""));
  return d;
}

void advance(Deployment& d, const Context& ctx, Effects& fx) {
  switch (d.state) {
    case DeploymentState::kPending:
      d.state = DeploymentState::kRunning;
      emit(fx, "deployment.started", "", "", "", "");
      runForward(d, ctx, fx);
      break;
    case DeploymentState::kAwaitingApproval:
      if (d.wave_index < d.waves.size() && d.waves[d.wave_index].approved) {
        d.state = DeploymentState::kRunning;
        fx.changed = true;
        runForward(d, ctx, fx);
      }
      break;
    case DeploymentState::kRunning:
      runForward(d, ctx, fx);
      break;
    case DeploymentState::kRollingBack:
    case DeploymentState::kPaused:
    case DeploymentState::kSucceeded:
    case DeploymentState::kRolledBack:
    case DeploymentState::kFailed:
    case DeploymentState::kCancelled:
      break;
  }
  // A failure found while moving forward starts the rollback in the same step.
  if (d.state == DeploymentState::kRollingBack) runRollback(d, ctx, fx);
}

namespace {

// A result's effect on its cluster, without moving the deployment on (the caller advances).
Status recordResult(Deployment& d, const StageResult& r, Effects& fx) {
  size_t wave = 0;
  ClusterProgress* c = d.findCluster(r.cluster, &wave);
  if (c == nullptr || !c->in_flight || c->stageId() != r.stage_id || c->attempt != r.attempt) {
    return Status::NotFound("no stage " + r.stage_id + " attempt " + std::to_string(r.attempt) +
                            " in flight for " + d.id);
  }
  c->in_flight = false;
  c->exit_code = r.exit_code;
  c->message = r.message;
  fx.changed = true;
  ++fx.results;
  const std::string& wname = d.waves[wave].name;
  Step step = *c->step;
  bool ok = r.outcome == Outcome::SUCCEEDED;

  if (step == Step::ROLLBACK) {
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
    forwardFailed(d, wave, *c, what, fx);
  }
  return Status::Ok();
}

}  // namespace

Status applyResult(Deployment& d, const StageResult& r, const Context& ctx, Effects& fx) {
  Status s = recordResult(d, r, fx);
  if (!s.ok()) return s;
  advance(d, ctx, fx);
  return Status::Ok();
}

size_t applyResults(Deployment& d, const std::vector<StageResult>& results, const Context& ctx,
                    Effects& fx) {
  size_t stale = 0;
  for (const auto& r : results) {
    if (!recordResult(d, r, fx).ok()) ++stale;
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

void agentReturned(Deployment& d, const std::string& cluster, const Context& ctx, Effects& fx) {
  size_t wave = 0;
  ClusterProgress* c = d.findCluster(cluster, &wave);
  if (c == nullptr) return;
  WaveProgress& w = d.waves[wave];
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
    }
  }
}

bool awaitsAgents(const Deployment& d) {
  for (const auto& w : d.waves) {
    for (const auto& c : w.clusters) {
      if (c.in_flight || c.rollback_lost) return true;
    }
  }
  return false;
}

size_t liveApprovals(const Deployment& d, size_t wave, int64_t now_ms) {
  if (wave >= d.waves.size() || wave >= d.plan.waves.size()) return 0;
  const common::Wave& pw = d.plan.waves[wave];
  return static_cast<size_t>(std::count_if(
      d.waves[wave].approvals.begin(), d.waves[wave].approvals.end(), [&](const Approval& a) {
        return !approvalExpired(a, pw, now_ms) && a.plan_sha256 == d.plan_sha256;
      }));
}

Status approve(Deployment& d, const std::string& wave, const Actor& by, const Context& ctx,
               Effects& fx) {
  // Who, before what: the answer to a caller who may not approve does not depend on the state.
  if (by.name.empty() || by.name == Actor::system().name) {
    return Status::PermissionDenied(
        "an approval is a person's decision: the coordinator itself never approves a wave");
  }
  if (!d.submitted_by.empty() && by.name == d.submitted_by) {
    return Status::PermissionDenied(by.name + " submitted " + d.id +
                                    " and cannot approve it; another approver must");
  }
  if (isFinal(d.state) || d.state == DeploymentState::kRollingBack) {
    return Status::FailedPrecondition("deployment " + d.id + " is " + deploymentStateName(d.state) +
                                      "; nothing to approve");
  }
  size_t index = d.wave_index;
  if (!wave.empty()) {
    auto it = std::find_if(d.waves.begin(), d.waves.end(),
                           [&](const WaveProgress& w) { return w.name == wave; });
    if (it == d.waves.end())
      return Status::InvalidArgument("no wave named " + wave + " in " + d.id);
    index = static_cast<size_t>(it - d.waves.begin());
  } else if (d.state != DeploymentState::kAwaitingApproval &&
             !(d.state == DeploymentState::kPaused &&
               d.resume_to == DeploymentState::kAwaitingApproval)) {
    return Status::FailedPrecondition("deployment " + d.id + " is " + deploymentStateName(d.state) +
                                      ", not awaiting approval; name a wave to approve it ahead");
  }
  if (index >= d.waves.size()) return Status::FailedPrecondition("no wave left to approve");
  WaveProgress& w = d.waves[index];
  if (!d.plan.waves[index].approval_required) {
    return Status::FailedPrecondition("wave " + w.name + " does not need approval");
  }
  if (w.state != WaveState::kPending && w.state != WaveState::kAwaitingApproval) {
    return Status::FailedPrecondition("wave " + w.name + " is already " + waveStateName(w.state));
  }
  const common::Wave& pw = d.plan.waves[index];
  const int64_t now_ms = common::toUnixMillis(ctx.now);
  // A second yes from the same person is not a second approver; their first, if it expired,
  // no longer counts and may be given again.
  for (const Approval& a : w.approvals) {
    if (a.by == by.name && !approvalExpired(a, pw, now_ms)) {
      return Status::FailedPrecondition(
          "wave " + w.name + " of " + d.id + " is already approved by " + by.name + " (at " +
          rfc3339(a.at_ms) + "; " + std::to_string(liveApprovals(d, index, now_ms)) + " of " +
          std::to_string(pw.approvals_required) + " approvals); each approver counts once");
    }
  }
  if (w.approved) return Status::FailedPrecondition("wave " + w.name + " is already approved");
  dropStaleApprovals(d, index, now_ms, fx);
  w.approvals.push_back(Approval{by.name, by.role, now_ms, d.plan_sha256});
  fx.changed = true;
  if (w.approvals.size() < pw.approvals_required) {
    const size_t missing = pw.approvals_required - w.approvals.size();
    emit(fx, "wave.approval", w.name, "", "",
         byActor(by, "") + ": " + approvalProgress(w, pw) + "; " + std::to_string(missing) +
             " more needed");
    return Status::Ok();
  }
  w.approved = true;
  std::string approvers;
  for (const Approval& a : w.approvals) approvers += (approvers.empty() ? "" : ", ") + a.by;
  emit(fx, "wave.approved", w.name, "", "",
       byActor(by, "") + ": " + approvalProgress(w, pw) + " (" + approvers + ")");
  advance(d, ctx, fx);
  return Status::Ok();
}

Status pause(Deployment& d, const Actor& by, const std::string& reason, const Context&,
             Effects& fx) {
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
  d.state = d.resume_to;
  d.paused_for_lost = false;
  d.reason.clear();
  emit(fx, "deployment.resumed", "", "", "", "resumed " + byActor(by, reason));
  advance(d, ctx, fx);
  return Status::Ok();
}

Status cancel(Deployment& d, const Actor& by, const std::string& reason, const Context&,
              Effects& fx) {
  if (isFinal(d.state)) {
    return Status::FailedPrecondition("deployment " + d.id + " is already " +
                                      deploymentStateName(d.state));
  }
  if (d.state == DeploymentState::kRollingBack) {
    return Status::FailedPrecondition("deployment " + d.id +
                                      " is rolling back; a rollback cannot be cancelled");
  }
  abortInFlightForward(d, "deployment cancelled", fx);
  skipUnreachedWaves(d, fx);
  d.state = DeploymentState::kCancelled;
  d.reason = "cancelled " + byActor(by, reason);
  emit(fx, "deployment.cancelled", "", "", "",
       d.reason + " (clusters keep what they run now; use rollback to take the new version out)");
  return Status::Ok();
}

Status requestRollback(Deployment& d, const Actor& by, const std::string& reason,
                       const Context& ctx, Effects& fx) {
  const std::string cause = "rollback requested " + byActor(by, reason);
  switch (d.state) {
    case DeploymentState::kRollingBack:
      return Status::FailedPrecondition("deployment " + d.id + " is already rolling back");
    case DeploymentState::kRolledBack:
    case DeploymentState::kCancelled:
      return Status::FailedPrecondition("deployment " + d.id + " is " +
                                        deploymentStateName(d.state) + "; nothing to roll back");
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

// ---- Stored form --------------------------------------------------------------------------

namespace {

template <typename E>
E enumFromName(const std::string& name, const char* (*namer)(E), int count) {
  for (int i = 0; i < count; ++i) {
    if (name == namer(static_cast<E>(i))) return static_cast<E>(i);
  }
  throw std::invalid_argument("unknown value \"" + name + "\"");
}

json clusterToJson(const ClusterProgress& c) {
  json j = {{"name", c.name},
            {"state", clusterStateName(c.state)},
            {"attempt", c.attempt},
            {"step_index", c.step_index},
            {"in_flight", c.in_flight},
            {"abort_sent", c.abort_sent},
            {"agent_lost", c.agent_lost},
            {"rollback_lost", c.rollback_lost},
            {"applied", c.applied},
            {"previous_version", c.previous_version},
            {"message", c.message}};
  j["step"] = c.step ? json(stepName(*c.step)) : json(nullptr);
  j["exit_code"] = c.exit_code ? json(*c.exit_code) : json(nullptr);
  return j;
}

ClusterProgress clusterFromJson(const json& j) {
  ClusterProgress c;
  c.name = j.at("name").get<std::string>();
  c.state = enumFromName<ClusterState>(j.at("state").get<std::string>(), clusterStateName, 15);
  if (!j.at("step").is_null()) {
    const std::string step = j.at("step").get<std::string>();
    c.step = common::stepFromName(step);
    if (!c.step) throw std::invalid_argument("unknown step \"" + step + "\"");
  }
  c.step_index = j.at("step_index").get<int>();
  c.attempt = j.at("attempt").get<uint32_t>();
  c.in_flight = j.at("in_flight").get<bool>();
  c.abort_sent = j.at("abort_sent").get<bool>();
  c.agent_lost = j.value("agent_lost", false);  // absent in records older than the field
  c.rollback_lost = j.value("rollback_lost", false);
  c.applied = j.at("applied").get<bool>();
  c.previous_version = j.at("previous_version").get<std::string>();
  c.message = j.at("message").get<std::string>();
  if (!j.at("exit_code").is_null()) c.exit_code = j.at("exit_code").get<int>();
  return c;
}

}  // namespace

namespace {

// Everything but the clusters; each wave's clusters are added by the caller.
json headerObject(const Deployment& d) {
  json waves = json::array();
  for (const auto& w : d.waves) {
    json approvals = json::array();
    for (const auto& a : w.approvals) {
      approvals.push_back(
          {{"by", a.by}, {"role", a.role}, {"at_ms", a.at_ms}, {"plan_sha256", a.plan_sha256}});
    }
    waves.push_back({{"name", w.name},
                     {"state", waveStateName(w.state)},
                     {"approved", w.approved},
                     {"approvals", std::move(approvals)},
                     {"resolved", w.resolved}});
  }
  json j = {{"id", d.id},
            {"plan", json::parse(common::planToJson(d.plan))},
            {"submitted_by", d.submitted_by},
            {"plan_sha256", d.plan_sha256},
            {"state", deploymentStateName(d.state)},
            {"resume_to", deploymentStateName(d.resume_to)},
            {"paused_for_lost", d.paused_for_lost},
            {"wave_index", d.wave_index},
            {"reason", d.reason},
            {"rollback_cause", d.rollback_cause},
            {"rollback_failed", d.rollback_failed},
            {"rollback_whole_fleet", d.rollback_whole_fleet},
            {"created_ms", d.created_ms},
            {"updated_ms", d.updated_ms},
            {"last_event_seq", d.last_event_seq},
            {"waves", std::move(waves)}};
  j["failure"] = d.failure ? json{{"cluster", d.failure->cluster},
                                  {"step", d.failure->step},
                                  {"message", d.failure->message}}
                           : json(nullptr);
  return j;
}

}  // namespace

std::string deploymentToJson(const Deployment& d) {
  json j = headerObject(d);
  for (size_t i = 0; i < d.waves.size(); ++i) {
    json clusters = json::array();
    for (const auto& c : d.waves[i].clusters) clusters.push_back(clusterToJson(c));
    j["waves"][i]["clusters"] = std::move(clusters);
  }
  return j.dump();
}

std::string deploymentHeaderJson(const Deployment& d) {
  json j = headerObject(d);
  for (size_t i = 0; i < d.waves.size(); ++i) {
    j["waves"][i]["cluster_count"] = d.waves[i].clusters.size();
  }
  return j.dump();
}

StatusOr<ClusterProgress> clusterFromJsonText(std::string_view text) {
  try {
    return clusterFromJson(json::parse(text));
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("cluster record does not decode: ") + e.what());
  }
}

StatusOr<Deployment> deploymentFromJson(const std::string& text) {
  return deploymentFromStored(text, StoredClusters{}, false);
}

StatusOr<Deployment> deploymentFromStored(const std::string& header, const StoredClusters& clusters,
                                          bool header_only) {
  try {
    json j = json::parse(header);
    Deployment d;
    d.id = j.at("id").get<std::string>();
    auto plan = common::planFromJson(j.at("plan").dump());
    if (!plan.ok()) return plan.status();
    d.plan = std::move(plan).value();
    // Absent in records older than actors and plan hashes.
    d.submitted_by = j.value("submitted_by", std::string());
    d.plan_sha256 = j.value("plan_sha256", std::string());
    if (d.plan_sha256.empty()) d.plan_sha256 = common::sha256Hex(common::planToJson(d.plan));
    d.state =
        enumFromName<DeploymentState>(j.at("state").get<std::string>(), deploymentStateName, 9);
    d.resume_to =
        enumFromName<DeploymentState>(j.at("resume_to").get<std::string>(), deploymentStateName, 9);
    d.wave_index = j.at("wave_index").get<size_t>();
    d.reason = j.at("reason").get<std::string>();
    d.paused_for_lost = j.value("paused_for_lost", false);
    d.rollback_cause = j.at("rollback_cause").get<std::string>();
    d.rollback_failed = j.at("rollback_failed").get<std::vector<std::string>>();
    d.rollback_whole_fleet = j.at("rollback_whole_fleet").get<bool>();
    d.created_ms = j.at("created_ms").get<int64_t>();
    d.updated_ms = j.at("updated_ms").get<int64_t>();
    d.last_event_seq = j.at("last_event_seq").get<uint64_t>();
    if (!j.at("failure").is_null()) {
      const json& f = j.at("failure");
      d.failure = Failure{f.at("cluster").get<std::string>(), f.at("step").get<std::string>(),
                          f.at("message").get<std::string>()};
    }
    for (const auto& jw : j.at("waves")) {
      const size_t index = d.waves.size();
      WaveProgress w;
      w.name = jw.at("name").get<std::string>();
      w.state = enumFromName<WaveState>(jw.at("state").get<std::string>(), waveStateName, 8);
      w.approved = jw.at("approved").get<bool>();
      if (jw.contains("approvals")) {
        for (const auto& ja : jw.at("approvals")) {
          w.approvals.push_back(
              Approval{ja.at("by").get<std::string>(), ja.at("role").get<std::string>(),
                       ja.at("at_ms").get<int64_t>(), ja.at("plan_sha256").get<std::string>()});
        }
      }
      w.resolved = jw.at("resolved").get<bool>();
      if (jw.contains("clusters")) {
        // The whole form (deploymentToJson), and records written before clusters had keys.
        for (const auto& jc : jw.at("clusters")) w.clusters.push_back(clusterFromJson(jc));
      } else if (!header_only) {
        const size_t count = jw.at("cluster_count").get<size_t>();
        for (size_t k = 0; k < count; ++k) {
          auto found =
              k > UINT32_MAX
                  ? clusters.end()
                  : clusters.find({static_cast<uint32_t>(index), static_cast<uint32_t>(k)});
          if (found == clusters.end()) {
            return Status::Corruption("deployment " + d.id + ": wave " + w.name + " has " +
                                      std::to_string(count) + " clusters and no record of the " +
                                      std::to_string(k + 1) + "th");
          }
          auto c = decodeClusterRecord(found->second);
          if (!c.ok()) {
            return Status::Corruption("deployment " + d.id + ": wave " + w.name + ", cluster " +
                                      std::to_string(k + 1) + ": " + c.status().message());
          }
          w.clusters.push_back(std::move(c).value());
        }
      }
      d.waves.push_back(std::move(w));
    }
    if (d.waves.size() != d.plan.waves.size()) {
      return Status::Corruption("deployment " + d.id + ": wave count does not match its plan");
    }
    return d;
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("stored deployment does not decode: ") + e.what());
  }
}

}  // namespace flotilla::coordinator
