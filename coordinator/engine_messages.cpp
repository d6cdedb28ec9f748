// What an agent's frame means: the engine's one dispatch on message type, and a handler per
// message an agent may send (register, heartbeat, stage progress, stage result, alert, figures).
// The rest of the engine (durable change, then delivery; time; operator actions) is in engine.cpp.
#include <capnp/message.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/analysis_figures.hpp"
#include "common/failpoint.hpp"
#include "common/logging.hpp"
#include "common/rules.hpp"
#include "coordinator/cluster_view.hpp"
#include "coordinator/engine.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::toStd;

namespace {

// Output lines kept per progress message; the agent already bounds them per stage.
constexpr size_t kMaxLinesPerProgress = 64;
constexpr size_t kMaxLineBytes = 2048;

std::string heldKey(const std::string& deployment, const std::string& stage, uint32_t attempt) {
  return deployment + "|" + stage + "|" + std::to_string(attempt);
}

// A stage's end as an agent reports it: in a result, or in the list of what it holds when it
// registers again (both carry the same fields). The message is attacker-sized: cut.
template <typename Reader>
StageResult resultFrom(const std::string& cluster, Reader msg, Metrics& metrics) {
  StageResult r;
  r.cluster = cluster;
  r.stage_id = toStd(msg.getRef().getStageId());
  r.attempt = msg.getRef().getAttempt();
  r.outcome = msg.getOutcome();
  r.exit_code = msg.getExitCode();
  r.message = toStd(msg.getMessage());
  if (r.message.size() > kMaxLineBytes) r.message.resize(kMaxLineBytes);
  r.duration_ms = msg.getDurationMs();
  // A peer's claim: only a well-formed digest is kept; anything else is dropped and counted.
  const std::string artifact = toStd(msg.getArtifact()).substr(0, 128);
  if (common::isArtifactDigest(artifact)) {
    r.artifact = artifact;
  } else if (!artifact.empty()) {
    metrics.frameDropped("bad_artifact");
    spdlog::warn("agent {}: malformed artifact digest dropped: {}", cluster,
                 common::loggable(artifact, 100));
  }
  return r;
}

// An analysis window's figures as the agent sent them; InvalidArgument when any is unacceptable
// (common::checkFigures' rules, a verdict out of the enum's range).
common::StatusOr<common::AnalysisFigures> figuresFrom(schema::Figures::Reader msg) {
  auto set = [](schema::Figures::SetFigures::Reader in) {
    common::SetFigures out;
    // Over-long text is refused by the version rule below; the copy is bounded first.
    out.version = toStd(in.getVersion()).substr(0, 256);
    out.requests = in.getRequests();
    out.request_rate = in.getRequestRate();
    out.error_rate = in.getErrorRate();
    if (in.getHasLatencyP95()) out.latency_p95 = in.getLatencyP95();
    out.replicas = in.getReplicas();
    return out;
  };
  common::AnalysisFigures f;
  f.bake = msg.getBake();
  f.window = msg.getWindow();
  f.window_ms = msg.getWindowMs();
  if (!msg.hasCandidate()) return Status::InvalidArgument("no candidate set");
  f.candidate = set(msg.getCandidate());
  if (msg.hasStable()) f.stable = set(msg.getStable());
  if (msg.getHasErrorRateLimit()) f.error_rate_limit = msg.getErrorRateLimit();
  if (msg.getHasLatencyP95Limit()) f.latency_p95_limit = msg.getLatencyP95Limit();
  f.min_requests = msg.getMinRequests();
  switch (msg.getVerdict()) {
    case schema::WindowVerdict::NONE:
      f.verdict = common::WindowVerdict::kNone;
      break;
    case schema::WindowVerdict::PASS:
      f.verdict = common::WindowVerdict::kPass;
      break;
    case schema::WindowVerdict::FAIL:
      f.verdict = common::WindowVerdict::kFail;
      break;
    case schema::WindowVerdict::INCONCLUSIVE:
      f.verdict = common::WindowVerdict::kInconclusive;
      break;
    default:
      return Status::InvalidArgument("unknown verdict");
  }
  f.health_checks = msg.getHealthChecks();
  f.health_failing = msg.getHealthFailing();
  f.health_threshold = msg.getHealthThreshold();
  if (Status s = common::checkFigures(f); !s.ok()) return s;
  return f;
}

}  // namespace

// ---- Message dispatch: the one place that decides what a frame means ----------------------

void Engine::onMessage(const Peer& peer, schema::Envelope::Reader envelope) {
  const auto which = envelope.which();
  if (which == schema::Envelope::REGISTER) {
    handleRegister(peer, envelope.getRegister());
    return;
  }
  // Before registration only `register` is handled (the lesson of Salt CVE-2020-11651).
  std::optional<std::string> cluster = gate_.clusterOf(peer);
  if (!cluster) {
    if (which == schema::Envelope::HEARTBEAT) {
      // Unknown to this run (we restarted, or it was lost or replaced): register again.
      sendReregister(peer.connection);
    } else {
      gate_.refuseFrame(peer, "unregistered",
                        std::string(common::messageTypeName(which)) +
                            " from a connection not registered as any cluster");
    }
    return;
  }
  // A frame about a stage must carry the nonce of the command that started it.
  auto sent = [&](schema::StageRef::Reader ref) {
    if (nonces_.valid(ref)) return true;
    gate_.refuseFrame(peer, "bad_nonce",
                      std::string(common::messageTypeName(which)) + " from " + *cluster +
                          " without the nonce of a command sent for that stage");
    return false;
  };
  switch (which) {
    case schema::Envelope::HEARTBEAT:
      handleHeartbeat(*cluster, envelope.getHeartbeat());
      return;
    case schema::Envelope::STAGE_PROGRESS:
      if (sent(envelope.getStageProgress().getRef())) {
        handleProgress(*cluster, envelope.getStageProgress());
      }
      return;
    case schema::Envelope::STAGE_RESULT:
      if (sent(envelope.getStageResult().getRef())) {
        handleResult(*cluster, envelope.getStageResult());
      }
      return;
    case schema::Envelope::ALERT:
      if (sent(envelope.getAlert().getRef())) handleAlert(*cluster, envelope.getAlert());
      return;
    case schema::Envelope::FIGURES:
      if (sent(envelope.getFigures().getRef())) handleFigures(*cluster, envelope.getFigures());
      return;
    case schema::Envelope::REGISTER:
    case schema::Envelope::REGISTERED:
    case schema::Envelope::REREGISTER:
    case schema::Envelope::STAGE_COMMAND:
    case schema::Envelope::ABORT:
    case schema::Envelope::REFUSED:
      break;
  }
  gate_.refuseFrame(peer, "unexpected_type",
                    std::string(common::messageTypeName(which)) + ": agents do not send that");
}

void Engine::handleRegister(const Peer& peer, schema::Register::Reader msg) {
  std::map<std::string, std::string> labels;
  size_t label_count = msg.getLabels().size();
  if (label_count <= kMaxLabels) {
    for (auto l : msg.getLabels()) labels[toStd(l.getKey())] = toStd(l.getValue());
  } else {
    // Counted, not copied: checkLabels refuses the register for the count alone.
    for (size_t i = 0; i <= kMaxLabels; ++i) labels["l" + std::to_string(i)] = "";
  }
  // Before admission: a refused register binds nothing.
  if (msg.getAgentVersion().size() > 64) {
    gate_.refuseFrame(peer, "bad_register", "agent version over 64 bytes");
    return;
  }
  std::optional<std::string> admitted = gate_.admitRegister(peer, msg, labels);
  if (!admitted) return;
  const std::string cluster = *admitted;
  const std::chrono::milliseconds heartbeat = heartbeatInterval();
  bool changed = registry_.registerAgent(cluster, labels, toStd(msg.getAgentVersion()), epoch_,
                                         clock_.now(), clock_.wallNow(), heartbeat);
  if (changed) {
    Status s = store_.putAgent(StoredAgent{cluster, labels, toStd(msg.getAgentVersion())});
    if (!s.ok()) spdlog::error("persisting agent {}: {}", cluster, s.toString());
  }
  spdlog::info("agent {} registered ({} held stages)", cluster, msg.getHeld().size());
  // Back after it was lost: it converges to each deployment's decision first.
  // Only where there is something to converge: mutate copies the deployment, and a whole
  // fleet registers at once after a coordinator restart.
  for (auto& [id, d] : deployments_) {
    const ClusterProgress* c = d.findCluster(cluster);
    if (c == nullptr || !(c->agent_lost || c->rollback_lost || d.paused_for_lost)) continue;
    Status s = mutate(id, [&](Deployment& dep, const Context& ctx, Effects& fx) {
      agentReturned(dep, cluster, ctx, fx);
      return Status::Ok();
    });
    if (!s.ok()) spdlog::error("agent {} back in {}: {}", cluster, id, s.toString());
  }

  capnp::MallocMessageBuilder reply;
  auto r = reply.initRoot<schema::Envelope>().initRegistered();
  r.setEpoch(epoch_);
  r.setHeartbeatIntervalMs(static_cast<uint32_t>(heartbeat.count()));
  outbox_.send(cluster, reply);

  std::map<std::string, bool> held_running;
  for (auto h : msg.getHeld()) {
    auto ref = h.getRef();
    if (!nonces_.valid(ref)) {
      // Not a stage this coordinator sent: ignored (if one of ours is in flight there, it is
      // sent again below, and the agent answers it from its record).
      metrics_.frameDropped("bad_nonce");
      continue;
    }
    std::string key =
        heldKey(toStd(ref.getDeploymentId()), toStd(ref.getStageId()), ref.getAttempt());
    held_running[key] = h.getRunning();
    if (!h.getRunning()) {
      const StageResult r = resultFrom(cluster, h, metrics_);
      auto it = deployments_.find(toStd(ref.getDeploymentId()));
      if (it == deployments_.end()) continue;
      Status s = mutate(it->first, [&](Deployment& d, const Context& ctx, Effects& fx) {
        return applyResult(d, r, ctx, fx);
      });
      s.ignoreError();  // NotFound: already known; that is the common case
    }
  }
  reconcileAgent(cluster, held_running);
  publishAgents();
}

void Engine::reconcileAgent(const std::string& cluster,
                            const std::map<std::string, bool>& held_running) {
  for (auto& [id, d] : deployments_) {
    ClusterProgress* c = d.findCluster(cluster);
    if (c == nullptr || !c->in_flight) continue;
    bool running = held_running.count(heldKey(id, c->stageId(), c->attempt)) > 0;
    if (c->abort_sent) {
      // The agent answers an abort for a stage it never ran with "aborted", so this always ends.
      sendAbort(cluster, id, c->stageId(), c->attempt, "deployment stopped");
    } else if (!running) {
      sendCommand(d, makeDispatch(d, *c));  // it never got it, or lost it: the agent dedupes
    }
  }
}

void Engine::handleHeartbeat(const std::string& cluster, schema::Heartbeat::Reader msg) {
  const AgentInfo* known = registry_.find(cluster);
  if (known != nullptr && known->state == AgentState::kUnknown) publishAgents();  // heard again
  if (registry_.touch(cluster, msg.getEpoch(), clock_.now(), clock_.wallNow())) {
    agents_seen_dirty_ = true;
  } else {
    // Registered under another epoch, or lost meanwhile: ask it to register again.
    capnp::MallocMessageBuilder message;
    message.initRoot<schema::Envelope>().initReregister().setEpoch(epoch_);
    outbox_.send(cluster, message);
  }
}

void Engine::handleProgress(const std::string& cluster, schema::StageProgress::Reader msg) {
  auto ref = msg.getRef();
  auto it = deployments_.find(toStd(ref.getDeploymentId()));
  if (it == deployments_.end()) {
    metrics_.frameDropped("unknown_deployment");
    return;
  }
  // Output is a sign of life like a heartbeat.
  if (const AgentInfo* agent = registry_.find(cluster)) {
    if (registry_.touch(cluster, agent->epoch, clock_.now(), clock_.wallNow())) {
      agents_seen_dirty_ = true;
    }
  }
  std::string stage = toStd(ref.getStageId());
  size_t wave = 0;
  ClusterProgress* c = it->second.findCluster(cluster, &wave);
  if (c == nullptr || c->stageId() != stage || c->attempt != ref.getAttempt()) {
    metrics_.frameDropped("unknown_stage");
    return;
  }
  std::vector<Event> events;
  std::string step = c->step ? stepName(*c->step) : "";
  for (auto line : msg.getLines()) {
    if (events.size() >= kMaxLinesPerProgress) break;
    std::string text = toStd(line);
    if (text.size() > kMaxLineBytes) text.resize(kMaxLineBytes);
    events.push_back(Event{"stage.output", it->second.waves[wave].name, cluster, step, text});
  }
  if (msg.getDroppedLines() > 0) {
    events.push_back(Event{"stage.output", it->second.waves[wave].name, cluster, step,
                           "(" + std::to_string(msg.getDroppedLines()) + " more lines not shown)"});
  }
  if (events.empty()) return;
  Status s = mutate(it->first, [&](Deployment&, const Context&, Effects& fx) {
    fx.events = events;
    fx.changed = true;
    return Status::Ok();
  });
  if (!s.ok()) spdlog::error("recording output of {}: {}", stage, s.toString());
}

void Engine::handleResult(const std::string& cluster, schema::StageResult::Reader msg) {
  auto ref = msg.getRef();
  const StageResult r = resultFrom(cluster, msg, metrics_);
  std::string id = toStd(ref.getDeploymentId());
  if (!deployments_.count(id)) {
    metrics_.staleResult();
    return;
  }
  if (r.outcome == Outcome::REFUSED && msg.getEpoch() != epoch_) {
    // An agent refuses a command from an older epoch without recording it (a late copy from
    // before our restart); this run's copy of the command is answered on its own.
    metrics_.staleResult();
    spdlog::debug("{} refused {} from epoch {}: not this run's command", cluster, r.stage_id,
                  msg.getEpoch());
    return;
  }
  // Crash test: the result is here and not yet durable; the agent must answer it again.
  FLOTILLA_FAILPOINT("coordinator.after_result_before_commit");
  queued_results_[id].push_back(std::move(r));
}

void Engine::handleAlert(const std::string& cluster, schema::Alert::Reader msg) {
  auto ref = msg.getRef();
  auto it = deployments_.find(toStd(ref.getDeploymentId()));
  if (it == deployments_.end()) {
    metrics_.frameDropped("unknown_deployment");
    return;
  }
  size_t wave = 0;
  ClusterProgress* c = it->second.findCluster(cluster, &wave);
  std::string rule = toStd(msg.getRule());
  const bool rule_ok =
      !rule.empty() && rule.size() <= 32 && std::all_of(rule.begin(), rule.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
      });
  // About the cluster's current stage only: the nonce of an earlier one does not carry over.
  if (c != nullptr && (c->stageId() != toStd(ref.getStageId()) || c->attempt != ref.getAttempt())) {
    c = nullptr;
  }
  if (c == nullptr || !rule_ok) {
    metrics_.frameDropped(c == nullptr ? "unknown_stage" : "bad_alert");
    return;
  }
  AlertNotice notice;
  notice.deployment_id = it->first;
  notice.service = it->second.plan.service;
  notice.version = toStd(msg.getVersion()).substr(0, 128);
  notice.cluster = cluster;
  notice.wave = it->second.waves[wave].name;
  notice.stage = toStd(ref.getStageId()).substr(0, 256);
  notice.rule = rule;
  notice.value = msg.getValue();
  notice.threshold = msg.getThreshold();
  notice.baseline = msg.getBaseline();
  notice.message = toStd(msg.getMessage());
  if (notice.message.size() > kMaxLineBytes) notice.message.resize(kMaxLineBytes);
  notice.at_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.wallNow().time_since_epoch())
          .count();
  const std::string step = c->step ? stepName(*c->step) : "";
  Status s = mutate(it->first, [&](Deployment&, const Context&, Effects& fx) {
    fx.events.push_back(Event{"alert", notice.wave, cluster, step,
                              notice.rule + ": " + notice.version + ": " + notice.message});
    fx.changed = true;
    return Status::Ok();
  });
  if (!s.ok()) {
    spdlog::error("recording alert from {}: {}", cluster, s.toString());
    return;
  }
  metrics_.alertRaised(notice.rule);
  spdlog::warn("alert from {} on {}: {}", cluster, notice.deployment_id, notice.message);
  const auto& alerts = it->second.plan.alerts;
  if (alert_listener_ && alerts && !alerts->webhook.empty()) {
    notice.config = *alerts;
    alert_listener_(notice);
  }
}

void Engine::handleFigures(const std::string& cluster, schema::Figures::Reader msg) {
  auto ref = msg.getRef();
  auto it = deployments_.find(toStd(ref.getDeploymentId()));
  if (it == deployments_.end()) {
    metrics_.frameDropped("unknown_deployment");
    return;
  }
  size_t wave = 0;
  ClusterProgress* c = it->second.findCluster(cluster, &wave);
  // About the cluster's analyze, bake or watch step in flight, under this coordinator's epoch.
  if (c == nullptr || c->stageId() != toStd(ref.getStageId()) || c->attempt != ref.getAttempt() ||
      !c->in_flight || !c->step ||
      (*c->step != Step::ANALYZE && *c->step != Step::BAKE && *c->step != Step::WATCH)) {
    metrics_.frameDropped("unknown_stage");
    return;
  }
  if (msg.getEpoch() != epoch_) {
    metrics_.frameDropped("stale_epoch");
    return;
  }
  common::StatusOr<common::AnalysisFigures> figures = figuresFrom(msg);
  const Deployment& d = it->second;
  if (figures.ok() && figures->candidate.version != d.plan.version) {
    figures = Status::InvalidArgument("the candidate is not the deployment's version");
  }
  // A watch tier reports its windows as bake slices: the new version alone at 100%.
  if (figures.ok() && figures->bake != (*c->step != Step::ANALYZE)) {
    figures = Status::InvalidArgument("a window of another kind of step");
  }
  const std::string stage = c->stageId() + "#" + std::to_string(c->attempt);
  // A stage's windows go forward: a repeat or a replay is not a new window.
  if (figures.ok() && c->figures && c->figures_stage == stage &&
      figures->window <= c->figures->window) {
    figures = Status::InvalidArgument("window " + std::to_string(figures->window) + " again");
  }
  if (!figures.ok()) {
    metrics_.frameDropped("bad_figures");
    spdlog::warn("figures from {} dropped: {}", cluster,
                 common::loggable(figures.status().message(), 200));
    return;
  }
  if (!figures->bake) {
    const ClusterView view = viewCluster(d, wave, *c);
    if (view.strategy_step && view.strategy_steps > 0) {
      figures->strategy_step = *view.strategy_step;
      figures->strategy_steps = view.strategy_steps;
    }
  }
  Event event{"cluster.analysis",
              d.waves[wave].name,
              cluster,
              stepName(*c->step),
              common::figuresSummary(*figures),
              common::figuresToJson(*figures).dump()};
  if (event.data.size() > kMaxEventDataBytes) event.data.clear();  // versions are bounded: never
  Status s = mutate(it->first, [&](Deployment& dep, const Context&, Effects& fx) {
    ClusterProgress* target = dep.findCluster(cluster);
    if (target == nullptr) return Status::NotFound("cluster " + cluster);
    target->figures = *figures;
    target->figures_stage = stage;
    fx.events.push_back(event);
    fx.changed = true;
    return Status::Ok();
  });
  if (!s.ok()) spdlog::error("recording figures from {}: {}", cluster, s.toString());
}

std::chrono::milliseconds Engine::heartbeatInterval() const {
  const auto floor = options_.heartbeat_interval;
  if (options_.max_heartbeats_per_second <= 0) return floor;
  // The fleet: agents known, keys enrolled and clusters about to enroll (open tokens), so that
  // a fleet enrolling or coming back at once is sized before its last agent registers.
  const size_t fleet = std::max(registry_.agents().size(), trust_.expectedClusters());
  const std::chrono::milliseconds spread(
      static_cast<int64_t>(fleet * 1000 / static_cast<size_t>(options_.max_heartbeats_per_second)));
  // Never so slow that three beats outlast the deadline.
  const auto ceiling = std::max(floor, options_.agent_lost_after / 3);
  return std::clamp(spread, floor, ceiling);
}

}  // namespace flotilla::coordinator
