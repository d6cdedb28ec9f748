// Tests for coordinator/trust.cpp on a real RocksDB store: enrollment tokens (bounded, stored
// only as hashes, spent once, bound to a cluster, expiring), the keys they enroll (one cluster
// per key, replaced or revoked by an admin), the command-nonce secret, and all of it surviving a
// restart. The agent channel's use of it is in agent_gate_test.cpp.
#include "coordinator/trust.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/crypto.hpp"
#include "tests/support/files.hpp"

namespace flotilla::coordinator {
namespace {

constexpr int64_t kNow = 1795741323456;
constexpr int64_t kMinute = 60 * 1000;
const std::string kKey1 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
const std::string kKey2 = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";

class TrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().toString();
    store_ = std::move(store).value();
    ASSERT_NO_FATAL_FAILURE(reload());
  }
  // A coordinator restart: a new Trust loaded from the same store.
  void reload() {
    trust_ = std::make_unique<Trust>(*store_);
    common::Status s = trust_->load();
    ASSERT_TRUE(s.ok()) << s.toString();
  }
  std::string token(const std::string& cluster, int64_t ttl_ms = 10 * kMinute, int64_t now = kNow) {
    auto e = trust_->createEnrollment(cluster, ttl_ms, "admin", now);
    EXPECT_TRUE(e.ok()) << e.status().toString();
    return e.ok() ? e->token : "";
  }
  size_t stored(const std::string& prefix) {
    auto records = store_->scanRecords(prefix);
    EXPECT_TRUE(records.ok()) << records.status().toString();
    return records.ok() ? records->size() : 0;
  }

  support::TempDir dir_{"trust-test", support::TempDir::Where::kMemory};
  std::unique_ptr<Store> store_;
  std::unique_ptr<Trust> trust_;
};

TEST_F(TrustTest, TheNonceSecretIsMadeOnceAndKept) {
  const std::string secret = trust_->nonceSecret();
  EXPECT_EQ(secret.size(), 64u);
  EXPECT_EQ(secret.find_first_not_of("0123456789abcdef"), std::string::npos) << secret;
  ASSERT_NO_FATAL_FAILURE(reload());
  EXPECT_EQ(trust_->nonceSecret(), secret);
  // Another data dir, another secret.
  support::TempDir other_dir("trust-test-other", support::TempDir::Where::kMemory);
  auto other = Store::open(other_dir.path());
  ASSERT_TRUE(other.ok());
  Trust elsewhere(**other);
  ASSERT_TRUE(elsewhere.load().ok());
  EXPECT_NE(elsewhere.nonceSecret(), secret);
}

TEST_F(TrustTest, ABrokenNonceSecretIsCorruptionNotReplaced) {
  ASSERT_TRUE(store_->putRecord("trust/nonce-secret", "short").ok());
  Trust again(*store_);
  common::Status s = again.load();
  EXPECT_TRUE(s.isCorruption()) << s.toString();
  auto kept = store_->getRecord("trust/nonce-secret");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->value_or(""), "short") << "a new secret would void every command in flight";
}

TEST_F(TrustTest, RecordsThatDoNotDecodeAreCorruption) {
  ASSERT_TRUE(store_->putRecord("trust/agentkey/staging-eu", "{not json").ok());
  Trust keys(*store_);
  EXPECT_TRUE(keys.load().isCorruption());
  ASSERT_TRUE(store_->putRecord("trust/agentkey/staging-eu", R"({"environment":"x"})").ok());
  EXPECT_TRUE(Trust(*store_).load().isCorruption()) << "a key record without its key";
  ASSERT_TRUE(store_->deleteRecord("trust/agentkey/staging-eu").ok());
  ASSERT_TRUE(
      store_->putRecord("trust/enroll/" + common::sha256Hex("t"), R"({"cluster":"a"})").ok());
  EXPECT_TRUE(Trust(*store_).load().isCorruption()) << "a token record without its expiry";
}

// Moved from agent_gate_test.cpp (it tested these rules through AgentGate).
TEST_F(TrustTest, EnrollmentTokensAreBoundedAndValidated) {
  EXPECT_TRUE(
      trust_->createEnrollment("Bad_Name", 1000, "admin", kNow).status().isInvalidArgument());
  EXPECT_TRUE(trust_->createEnrollment("", 1000, "admin", kNow).status().isInvalidArgument());
  EXPECT_TRUE(
      trust_->createEnrollment("staging-eu", 0, "admin", kNow).status().isInvalidArgument());
  EXPECT_TRUE(
      trust_->createEnrollment("staging-eu", -1, "admin", kNow).status().isInvalidArgument());
  EXPECT_TRUE(trust_->createEnrollment("staging-eu", Trust::kMaxEnrollmentTtlMs + 1, "admin", kNow)
                  .status()
                  .isInvalidArgument());
  EXPECT_EQ(stored("trust/enroll/"), 0u) << "nothing stored for a refusal";
  auto longest = trust_->createEnrollment("staging-eu", Trust::kMaxEnrollmentTtlMs, "admin", kNow);
  ASSERT_TRUE(longest.ok()) << longest.status().toString();
  EXPECT_EQ(longest->expires_ms, kNow + Trust::kMaxEnrollmentTtlMs);
  auto e = trust_->createEnrollment("staging-eu", 1000, "admin", kNow);
  ASSERT_TRUE(e.ok()) << e.status().toString();
  EXPECT_EQ(e->token.rfind("fle_", 0), 0u);
  EXPECT_EQ(e->cluster, "staging-eu");
  EXPECT_EQ(e->expires_ms, kNow + 1000);
  EXPECT_NE(e->token, longest->token);
  // Only the hash is stored.
  auto records = store_->scanRecords("trust/enroll/");
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 2u);
  for (const auto& [key, value] : *records) {
    EXPECT_EQ(key.find(e->token), std::string::npos);
    EXPECT_EQ(value.find(e->token), std::string::npos);
  }
  auto by_hash = store_->getRecord("trust/enroll/" + common::sha256Hex(e->token));
  ASSERT_TRUE(by_hash.ok());
  EXPECT_TRUE(by_hash->has_value()) << "kept under the SHA-256 of the token";
}

TEST_F(TrustTest, EnrollmentIsOpenWhileAnUnexpiredTokenIsUnused) {
  EXPECT_FALSE(trust_->enrollmentOpen(kNow));
  EXPECT_EQ(trust_->expectedClusters(), 0u);
  const std::string t = token("staging-eu", kMinute);
  EXPECT_TRUE(trust_->enrollmentOpen(kNow));
  EXPECT_TRUE(trust_->enrollmentOpen(kNow + kMinute - 1));
  EXPECT_FALSE(trust_->enrollmentOpen(kNow + kMinute)) << "expired at its expiry";
  EXPECT_EQ(trust_->expectedClusters(), 1u);
  ASSERT_TRUE(trust_->enroll(t, "staging-eu", kKey1, "staging", kNow + 1).ok());
  EXPECT_FALSE(trust_->enrollmentOpen(kNow + 1)) << "spent";
  EXPECT_EQ(trust_->expectedClusters(), 1u) << "the cluster now, not its token";
}

TEST_F(TrustTest, ATokenEnrollsOneKeyForItsClusterOnce) {
  const std::string t = token("staging-eu");
  auto enrolled = trust_->enroll(t, "staging-eu", kKey1, "staging", kNow + 5);
  ASSERT_TRUE(enrolled.ok()) << enrolled.status().toString();
  EXPECT_EQ(enrolled->cluster, "staging-eu");
  EXPECT_EQ(enrolled->key, kKey1);
  EXPECT_EQ(enrolled->environment, "staging");
  EXPECT_EQ(enrolled->enrolled_ms, kNow + 5);
  EXPECT_EQ(enrolled->enrolled_by, "admin") << "who made the token";
  ASSERT_NE(trust_->findKey(kKey1), nullptr);
  EXPECT_EQ(trust_->findKey(kKey1)->cluster, "staging-eu");
  ASSERT_NE(trust_->findCluster("staging-eu"), nullptr);
  EXPECT_EQ(trust_->findCluster("staging-eu")->key, kKey1);
  EXPECT_EQ(trust_->findKey(kKey2), nullptr);
  EXPECT_EQ(trust_->findCluster("prod-eu-1"), nullptr);
  // Spent: not for another key, not for the same one.
  auto again = trust_->enroll(t, "staging-eu", kKey2, "staging", kNow + 6);
  EXPECT_TRUE(again.status().isPermissionDenied()) << again.status().toString();
  EXPECT_NE(again.status().message().find("already used"), std::string::npos);
  EXPECT_EQ(stored("trust/enroll/"), 0u);
  EXPECT_EQ(stored("trust/agentkey/"), 1u);
}

TEST_F(TrustTest, RefusedEnrollmentsLeaveTheTokenUsable) {
  const std::string t = token("staging-eu", kMinute);
  auto unknown = trust_->enroll("fle_" + std::string(64, '0'), "staging-eu", kKey1, "", kNow);
  EXPECT_TRUE(unknown.status().isPermissionDenied()) << unknown.status().toString();
  auto other_cluster = trust_->enroll(t, "prod-eu-1", kKey1, "", kNow);
  EXPECT_TRUE(other_cluster.status().isPermissionDenied()) << other_cluster.status().toString();
  EXPECT_NE(other_cluster.status().message().find("\"staging-eu\""), std::string::npos)
      << other_cluster.status().toString();
  EXPECT_EQ(trust_->findKey(kKey1), nullptr);
  EXPECT_TRUE(trust_->enroll(t, "staging-eu", kKey1, "", kNow).ok());
}

TEST_F(TrustTest, AnExpiredTokenEnrollsNothing) {
  const std::string t = token("staging-eu", kMinute);
  auto late = trust_->enroll(t, "staging-eu", kKey1, "", kNow + kMinute);
  EXPECT_TRUE(late.status().isPermissionDenied()) << late.status().toString();
  EXPECT_NE(late.status().message().find("expired"), std::string::npos);
  EXPECT_EQ(trust_->findKey(kKey1), nullptr);
}

TEST_F(TrustTest, AKeySpeaksForOneClusterOnly) {
  ASSERT_TRUE(trust_->enroll(token("staging-eu"), "staging-eu", kKey1, "staging", kNow).ok());
  const std::string t = token("prod-eu-1");
  auto refused = trust_->enroll(t, "prod-eu-1", kKey1, "production", kNow);
  EXPECT_TRUE(refused.status().isPermissionDenied()) << refused.status().toString();
  EXPECT_NE(refused.status().message().find("already enrolled as cluster \"staging-eu\""),
            std::string::npos)
      << refused.status().toString();
  EXPECT_EQ(trust_->findKey(kKey1)->cluster, "staging-eu");
  EXPECT_EQ(trust_->findCluster("prod-eu-1"), nullptr);
  // The same key enrolled again for its own cluster is fine (a fresh token from the admin).
  auto renewed = trust_->enroll(token("staging-eu"), "staging-eu", kKey1, "staging", kNow + 1);
  ASSERT_TRUE(renewed.ok()) << renewed.status().toString();
  EXPECT_EQ(trust_->findKey(kKey1)->enrolled_ms, kNow + 1);
}

TEST_F(TrustTest, ANewKeyForAClusterReplacesTheOldOne) {
  ASSERT_TRUE(trust_->enroll(token("staging-eu"), "staging-eu", kKey1, "staging", kNow).ok());
  ASSERT_TRUE(trust_->enroll(token("staging-eu"), "staging-eu", kKey2, "staging", kNow + 1).ok());
  EXPECT_EQ(trust_->findKey(kKey1), nullptr) << "the old key speaks for nobody";
  ASSERT_NE(trust_->findKey(kKey2), nullptr);
  EXPECT_EQ(trust_->findCluster("staging-eu")->key, kKey2);
  ASSERT_NO_FATAL_FAILURE(reload());
  EXPECT_EQ(trust_->findKey(kKey1), nullptr);
  ASSERT_NE(trust_->findKey(kKey2), nullptr);
  EXPECT_EQ(stored("trust/agentkey/"), 1u);
}

TEST_F(TrustTest, KeysAndOpenTokensSurviveARestart) {
  ASSERT_TRUE(trust_->enroll(token("staging-eu"), "staging-eu", kKey1, "staging", kNow + 7).ok());
  const std::string open = token("prod-eu-1", kMinute);
  ASSERT_NO_FATAL_FAILURE(reload());
  const EnrolledKey* k = trust_->findKey(kKey1);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->cluster, "staging-eu");
  EXPECT_EQ(k->environment, "staging");
  EXPECT_EQ(k->enrolled_ms, kNow + 7);
  EXPECT_EQ(k->enrolled_by, "admin");
  EXPECT_EQ(trust_->expectedClusters(), 2u);
  EXPECT_TRUE(trust_->enrollmentOpen(kNow));
  // The open token still works after the restart, with its expiry.
  EXPECT_TRUE(
      trust_->enroll(open, "prod-eu-1", kKey2, "", kNow + kMinute).status().isPermissionDenied());
  auto enrolled = trust_->enroll(open, "prod-eu-1", kKey2, "production", kNow + 1);
  ASSERT_TRUE(enrolled.ok()) << enrolled.status().toString();
  EXPECT_EQ(enrolled->enrolled_by, "admin");
}

TEST_F(TrustTest, ExpiredTokensAreSweptWhenTheNextOneIsMade) {
  token("staging-eu", kMinute);
  token("prod-eu-1", 10 * kMinute);
  EXPECT_EQ(trust_->expectedClusters(), 2u);
  EXPECT_EQ(stored("trust/enroll/"), 2u);
  token("prod-eu-2", kMinute, kNow + kMinute);
  EXPECT_EQ(trust_->expectedClusters(), 2u) << "staging-eu's token expired and is gone";
  EXPECT_EQ(stored("trust/enroll/"), 2u);
  ASSERT_NO_FATAL_FAILURE(reload());
  EXPECT_EQ(trust_->expectedClusters(), 2u);
}

TEST_F(TrustTest, RevokeRemovesTheKeyAndTheClustersOpenTokensOnly) {
  ASSERT_TRUE(trust_->enroll(token("staging-eu"), "staging-eu", kKey1, "staging", kNow).ok());
  const std::string spare = token("staging-eu");
  const std::string others = token("prod-eu-1");
  ASSERT_TRUE(trust_->revoke("staging-eu").ok());
  EXPECT_EQ(trust_->findKey(kKey1), nullptr);
  EXPECT_EQ(trust_->findCluster("staging-eu"), nullptr);
  EXPECT_TRUE(trust_->enroll(spare, "staging-eu", kKey1, "", kNow).status().isPermissionDenied())
      << "the cluster's unused tokens go with it";
  EXPECT_EQ(trust_->expectedClusters(), 1u);
  EXPECT_EQ(stored("trust/agentkey/"), 0u);
  EXPECT_EQ(stored("trust/enroll/"), 1u);
  // Durable.
  ASSERT_NO_FATAL_FAILURE(reload());
  EXPECT_EQ(trust_->findKey(kKey1), nullptr);
  EXPECT_TRUE(trust_->enroll(others, "prod-eu-1", kKey2, "", kNow).ok());
  // Nothing left to revoke.
  EXPECT_TRUE(trust_->revoke("staging-eu").isNotFound());
  EXPECT_TRUE(trust_->revoke("never-enrolled").isNotFound());
}

TEST_F(TrustTest, RevokingOnlyAnOpenTokenCounts) {
  const std::string t = token("staging-eu");
  ASSERT_TRUE(trust_->revoke("staging-eu").ok());
  EXPECT_FALSE(trust_->enrollmentOpen(kNow));
  EXPECT_TRUE(trust_->enroll(t, "staging-eu", kKey1, "", kNow).status().isPermissionDenied());
}

}  // namespace
}  // namespace flotilla::coordinator
