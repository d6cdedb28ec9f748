// agent/process/service_ops.cpp: the rules that move traffic, against the in-memory load
// balancer (tests/support/fake_traffic.hpp). Replicas here are records only; starting and
// stopping real ones is tested with real processes in driver_test.cpp.
#include "agent/process/service_ops.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>

#include "tests/support/fake_traffic.hpp"
#include "tests/support/files.hpp"

namespace flotilla::agent {
namespace {

class ServiceOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    traffic_.addFreeSlots("web", 4);
    ops_ = std::make_unique<ServiceOps>(dir_.path(), "shop", cancel_, log_, launch_,
                                        traffic_.factory());
    ASSERT_TRUE(ops_->load().ok());
    ops_->useTraffic(TrafficSpec{"/run/haproxy.sock", "web"});
  }
  size_t indexOf(const std::string& call) const {
    auto it = std::find(traffic_.calls.begin(), traffic_.calls.end(), call);
    EXPECT_NE(it, traffic_.calls.end()) << call;
    return static_cast<size_t>(it - traffic_.calls.begin());
  }

  support::TempDir dir_{"service-ops"};
  support::FakeTraffic traffic_;
  std::atomic<bool> cancel_{false};
  std::vector<std::string> lines_;
  LineSink log_ = [this](const std::string& line) { lines_.push_back(line); };
  LaunchPolicy launch_;
  std::unique_ptr<ServiceOps> ops_;
};

TEST_F(ServiceOpsTest, AReplicaTakesAFreeSlotAtItsAddressWeightAndReady) {
  Replica r{0, 0, 18001, "", 40};
  ASSERT_TRUE(ops_->attach(r).ok());
  EXPECT_EQ(r.slot, "srv1");
  const ServerInfo* s = traffic_.find("web", "srv1");
  EXPECT_EQ(s->address, "127.0.0.1");
  EXPECT_EQ(s->port, 18001);
  EXPECT_EQ(s->weight, 40);
  EXPECT_EQ(s->state(), ServerState::kReady);
  // Attaching again changes nothing.
  const size_t calls = traffic_.calls.size();
  ASSERT_TRUE(ops_->attach(r).ok());
  EXPECT_EQ(traffic_.calls.size(), calls);
}

TEST_F(ServiceOpsTest, ASlotRecordedForAnotherReplicaIsNeverTaken) {
  auto& rec = ops_->record();
  rec.stable = ReplicaSet{"1.0", 100, {{0, 0, 18001, "srv1", 250}}};
  // HAProxy restarted: srv1 looks free again, but the record says it is the stable replica's.
  Replica r{0, 0, 18002, "", 0};
  ASSERT_TRUE(ops_->attach(r).ok());
  EXPECT_EQ(r.slot, "srv2");
}

TEST_F(ServiceOpsTest, NoFreeSlotSaysWhatToAdd) {
  for (auto& s : traffic_.backends["web"]) s.address = "10.0.0.9";  // all parked elsewhere
  Replica r{0, 0, 18001, "", 0};
  common::Status s = ops_->attach(r);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no free server slot in HAProxy backend web"), std::string::npos)
      << s.message();
  EXPECT_TRUE(r.slot.empty());
}

TEST_F(ServiceOpsTest, SharesSplitByReplicaCountAndWeightsRiseBeforeTheyFall) {
  auto& rec = ops_->record();
  rec.stable = ReplicaSet{"1.0", 100, {{0, 0, 18001, "", 125}, {0, 0, 18002, "", 125}}};
  rec.candidate = ReplicaSet{"2.0", 0, {{0, 0, 18003, "", 0}}};
  ASSERT_TRUE(ops_->attachAll().ok());
  traffic_.calls.clear();

  ASSERT_TRUE(ops_->applyShares(50).ok());
  EXPECT_EQ(rec.candidate->share, 50);
  EXPECT_EQ(rec.stable->share, 50);
  EXPECT_EQ(rec.candidate->replicas[0].weight, serverWeight(50, 1));  // 125
  EXPECT_EQ(rec.stable->replicas[0].weight, serverWeight(50, 2));     // 63
  // The backend never has a moment with less weight than before: the candidate's rises first.
  EXPECT_LT(indexOf("weight srv3 125"), indexOf("weight srv1 63"));
  EXPECT_LT(indexOf("weight srv3 125"), indexOf("weight srv2 63"));
  EXPECT_EQ(lines_.back(), "weights: 2.0 50%, 1.0 50%");

  traffic_.calls.clear();
  ASSERT_TRUE(ops_->applyShares(0).ok());  // a rollback: stable rises before candidate falls
  EXPECT_LT(indexOf("weight srv1 125"), indexOf("weight srv3 0"));
}

TEST_F(ServiceOpsTest, WithoutAStableSetTheCandidateTakesEverything) {
  auto& rec = ops_->record();
  rec.candidate = ReplicaSet{"2.0", 0, {{0, 0, 18003, "", 0}}};
  ASSERT_TRUE(ops_->attachAll().ok());
  ASSERT_TRUE(ops_->applyShares(10).ok());
  EXPECT_EQ(rec.candidate->share, 100);
  EXPECT_EQ(traffic_.find("web", "srv1")->weight, serverWeight(100, 1));
}

TEST(ServerWeightTest, SharesBecomeHaproxyWeightsWithinItsLimit) {
  EXPECT_EQ(serverWeight(0, 3), 0);
  EXPECT_EQ(serverWeight(100, 0), 0);
  EXPECT_EQ(serverWeight(100, 1), 250);
  EXPECT_EQ(serverWeight(1, 256), 1);  // never 0 for a set that has a share
  EXPECT_LE(serverWeight(100, 1), kMaxServerWeight);
}

}  // namespace
}  // namespace flotilla::agent
