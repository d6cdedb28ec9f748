// Tests for what agents' frames mean (coordinator/engine_messages.cpp): register and its held
// stages, heartbeats, results, progress and alerts; what is dropped before registration or
// without the command's nonce.
#include <capnp/message.h>
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/coordinator/engine_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using EngineMessages = EngineTest;

TEST_F(EngineMessages, RegisterIsAnsweredWithTheEpoch) {
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
TEST_F(EngineMessages, ALargeFleetIsAskedForSlowerHeartbeats) {
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

// `flotilla agents` once showed "connected, 38 s ago" past the lost deadline: heartbeats were
// not republished. Now the snapshot follows them, and agentsNow() judges the silence against
// the clock even between the engine's passes.
TEST_F(EngineMessages, HeartbeatsMoveLastSeenAndTheViewCountsSilenceFromNow) {
  registerAgent("staging-eu", "staging");  // asked to beat every 500 ms; lost after 3 s
  engine_->tick();
  auto beat = [&] {
    capnp::MallocMessageBuilder hb;
    auto h = hb.initRoot<schema::Envelope>().initHeartbeat();
    h.setCluster("staging-eu");
    h.setEpoch(engine_->epoch());
    deliver("staging-eu", hb);
  };
  for (int i = 0; i < 10; ++i) {
    clock_.advance(std::chrono::milliseconds(500));
    beat();
    engine_->tick();
  }
  auto view = engine_->agentsNow();
  ASSERT_EQ(view.size(), 1u);
  EXPECT_EQ(view[0].state, AgentState::kConnected);
  EXPECT_LE(view[0].silent, std::chrono::milliseconds(500)) << "last seen at registration";
  EXPECT_EQ(view[0].unknown_after, std::chrono::milliseconds(1500));
  EXPECT_EQ(view[0].lost_after, std::chrono::milliseconds(3000));

  // Silent, with no engine pass in between: the view still says what is true now.
  clock_.advance(std::chrono::milliseconds(1600));
  view = engine_->agentsNow();
  EXPECT_EQ(view[0].state, AgentState::kUnknown);
  EXPECT_EQ(view[0].silent, std::chrono::milliseconds(1600));
  clock_.advance(std::chrono::milliseconds(1500));
  EXPECT_EQ(engine_->agentsNow()[0].state, AgentState::kLost);
}

TEST_F(EngineMessages, RegisterUnderAnotherNameIsDropped) {
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

TEST_F(EngineMessages, NothingButRegisterIsHandledBeforeRegistration) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<schema::Envelope>().initStageResult();
  r.initRef().setDeploymentId("x-1");
  deliver("staging-eu", m);
  EXPECT_NE(metrics_.render().find("reason=\"unregistered\"} 1"), std::string::npos);
}

TEST_F(EngineMessages, CommandsAgentsNeverSendAreDropped) {
  registerAgent("staging-eu", "staging");
  capnp::MallocMessageBuilder m;
  m.initRoot<schema::Envelope>().initStageCommand().initRef().setDeploymentId("x-1");
  deliver("staging-eu", m);
  EXPECT_NE(metrics_.render().find("reason=\"unexpected_type\"} 1"), std::string::npos);
}

// A frame about a stage counts only with the nonce of the command sent for it: a forged or
// guessed one (another attempt's, none, a made-up one) is dropped and counted, and the stage
// waits for the real answer.
TEST_F(EngineMessages, FramesWithoutTheCommandsNonceAreDropped) {
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

// An agent answers a late copy of a command from before a restart with "refused" (it already
// follows the newer epoch). That answer is about the old copy: this run's copy of the same stage
// stays in flight and is answered on its own.
TEST_F(EngineMessages, RefusalOfAnOlderEpochsCommandDoesNotFailTheStage) {
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
TEST_F(EngineMessages, UnknownApplyHeldByARestartedAgentIsVerifiedNotReapplied) {
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

// Output is recorded as stage.output events of the stage's cluster, wave and step: at most 64
// lines of at most 2048 bytes per message, and a note of the lines the agent did not send.
TEST_F(EngineMessages, ProgressIsRecordedAsBoundedOutput) {
  registerAgent("staging-eu", "staging");
  auto id = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(id.ok());
  std::vector<std::string> lines = {std::string(5000, 'x')};
  for (int i = 1; i < 70; ++i) lines.push_back("line " + std::to_string(i));
  capnp::MallocMessageBuilder m;
  auto progress = m.initRoot<schema::Envelope>().initStageProgress();
  fillRef(progress.initRef(), *id, "staging-eu/apply", 1);
  auto list = progress.initLines(static_cast<unsigned>(lines.size()));
  for (unsigned i = 0; i < lines.size(); ++i) list.set(i, lines[i]);
  progress.setDroppedLines(5);
  deliver("staging-eu", m);

  auto events = store_->events(*id, 0, 1000);
  ASSERT_TRUE(events.ok()) << events.status().toString();
  std::vector<std::string> output;
  for (const auto& e : *events) {
    if (e.event.type != "stage.output") continue;
    output.push_back(e.event.message);
    EXPECT_EQ(e.event.wave, "staging");
    EXPECT_EQ(e.event.cluster, "staging-eu");
    EXPECT_EQ(e.event.step, "apply");
  }
  ASSERT_EQ(output.size(), 65u);
  EXPECT_EQ(output[0], std::string(2048, 'x'));
  EXPECT_EQ(output[63], "line 63");
  EXPECT_EQ(output[64], "(5 more lines not shown)");
}

// An alert about the cluster's current stage is recorded as an event, counted by rule, and handed
// to the listener (the plan's webhook) with the plan's alert settings. A rule outside [a-z0-9_]
// is dropped and counted.
TEST_F(EngineMessages, AlertsAreRecordedCountedAndHandedOn) {
  registerAgent("staging-eu", "staging");
  common::Plan plan = twoWaves();
  plan.alerts = common::Alerts{};
  plan.alerts->webhook = "https://hooks.example.com/deploys";
  auto id = engine_->submit(plan, Actor::system());
  ASSERT_TRUE(id.ok());
  std::vector<AlertNotice> notices;
  engine_->setAlertListener([&](const AlertNotice& n) { notices.push_back(n); });
  auto alert = [&](const std::string& rule) {
    capnp::MallocMessageBuilder m;
    auto a = m.initRoot<schema::Envelope>().initAlert();
    fillRef(a.initRef(), *id, "staging-eu/apply", 1);
    a.setEpoch(engine_->epoch());
    a.setRule(rule);
    a.setValue(0.2);
    a.setThreshold(0.05);
    a.setVersion("2.0.0");
    a.setMessage("error rate 20% over the alert threshold 5%");
    deliver("staging-eu", m);
  };
  alert("Error-Rate!");
  EXPECT_TRUE(notices.empty());
  EXPECT_NE(metrics_.render().find("reason=\"bad_alert\"} 1"), std::string::npos);

  alert("error_rate");
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].deployment_id, *id);
  EXPECT_EQ(notices[0].service, "checkout");
  EXPECT_EQ(notices[0].cluster, "staging-eu");
  EXPECT_EQ(notices[0].wave, "staging");
  EXPECT_EQ(notices[0].stage, "staging-eu/apply");
  EXPECT_EQ(notices[0].rule, "error_rate");
  EXPECT_DOUBLE_EQ(notices[0].value, 0.2);
  EXPECT_DOUBLE_EQ(notices[0].threshold, 0.05);
  EXPECT_EQ(notices[0].config.webhook, "https://hooks.example.com/deploys");
  EXPECT_NE(metrics_.render().find("flotilla_alerts_total{rule=\"error_rate\"} 1"),
            std::string::npos);
  auto events = store_->events(*id, 0, 1000);
  ASSERT_TRUE(events.ok()) << events.status().toString();
  std::vector<std::string> alerts;
  for (const auto& e : *events) {
    if (e.event.type == "alert") alerts.push_back(e.event.message);
  }
  EXPECT_EQ(alerts, std::vector<std::string>{
                        "error_rate: 2.0.0: error rate 20% over the alert threshold 5%"});
}

// ---- Figures: an analysis window's numbers from the agent of a cluster in its analyze step.

// twoWaves() on the process driver, canary 10 -> 50 -> 100: staging-eu deploys, shifts 10% and
// then analyzes (its third command).
class EngineFigures : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    registerAgent("staging-eu", "staging");
    common::Plan plan = twoWaves();
    plan.driver = common::DriverKind::kProcess;
    plan.strategy.kind = common::StrategyKind::kCanary;
    plan.strategy.steps = {10, 50, 100};
    plan.strategy.pause = std::chrono::seconds(30);
    auto id = engine_->submit(plan, Actor::system());
    ASSERT_TRUE(id.ok()) << id.status().toString();
    id_ = *id;
    for (int i = 0; i < 5 && analyze_.empty(); ++i) {
      const std::string last = outbox_.commands().back();
      const std::string stage = last.substr(last.find(':') + 1);
      if (stage.find("/analyze") != std::string::npos) {
        analyze_ = stage;
      } else {
        result("staging-eu", id_, stage);
      }
    }
    ASSERT_FALSE(analyze_.empty()) << "commands: " << outbox_.commands().size();
  }

  // A window's figures as the agent sends them; `change` spoils them for a refusal.
  void send(uint32_t window, const std::function<void(schema::Figures::Builder)>& change = {},
            const std::string& stage = "") {
    capnp::MallocMessageBuilder m;
    auto f = m.initRoot<schema::Envelope>().initFigures();
    fillRef(f.initRef(), id_, stage.empty() ? analyze_ : stage, 1);
    f.setEpoch(engine_->epoch());
    f.setWindow(window);
    f.setWindowMs(30'000);
    auto fill = [](schema::Figures::SetFigures::Builder s, const char* version, double errors) {
      s.setVersion(version);
      s.setRequests(420);
      s.setRequestRate(14);
      s.setErrorRate(errors);
      s.setHasLatencyP95(true);
      s.setLatencyP95(0.012);
      s.setReplicas(2);
    };
    fill(f.initCandidate(), "2.0.0", 0.008);
    fill(f.initStable(), "1.0.0", 0.005);
    f.setHasErrorRateLimit(true);
    f.setErrorRateLimit(0.01);
    f.setHasLatencyP95Limit(true);
    f.setLatencyP95Limit(0.024);
    f.setMinRequests(20);
    f.setVerdict(schema::WindowVerdict::PASS);
    f.setHealthChecks(12);
    f.setHealthThreshold(3);
    if (change) change(f);
    deliver("staging-eu", m);
  }

  std::vector<StoredEvent> analysisEvents() {
    std::vector<StoredEvent> out;
    auto events = store_->events(id_, 0, 1000);
    EXPECT_TRUE(events.ok()) << events.status().toString();
    if (!events.ok()) return out;
    for (const auto& e : *events) {
      if (e.event.type == "cluster.analysis") out.push_back(e);
    }
    return out;
  }

  bool dropped(const std::string& reason, int count) {
    return metrics_.render().find("reason=\"" + reason + "\"} " + std::to_string(count)) !=
           std::string::npos;
  }

  std::string id_;
  std::string analyze_;
};

// Each window is one cluster.analysis event with the figures as data; the last figures stay on
// the cluster (through the store), with the strategy step they were taken at.
TEST_F(EngineFigures, EachWindowIsAnEventAndTheLastStaysOnTheCluster) {
  send(1);
  std::vector<StoredEvent> events = analysisEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event.cluster, "staging-eu");
  EXPECT_EQ(events[0].event.step, "analyze");
  EXPECT_EQ(events[0].event.message,
            "analysis 1/3: 2.0.0 err 0.8% p95 12 ms (420 req) vs 1.0.0 err 0.5% p95 12 ms (420 "
            "req); limits err 1.0%, p95 24 ms, min 20 req; pass · health 0/3 failing");
  auto data = common::figuresFromJson(nlohmann::json::parse(events[0].event.data));
  ASSERT_TRUE(data.ok()) << data.status().toString();
  EXPECT_EQ(data->strategy_step, 1);
  EXPECT_EQ(data->window, 1u);

  // A repeat of a window is not a new one; the next one is.
  send(1);
  EXPECT_TRUE(dropped("bad_figures", 1)) << metrics_.render();
  send(2, [](schema::Figures::Builder f) { f.setVerdict(schema::WindowVerdict::INCONCLUSIVE); });
  EXPECT_EQ(analysisEvents().size(), 2u);

  openEngine();  // what the store kept
  auto d = store_->loadDeployment(id_);
  ASSERT_TRUE(d.ok()) << d.status().toString();
  const ClusterProgress& c = d->waves[0].clusters[0];
  ASSERT_TRUE(c.figures.has_value());
  EXPECT_EQ(c.figures->window, 2u);
  EXPECT_EQ(c.figures->verdict, common::WindowVerdict::kInconclusive);
  ASSERT_TRUE(c.figures->stable.has_value());
  EXPECT_EQ(c.figures->stable->version, "1.0.0");
  EXPECT_EQ(c.figures_stage, analyze_ + "#1");
}

// Figures from a peer are checked like everything else it says: dropped and counted, nothing
// recorded, the deployment carries on.
TEST_F(EngineFigures, HostileOrMisplacedFiguresAreDroppedAndCounted) {
  using B = schema::Figures::Builder;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  send(1, {}, "staging-eu/deploy");  // not the stage in flight
  EXPECT_TRUE(dropped("unknown_stage", 1)) << metrics_.render();
  send(1, [](B f) { f.getRef().setNonce(std::string(64, '0')); });
  EXPECT_TRUE(dropped("bad_nonce", 1)) << metrics_.render();
  send(1, [&](B f) { f.setEpoch(engine_->epoch() + 1); });
  EXPECT_TRUE(dropped("stale_epoch", 1)) << metrics_.render();
  send(1, [&](B f) { f.getCandidate().setErrorRate(nan); });
  send(1, [&](B f) { f.getCandidate().setRequestRate(-1); });
  send(1, [&](B f) { f.getStable().setLatencyP95(inf); });
  send(1, [&](B f) { f.setErrorRateLimit(-0.5); });
  send(1, [&](B f) { f.setLatencyP95Limit(nan); });
  send(1, [&](B f) { f.getStable().setVersion(std::string(100'000, '1')); });
  send(1, [&](B f) { f.getCandidate().setVersion("3.0.0"); });  // not this deployment's
  send(1, [&](B f) { f.setWindow(0); });
  send(1, [&](B f) { f.setHealthFailing(99); });
  send(1, [&](B f) { f.setBake(true); });
  EXPECT_TRUE(dropped("bad_figures", 10)) << metrics_.render();
  EXPECT_TRUE(analysisEvents().empty());
  auto d = store_->loadDeployment(id_);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->waves[0].clusters[0].figures.has_value());
  send(1);  // the real ones still count
  EXPECT_EQ(analysisEvents().size(), 1u);
}

// A build's artifact digest reaches the release record, with the environment its wave then
// succeeded in; a malformed one from a peer is dropped and counted, never stored.
TEST_F(EngineMessages, ABuildsArtifactIsRecordedOnTheReleaseAndAMalformedOneIsDropped) {
  registerAgent("prod-eu-1", "production");
  registerAgent("prod-eu-2", "production");
  common::Plan p = twoWaves();
  p.steps.build = "build";
  p.waves = {p.waves[1]};
  p.waves[0].environment = "production";
  auto id = engine_->submit(p, Actor{"alice", "deployer", {}, ""});
  ASSERT_TRUE(id.ok()) << id.status().toString();
  auto build = [&](const std::string& cluster, const std::string& artifact) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initStageResult();
    fillRef(r.initRef(), *id, cluster + "/build", 1);
    r.setOutcome(schema::Outcome::SUCCEEDED);
    r.setArtifact(artifact);
    deliver(cluster, m);
  };
  const std::string digest = "sha256:" + std::string(64, '7');
  build("prod-eu-1", "sha256:" + std::string(64, 'Z'));
  EXPECT_NE(metrics_.render().find("flotilla_frames_dropped_total{reason=\"bad_artifact\"} 1"),
            std::string::npos);
  auto record = store_->getRecord(releaseKey("checkout", "2.0.0"));
  ASSERT_TRUE(record.ok());
  EXPECT_FALSE(record->has_value() && releaseFromJson(**record)->artifact != "");
  build("prod-eu-2", digest);
  result("prod-eu-1", *id, "prod-eu-1/apply");
  result("prod-eu-2", *id, "prod-eu-2/apply");
  EXPECT_EQ(stored(*id), DeploymentState::kSucceeded);
  record = store_->getRecord(releaseKey("checkout", "2.0.0"));
  ASSERT_TRUE(record.ok() && record->has_value());
  auto release = releaseFromJson(**record);
  ASSERT_TRUE(release.ok());
  EXPECT_EQ(release->artifact, digest);
  EXPECT_EQ(release->artifact_deployment, *id);
  ASSERT_EQ(release->succeeded.count("production"), 1u);
  EXPECT_EQ(release->succeeded.at("production").artifact, digest);
  EXPECT_EQ(release->succeeded.at("production").deployment, *id);
}

}  // namespace
}  // namespace flotilla::coordinator::testing
