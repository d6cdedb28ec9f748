// Dashboard sessions over a real store: made from a token, looked up by id, stored only as a
// hash, bounded per token, ended by logout, expiry or the token's revocation, and reloaded.
#include "coordinator/sessions.hpp"

#include <gtest/gtest.h>

#include "common/crypto.hpp"
#include "tests/support/files.hpp"

namespace flotilla::coordinator {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kLifetimeMs = std::chrono::milliseconds(kSessionLifetime).count();

class SessionsTest : public ::testing::Test {
 protected:
  // A session for alice made by a Sessions that is then gone, as before a coordinator restart.
  void createAndClose(std::string* id) {
    Sessions sessions(*store_, *tokens_);
    ASSERT_TRUE(sessions.load().ok());
    auto made = sessions.create("alice", kNow);
    ASSERT_TRUE(made.ok());
    *id = made->id;
  }

  void SetUp() override {
    auto store = Store::open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().toString();
    store_ = std::move(store).value();
    tokens_ = std::make_unique<Tokens>(*store_);
    ASSERT_TRUE(tokens_->load().ok());
    ASSERT_TRUE(tokens_->create("alice", Role::kApprover, {"production"}, "root", kNow).ok());
  }
  void TearDown() override {
    tokens_.reset();
    store_.reset();
  }
  support::TempDir dir_{"sessions"};
  std::unique_ptr<Store> store_;
  std::unique_ptr<Tokens> tokens_;
};

TEST_F(SessionsTest, ASessionStandsForItsTokenAndIsStoredOnlyAsAHash) {
  Sessions sessions(*store_, *tokens_);
  ASSERT_TRUE(sessions.load().ok());
  auto made = sessions.create("alice", kNow);
  ASSERT_TRUE(made.ok()) << made.status().toString();
  EXPECT_EQ(made->id.size(), 64u);
  EXPECT_EQ(made->csrf.size(), 64u);
  EXPECT_NE(made->id, made->csrf);
  EXPECT_EQ(made->expires_ms, kNow + kLifetimeMs);

  auto active = sessions.authenticate(made->id, kNow + 1000);
  ASSERT_TRUE(active.has_value());
  EXPECT_EQ(active->actor.name, "alice");
  EXPECT_EQ(active->actor.role, "approver");
  EXPECT_EQ(active->actor.envs, (std::vector<std::string>{"production"}));
  EXPECT_EQ(active->csrf, made->csrf);

  auto stored = store_->getRecord("trust/session/" + common::sha256Hex(made->id));
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->find(made->id), std::string::npos) << "the id itself was stored";

  // Unknown, empty, oversized ids, and an unknown token.
  EXPECT_FALSE(sessions.authenticate(std::string(64, 'a'), kNow));
  EXPECT_FALSE(sessions.authenticate("", kNow));
  EXPECT_FALSE(sessions.authenticate(std::string(kMaxSessionIdBytes + 1, 'a'), kNow));
  EXPECT_EQ(sessions.create("nobody", kNow).status().code(), common::Status::Code::kNotFound);
}

TEST_F(SessionsTest, ReloadedAfterARestartUntilTheyExpire) {
  std::string id;
  ASSERT_NO_FATAL_FAILURE(createAndClose(&id));
  Sessions reloaded(*store_, *tokens_);
  ASSERT_TRUE(reloaded.load().ok());
  EXPECT_TRUE(reloaded.authenticate(id, kNow + kLifetimeMs - 1));
  EXPECT_FALSE(reloaded.authenticate(id, kNow + kLifetimeMs));
  // An expired session is deleted when the next one is made.
  ASSERT_TRUE(reloaded.create("alice", kNow + kLifetimeMs + 1).ok());
  EXPECT_EQ(reloaded.size(), 1u);
  auto gone = store_->getRecord("trust/session/" + common::sha256Hex(id));
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
}

TEST_F(SessionsTest, LogoutAndRevocationEndSessionsAndANewTokenByTheSameNameDoesNotReviveThem) {
  Sessions sessions(*store_, *tokens_);
  ASSERT_TRUE(sessions.load().ok());
  auto first = sessions.create("alice", kNow);
  auto second = sessions.create("alice", kNow);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE(sessions.end(first->id).ok());
  EXPECT_FALSE(sessions.authenticate(first->id, kNow));
  EXPECT_EQ(sessions.end(first->id).code(), common::Status::Code::kNotFound);
  EXPECT_TRUE(sessions.authenticate(second->id, kNow));

  ASSERT_TRUE(tokens_->revoke("alice").ok());
  EXPECT_FALSE(sessions.authenticate(second->id, kNow));
  ASSERT_TRUE(tokens_->create("alice", Role::kAdmin, {}, "root", kNow).ok());
  EXPECT_FALSE(sessions.authenticate(second->id, kNow));
}

TEST_F(SessionsTest, ATokensOldestSessionsEndPastItsShare) {
  Sessions sessions(*store_, *tokens_);
  ASSERT_TRUE(sessions.load().ok());
  std::vector<std::string> ids;
  for (size_t i = 0; i < kMaxSessionsPerToken + 2; ++i) {
    auto made = sessions.create("alice", kNow + static_cast<int64_t>(i));
    ASSERT_TRUE(made.ok());
    ids.push_back(made->id);
  }
  EXPECT_EQ(sessions.size(), kMaxSessionsPerToken);
  EXPECT_FALSE(sessions.authenticate(ids[0], kNow + 100));
  EXPECT_FALSE(sessions.authenticate(ids[1], kNow + 100));
  EXPECT_TRUE(sessions.authenticate(ids[2], kNow + 100));
  EXPECT_TRUE(sessions.authenticate(ids.back(), kNow + 100));
}

TEST_F(SessionsTest, AnUnreadableStoredSessionIsSkippedAndDeletedNotFatal) {
  std::string id;
  ASSERT_NO_FATAL_FAILURE(createAndClose(&id));
  ASSERT_TRUE(store_->putRecord("trust/session/abc", "{not json").ok());
  Sessions sessions(*store_, *tokens_);
  ASSERT_TRUE(sessions.load().ok());
  EXPECT_TRUE(sessions.authenticate(id, kNow));
  ASSERT_TRUE(sessions.create("alice", kNow).ok());
  auto gone = store_->getRecord("trust/session/abc");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
}

}  // namespace
}  // namespace flotilla::coordinator
