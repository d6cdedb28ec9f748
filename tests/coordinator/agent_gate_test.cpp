// Trust and AgentGate below the transport: enrollment tokens, keys bound to one cluster,
// pinned environments, label bounds, one connection per cluster, revocation. The real-socket
// version of each rule is in integration/agent_trust_test.cpp; Trust's own rules (token bounds,
// expiry, revocation, restarts) are in trust_test.cpp.
#include "coordinator/agent_gate.hpp"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <set>

#include "coordinator/trust.hpp"
#include "tests/support/files.hpp"

namespace flotilla::coordinator {
namespace {

class FixedClock : public common::Clock {
 public:
  common::SteadyTime now() const override { return common::SteadyTime{} + offset_; }
  common::SystemTime wallNow() const override {
    return common::SystemTime{} + std::chrono::hours(24 * 365 * 50) + offset_;
  }
  void advance(std::chrono::milliseconds d) { offset_ += d; }

 private:
  std::chrono::milliseconds offset_{0};
};

class FakeOutbox : public Outbox {
 public:
  void send(const std::string& cluster, capnp::MessageBuilder&) override {
    sent.push_back(cluster);
  }
  void sendTo(const std::string& connection, capnp::MessageBuilder& m) override {
    auto frame = common::encodeFrame(m);
    auto decoded = common::DecodedEnvelope::decode(frame.data(), frame.size());
    if (decoded.ok() && (*decoded)->root().isRefused()) {
      refusals.push_back(connection + ": " +
                         common::toStd((*decoded)->root().getRefused().getReason()));
    }
  }
  void bindCluster(const std::string& cluster, const std::string& connection) override {
    bound[cluster] = connection;
  }
  bool connectionOpen(const std::string& connection) const override {
    return open.count(connection) > 0;
  }
  void dropConnection(const std::string& connection) override {
    dropped.push_back(connection);
    open.erase(connection);
  }
  std::vector<std::string> sent, refusals, dropped;
  std::map<std::string, std::string> bound;
  std::set<std::string> open;
};

class AgentGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::open(dir_.path());
    ASSERT_TRUE(store.ok());
    store_ = std::move(store).value();
    trust_ = std::make_unique<Trust>(*store_);
    ASSERT_TRUE(trust_->load().ok());
    gate_ = std::make_unique<AgentGate>(*trust_, outbox_, metrics_, clock_, false);
  }
  void TearDown() override {
    gate_.reset();
    trust_.reset();
    store_.reset();
  }

  std::optional<std::string> reg(const Peer& peer, const std::string& cluster,
                                 std::map<std::string, std::string> labels,
                                 const std::string& token = "") {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initRegister();
    r.setCluster(cluster);
    r.setEnrollToken(token);
    return gate_->admitRegister(peer, r.asReader(), labels);
  }
  std::string token(const std::string& cluster, int64_t ttl_ms = 60000) {
    auto e = gate_->createEnrollment(cluster, ttl_ms, Actor{"admin", "admin", {}, ""});
    EXPECT_TRUE(e.ok()) << e.status().toString();
    return e.ok() ? e->token : "";
  }

  support::TempDir dir_{"gate-test"};
  Metrics metrics_;
  FixedClock clock_;
  FakeOutbox outbox_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Trust> trust_;
  std::unique_ptr<AgentGate> gate_;
  const std::map<std::string, std::string> staging_{{"environment", "staging"}};
};

TEST_F(AgentGateTest, UnknownKeysGetInOnlyWhileATokenIsOpen) {
  EXPECT_FALSE(gate_->admitKey("K1", "10.0.0.1"));
  std::string t = token("staging-eu", 1000);
  EXPECT_TRUE(gate_->admitKey("K1", "10.0.0.1"));
  clock_.advance(std::chrono::milliseconds(1001));
  EXPECT_FALSE(gate_->admitKey("K1", "10.0.0.1")) << "the only token expired";
}

TEST_F(AgentGateTest, ATokenEnrollsOneKeyForItsClusterOnce) {
  std::string t = token("staging-eu");
  Peer a{"c1", "K1", "10.0.0.1"};
  EXPECT_FALSE(reg(a, "staging-eu", staging_).has_value()) << "no token: not enrolled";
  EXPECT_FALSE(reg(a, "prod-eu-1", staging_, t).has_value()) << "a token names its cluster";
  ASSERT_EQ(reg(a, "staging-eu", staging_, t), "staging-eu");
  EXPECT_EQ(outbox_.bound["staging-eu"], "c1");
  EXPECT_EQ(gate_->clusterOf(a), "staging-eu");
  EXPECT_TRUE(gate_->admitKey("K1", "10.0.0.1"));
  // Spent.
  Peer b{"c2", "K2", "10.0.0.2"};
  EXPECT_FALSE(reg(b, "staging-eu", staging_, t).has_value());
  // The key speaks only as its own cluster, with the environment it enrolled with.
  EXPECT_FALSE(reg(a, "prod-eu-1", {{"environment", "production"}}).has_value());
  EXPECT_FALSE(reg(a, "staging-eu", {{"environment", "production"}}).has_value());
  EXPECT_EQ(outbox_.refusals.size(), 5u);
  // Survives a restart of the coordinator.
  Trust again(*store_);
  ASSERT_TRUE(again.load().ok());
  ASSERT_NE(again.findKey("K1"), nullptr);
  EXPECT_EQ(again.findKey("K1")->cluster, "staging-eu");
  EXPECT_EQ(again.findKey("K1")->environment, "staging");
  EXPECT_EQ(again.findKey("K2"), nullptr);
}

TEST_F(AgentGateTest, FramesOnlyFromTheBoundConnectionOfAnEnrolledKey) {
  std::string t = token("staging-eu");
  Peer a{"c1", "K1", "10.0.0.1"};
  ASSERT_TRUE(reg(a, "staging-eu", staging_, t).has_value());
  outbox_.open.insert("c1");
  EXPECT_FALSE(gate_->clusterOf(Peer{"c9", "K1", ""}).has_value()) << "another connection";
  // The same key on a second connection waits until the first is closed.
  Peer twin{"c2", "K1", "10.0.0.1"};
  EXPECT_FALSE(reg(twin, "staging-eu", staging_).has_value());
  EXPECT_NE(outbox_.refusals.back().find("another connection"), std::string::npos);
  outbox_.open.erase("c1");
  ASSERT_EQ(reg(twin, "staging-eu", staging_), "staging-eu");
  EXPECT_FALSE(gate_->clusterOf(a).has_value()) << "the old connection no longer speaks";
  EXPECT_EQ(gate_->clusterOf(twin), "staging-eu");
  // Revoked: nothing more is taken from it, and its connection is closed.
  outbox_.open.insert("c2");
  ASSERT_TRUE(gate_->revoke("staging-eu", Actor{"admin", "admin", {}, ""}).ok());
  EXPECT_FALSE(gate_->clusterOf(twin).has_value());
  EXPECT_EQ(outbox_.dropped, std::vector<std::string>{"c2"});
  EXPECT_FALSE(gate_->admitKey("K1", "10.0.0.1"));
  EXPECT_TRUE(gate_->revoke("staging-eu", Actor::system()).isNotFound());
}

TEST_F(AgentGateTest, LabelsAreBounded) {
  EXPECT_EQ(checkLabels({{"environment", "staging"}, {"topology.kubernetes.io/zone", "a-1"}}), "");
  std::map<std::string, std::string> many;
  for (int i = 0; i < 33; ++i) many["k" + std::to_string(i)] = "v";
  EXPECT_NE(checkLabels(many), "");
  EXPECT_NE(checkLabels({{std::string(64, 'k'), "v"}}), "");
  EXPECT_NE(checkLabels({{"k", std::string(129, 'v')}}), "");
  EXPECT_NE(checkLabels({{"k", "a b"}}), "");
  EXPECT_NE(checkLabels({{"k\n", "v"}}), "");
  std::string t = token("staging-eu");
  EXPECT_FALSE(reg(Peer{"c1", "K1", ""}, "staging-eu", many, t).has_value());
  EXPECT_TRUE(gate_->admitKey("K1", "")) << "a refused register does not spend the token";
}

}  // namespace
}  // namespace flotilla::coordinator
