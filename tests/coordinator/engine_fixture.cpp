// The engine's test fixture (see the header).
#include "tests/coordinator/engine_fixture.hpp"

#include <utility>

namespace flotilla::coordinator::testing {

void RecordingOutbox::send(const std::string& cluster, capnp::MessageBuilder& message) {
  auto frame = common::encodeFrame(message);
  auto decoded = common::DecodedEnvelope::decode(frame.data(), frame.size());
  ASSERT_TRUE(decoded.ok());
  auto env = (*decoded)->root();
  Sent s{cluster, env.which(), "", 0, 0, ""};
  if (env.isStageCommand()) {
    auto ref = env.getStageCommand().getRef();
    nonces[common::toStd(ref.getDeploymentId()) + "|" + common::toStd(ref.getStageId()) + "|" +
           std::to_string(ref.getAttempt())] = common::toStd(ref.getNonce());
    s.stage = common::toStd(env.getStageCommand().getRef().getStageId());
    s.attempt = env.getStageCommand().getRef().getAttempt();
    s.epoch = env.getStageCommand().getEpoch();
    for (auto kv : env.getStageCommand().getEnv()) {
      if (common::toStd(kv.getKey()) == "FLOTILLA_PREVIOUS_VERSION") {
        s.previous_version = common::toStd(kv.getValue());
      }
    }
  } else if (env.isAbort()) {
    s.stage = common::toStd(env.getAbort().getRef().getStageId());
    s.attempt = env.getAbort().getRef().getAttempt();
  } else if (env.isRegistered()) {
    s.epoch = env.getRegistered().getEpoch();
    s.heartbeat_ms = env.getRegistered().getHeartbeatIntervalMs();
  }
  sent.push_back(s);
}

std::vector<std::string> RecordingOutbox::commands() const {
  std::vector<std::string> out;
  for (const auto& s : sent) {
    if (s.which == schema::Envelope::STAGE_COMMAND) out.push_back(s.cluster + ":" + s.stage);
  }
  return out;
}

common::Plan twoWaves() {
  common::Plan p;
  p.service = "checkout";
  p.version = "2.0.0";
  p.steps.apply = "apply";
  p.steps.rollback = "rollback";
  common::Wave a;
  a.name = "staging";
  a.clusters = {"staging-eu"};
  common::Wave b;
  b.name = "prod";
  b.selector = {{"environment", "production"}};
  p.waves = {a, b};
  return p;
}

void EngineTest::openEngine() {
  engine_.reset();
  store_.reset();
  auto store = Store::open(dir_.path());
  ASSERT_TRUE(store.ok()) << store.status().toString();
  store_ = std::move(store).value();
  outbox_.sent.clear();
  engine_ = std::make_unique<Engine>(*store_, metrics_, outbox_, clock_, options_);
  ASSERT_TRUE(engine_->start().ok());
}

void EngineTest::deliver(const std::string& identity, capnp::MallocMessageBuilder& m) {
  auto frame = common::encodeFrame(m);
  auto decoded = common::DecodedEnvelope::decode(frame.data(), frame.size());
  ASSERT_TRUE(decoded.ok());
  engine_->onMessage(Peer{identity, "", "127.0.0.1"}, (*decoded)->root());
  engine_->endTurn();  // the loop applies queued results after each batch of frames
}

void EngineTest::fillRef(schema::StageRef::Builder ref, const std::string& id,
                         const std::string& stage, uint32_t attempt) {
  ref.setDeploymentId(id);
  ref.setStageId(stage);
  ref.setAttempt(attempt);
  auto it = outbox_.nonces.find(id + "|" + stage + "|" + std::to_string(attempt));
  if (it != outbox_.nonces.end()) ref.setNonce(it->second);
}

void EngineTest::registerAgent(
    const std::string& cluster, const std::string& env,
    std::vector<std::tuple<std::string, std::string, uint32_t, bool>> held) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<schema::Envelope>().initRegister();
  r.setCluster(cluster);
  r.setAgentVersion("test");
  auto labels = r.initLabels(1);
  labels[0].setKey("environment");
  labels[0].setValue(env);
  auto h = r.initHeld(static_cast<unsigned>(held.size()));
  for (unsigned i = 0; i < held.size(); ++i) {
    fillRef(h[i].initRef(), std::get<0>(held[i]), std::get<1>(held[i]), std::get<2>(held[i]));
    h[i].setRunning(std::get<3>(held[i]));
    h[i].setOutcome(schema::Outcome::SUCCEEDED);
  }
  deliver(cluster, m);
}

void EngineTest::result(const std::string& cluster, const std::string& id, const std::string& stage,
                        schema::Outcome outcome, uint32_t attempt) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<schema::Envelope>().initStageResult();
  fillRef(r.initRef(), id, stage, attempt);
  r.setOutcome(outcome);
  r.setExitCode(outcome == schema::Outcome::SUCCEEDED ? 0 : 1);
  r.setMessage("done");
  deliver(cluster, m);
}

DeploymentState EngineTest::stored(const std::string& id) {
  auto d = store_->loadDeployment(id);
  EXPECT_TRUE(d.ok());
  return d.ok() ? d->state : DeploymentState::kPending;
}

}  // namespace flotilla::coordinator::testing
