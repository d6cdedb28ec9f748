// Tests for the engine (coordinator/engine.cpp) over a real RocksDB store: durable state and
// commands out; restarts resume; silent agents are lost; operator actions.
#include <capnp/message.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/engine_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

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

// ---- Operator overrides ----------------------------------------------------------------------

// The promote is written before its abort goes out: a coordinator that restarts before the
// answer still counts the analysis as passed, and sends the abort again to the agent.
TEST_F(EngineTest, APromoteSurvivesARestartBeforeItsAbortIsAnswered) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  common::Plan plan = twoWaves();
  plan.driver = common::DriverKind::kProcess;
  plan.process.command = "./svc --port {port}";
  plan.process.replicas = 1;
  plan.process.port_min = 18000;
  plan.process.port_max = 18010;
  plan.strategy.kind = common::StrategyKind::kCanary;
  plan.strategy.steps = {50, 100};
  plan.strategy.pause = std::chrono::seconds(60);
  auto id = engine_->submit(plan, Actor::system());
  ASSERT_TRUE(id.ok()) << id.status().toString();
  result("staging-eu", *id, "staging-eu/deploy");
  result("staging-eu", *id, "staging-eu/shift-1");
  ASSERT_EQ(outbox_.commands().back(), "staging-eu:staging-eu/analyze-2");

  const Actor alice{"alice", "deployer", {}, "127.0.0.1:1"};
  ASSERT_TRUE(engine_->act(*id, Action::kPromote, "", alice, "no traffic in staging").ok());
  EXPECT_EQ(outbox_.sent.back().which, schema::Envelope::ABORT);
  EXPECT_EQ(outbox_.sent.back().stage, "staging-eu/analyze-2");
  auto before = store_->loadDeployment(*id);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->waves[0].clusters[0].promoted_by, "alice");

  openEngine();  // the abort's answer never came
  outbox_.sent.clear();
  registerAgent("staging-eu", "staging", {{*id, "staging-eu/analyze-2", 1, true}});
  ASSERT_FALSE(outbox_.sent.empty());
  bool aborted = false;
  for (const Sent& s : outbox_.sent) {
    aborted |= s.which == schema::Envelope::ABORT && s.stage == "staging-eu/analyze-2";
  }
  EXPECT_TRUE(aborted);
  result("staging-eu", *id, "staging-eu/analyze-2", schema::Outcome::ABORTED);
  EXPECT_EQ(outbox_.commands().back(), "staging-eu:staging-eu/shift-3");
  EXPECT_EQ(stored(*id), DeploymentState::kRunning);
}

// A held step is retried after a restart as the next attempt, and the deployment goes on.
TEST_F(EngineTest, AHeldStepIsRetriedAfterARestartAsTheNextAttempt) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  common::Plan plan = twoWaves();
  plan.on_step_failure = common::OnStepFailure::kHold;
  auto id = engine_->submit(plan, Actor::system());
  ASSERT_TRUE(id.ok());
  result("staging-eu", *id, "staging-eu/apply", schema::Outcome::FAILED);
  EXPECT_EQ(stored(*id), DeploymentState::kPaused);

  openEngine();
  registerAgent("staging-eu", "staging", {{*id, "staging-eu/apply", 1, false}});
  registerAgent("prod-eu-1", "production");
  outbox_.sent.clear();
  const Actor alice{"alice", "deployer", {}, "127.0.0.1:1"};
  ASSERT_TRUE(engine_->act(*id, Action::kRetry, "staging-eu", alice, "fixed").ok());
  ASSERT_EQ(outbox_.commands(), std::vector<std::string>{"staging-eu:staging-eu/apply"});
  EXPECT_EQ(outbox_.sent.back().attempt, 2u);
  EXPECT_EQ(stored(*id), DeploymentState::kRunning);
  result("staging-eu", *id, "staging-eu/apply", schema::Outcome::SUCCEEDED, 2);
  EXPECT_EQ(outbox_.commands().back(), "prod-eu-1:prod-eu-1/apply");
}

// ---- One deployment per service at a time ---------------------------------------------------

TEST_F(EngineTest, ASecondSubmissionQueuesSurvivesARestartAndStartsWhenTheFirstEnds) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  auto first = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(first.ok());
  common::Plan hotfix = twoWaves();
  hotfix.version = "2.0.1";
  auto second = engine_->submit(hotfix, Actor::system());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(stored(*second), DeploymentState::kQueued);
  EXPECT_EQ(outbox_.commands(), std::vector<std::string>{"staging-eu:staging-eu/apply"});
  auto held = store_->loadDeployment(*second);
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(held->waits_for, *first);

  openEngine();  // the queue is durable
  registerAgent("staging-eu", "staging", {{*first, "staging-eu/apply", 1, false}});
  registerAgent("prod-eu-1", "production");
  EXPECT_EQ(stored(*second), DeploymentState::kQueued);
  outbox_.sent.clear();
  result("prod-eu-1", *first, "prod-eu-1/apply");
  EXPECT_EQ(stored(*first), DeploymentState::kSucceeded);
  EXPECT_EQ(stored(*second), DeploymentState::kRunning);
  EXPECT_EQ(outbox_.commands().back(), "staging-eu:staging-eu/apply");
  EXPECT_EQ(outbox_.sent.back().previous_version, "2.0.0");  // what the first one left
  auto events = store_->events(*second, 0, 100);
  ASSERT_TRUE(events.ok());
  std::vector<std::string> types;
  for (const auto& e : *events) types.push_back(e.event.type);
  EXPECT_EQ(std::vector<std::string>(types.begin(), types.begin() + 4),
            (std::vector<std::string>{"deployment.submitted", "deployment.queued",
                                      "deployment.dequeued", "deployment.started"}));
}

TEST_F(EngineTest, QueueingTurnedOffRefusesAndStoresNothing) {
  registerAgent("staging-eu", "staging");
  auto first = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(first.ok());
  SubmitOptions no_queue;
  no_queue.queue = false;
  auto refused = engine_->submit(twoWaves(), Actor::system(), no_queue);
  ASSERT_TRUE(refused.status().isFailedPrecondition());
  EXPECT_NE(refused.status().message().find("deployment " + *first + " of checkout is in flight"),
            std::string::npos)
      << refused.status().message();
  auto summaries = store_->loadDeploymentSummaries();
  ASSERT_TRUE(summaries.ok());
  EXPECT_EQ(summaries->size(), 1u);
  // Another service on the same cluster is independent: it runs now, in parallel.
  common::Plan cart = twoWaves();
  cart.service = "cart";
  auto other = engine_->submit(cart, Actor::system(), no_queue);
  ASSERT_TRUE(other.ok()) << other.status().toString();
  EXPECT_EQ(stored(*other), DeploymentState::kRunning);
  EXPECT_EQ(stored(*first), DeploymentState::kRunning);
}

TEST_F(EngineTest, SupersedeRollsTheRunningOneBackThenStarts) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  auto first = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(first.ok());
  result("staging-eu", *first, "staging-eu/apply");
  ASSERT_EQ(outbox_.commands().back(), "prod-eu-1:prod-eu-1/apply");
  common::Plan hotfix = twoWaves();
  hotfix.version = "2.0.1";
  SubmitOptions refused_options;
  refused_options.supersede = true;
  refused_options.may_supersede = [](const Deployment& d) {
    return common::Status::PermissionDenied("not yours: " + d.id);
  };
  EXPECT_TRUE(
      engine_->submit(hotfix, Actor::system(), refused_options).status().isPermissionDenied());
  EXPECT_EQ(stored(*first), DeploymentState::kRunning);

  SubmitOptions supersede;
  supersede.supersede = true;
  outbox_.sent.clear();
  auto second = engine_->submit(hotfix, Actor::system(), supersede);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(stored(*second), DeploymentState::kQueued);
  EXPECT_EQ(stored(*first), DeploymentState::kRollingBack);
  ASSERT_FALSE(outbox_.sent.empty());
  EXPECT_EQ(outbox_.sent.back().which, schema::Envelope::ABORT);  // prod-eu-1's apply
  result("prod-eu-1", *first, "prod-eu-1/apply", schema::Outcome::ABORTED);
  EXPECT_EQ(outbox_.commands().back(), "prod-eu-1:prod-eu-1/rollback");
  result("prod-eu-1", *first, "prod-eu-1/rollback");
  EXPECT_EQ(outbox_.commands().back(), "staging-eu:staging-eu/rollback");
  EXPECT_EQ(stored(*second), DeploymentState::kQueued);  // not before the rollback is done
  result("staging-eu", *first, "staging-eu/rollback");
  auto done = store_->loadDeployment(*first);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, DeploymentState::kRolledBack);
  EXPECT_EQ(done->reason, "superseded by " + *second + " (by coordinator)");
  EXPECT_EQ(stored(*second), DeploymentState::kRunning);
  EXPECT_EQ(outbox_.commands().back(), "staging-eu:staging-eu/apply");
}

TEST_F(EngineTest, CancelRollsBackThenTheNextInLineStarts) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  auto first = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(first.ok());
  result("staging-eu", *first, "staging-eu/apply");
  auto second = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(engine_->act(*first, Action::kCancel, "", Actor::system()).ok());
  result("prod-eu-1", *first, "prod-eu-1/apply", schema::Outcome::ABORTED);
  result("prod-eu-1", *first, "prod-eu-1/rollback");
  EXPECT_EQ(stored(*second), DeploymentState::kQueued);
  result("staging-eu", *first, "staging-eu/rollback");
  EXPECT_EQ(stored(*first), DeploymentState::kCancelled);
  EXPECT_EQ(stored(*second), DeploymentState::kRunning);
  // The later rollback of the cancelled one works and sends nothing: all of it is back.
  outbox_.sent.clear();
  ASSERT_TRUE(engine_->act(*first, Action::kRollback, "", Actor::system()).ok());
  EXPECT_EQ(stored(*first), DeploymentState::kRolledBack);
  EXPECT_TRUE(outbox_.commands().empty());
}

}  // namespace
}  // namespace flotilla::coordinator::testing
