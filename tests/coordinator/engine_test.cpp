// The engine over a real RocksDB store: messages in, durable state and
// commands out; restarts resume; silent agents are lost.
#include "coordinator/engine.hpp"

#include <gtest/gtest.h>

#include "tests/support/files.hpp"

namespace flotilla::coordinator {
namespace {

class FakeClock : public common::Clock {
 public:
  // Interface
  common::SteadyTime now() const override { return now_; }
  common::SystemTime wallNow() const override {
    return common::SystemTime(std::chrono::seconds(1'800'000'000)) + (now_ - common::SteadyTime{});
  }
  void advance(std::chrono::milliseconds d) { now_ += d; }

 private:
  common::SteadyTime now_{};
};

struct Sent {
  std::string cluster;
  schema::Envelope::Which which;
  std::string stage;  // for commands and aborts
  uint32_t attempt = 0;
  uint64_t epoch = 0;
  std::string previous_version;  // FLOTILLA_PREVIOUS_VERSION of a command
  uint32_t heartbeat_ms = 0;     // of a Registered
};

class RecordingOutbox : public Outbox {
 public:
  // Interface
  void send(const std::string& cluster, capnp::MessageBuilder& message) override {
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
  // The nonce of every command sent, by "deployment|stage|attempt" (kept across sent.clear()):
  // what a real agent echoes.
  std::map<std::string, std::string> nonces;
  // In these tests a connection is named after its cluster.
  void sendTo(const std::string& connection, capnp::MessageBuilder& message) override {
    send(connection, message);
  }
  void bindCluster(const std::string&, const std::string&) override {}
  bool connectionOpen(const std::string&) const override { return false; }
  void dropConnection(const std::string& connection) override { dropped.push_back(connection); }
  std::vector<std::string> dropped;  // connections closed
  std::vector<std::string> commands() const {
    std::vector<std::string> out;
    for (const auto& s : sent) {
      if (s.which == schema::Envelope::STAGE_COMMAND) out.push_back(s.cluster + ":" + s.stage);
    }
    return out;
  }
  std::vector<Sent> sent;
};

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

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { openEngine(); }
  void TearDown() override {
    engine_.reset();
    store_.reset();
  }

  void openEngine() {
    engine_.reset();
    store_.reset();
    auto store = Store::open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().toString();
    store_ = std::move(store).value();
    outbox_.sent.clear();
    engine_ = std::make_unique<Engine>(*store_, metrics_, outbox_, clock_, options_);
    ASSERT_TRUE(engine_->start().ok());
  }

  void deliver(const std::string& identity, capnp::MallocMessageBuilder& m) {
    auto frame = common::encodeFrame(m);
    auto decoded = common::DecodedEnvelope::decode(frame.data(), frame.size());
    ASSERT_TRUE(decoded.ok());
    engine_->onMessage(Peer{identity, "", "127.0.0.1"}, (*decoded)->root());
    engine_->endTurn();  // the loop applies queued results after each batch of frames
  }

  // A stage ref as an agent sends it: with the nonce of the command it was given ("" when
  // none was sent: what a forger has).
  void fillRef(schema::StageRef::Builder ref, const std::string& id, const std::string& stage,
               uint32_t attempt) {
    ref.setDeploymentId(id);
    ref.setStageId(stage);
    ref.setAttempt(attempt);
    auto it = outbox_.nonces.find(id + "|" + stage + "|" + std::to_string(attempt));
    if (it != outbox_.nonces.end()) ref.setNonce(it->second);
  }

  void registerAgent(const std::string& cluster, const std::string& env,
                     std::vector<std::tuple<std::string, std::string, uint32_t, bool>> held = {}) {
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

  void result(const std::string& cluster, const std::string& id, const std::string& stage,
              schema::Outcome outcome = schema::Outcome::SUCCEEDED, uint32_t attempt = 1) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initStageResult();
    fillRef(r.initRef(), id, stage, attempt);
    r.setOutcome(outcome);
    r.setExitCode(outcome == schema::Outcome::SUCCEEDED ? 0 : 1);
    r.setMessage("done");
    deliver(cluster, m);
  }

  DeploymentState stored(const std::string& id) {
    auto d = store_->loadDeployment(id);
    EXPECT_TRUE(d.ok());
    return d.ok() ? d->state : DeploymentState::kPending;
  }

  support::TempDir dir_{"engine-test"};
  FakeClock clock_;
  Metrics metrics_;
  RecordingOutbox outbox_;
  // The engine's rules, not agent trust (AgentGate has tests of its own): claims are believed.
  EngineOptions options_{std::chrono::milliseconds(3000), std::chrono::milliseconds(500), true};
  std::unique_ptr<Store> store_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, RegisterIsAnsweredWithTheEpoch) {
  registerAgent("staging-eu", "staging");
  ASSERT_EQ(outbox_.sent.size(), 1u);
  EXPECT_EQ(outbox_.sent[0].which, schema::Envelope::REGISTERED);
  EXPECT_EQ(outbox_.sent[0].epoch, engine_->epoch());
  engine_->tick();  // the snapshot is republished once per turn of the loop
  auto agents = engine_->agentsSnapshot();
  ASSERT_EQ(agents.size(), 1u);
  EXPECT_EQ(agents[0].labels.at("environment"), "staging");
}

// A fleet that would send more than --max-heartbeat-rate beats a second is asked for slower
// ones, never so slow that three outlast the lost deadline; an agent is unknown after missing
// three of its own beats (or two thirds of the deadline), not three of the fastest.
TEST_F(EngineTest, ALargeFleetIsAskedForSlowerHeartbeats) {
  options_.max_heartbeats_per_second = 2;  // floor 500 ms, lost after 3 s: ceiling 1 s
  openEngine();
  std::vector<uint32_t> asked;
  for (const char* cluster : {"a", "b", "c", "d"}) {
    outbox_.sent.clear();
    registerAgent(cluster, "staging");
    ASSERT_EQ(outbox_.sent.size(), 1u);
    asked.push_back(outbox_.sent[0].heartbeat_ms);
  }
  // Fleets of 0, 1, 2 and 3 known agents: 0, 500, 1000, 1500 ms at 2 a second.
  EXPECT_EQ(asked, (std::vector<uint32_t>{500, 500, 1000, 1000}));
  auto state = [&](const std::string& cluster) {
    engine_->tick();
    for (const auto& a : engine_->agentsSnapshot()) {
      if (a.cluster == cluster) return a.state;
    }
    return AgentState::kLost;
  };
  clock_.advance(std::chrono::milliseconds(1600));
  EXPECT_EQ(state("a"), AgentState::kUnknown);    // three beats of 500 ms missed
  EXPECT_EQ(state("d"), AgentState::kConnected);  // not yet two of 1 s
  clock_.advance(std::chrono::milliseconds(500));
  EXPECT_EQ(state("d"), AgentState::kUnknown);  // two thirds of the 3 s deadline
}

TEST_F(EngineTest, RegisterUnderAnotherNameIsDropped) {
  registerAgent("staging-eu", "staging");
  outbox_.sent.clear();
  capnp::MallocMessageBuilder m;
  m.initRoot<schema::Envelope>().initRegister().setCluster("prod-eu-1");
  deliver("staging-eu", m);  // a connection speaks as one cluster only
  ASSERT_EQ(outbox_.sent.size(), 1u);
  EXPECT_EQ(outbox_.sent[0].which, schema::Envelope::REFUSED);
  EXPECT_NE(metrics_.render().find("reason=\"identity_mismatch\"} 1"), std::string::npos);
  auto agents = (engine_->tick(), engine_->agentsSnapshot());
  ASSERT_EQ(agents.size(), 1u);
  EXPECT_EQ(agents[0].cluster, "staging-eu");
}

TEST_F(EngineTest, NothingButRegisterIsHandledBeforeRegistration) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<schema::Envelope>().initStageResult();
  r.initRef().setDeploymentId("x-1");
  deliver("staging-eu", m);
  EXPECT_NE(metrics_.render().find("reason=\"unregistered\"} 1"), std::string::npos);
}

TEST_F(EngineTest, CommandsAgentsNeverSendAreDropped) {
  registerAgent("staging-eu", "staging");
  capnp::MallocMessageBuilder m;
  m.initRoot<schema::Envelope>().initStageCommand().initRef().setDeploymentId("x-1");
  deliver("staging-eu", m);
  EXPECT_NE(metrics_.render().find("reason=\"unexpected_type\"} 1"), std::string::npos);
}

TEST_F(EngineTest, RunsToSuccessAndPersistsEveryStep) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  auto id = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, "checkout-1");
  EXPECT_EQ(stored(*id), DeploymentState::kRunning);
  EXPECT_EQ(outbox_.commands(), std::vector<std::string>{"staging-eu:staging-eu/apply"});
  result("staging-eu", *id, "staging-eu/apply");
  EXPECT_EQ(outbox_.commands().back(), "prod-eu-1:prod-eu-1/apply");
  result("prod-eu-1", *id, "prod-eu-1/apply");
  EXPECT_EQ(stored(*id), DeploymentState::kSucceeded);
  auto releases = store_->releases("checkout");
  ASSERT_TRUE(releases.ok());
  EXPECT_EQ(releases->at("staging-eu"), "2.0.0");
  EXPECT_EQ(releases->at("prod-eu-1"), "2.0.0");
  auto events = store_->events(*id, 0, 1000);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->front().event.type, "deployment.submitted");
  EXPECT_EQ(events->back().event.type, "deployment.succeeded");
  // A duplicate result after the end is stale, not an error.
  result("prod-eu-1", *id, "prod-eu-1/apply");
  EXPECT_NE(metrics_.render().find("flotilla_stale_results_total 1"), std::string::npos);
}

// A frame about a stage counts only with the nonce of the command sent for it: a forged or
// guessed one (another attempt's, none, a made-up one) is dropped and counted, and the stage
// waits for the real answer.
TEST_F(EngineTest, FramesWithoutTheCommandsNonceAreDropped) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  auto id = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(id.ok());
  ASSERT_EQ(outbox_.commands(), std::vector<std::string>{"staging-eu:staging-eu/apply"});
  auto forged = [&](const std::string& nonce, uint32_t attempt) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initStageResult();
    auto ref = r.initRef();
    ref.setDeploymentId(*id);
    ref.setStageId("staging-eu/apply");
    ref.setAttempt(attempt);
    ref.setNonce(nonce);
    r.setEpoch(engine_->epoch());
    r.setOutcome(schema::Outcome::SUCCEEDED);
    deliver("staging-eu", m);
  };
  forged("", 1);
  forged(std::string(64, '0'), 1);
  // The real nonce of attempt 1 does not vouch for attempt 2.
  forged(outbox_.nonces.at(*id + "|staging-eu/apply|1"), 2);
  {
    capnp::MallocMessageBuilder m;
    auto p = m.initRoot<schema::Envelope>().initStageProgress();
    p.initRef().setDeploymentId(*id);
    p.getRef().setStageId("staging-eu/apply");
    p.getRef().setAttempt(1);
    p.initLines(1).set(0, "forged output");
    deliver("staging-eu", m);
  }
  EXPECT_NE(metrics_.render().find("reason=\"bad_nonce\"} 4"), std::string::npos)
      << metrics_.render();
  auto d = store_->loadDeployment(*id);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->waves[0].clusters[0].state, ClusterState::kApplying);
  auto events = store_->events(*id, 0, 1000);
  ASSERT_TRUE(events.ok());
  for (const auto& e : *events) EXPECT_NE(e.event.type, "stage.output");
  // The agent's own answer, with the nonce it was sent.
  result("staging-eu", *id, "staging-eu/apply");
  d = store_->loadDeployment(*id);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->waves[0].clusters[0].state, ClusterState::kSucceeded);
}

TEST_F(EngineTest, RestartResumesAndResendsWhatTheAgentDoesNotHold) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  auto id = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(id.ok());
  uint64_t first_epoch = engine_->epoch();

  openEngine();  // the coordinator restarts; the command's result was never seen
  EXPECT_EQ(engine_->epoch(), first_epoch + 1);
  EXPECT_EQ(stored(*id), DeploymentState::kRunning);
  // A heartbeat under the old epoch is answered "register again".
  capnp::MallocMessageBuilder hb;
  auto h = hb.initRoot<schema::Envelope>().initHeartbeat();
  h.setCluster("staging-eu");
  h.setEpoch(first_epoch);
  deliver("staging-eu", hb);
  ASSERT_FALSE(outbox_.sent.empty());
  EXPECT_EQ(outbox_.sent.back().which, schema::Envelope::REREGISTER);
  // It registers holding nothing: the command is sent again, same attempt, new epoch.
  registerAgent("staging-eu", "staging");
  ASSERT_EQ(outbox_.commands(), std::vector<std::string>{"staging-eu:staging-eu/apply"});
  EXPECT_EQ(outbox_.sent.back().attempt, 1u);
  EXPECT_EQ(outbox_.sent.back().epoch, first_epoch + 1);
  // Registering again while the agent says it is running it sends nothing new.
  outbox_.sent.clear();
  registerAgent("staging-eu", "staging", {{*id, "staging-eu/apply", 1, true}});
  EXPECT_TRUE(outbox_.commands().empty());
  // And a finished result held by the agent is taken on registration.
  registerAgent("staging-eu", "staging", {{*id, "staging-eu/apply", 1, false}});
  // prod-eu-1 is known from the store but has not registered under this
  // epoch yet: it gets the command now and once more when it registers
  // (the agent answers the repeat from its record).
  registerAgent("prod-eu-1", "production");
  auto commands = outbox_.commands();
  ASSERT_EQ(commands.size(), 2u);
  EXPECT_EQ(commands[0], "prod-eu-1:prod-eu-1/apply");
  EXPECT_EQ(commands[1], "prod-eu-1:prod-eu-1/apply");
  EXPECT_EQ(outbox_.sent.back().attempt, 1u);
}

TEST_F(EngineTest, SilentAgentIsLostAndTheDeploymentRollsBack) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  auto id = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(id.ok());
  result("staging-eu", *id, "staging-eu/apply");  // prod-eu-1/apply now in flight
  // staging-eu keeps heartbeating; prod-eu-1 goes silent.
  for (int i = 0; i < 8; ++i) {
    clock_.advance(std::chrono::milliseconds(500));
    capnp::MallocMessageBuilder hb;
    auto h = hb.initRoot<schema::Envelope>().initHeartbeat();
    h.setCluster("staging-eu");
    h.setEpoch(engine_->epoch());
    deliver("staging-eu", hb);
    engine_->tick();
  }
  EXPECT_EQ(stored(*id), DeploymentState::kRollingBack);
  EXPECT_EQ(outbox_.commands().back(), "staging-eu:staging-eu/rollback");
  // The lost agent's connection (dead, or stuck) is closed so that it can come back on a new
  // one; the live agent's is not.
  EXPECT_EQ(outbox_.dropped, std::vector<std::string>{"prod-eu-1"});
  result("staging-eu", *id, "staging-eu/rollback");
  // prod-eu-1 applied (or may have) and cannot be reached: a human must look.
  auto d = store_->loadDeployment(*id);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->state, DeploymentState::kFailed);
  EXPECT_EQ(d->rollback_failed, std::vector<std::string>{"prod-eu-1"});
}

TEST_F(EngineTest, NextDeploymentSeesTheVersionTheLastOneLeft) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  auto first = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(first.ok());
  result("staging-eu", *first, "staging-eu/apply");
  result("prod-eu-1", *first, "prod-eu-1/apply");
  common::Plan next = twoWaves();
  next.version = "3.0.0";
  auto second = engine_->submit(next, Actor::system());
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(outbox_.sent.back().which, schema::Envelope::STAGE_COMMAND);
  EXPECT_EQ(outbox_.sent.back().previous_version, "2.0.0");
  // And a rollback of it puts the cluster back on 2.0.0, also for the deployment after.
  result("staging-eu", *second, "staging-eu/apply");
  ASSERT_TRUE(engine_->act(*second, Action::kRollback, "", Actor::system()).ok());
  result("prod-eu-1", *second, "prod-eu-1/apply", schema::Outcome::ABORTED);
  result("prod-eu-1", *second, "prod-eu-1/rollback");  // newest wave first
  result("staging-eu", *second, "staging-eu/rollback");
  ASSERT_EQ(stored(*second), DeploymentState::kRolledBack);
  auto third = engine_->submit(next, Actor::system());
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(outbox_.sent.back().previous_version, "2.0.0");
  auto stored = store_->releases("checkout");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->at("staging-eu"), "2.0.0");
}

TEST_F(EngineTest, OperatorActionsOnUnknownIdsAreNotFound) {
  EXPECT_TRUE(engine_->act("nope-1", Action::kApprove, "", Actor::system()).isNotFound());
}

TEST_F(EngineTest, RollbackAfterSuccessLoadsTheFinishedDeployment) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  auto id = engine_->submit(twoWaves(), Actor::system());
  result("staging-eu", *id, "staging-eu/apply");
  result("prod-eu-1", *id, "prod-eu-1/apply");
  clock_.advance(std::chrono::seconds(2));
  engine_->tick();  // forgets the finished deployment from memory
  ASSERT_TRUE(engine_->act(*id, Action::kRollback, "", Actor::system()).ok());
  EXPECT_EQ(outbox_.commands().back(), "prod-eu-1:prod-eu-1/rollback");
}

// An agent answers a late copy of a command from before a restart with "refused" (it already
// follows the newer epoch). That answer is about the old copy: this run's copy of the same stage
// stays in flight and is answered on its own.
TEST_F(EngineTest, RefusalOfAnOlderEpochsCommandDoesNotFailTheStage) {
  registerAgent("staging-eu", "staging");
  auto id = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(id.ok());
  openEngine();  // a new epoch
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  ASSERT_EQ(outbox_.commands(), std::vector<std::string>{"staging-eu:staging-eu/apply"});
  auto refused = [&](uint64_t epoch) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initStageResult();
    fillRef(r.initRef(), *id, "staging-eu/apply", 1);
    r.setEpoch(epoch);
    r.setOutcome(schema::Outcome::REFUSED);
    r.setMessage("stale epoch");
    deliver("staging-eu", m);
  };
  refused(engine_->epoch() - 1);
  EXPECT_EQ(stored(*id), DeploymentState::kRunning);
  EXPECT_NE(metrics_.render().find("flotilla_stale_results_total 1"), std::string::npos);
  result("staging-eu", *id, "staging-eu/apply");
  auto d = store_->loadDeployment(*id);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->waves[0].clusters[0].state, ClusterState::kSucceeded);
  // A refusal of this epoch's own command is a failure like any other.
  ASSERT_EQ(outbox_.commands().back(), "prod-eu-1:prod-eu-1/apply");
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<schema::Envelope>().initStageResult();
  fillRef(r.initRef(), *id, "prod-eu-1/apply", 1);
  r.setEpoch(engine_->epoch());
  r.setOutcome(schema::Outcome::REFUSED);
  deliver("prod-eu-1", m);
  EXPECT_EQ(stored(*id), DeploymentState::kRollingBack);
}

// An agent restarted while apply ran reports it unknown when it registers again: the coordinator
// sends verify (the plan's re-check), never apply again.
TEST_F(EngineTest, UnknownApplyHeldByARestartedAgentIsVerifiedNotReapplied) {
  registerAgent("staging-eu", "staging");
  common::Plan plan = twoWaves();
  plan.steps.verify = "verify";
  plan.waves.resize(1);
  auto id = engine_->submit(plan, Actor::system());
  ASSERT_TRUE(id.ok());
  ASSERT_EQ(outbox_.commands(), std::vector<std::string>{"staging-eu:staging-eu/apply"});
  outbox_.sent.clear();
  capnp::MallocMessageBuilder m;
  auto reg = m.initRoot<schema::Envelope>().initRegister();
  reg.setCluster("staging-eu");
  reg.setAgentVersion("test");
  auto labels = reg.initLabels(1);
  labels[0].setKey("environment");
  labels[0].setValue("staging");
  auto held = reg.initHeld(1);
  fillRef(held[0].initRef(), *id, "staging-eu/apply", 1);
  held[0].setRunning(false);
  held[0].setOutcome(schema::Outcome::UNKNOWN);
  held[0].setMessage("the agent stopped while this step ran; its effect is unknown");
  deliver("staging-eu", m);
  // verify, attempt 1 (the reconcile after a registration may send it twice: the agent dedupes).
  const auto commands = outbox_.commands();
  ASSERT_FALSE(commands.empty());
  for (const auto& c : commands) EXPECT_EQ(c, "staging-eu:staging-eu/verify");
  EXPECT_EQ(outbox_.sent.back().attempt, 1u);
  EXPECT_EQ(stored(*id), DeploymentState::kRunning);
  result("staging-eu", *id, "staging-eu/verify");
  EXPECT_EQ(stored(*id), DeploymentState::kSucceeded);
  auto releases = store_->releases("checkout");
  ASSERT_TRUE(releases.ok());
  EXPECT_EQ(releases->at("staging-eu"), "2.0.0");
}

}  // namespace
}  // namespace flotilla::coordinator
