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

}  // namespace
}  // namespace flotilla::coordinator::testing
