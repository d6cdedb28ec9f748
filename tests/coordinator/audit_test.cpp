// The audit trail's hash chain over a real store: append, reload, list, and verify against
// records changed, replaced or removed on disk.
#include "coordinator/audit.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/crypto.hpp"
#include "tests/support/files.hpp"

namespace flotilla::coordinator {
namespace {

using nlohmann::json;

AuditEntry entry(const std::string& actor, const std::string& target) {
  return AuditEntry{actor, "admin", "POST /api/v1/tokens", target, "ok", "127.0.0.1:9", ""};
}

std::string key(int seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "audit/%016d", seq);
  return buf;
}

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
  void TearDown() override { store_.reset(); }
  void reopen() {
    store_.reset();
    auto store = Store::open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().toString();
    store_ = std::move(store).value();
  }
  // Five records, written and closed.
  void writeFive() {
    AuditLog log(*store_);
    ASSERT_TRUE(log.load().ok());
    for (int i = 1; i <= 5; ++i) {
      ASSERT_TRUE(log.append(entry("admin", "t" + std::to_string(i)), 1000 * i).ok());
    }
  }
  std::string get(int seq) {
    auto v = store_->getRecord(key(seq));
    EXPECT_TRUE(v.ok() && v->has_value());
    return v.ok() && v->has_value() ? **v : "";
  }
  AuditVerdict verify() {
    AuditLog log(*store_);
    auto v = log.verify();
    EXPECT_TRUE(v.ok());
    return v.ok() ? *v : AuditVerdict{};
  }
  // The chain no longer verifies, and names record `first_bad` (with `problem` in its words).
  void expectBrokenAt(uint64_t first_bad, const std::string& problem = "") {
    AuditVerdict v = verify();
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.first_bad, std::optional<uint64_t>(first_bad)) << v.problem;
    EXPECT_NE(v.problem.find(problem), std::string::npos) << v.problem;
  }

  support::TempDir dir_{"audit"};
  std::unique_ptr<Store> store_;
};

TEST_F(AuditTest, AppendsAChainThatSurvivesReload) {
  writeFive();
  {
    AuditLog log(*store_);
    ASSERT_TRUE(log.load().ok());
    ASSERT_TRUE(log.append(entry("bob", "t6"), 6000).ok());
  }
  AuditVerdict v = verify();
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.records, 6u);
  // Each record names the SHA-256 of the one before.
  EXPECT_EQ(json::parse(get(2))["prev"], common::sha256Hex(get(1)));
  EXPECT_EQ(json::parse(get(1))["prev"], "");

  AuditLog log(*store_);
  auto all = log.list(0, 100);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 6u);
  EXPECT_EQ(all->back().entry.actor, "bob");
  EXPECT_EQ(all->back().seq, 6u);
  auto recent = log.list(3000, 2);  // the newest two from t=3s on, oldest first
  ASSERT_TRUE(recent.ok());
  ASSERT_EQ(recent->size(), 2u);
  EXPECT_EQ((*recent)[0].seq, 5u);
  EXPECT_EQ((*recent)[1].seq, 6u);
  auto later = log.list(5500, 100);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->size(), 1u);
}

TEST_F(AuditTest, PeerTextIsBoundedAndInvalidUtf8Kept) {
  AuditLog log(*store_);
  ASSERT_TRUE(log.load().ok());
  AuditEntry e = entry("x", std::string(5000, 'a'));
  e.detail = "bad \xff\xfe bytes\nnew line";
  ASSERT_TRUE(log.append(e, 1).ok());
  auto all = log.list(0, 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_LE((*all)[0].entry.target.size(), 1024u);
  EXPECT_TRUE(verify().ok);
}

TEST_F(AuditTest, AnEditedRecordIsNamed) {
  writeFive();
  std::string changed = get(3);
  auto at = changed.find("\"actor\":\"admin\"");
  ASSERT_NE(at, std::string::npos) << changed;
  changed.replace(at, 15, "\"actor\":\"eve\"");
  ASSERT_TRUE(store_->putRecord(key(3), changed).ok());
  expectBrokenAt(3, "record 3");
}

TEST_F(AuditTest, AnEditedRecordWithARecomputedHashIsNamed) {
  writeFive();
  json j = json::parse(get(2));
  j["outcome"] = "403";
  j.erase("hash");
  j["hash"] = common::sha256Hex(j.dump());
  ASSERT_TRUE(store_->putRecord(key(2), j.dump()).ok());
  expectBrokenAt(2);
}

TEST_F(AuditTest, ARemovedRecordIsNamed) {
  writeFive();
  ASSERT_TRUE(store_->deleteRecord(key(4)).ok());
  expectBrokenAt(5, "record 4 is missing");
}

TEST_F(AuditTest, GarbageIsNamed) {
  writeFive();
  ASSERT_TRUE(store_->putRecord(key(1), "not json").ok());
  expectBrokenAt(1);
}

}  // namespace
}  // namespace flotilla::coordinator
