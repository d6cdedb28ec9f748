// API tokens over a real store: created once, stored as a hash, looked up, revoked, reloaded.
#include "coordinator/tokens.hpp"

#include <gtest/gtest.h>

#include "common/crypto.hpp"
#include "tests/support/files.hpp"

namespace flotilla::coordinator {
namespace {

class TokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().toString();
    store_ = std::move(store).value();
  }
  void TearDown() override { store_.reset(); }
  support::TempDir dir_{"tokens"};
  std::unique_ptr<Store> store_;
};

TEST_F(TokensTest, CreatedTokenAuthenticatesAndIsStoredOnlyAsAHash) {
  Tokens tokens(*store_);
  ASSERT_TRUE(tokens.load().ok());
  auto secret = tokens.create("alice", Role::kDeployer, {"staging", "dev", "staging"}, "root", 42);
  ASSERT_TRUE(secret.ok()) << secret.status().toString();
  EXPECT_TRUE(secret->starts_with("flt_"));

  auto actor = tokens.authenticate(*secret);
  ASSERT_TRUE(actor.has_value());
  EXPECT_EQ(actor->name, "alice");
  EXPECT_EQ(actor->role, "deployer");
  EXPECT_EQ(actor->envs, (std::vector<std::string>{"dev", "staging"}));

  auto stored = store_->getRecord("trust/token/alice");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->find(*secret), std::string::npos) << "the secret itself was stored";
  EXPECT_NE((*stored)->find(common::sha256Hex(*secret)), std::string::npos);

  EXPECT_FALSE(tokens.authenticate("").has_value());
  EXPECT_FALSE(tokens.authenticate(*secret + "x").has_value());
  EXPECT_FALSE(tokens.authenticate(secret->substr(0, secret->size() - 1)).has_value());
  EXPECT_FALSE(tokens.authenticate(std::string(kMaxTokenBytes + 1, 'a')).has_value());
}

TEST_F(TokensTest, ReloadRevokeAndRules) {
  std::string secret;
  {
    Tokens tokens(*store_);
    ASSERT_TRUE(tokens.load().ok());
    auto made = tokens.create("ci", Role::kAdmin, {}, "root", 1000);
    ASSERT_TRUE(made.ok());
    secret = *made;
    EXPECT_TRUE(tokens.create("ci", Role::kViewer, {}, "root", 1).status().isAlreadyExists());
    EXPECT_TRUE(
        tokens.create("Bad_Name", Role::kViewer, {}, "root", 1).status().isInvalidArgument());
    EXPECT_TRUE(
        tokens.create("v", Role::kViewer, {"prod"}, "root", 1).status().isInvalidArgument());
    EXPECT_TRUE(tokens.create("a", Role::kAdmin, {"prod"}, "root", 1).status().isInvalidArgument());
    EXPECT_TRUE(
        tokens.create("d", Role::kDeployer, {"Prod!"}, "root", 1).status().isInvalidArgument());
  }
  Tokens reloaded(*store_);
  ASSERT_TRUE(reloaded.load().ok());
  ASSERT_TRUE(reloaded.authenticate(secret).has_value());
  EXPECT_EQ(reloaded.anyAdmin(), std::optional<std::string>("ci"));
  auto list = reloaded.list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].created_ms, 1000);
  EXPECT_EQ(list[0].created_by, "root");

  EXPECT_TRUE(reloaded.revoke("nobody").isNotFound());
  ASSERT_TRUE(reloaded.revoke("ci").ok());
  EXPECT_FALSE(reloaded.authenticate(secret).has_value());
  Tokens again(*store_);
  ASSERT_TRUE(again.load().ok());
  EXPECT_FALSE(again.authenticate(secret).has_value());
  EXPECT_FALSE(again.anyAdmin().has_value());
}

TEST_F(TokensTest, BootstrapAdminOnlyOnce) {
  auto first = bootstrapAdmin(*store_, "admin", 5);
  ASSERT_TRUE(first.ok()) << first.status().toString();
  auto second = bootstrapAdmin(*store_, "other", 6);
  EXPECT_TRUE(second.status().isFailedPrecondition());
  Tokens tokens(*store_);
  ASSERT_TRUE(tokens.load().ok());
  auto actor = tokens.authenticate(*first);
  ASSERT_TRUE(actor.has_value());
  EXPECT_EQ(actor->role, "admin");
  auto audit = store_->scanRecords("audit/");
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_NE(audit->front().second.find("bootstrap-admin"), std::string::npos);
  EXPECT_EQ(audit->front().second.find(*first), std::string::npos);
}

TEST(RoleTest, NamesRoundTrip) {
  for (Role r : {Role::kViewer, Role::kDeployer, Role::kApprover, Role::kAdmin}) {
    EXPECT_EQ(parseRole(roleName(r)), r);
  }
  EXPECT_FALSE(parseRole("root").has_value());
  EXPECT_FALSE(parseRole("Admin").has_value());
}

}  // namespace
}  // namespace flotilla::coordinator
