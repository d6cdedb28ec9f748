// The frames the agent sends the coordinator: register, heartbeat, a stage's output lines, its
// result, alerts and analysis figures (agent/agent.cpp has the loop and the handlers).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/agent.hpp"
#include "common/logging.hpp"

namespace flotilla::agent {

using common::Status;

namespace {

void setRef(schema::StageRef::Builder b, const StageKey& k) {
  b.setDeploymentId(k.deployment);
  b.setStageId(k.stage);
  b.setAttempt(k.attempt);
  b.setNonce(k.nonce);
}

}  // namespace

void Agent::flushOutput(Running& run, bool force) {
  if (run.pending_lines.empty() && !(force && run.lines_dropped > 0)) return;
  capnp::MallocMessageBuilder message;
  auto progress = message.initRoot<schema::Envelope>().initStageProgress();
  setRef(progress.initRef(), run.record.key);
  auto lines = progress.initLines(static_cast<unsigned>(run.pending_lines.size()));
  for (unsigned i = 0; i < run.pending_lines.size(); ++i) lines.set(i, run.pending_lines[i]);
  if (force) progress.setDroppedLines(run.lines_dropped);
  run.lines_sent += run.pending_lines.size();
  run.pending_lines.clear();
  send(message);
}

void Agent::sendRegister() {
  capnp::MallocMessageBuilder message;
  auto reg = message.initRoot<schema::Envelope>().initRegister();
  reg.setCluster(options_.cluster);
  reg.setAgentVersion(kAgentVersion);
  reg.setLastEpoch(records_->highestEpoch());
  if (!options_.insecure && !options_.enroll_token.empty() && !enrolled()) {
    reg.setEnrollToken(options_.enroll_token);
  }
  auto labels = reg.initLabels(static_cast<unsigned>(options_.labels.size()));
  unsigned i = 0;
  for (const auto& [k, v] : options_.labels) {
    labels[i].setKey(k);
    labels[i].setValue(v);
    ++i;
  }
  // What we hold: running steps, and recent finished ones (whose results may
  // have been lost with a coordinator that died).
  std::vector<StageRecord> all = records_->all();
  constexpr size_t kMaxHeld = 1000;
  size_t from = all.size() > kMaxHeld ? all.size() - kMaxHeld : 0;
  auto held = reg.initHeld(static_cast<unsigned>(all.size() - from));
  for (size_t j = from; j < all.size(); ++j) {
    auto h = held[static_cast<unsigned>(j - from)];
    setRef(h.initRef(), all[j].key);
    bool running = running_.count(all[j].key) > 0;
    h.setRunning(running);
    h.setOutcome(all[j].outcome);
    h.setExitCode(all[j].exit_code);
    h.setMessage(all[j].message);
    h.setDurationMs(
        static_cast<uint64_t>(std::max<int64_t>(0, all[j].finished_ms - all[j].started_ms)));
    h.setArtifact(all[j].artifact);
  }
  send(message);
  next_register_ = Clock::now() + register_backoff_.next();
}

void Agent::sendHeartbeat() {
  capnp::MallocMessageBuilder message;
  auto hb = message.initRoot<schema::Envelope>().initHeartbeat();
  hb.setCluster(options_.cluster);
  hb.setEpoch(epoch_);
  hb.setRunningStages(static_cast<uint32_t>(running_.size()));
  send(message);
  next_heartbeat_ = Clock::now() + heartbeat_;
}

void Agent::sendResult(const StageRecord& r, uint64_t epoch) {
  capnp::MallocMessageBuilder message;
  auto res = message.initRoot<schema::Envelope>().initStageResult();
  setRef(res.initRef(), r.key);
  res.setEpoch(epoch);
  res.setOutcome(r.outcome);
  res.setExitCode(r.exit_code);
  res.setMessage(r.message);
  res.setArtifact(r.artifact);
  res.setDurationMs(static_cast<uint64_t>(std::max<int64_t>(0, r.finished_ms - r.started_ms)));
  send(message);
}

void Agent::sendAlert(const StageKey& key, const AlertReport& alert) {
  capnp::MallocMessageBuilder message;
  auto a = message.initRoot<schema::Envelope>().initAlert();
  setRef(a.initRef(), key);
  a.setEpoch(epoch_);
  a.setRule(alert.rule);
  a.setValue(alert.value);
  a.setThreshold(alert.threshold);
  a.setBaseline(alert.baseline);
  a.setVersion(alert.version);
  a.setMessage(alert.message);
  send(message);
}

void Agent::sendFigures(const StageKey& key, const FiguresReport& f) {
  // The driver checked them; a run that did not is not trusted to have (they are cheap).
  if (Status s = common::checkFigures(f); !s.ok()) {
    spdlog::warn("stage {}: figures not sent: {}", key.toString(), s.message());
    return;
  }
  capnp::MallocMessageBuilder message;
  auto m = message.initRoot<schema::Envelope>().initFigures();
  setRef(m.initRef(), key);
  m.setEpoch(epoch_);
  m.setWindow(f.window);
  m.setWindowMs(f.window_ms);
  m.setBake(f.bake);
  auto set = [](schema::Figures::SetFigures::Builder out, const common::SetFigures& in) {
    out.setVersion(in.version);
    out.setRequests(in.requests);
    out.setRequestRate(in.request_rate);
    out.setErrorRate(in.error_rate);
    out.setHasLatencyP95(in.latency_p95.has_value());
    out.setLatencyP95(in.latency_p95.value_or(0));
    out.setReplicas(in.replicas);
  };
  set(m.initCandidate(), f.candidate);
  if (f.stable) set(m.initStable(), *f.stable);
  m.setHasErrorRateLimit(f.error_rate_limit.has_value());
  m.setErrorRateLimit(f.error_rate_limit.value_or(0));
  m.setHasLatencyP95Limit(f.latency_p95_limit.has_value());
  m.setLatencyP95Limit(f.latency_p95_limit.value_or(0));
  m.setMinRequests(f.min_requests);
  static_assert(static_cast<int>(common::WindowVerdict::kNone) ==
                    static_cast<int>(schema::WindowVerdict::NONE) &&
                static_cast<int>(common::WindowVerdict::kInconclusive) ==
                    static_cast<int>(schema::WindowVerdict::INCONCLUSIVE));
  m.setVerdict(static_cast<schema::WindowVerdict>(f.verdict));
  m.setHealthChecks(f.health_checks);
  m.setHealthFailing(f.health_failing);
  m.setHealthThreshold(f.health_threshold);
  send(message);
}

void Agent::send(capnp::MessageBuilder& message) {
  try {
    zmq::message_t frame = common::encodeFrame(message);
    if (!socket_.send(frame, zmq::send_flags::dontwait)) {
      spdlog::warn("outgoing queue full; frame dropped (the coordinator re-asks on register)");
    }
  } catch (const zmq::error_t& e) {
    spdlog::warn("send: {}", e.what());
  }
}

}  // namespace flotilla::agent
