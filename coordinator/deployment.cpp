// The deployment model (state names, forward steps, the cluster index) and the forward drive:
// a new deployment, advance() wave by wave, and the commands it sends. The rest of the machine
// is in coordinator/deployment_*.cpp (coordinator/deployment_internal.hpp has the map).
#include "coordinator/deployment.hpp"

#include <algorithm>
#include <set>
#include <utility>

#include "common/crypto.hpp"
#include "coordinator/deployment_internal.hpp"
#include "coordinator/freeze.hpp"
#include "coordinator/wave_clusters.hpp"

namespace flotilla::coordinator {

const char* deploymentStateName(DeploymentState s) {
  switch (s) {
    case DeploymentState::kPending:
      return "pending";
    case DeploymentState::kQueued:
      return "queued";
    case DeploymentState::kRunning:
      return "running";
    case DeploymentState::kAwaitingApproval:
      return "awaiting_approval";
    case DeploymentState::kBlockedByChecks:
      return "blocked_by_checks";
    case DeploymentState::kPaused:
      return "paused";
    case DeploymentState::kFrozen:
      return "frozen";
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
    case DeploymentState::kWatching:
      return "watching";
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
    case ClusterState::kWatching:
      return "watching";
  }
  return "unknown";
}

bool isFinal(DeploymentState s) {
  return s == DeploymentState::kSucceeded || s == DeploymentState::kRolledBack ||
         s == DeploymentState::kFailed || s == DeploymentState::kCancelled;
}

std::string checkRunStateName(const CheckRun& run) {
  if (run.running) return "running";
  return run.outcome == Outcome::SUCCEEDED ? "passed" : outcomeName(run.outcome);
}

std::string ClusterProgress::stageId() const {
  if (!step) return name + "/none";
  if (*step == Step::VERIFY && !check.empty()) return name + "/verify-" + check;
  if (common::stepRepeats(*step)) {
    return name + "/" + stepName(*step) + "-" + std::to_string(step_index);
  }
  return name + "/" + stepName(*step);
}

namespace {

// A strategy's traffic steps from `first` on: shift to each weight, with an analysis window after
// each step below 100% (there is a stable set to compare against).
void appendShifts(std::vector<StepSpec>& out, const common::Strategy& strategy,
                  const std::vector<uint32_t>& weights, size_t first) {
  for (size_t i = first; i < weights.size(); ++i) {
    out.push_back({Step::SHIFT, weights[i], {}});
    if (weights[i] < 100 && strategy.pause.count() > 0) {
      out.push_back({Step::ANALYZE, weights[i], strategy.pause});
    }
  }
}

// Verify after apply: the single command, or each check of a checklist in order.
void appendVerify(std::vector<StepSpec>& out, const common::Plan& plan, uint32_t weight) {
  if (!plan.steps.verify.empty()) out.push_back({Step::VERIFY, weight, {}});
  for (const common::VerifyCheck& check : plan.steps.verify_checks) {
    out.push_back({Step::VERIFY, weight, {}, check.name});
  }
}

// The script driver: `apply` brings the new version up, at the strategy's first weight (a
// canary whose `apply` moves traffic itself), or at 0% when a `switch` step moves it; every
// later weight is a shift, which runs `switch` (or `apply` again).
void scriptSteps(std::vector<StepSpec>& out, const common::Plan& plan,
                 const common::Strategy& strategy) {
  if (!plan.steps.build.empty()) out.push_back({Step::BUILD, 100, {}});
  const bool moves = strategy.kind == common::StrategyKind::kCanary ||
                     strategy.kind == common::StrategyKind::kBlueGreen;
  const std::vector<uint32_t> weights =
      strategy.steps.empty() ? std::vector<uint32_t>{100} : strategy.steps;
  if (!moves) {
    out.push_back({Step::APPLY, 100, {}});
    appendVerify(out, plan, 100);
    return;
  }
  const bool switches = !plan.steps.switch_traffic.empty();
  out.push_back({Step::APPLY, switches ? 0u : weights[0], {}});
  appendVerify(out, plan, switches ? 0u : weights[0]);
  if (switches) {
    appendShifts(out, strategy, weights, 0);
    return;
  }
  if (weights[0] < 100 && strategy.pause.count() > 0) {
    out.push_back({Step::ANALYZE, weights[0], strategy.pause});
  }
  appendShifts(out, strategy, weights, 1);
}

}  // namespace

std::vector<StepSpec> forwardSteps(const common::Plan& plan, size_t wave) {
  std::vector<StepSpec> out;
  const common::Strategy& strategy = plan.strategyFor(wave);
  const bool bakes = wave < plan.waves.size() && plan.waves[wave].bake.count() > 0;
  if (plan.driver == common::DriverKind::kScript) {
    scriptSteps(out, plan, strategy);
    if (bakes) out.push_back({Step::BAKE, 100, plan.waves[wave].bake});
    return out;
  }
  if (strategy.kind == common::StrategyKind::kRolling) {
    // The agent replaces the replicas in rounds; there is no second set to retire.
    out.push_back({Step::ROLL, 100, {}});
    if (bakes) out.push_back({Step::BAKE, 100, plan.waves[wave].bake});
    return out;
  }
  out.push_back({Step::DEPLOY, 0, {}});
  appendShifts(out, strategy, strategy.steps.empty() ? std::vector<uint32_t>{100} : strategy.steps,
               0);
  if (bakes) out.push_back({Step::BAKE, 100, plan.waves[wave].bake});
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
    case Step::SHIFT:  // the script driver's: the process driver's shifts carry no command
      if (plan.driver != common::DriverKind::kScript) break;
      return plan.steps.switch_traffic.empty() ? plan.steps.apply : plan.steps.switch_traffic;
    case Step::WATCH:  // run at each interval of the tier, besides the health checks
      return plan.steps.watch;
    default:
      break;
  }
  static const std::string kNone;
  // Process steps have no command (the agent's driver knows what to do), and neither have the
  // script driver's analyze and bake (the agent watches what the command's `watch` says).
  return kNone;
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
    case Step::WATCH:
      return ClusterState::kWatching;
  }
  return ClusterState::kBuilding;
}

}  // namespace

namespace deployment_internal {

void emit(Effects& fx, std::string type, std::string wave, std::string cluster, std::string step,
          std::string message) {
  fx.events.push_back(Event{std::move(type), std::move(wave), std::move(cluster), std::move(step),
                            std::move(message)});
  fx.changed = true;
}

std::string byActor(const Actor& by, const std::string& reason) {
  std::string out = "by " + (by.name.empty() ? std::string("an unnamed caller") : by.name);
  if (!reason.empty()) out += ": " + cleanReason(reason);
  return out;
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

void dispatch(Deployment& d, size_t wave, ClusterProgress& c, Step step, int index, Effects& fx) {
  c.attempt = (c.step == step && c.step_index == index) ? c.attempt + 1 : 1;
  c.step = step;
  c.step_index = index;
  c.state = inFlightState(step);
  c.in_flight = true;
  c.abort_sent = false;
  c.held = false;
  c.promoted_by.clear();
  c.exit_code.reset();
  c.message.clear();
  c.check.clear();
  if (step == Step::VERIFY && index >= 0) {
    const std::vector<StepSpec> steps = forwardSteps(d.plan, wave);
    if (static_cast<size_t>(index) < steps.size())
      c.check = steps[static_cast<size_t>(index)].check;
  }
  if (!c.check.empty()) startCheckRun(c);
  // From here the cluster may run the new version: it is rolled back on the way back.
  if (step == Step::APPLY || step == Step::DEPLOY || step == Step::ROLL) {
    c.applied = true;
  }

  fx.dispatches.push_back(makeDispatch(d, c));
  emit(fx, step == Step::ROLLBACK ? "rollback.started" : "stage.started", d.waves[wave].name,
       c.name, stepName(step),
       (c.check.empty() ? "" : "check " + c.check + ", ") + "attempt " + std::to_string(c.attempt));
}

}  // namespace deployment_internal

using deployment_internal::agentLostBeforeStep;
using deployment_internal::approvalHolds;
using deployment_internal::approvalProgress;
using deployment_internal::byActor;
using deployment_internal::dispatch;
using deployment_internal::emit;
using deployment_internal::forwardFailed;
using deployment_internal::isActiveForward;
using deployment_internal::promotionHolds;
using deployment_internal::recordEnvironmentSuccess;
using deployment_internal::runRollback;
using deployment_internal::startRollback;

namespace {

// Chooses the clusters of the current wave. False when it could not (the
// deployment is then rolling back).
bool resolveWave(Deployment& d, const Context& ctx, Effects& fx) {
  WaveProgress& w = d.waves[d.wave_index];
  const common::Wave& pw = d.plan.waves[d.wave_index];
  std::set<std::string> earlier;
  for (size_t i = 0; i < d.wave_index; ++i) {
    for (const auto& c : d.waves[i].clusters) earlier.insert(c.name);
  }
  // The rule submission checked the plan with (coordinator/wave_clusters.hpp).
  const std::vector<std::string> names = waveClusters(pw, ctx.registry.agents(), earlier);
  w.resolved = true;
  fx.changed = true;
  if (names.empty()) {
    std::string sel;
    for (const auto& [k, v] : pw.selector) sel += (sel.empty() ? "" : ",") + k + "=" + v;
    std::string reason =
        "wave " + w.name + ": selector {" + sel + "} matches no registered cluster";
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

// Before a wave enters its environment: the checks the policy requires there (copied onto the
// wave at submission) against what CI reported about the release. Unmet: the deployment holds
// in blocked_by_checks, its reason naming each unmet check and what it needs; an event only
// when that list changes. Reporting a check (Engine::reportCheck) advances it again.
bool checksHold(Deployment& d, const common::Wave& pw, const Context& ctx, Effects& fx) {
  if (pw.checks.empty()) return true;
  const std::vector<UnmetCheck> unmet = unmetChecks(pw.checks, ctx.release);
  if (unmet.empty()) return true;
  const std::string where = pw.environment.empty() ? "" : " (" + pw.environment + ")";
  const std::string reason = "wave " + pw.name + where + " waits for checks: " + unmetText(unmet);
  if (d.state != DeploymentState::kBlockedByChecks || d.reason != reason) {
    emit(fx, "wave.blocked_by_checks", pw.name, "", "",
         unmetText(unmet) + "; report them with `flotilla checks report " + d.plan.service + " " +
             d.plan.version + " NAME --passed`");
    d.state = DeploymentState::kBlockedByChecks;
    d.reason = reason;
    fx.changed = true;
  }
  return false;
}

void runForward(Deployment& d, const Context& ctx, Effects& fx) {
  while (d.state == DeploymentState::kRunning) {
    if (d.wave_index >= d.waves.size()) {
      if (deployment_internal::watchPending(d)) {
        deployment_internal::runWatch(d, ctx, fx);
        return;
      }
      d.state = DeploymentState::kSucceeded;
      d.reason.clear();
      emit(fx, "deployment.succeeded", "", "", "",
           d.plan.service + " " + d.plan.version + " is live on every wave");
      return;
    }
    WaveProgress& w = d.waves[d.wave_index];
    const common::Wave& pw = d.plan.waves[d.wave_index];
    if (w.state == WaveState::kPending && !checksHold(d, pw, ctx, fx)) return;
    if (w.state == WaveState::kPending && !promotionHolds(d, pw, ctx, fx)) return;
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
        // Gone since submission (or between two steps): the lost-cluster policy decides.
        if (!agentLostBeforeStep(d, d.wave_index, c, agent != nullptr, fx)) return;
        continue;
      }
      if (fresh) ++active;
      dispatch(d, d.wave_index, c, steps[next].kind, static_cast<int>(next), fx);
    }
    bool all_done = std::all_of(w.clusters.begin(), w.clusters.end(),
                                [](const auto& c) { return c.state == ClusterState::kSucceeded; });
    if (!all_done) return;
    w.state = WaveState::kSucceeded;
    emit(fx, "wave.succeeded", w.name, "", "", "");
    recordEnvironmentSuccess(d, pw, ctx, fx);
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
  if (step == Step::VERIFY && !c.check.empty()) {
    for (const common::VerifyCheck& check : d.plan.steps.verify_checks) {
      if (check.name != c.check) continue;
      out.command = check.command;
      out.timeout_ms = static_cast<uint64_t>(check.timeout.value_or(d.plan.steps.timeout).count());
    }
  }
  StepSpec spec{step, step == Step::ROLLBACK ? 0u : 100u, {}};
  const auto steps = forwardSteps(d.plan, wave);
  const common::WatchTier* tier = nullptr;
  if (step == Step::WATCH) {
    // The watch's index is its tier.
    if (c.step_index >= 0 && static_cast<size_t>(c.step_index) < d.plan.watch.size()) {
      tier = &d.plan.watch[static_cast<size_t>(c.step_index)];
      spec.duration = tier->duration;
    }
  } else if (step != Step::ROLLBACK && c.step_index >= 0 &&
             static_cast<size_t>(c.step_index) < steps.size()) {
    spec = steps[static_cast<size_t>(c.step_index)];
  }
  if (tier != nullptr) {
    // The tier, and time to say how it ended.
    out.timeout_ms = static_cast<uint64_t>(spec.duration.count() +
                                           std::max<int64_t>(d.plan.steps.timeout.count(), 60000));
  } else if (d.plan.driver == common::DriverKind::kProcess || spec.duration.count() > 0) {
    // Analysis may watch up to four windows (three more when inconclusive).
    out.timeout_ms = static_cast<uint64_t>(
        std::max<int64_t>(d.plan.steps.timeout.count(), 4 * spec.duration.count() + 60000));
  }
  ProcessStepParams params{d.id, c.name, c.previous_version, wave, spec.weight, spec.duration};
  if (tier != nullptr) params.interval = tier->interval;
  if (d.plan.driver == common::DriverKind::kProcess) {
    out.process = params;
  } else if (step == Step::ANALYZE || step == Step::BAKE || step == Step::WATCH) {
    out.watch = params;
  }
  const common::Strategy& strategy = d.plan.strategyFor(wave);
  out.env = {
      {"FLOTILLA_SERVICE", d.plan.service},
      {"FLOTILLA_VERSION", d.plan.version},
      {"FLOTILLA_PREVIOUS_VERSION", c.previous_version},
      {"FLOTILLA_CLUSTER", c.name},
      {"FLOTILLA_WAVE", d.waves[wave].name},
      {"FLOTILLA_DEPLOYMENT", d.id},
      {"FLOTILLA_WEIGHT", std::to_string(spec.weight)},
      {"FLOTILLA_STEP", stepName(step)},
      {"FLOTILLA_STRATEGY", common::strategyName(strategy.kind)},
  };
  if (tier != nullptr) out.env["FLOTILLA_WATCH_TIER"] = tier->name;
  // The check a verify step runs: a checklist's name, or "verify" for the single command.
  if (step == Step::VERIFY) out.env["FLOTILLA_CHECK"] = c.check.empty() ? "verify" : c.check;
  if (strategy.kind == common::StrategyKind::kRolling) {
    out.env["FLOTILLA_MAX_UNAVAILABLE"] = std::to_string(strategy.max_unavailable);
    out.env["FLOTILLA_MAX_SURGE"] = std::to_string(strategy.max_surge);
  }
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
           byActor(by, "") + (d.plan.hotfix ? "; hotfix: " + d.plan.hotfix->reason : ""));
  return d;
}

namespace {

// The states a freeze stops: those going forward (a rollback goes on).
bool freezable(DeploymentState s) {
  return s == DeploymentState::kPending || s == DeploymentState::kRunning ||
         s == DeploymentState::kAwaitingApproval || s == DeploymentState::kBlockedByChecks;
}

// At a step boundary (whenever the machine is about to move forward): an active freeze that
// covers the deployment holds it frozen; once none does, it goes on from where it stopped.
// Stages in flight are not aborted: their results are still recorded, and a failure still
// rolls back.
void applyFreeze(Deployment& d, const Context& ctx, Effects& fx) {
  if (!freezable(d.state) && d.state != DeploymentState::kFrozen) return;
  const Freeze* freeze =
      ctx.freezes == nullptr ? nullptr : coveringFreeze(*ctx.freezes, d, ctx.registry.agents());
  if (freeze != nullptr && freezable(d.state)) {
    d.resume_to = d.state;
    d.state = DeploymentState::kFrozen;
    d.reason = "frozen: " + describeFreeze(*freeze);
    emit(fx, "deployment.frozen", "", "", "",
         d.reason + " (steps in flight finish; no new step starts; rollbacks still run)");
  } else if (freeze == nullptr && d.state == DeploymentState::kFrozen) {
    d.state = freezable(d.resume_to) ? d.resume_to : DeploymentState::kRunning;
    d.reason.clear();
    emit(fx, "deployment.unfrozen", "", "", "",
         "no freeze covers it any more; it goes on from where it stopped");
  }
}

}  // namespace

void advance(Deployment& d, const Context& ctx, Effects& fx) {
  applyFreeze(d, ctx, fx);
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
    case DeploymentState::kWatching:
      deployment_internal::runWatch(d, ctx, fx);
      break;
    case DeploymentState::kBlockedByChecks:
      // Checked again (a check was reported, the coordinator restarted, a second passed: a
      // soak may have ended): still unmet changes nothing unless what is missing changed; met
      // lets the wave go on.
      if (d.wave_index < d.waves.size() && checksHold(d, d.plan.waves[d.wave_index], ctx, fx) &&
          promotionHolds(d, d.plan.waves[d.wave_index], ctx, fx)) {
        const common::Wave& pw = d.plan.waves[d.wave_index];
        if (!pw.checks.empty()) {
          emit(fx, "wave.checks_passed", pw.name, "", "",
               "every check its environment requires passed");
        }
        if (!pw.promote_from.empty()) {
          emit(fx, "wave.promotion_met", pw.name, "", "",
               d.plan.service + " " + d.plan.version + " succeeded in " + pw.promote_from +
                   " with its artifact, longer ago than the soak");
        }
        d.state = DeploymentState::kRunning;
        d.reason.clear();
        fx.changed = true;
        runForward(d, ctx, fx);
      }
      break;
    case DeploymentState::kQueued:  // leaveQueue() starts it
    case DeploymentState::kRollingBack:
    case DeploymentState::kPaused:
    case DeploymentState::kFrozen:  // applyFreeze() lets it go
    case DeploymentState::kSucceeded:
    case DeploymentState::kRolledBack:
    case DeploymentState::kFailed:
    case DeploymentState::kCancelled:
      break;
  }
  // A failure found while moving forward starts the rollback in the same step.
  if (d.state == DeploymentState::kRollingBack) runRollback(d, ctx, fx);
}

}  // namespace flotilla::coordinator
