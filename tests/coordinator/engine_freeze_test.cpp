// Tests for the engine's incident freezes (coordinator/engine_freeze.cpp) over a real store: a
// freeze stops the deployments it covers and refuses submissions, survives a restart, and its
// lifting lets them go on; notes; the /metrics gauge.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/engine_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

const Actor kRoot{"root", "admin", {}, "127.0.0.1:1"};

TEST_F(EngineTest, FreezeHoldsRefusesSurvivesARestartAndUnfreezeLetsGo) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  auto id = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(id.ok());
  ASSERT_EQ(outbox_.commands(), std::vector<std::string>{"staging-eu:staging-eu/apply"});

  auto frozen = engine_->freeze("INC-1: database failover", "production", kRoot);
  ASSERT_TRUE(frozen.ok()) << frozen.status().toString();
  EXPECT_EQ(frozen->id(), "freeze-1");
  EXPECT_EQ(stored(*id), DeploymentState::kFrozen);  // its prod wave is production
  EXPECT_TRUE(engine_->freeze("again", "production", kRoot).status().isAlreadyExists());

  // The apply in flight finishes; the prod wave does not start.
  result("staging-eu", *id, "staging-eu/apply");
  EXPECT_EQ(outbox_.commands(), std::vector<std::string>{"staging-eu:staging-eu/apply"});
  EXPECT_EQ(stored(*id), DeploymentState::kFrozen);

  // New submissions are refused, naming the freeze; nothing is stored.
  auto refused = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(refused.status().isFailedPrecondition());
  EXPECT_NE(refused.status().message().find("freeze-1 (environment production) by root"),
            std::string::npos)
      << refused.status().message();
  EXPECT_FALSE(store_->loadDeployment("checkout-2").ok());

  auto noted = engine_->addFreezeNote(1, "post-mortem: https://wiki/INC-1", kRoot);
  ASSERT_TRUE(noted.ok());
  EXPECT_TRUE(engine_->addFreezeNote(9, "x", kRoot).status().isNotFound());
  EXPECT_NE(metrics_.render().find(
                "flotilla_freeze_active{scope=\"environment\",environment=\"production\"} 1"),
            std::string::npos)
      << metrics_.render();

  openEngine();  // a restart: the freeze and the frozen deployment are as they were
  EXPECT_EQ(stored(*id), DeploymentState::kFrozen);
  EXPECT_TRUE(engine_->submit(twoWaves(), Actor::system()).status().isFailedPrecondition());
  EXPECT_TRUE(engine_->unfreeze("", kRoot).status().isNotFound());  // the fleet is not frozen
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  EXPECT_TRUE(outbox_.commands().empty());

  auto lifted = engine_->unfreeze("production", kRoot);
  ASSERT_TRUE(lifted.ok()) << lifted.status().toString();
  EXPECT_FALSE(lifted->active());
  EXPECT_EQ(lifted->lifted_by, "root");
  ASSERT_EQ(lifted->notes.size(), 1u);  // the note survived the restart
  EXPECT_EQ(lifted->notes[0].text, "post-mortem: https://wiki/INC-1");
  EXPECT_EQ(outbox_.commands(), std::vector<std::string>{"prod-eu-1:prod-eu-1/apply"});
  result("prod-eu-1", *id, "prod-eu-1/apply");
  EXPECT_EQ(stored(*id), DeploymentState::kSucceeded);
  EXPECT_NE(metrics_.render().find(
                "flotilla_freeze_active{scope=\"environment\",environment=\"production\"} 0"),
            std::string::npos);
  EXPECT_NE(metrics_.render().find("flotilla_freeze_active{scope=\"fleet\",environment=\"\"} 0"),
            std::string::npos);
  EXPECT_TRUE(engine_->submit(twoWaves(), Actor::system()).ok());
  EXPECT_TRUE(engine_->unfreeze("production", kRoot).status().isNotFound());
}

TEST_F(EngineTest, FleetFreezeStillLetsARollbackRun) {
  registerAgent("staging-eu", "staging");
  registerAgent("prod-eu-1", "production");
  auto id = engine_->submit(twoWaves(), Actor::system());
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(engine_->freeze("INC-2", "", kRoot).ok());
  result("staging-eu", *id, "staging-eu/apply");
  ASSERT_EQ(stored(*id), DeploymentState::kFrozen);
  outbox_.sent.clear();
  ASSERT_TRUE(engine_->act(*id, Action::kRollback, "the incident", kRoot).ok());
  EXPECT_EQ(outbox_.commands(), std::vector<std::string>{"staging-eu:staging-eu/rollback"});
  result("staging-eu", *id, "staging-eu/rollback");
  EXPECT_EQ(stored(*id), DeploymentState::kRolledBack);
}

}  // namespace
}  // namespace flotilla::coordinator::testing
