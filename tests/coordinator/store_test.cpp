// Tests for the coordinator's RocksDB store (coordinator/store.cpp), each on a fresh real
// database in its own temporary directory.
#include "coordinator/store.hpp"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "common/time_format.hpp"
#include "coordinator/deployment.hpp"
#include "tests/support/files.hpp"

namespace flotilla::coordinator {
namespace {

const Actor kAlice{"alice", "deployer", {}, "127.0.0.1:1000"};

namespace fs = std::filesystem;
using namespace std::chrono_literals;

common::Plan samplePlan(const std::string& service = "checkout") {
  common::Plan plan;
  plan.service = service;
  plan.version = "1.4.2";
  plan.steps.build = "docker build -t checkout:$FLOTILLA_VERSION .";
  plan.steps.apply = "./apply.sh";
  plan.steps.verify = "./verify.sh";
  plan.steps.rollback = "./rollback.sh";
  plan.steps.timeout = 90s;
  common::Wave staging;
  staging.name = "staging";
  staging.clusters = {"staging-eu"};
  common::Wave prod;
  prod.name = "prod";
  prod.selector = {{"environment", "production"}, {"tier", "1"}};
  prod.approval_required = true;
  prod.max_parallel = 2;
  plan.waves = {staging, prod};
  plan.rollback_scope = common::RollbackScope::kWave;
  return plan;
}

Event event(const std::string& type, const std::string& message = "") {
  return Event{type, "staging", "staging-eu", "apply", message};
}

std::vector<uint64_t> seqs(const std::vector<StoredEvent>& events) {
  std::vector<uint64_t> out;
  for (const auto& e : events) out.push_back(e.seq);
  return out;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  void TearDown() override { store_.reset(); }

  // Closes the store (if open) and opens it again on the same directory.
  void reopen() {
    store_.reset();
    auto opened = Store::open(dir_);
    ASSERT_TRUE(opened.ok()) << opened.status().toString();
    store_ = std::move(opened).value();
  }

  // Writes a raw key with the store closed: how the tests plant bytes the store never writes.
  void putRaw(const std::string& key, const std::string& value) {
    store_.reset();
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, value).ok());
    db.reset();
    reopen();
  }

  // A new deployment with its submitted event committed.
  Deployment committed(const std::string& id, const std::string& service = "checkout") {
    Effects fx;
    Deployment d = newDeployment(id, samplePlan(service), kAlice, common::fromUnixMillis(1000), fx);
    EXPECT_TRUE(store_->commit(d, fx.events, fx.releases, 1000).ok());
    return d;
  }

  // The counter `next` gives 1, 2, 3, and 4 after a reopen.
  void expectCountsAcrossReopen(common::StatusOr<uint64_t> (Store::*next)()) {
    for (uint64_t want = 1; want <= 4; ++want) {
      if (want == 4) reopen();
      auto value = ((*store_).*next)();
      ASSERT_TRUE(value.ok()) << value.status().toString();
      EXPECT_EQ(*value, want);
    }
  }

  // Every write is synced: on tmpfs that costs nothing, on a disk it dominates the run time.
  support::TempDir temp_{"store-test", support::TempDir::Where::kMemory};
  const std::string root_ = temp_.path();
  const std::string dir_ = root_ + "/db";
  std::unique_ptr<Store> store_;
};

// ---- Counters -------------------------------------------------------------------------------

TEST_F(StoreTest, BumpEpochIncrementsAndSurvivesReopen) {
  expectCountsAcrossReopen(&Store::bumpEpoch);
}

TEST_F(StoreTest, NextDeploymentSeqIncrementsAndSurvivesReopen) {
  expectCountsAcrossReopen(&Store::nextDeploymentSeq);
}

TEST_F(StoreTest, EpochAndDeploymentSeqAreIndependent) {
  ASSERT_EQ(*store_->bumpEpoch(), 1u);
  ASSERT_EQ(*store_->bumpEpoch(), 2u);
  EXPECT_EQ(*store_->nextDeploymentSeq(), 1u);
  EXPECT_EQ(*store_->bumpEpoch(), 3u);
}

TEST_F(StoreTest, CounterThatIsNotANumberIsCorruption) {
  putRaw("meta/epoch", "twelve");
  auto epoch = store_->bumpEpoch();
  ASSERT_FALSE(epoch.ok());
  EXPECT_TRUE(epoch.status().isCorruption()) << epoch.status().toString();
}

// ---- Events ---------------------------------------------------------------------------------

TEST_F(StoreTest, CommitAssignsConsecutiveSeqsFromLastEventSeq) {
  Effects fx;
  Deployment d = newDeployment("checkout-1", samplePlan(), kAlice, common::fromUnixMillis(500), fx);
  ASSERT_EQ(d.last_event_seq, 0u);
  std::vector<StoredEvent> written;
  ASSERT_TRUE(
      store_->commit(d, {event("a", "first"), event("b"), event("c", "third")}, {}, 1000, &written)
          .ok());
  EXPECT_EQ(seqs(written), (std::vector<uint64_t>{1, 2, 3}));
  for (const auto& e : written) EXPECT_EQ(e.time_ms, 1000);
  EXPECT_EQ(written[0].event.type, "a");
  EXPECT_EQ(written[2].event.message, "third");
  EXPECT_EQ(d.last_event_seq, 3u);
  EXPECT_EQ(d.updated_ms, 1000);

  ASSERT_TRUE(store_->commit(d, {event("d"), event("e")}, {}, 2000, &written).ok());
  EXPECT_EQ(seqs(written), (std::vector<uint64_t>{4, 5}));
  EXPECT_EQ(d.last_event_seq, 5u);

  auto all = store_->events("checkout-1", 0, 100);
  ASSERT_TRUE(all.ok()) << all.status().toString();
  ASSERT_EQ(seqs(*all), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  const std::vector<std::string> types = {"a", "b", "c", "d", "e"};
  for (size_t i = 0; i < all->size(); ++i) {
    const StoredEvent& e = (*all)[i];
    EXPECT_EQ(e.event.type, types[i]);
    EXPECT_EQ(e.event.wave, "staging");
    EXPECT_EQ(e.event.cluster, "staging-eu");
    EXPECT_EQ(e.event.step, "apply");
    EXPECT_EQ(e.time_ms, i < 3 ? 1000 : 2000);
  }
  EXPECT_EQ((*all)[0].event.message, "first");

  // The stored record knows where the sequence stands.
  auto stored = store_->loadDeployment("checkout-1");
  ASSERT_TRUE(stored.ok()) << stored.status().toString();
  EXPECT_EQ(stored->last_event_seq, 5u);
  EXPECT_EQ(stored->updated_ms, 2000);
}

TEST_F(StoreTest, CommitWithoutEventsKeepsTheSequence) {
  Deployment d = committed("checkout-1");
  ASSERT_EQ(d.last_event_seq, 1u);
  std::vector<StoredEvent> written = {StoredEvent{}};
  ASSERT_TRUE(store_->commit(d, {}, {}, 3000, &written).ok());
  EXPECT_TRUE(written.empty());
  EXPECT_EQ(d.last_event_seq, 1u);
  ASSERT_TRUE(store_->commit(d, {event("x")}, {}, 4000, &written).ok());
  EXPECT_EQ(seqs(written), (std::vector<uint64_t>{2}));
}

TEST_F(StoreTest, EventsHonourAfterAndLimit) {
  Effects fx;
  Deployment d = newDeployment("checkout-1", samplePlan(), kAlice, common::fromUnixMillis(0), fx);
  std::vector<Event> events;
  for (int i = 1; i <= 12; ++i) events.push_back(event("e" + std::to_string(i)));
  ASSERT_TRUE(store_->commit(d, events, {}, 1).ok());

  auto check = [&](uint64_t after, size_t limit, std::vector<uint64_t> want) {
    auto got = store_->events("checkout-1", after, limit);
    ASSERT_TRUE(got.ok()) << got.status().toString();
    EXPECT_EQ(seqs(*got), want) << "after " << after << ", limit " << limit;
  };
  check(0, 100, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  check(0, 3, {1, 2, 3});
  check(3, 3, {4, 5, 6});
  check(9, 100, {10, 11, 12});  // crosses the 9 -> 10 digit change in the key
  check(11, 5, {12});
  check(12, 5, {});
  check(1000, 5, {});
  check(0, 0, {});
  check(5, 1, {6});
}

TEST_F(StoreTest, EventsAfterTheLargestSeqAreNone) {
  // after_seq + 1 must not wrap to 0: ?after=18446744073709551615 on the HTTP API once
  // returned every event from the start.
  Deployment d = committed("checkout-1");
  ASSERT_TRUE(store_->commit(d, {event("x"), event("y")}, {}, 2).ok());
  auto got = store_->events("checkout-1", std::numeric_limits<uint64_t>::max(), 100);
  ASSERT_TRUE(got.ok()) << got.status().toString();
  EXPECT_EQ(seqs(*got), std::vector<uint64_t>{});
}

TEST_F(StoreTest, EventsOfIdsThatArePrefixesOfEachOtherDoNotMix) {
  Deployment a1 = committed("a-1");
  Deployment a10 = committed("a-10");
  ASSERT_TRUE(store_->commit(a1, {event("a1.second")}, {}, 2).ok());
  ASSERT_TRUE(store_->commit(a10, {event("a10.second"), event("a10.third")}, {}, 2).ok());
  Deployment a = committed("a");

  auto of = [&](const std::string& id, uint64_t after = 0) {
    auto got = store_->events(id, after, 100);
    EXPECT_TRUE(got.ok()) << got.status().toString();
    std::vector<std::string> types;
    if (got.ok()) {
      for (const auto& e : *got) types.push_back(e.event.type);
    }
    return types;
  };
  EXPECT_EQ(of("a-1"), (std::vector<std::string>{"deployment.submitted", "a1.second"}));
  EXPECT_EQ(of("a-10"),
            (std::vector<std::string>{"deployment.submitted", "a10.second", "a10.third"}));
  EXPECT_EQ(of("a"), (std::vector<std::string>{"deployment.submitted"}));
  EXPECT_EQ(of("a-1", 1), (std::vector<std::string>{"a1.second"}));
  EXPECT_EQ(of("a-1", 2), (std::vector<std::string>{}));
  EXPECT_EQ(of("a-10", 2), (std::vector<std::string>{"a10.third"}));
  EXPECT_EQ(of("a-"), (std::vector<std::string>{}));
  EXPECT_EQ(of("a-100"), (std::vector<std::string>{}));
  EXPECT_EQ(of("unknown"), (std::vector<std::string>{}));
}

TEST_F(StoreTest, EventsSurviveReopen) {
  Deployment d = committed("checkout-1");
  ASSERT_TRUE(store_->commit(d, {event("x", "hello")}, {}, 7).ok());
  reopen();
  auto got = store_->events("checkout-1", 0, 10);
  ASSERT_TRUE(got.ok()) << got.status().toString();
  ASSERT_EQ(seqs(*got), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ((*got)[1].event.message, "hello");
  EXPECT_EQ((*got)[1].time_ms, 7);
}

TEST_F(StoreTest, EventThatDoesNotDecodeIsCorruption) {
  committed("checkout-1");
  putRaw("event/checkout-1/0000000000000002", "{not json");
  auto got = store_->events("checkout-1", 0, 10);
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(got.status().isCorruption()) << got.status().toString();
  // Events before the broken one can still be paged through.
  auto first = store_->events("checkout-1", 0, 1);
  ASSERT_TRUE(first.ok()) << first.status().toString();
  EXPECT_EQ(seqs(*first), std::vector<uint64_t>{1});
}

TEST_F(StoreTest, EventsWrittenAsJsonByOlderCoordinatorsAreReadWithNewOnes) {
  Deployment d = committed("checkout-1");  // event 1, a record of this build
  putRaw(
      "event/checkout-1/0000000000000002",
      R"({"seq":2,"time_ms":5,"type":"wave.started","wave":"w","cluster":"","step":"","message":""})");
  d.last_event_seq = 2;
  ASSERT_TRUE(store_->commit(d, {event("deployment.paused")}, {}, 6).ok());
  auto got = store_->events("checkout-1", 0, 10);
  ASSERT_TRUE(got.ok()) << got.status().toString();
  EXPECT_EQ(seqs(*got), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ((*got)[1].event.type, "wave.started");
  EXPECT_EQ((*got)[2].event.type, "deployment.paused");
}

// ---- Releases -------------------------------------------------------------------------------

TEST_F(StoreTest, CommitPutsAndErasesReleases) {
  Effects fx;
  Deployment d = newDeployment("checkout-1", samplePlan(), kAlice, common::fromUnixMillis(0), fx);
  ASSERT_TRUE(store_
                  ->commit(d, fx.events,
                           {{"checkout", "eu-1", "1.4.1"},
                            {"checkout", "eu-2", "1.4.1"},
                            {"checkout", "us-1", "1.3.0"}},
                           1)
                  .ok());
  auto before = store_->releases("checkout");
  ASSERT_TRUE(before.ok()) << before.status().toString();
  EXPECT_EQ(*before, (std::map<std::string, std::string>{
                         {"eu-1", "1.4.1"}, {"eu-2", "1.4.1"}, {"us-1", "1.3.0"}}));

  // An update, an erase (empty version) and an erase of something absent, in one commit.
  ASSERT_TRUE(store_
                  ->commit(d, {event("cluster.verified")},
                           {{"checkout", "eu-1", "1.4.2"},
                            {"checkout", "eu-2", ""},
                            {"checkout", "never-there", ""}},
                           2)
                  .ok());
  auto after = store_->releases("checkout");
  ASSERT_TRUE(after.ok()) << after.status().toString();
  EXPECT_EQ(*after, (std::map<std::string, std::string>{{"eu-1", "1.4.2"}, {"us-1", "1.3.0"}}));
  reopen();
  EXPECT_EQ(*store_->releases("checkout"), *after);
}

TEST_F(StoreTest, CommitWritesRecordEventsAndReleasesTogether) {
  Effects fx;
  Deployment d = newDeployment("checkout-1", samplePlan(), kAlice, common::fromUnixMillis(0), fx);
  d.state = DeploymentState::kRunning;
  ASSERT_TRUE(store_->commit(d, fx.events, {{"checkout", "staging-eu", "1.4.2"}}, 42).ok());
  reopen();
  auto stored = store_->loadDeployment("checkout-1");
  ASSERT_TRUE(stored.ok()) << stored.status().toString();
  EXPECT_EQ(stored->state, DeploymentState::kRunning);
  EXPECT_EQ(stored->last_event_seq, 1u);
  auto events = store_->events("checkout-1", 0, 10);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(seqs(*events), std::vector<uint64_t>{1});
  EXPECT_EQ(store_->releases("checkout")->at("staging-eu"), "1.4.2");
}

TEST_F(StoreTest, ReleasesOfServicesThatArePrefixesOfEachOtherDoNotMix) {
  Effects fx;
  Deployment d = newDeployment("checkout-1", samplePlan(), kAlice, common::fromUnixMillis(0), fx);
  ASSERT_TRUE(store_
                  ->commit(d, {},
                           {{"checkout", "eu-1", "1.0"},
                            {"checkout-api", "eu-1", "2.0"},
                            {"checkout-api", "eu-2", "2.1"},
                            {"checkoutx", "eu-1", "3.0"}},
                           1)
                  .ok());
  EXPECT_EQ(*store_->releases("checkout"), (std::map<std::string, std::string>{{"eu-1", "1.0"}}));
  EXPECT_EQ(*store_->releases("checkout-api"),
            (std::map<std::string, std::string>{{"eu-1", "2.0"}, {"eu-2", "2.1"}}));
  EXPECT_EQ(*store_->releases("checkoutx"), (std::map<std::string, std::string>{{"eu-1", "3.0"}}));
  EXPECT_TRUE(store_->releases("check")->empty());
  EXPECT_TRUE(store_->releases("payments")->empty());
}

// ---- Deployments ----------------------------------------------------------------------------

// A deployment in the middle of its second wave, every optional field set.
Deployment busyDeployment(Effects& fx) {
  Deployment d =
      newDeployment("checkout-7", samplePlan(), kAlice, common::fromUnixMillis(1700000000123), fx);
  d.state = DeploymentState::kRollingBack;
  d.resume_to = DeploymentState::kRollingBack;
  d.wave_index = 1;
  d.reason = "verify failed on prod-eu-1";
  d.failure = Failure{"prod-eu-1", "verify", "exit code 3"};
  d.rollback_failed = {"prod-eu-3"};
  d.rollback_whole_fleet = false;

  WaveProgress& staging = d.waves[0];
  staging.state = WaveState::kSucceeded;
  staging.resolved = true;
  ClusterProgress eu;
  eu.name = "staging-eu";
  eu.state = ClusterState::kSucceeded;
  eu.step = Step::VERIFY;
  eu.attempt = 1;
  eu.applied = true;
  eu.previous_version = "1.4.1";
  eu.exit_code = 0;
  staging.clusters.push_back(eu);

  WaveProgress& prod = d.waves[1];
  prod.state = WaveState::kRollingBack;
  prod.approved = true;
  prod.approvals = {Approval{"bob", "approver", 1700000000200, d.plan_sha256},
                    Approval{"carol", "admin", 1700000000300, d.plan_sha256}};
  prod.resolved = true;
  ClusterProgress p1;
  p1.name = "prod-eu-1";
  p1.state = ClusterState::kRollingBack;
  p1.step = Step::ROLLBACK;
  p1.attempt = 2;
  p1.in_flight = true;
  p1.abort_sent = true;
  p1.applied = true;
  p1.previous_version = "1.4.1";
  p1.message = "rolling back";
  p1.exit_code = 3;
  ClusterProgress p2;
  p2.name = "prod-eu-2";  // never reached: every optional left empty
  prod.clusters = {p1, p2};
  return d;
}

TEST_F(StoreTest, DeploymentRoundTrips) {
  Effects fx;
  Deployment d = busyDeployment(fx);
  ASSERT_TRUE(store_->commit(d, fx.events, {}, 1700000000999).ok());

  reopen();
  auto loaded = store_->loadDeployment("checkout-7");
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  const Deployment& l = *loaded;
  EXPECT_EQ(deploymentToJson(l), deploymentToJson(d));
  EXPECT_EQ(l.id, "checkout-7");
  EXPECT_EQ(l.plan.service, "checkout");
  EXPECT_EQ(l.plan.version, "1.4.2");
  EXPECT_EQ(l.plan.steps.apply, "./apply.sh");
  EXPECT_EQ(l.plan.steps.timeout, 90s);
  ASSERT_EQ(l.plan.waves.size(), 2u);
  EXPECT_EQ(l.plan.waves[1].selector.at("environment"), "production");
  EXPECT_TRUE(l.plan.waves[1].approval_required);
  EXPECT_EQ(l.plan.waves[1].max_parallel, 2u);
  EXPECT_EQ(l.plan.rollback_scope, common::RollbackScope::kWave);
  EXPECT_EQ(l.state, DeploymentState::kRollingBack);
  EXPECT_EQ(l.resume_to, DeploymentState::kRollingBack);
  EXPECT_EQ(l.wave_index, 1u);
  EXPECT_EQ(l.reason, "verify failed on prod-eu-1");
  ASSERT_TRUE(l.failure.has_value());
  EXPECT_EQ(l.failure->cluster, "prod-eu-1");
  EXPECT_EQ(l.failure->step, "verify");
  EXPECT_EQ(l.failure->message, "exit code 3");
  EXPECT_EQ(l.rollback_failed, std::vector<std::string>{"prod-eu-3"});
  EXPECT_FALSE(l.rollback_whole_fleet);
  EXPECT_EQ(l.created_ms, 1700000000123);
  EXPECT_EQ(l.updated_ms, 1700000000999);
  EXPECT_EQ(l.last_event_seq, 1u);
  ASSERT_EQ(l.waves.size(), 2u);
  EXPECT_EQ(l.waves[0].name, "staging");
  EXPECT_EQ(l.waves[0].state, WaveState::kSucceeded);
  ASSERT_EQ(l.waves[0].clusters.size(), 1u);
  EXPECT_EQ(l.waves[0].clusters[0].exit_code, 0);
  EXPECT_EQ(l.submitted_by, "alice");
  EXPECT_EQ(l.plan_sha256, d.plan_sha256);
  EXPECT_EQ(l.plan_sha256, common::sha256Hex(common::planToJson(l.plan)));
  EXPECT_EQ(l.waves[1].name, "prod");
  EXPECT_TRUE(l.waves[1].approved);
  EXPECT_EQ(l.waves[1].approvals, d.waves[1].approvals);
  EXPECT_TRUE(l.waves[0].approvals.empty());
  EXPECT_TRUE(l.waves[1].resolved);
  ASSERT_EQ(l.waves[1].clusters.size(), 2u);
  const ClusterProgress& p1 = l.waves[1].clusters[0];
  EXPECT_EQ(p1.name, "prod-eu-1");
  EXPECT_EQ(p1.state, ClusterState::kRollingBack);
  EXPECT_EQ(p1.step, Step::ROLLBACK);
  EXPECT_EQ(p1.attempt, 2u);
  EXPECT_TRUE(p1.in_flight);
  EXPECT_TRUE(p1.abort_sent);
  EXPECT_TRUE(p1.applied);
  EXPECT_EQ(p1.previous_version, "1.4.1");
  EXPECT_EQ(p1.message, "rolling back");
  EXPECT_EQ(p1.exit_code, 3);
  const ClusterProgress& p2 = l.waves[1].clusters[1];
  EXPECT_EQ(p2.state, ClusterState::kPending);
  EXPECT_FALSE(p2.step.has_value());
  EXPECT_FALSE(p2.exit_code.has_value());
}

TEST_F(StoreTest, LaterCommitReplacesTheRecord) {
  Deployment d = committed("checkout-1");
  d.state = DeploymentState::kSucceeded;
  d.reason = "done";
  ASSERT_TRUE(store_->commit(d, {event("deployment.succeeded")}, {}, 5000).ok());
  auto loaded = store_->loadDeployment("checkout-1");
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(loaded->state, DeploymentState::kSucceeded);
  EXPECT_EQ(loaded->reason, "done");
  auto all = store_->loadDeployments();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
}

// A deployment of one wave with `n` clusters, all in flight.
Deployment wideDeployment(const std::string& id, size_t n) {
  Effects fx;
  Deployment d =
      newDeployment(id, samplePlan("checkout"), kAlice, common::fromUnixMillis(1000), fx);
  d.state = DeploymentState::kRunning;
  d.waves[0].state = WaveState::kRunning;
  d.waves[0].resolved = true;
  for (size_t i = 0; i < n; ++i) {
    ClusterProgress c;
    c.name = "cluster-" + std::to_string(i);
    c.state = ClusterState::kApplying;
    c.step = Step::APPLY;
    c.attempt = 1;
    c.in_flight = true;
    c.applied = true;
    c.previous_version = "1.0.0";
    d.waves[0].clusters.push_back(std::move(c));
  }
  return d;
}

TEST_F(StoreTest, ACommitRewritesOnlyTheClustersItChanged) {
  Deployment d = wideDeployment("checkout-1", 2000);
  ASSERT_TRUE(store_->commit(d, {}, {}, 2000).ok());
  const uint64_t first = store_->bytesWritten();
  ClusterProgress& c = d.waves[0].clusters[1234];
  c.in_flight = false;
  c.state = ClusterState::kSucceeded;
  c.message = "done";
  ASSERT_TRUE(store_->commit(d, {event("stage.succeeded")}, {}, 3000).ok());
  const uint64_t second = store_->bytesWritten() - first;
  // The header and one cluster record, against 2,000 records the first time.
  EXPECT_LT(second * 50, first) << "first " << first << " bytes, then " << second;
  auto loaded = store_->loadDeployment("checkout-1");
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(deploymentToJson(*loaded), deploymentToJson(d));

  // Reopened, the store knows nothing of what it wrote: the next commit rewrites every record.
  reopen();
  d.waves[0].clusters[7].message = "seven";
  ASSERT_TRUE(store_->commit(d, {}, {}, 4000).ok());
  EXPECT_GT(store_->bytesWritten() * 2, first);
  loaded = store_->loadDeployment("checkout-1");
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(deploymentToJson(*loaded), deploymentToJson(d));
}

TEST_F(StoreTest, GroupCommitWritesTheLastStateOfEachChangedCluster) {
  store_->setGroupCommit(true);
  // Enough clusters that the header (rewritten each time) is small beside them.
  Deployment d = wideDeployment("checkout-1", 400);
  ASSERT_TRUE(store_->commit(d, {}, {}, 2000).ok());
  ASSERT_TRUE(store_->flush().ok());
  const uint64_t first = store_->bytesWritten();
  for (size_t i : {3u, 4u, 3u}) {
    d.waves[0].clusters[i].message += "x";
    ASSERT_TRUE(store_->commit(d, {}, {}, 3000).ok());
  }
  ASSERT_TRUE(store_->flush().ok());
  EXPECT_LT((store_->bytesWritten() - first) * 20, first);
  // A forgotten deployment is rewritten whole.
  store_->forget("checkout-1");
  d.waves[0].clusters[5].message = "five";
  ASSERT_TRUE(store_->commit(d, {}, {}, 4000).ok());
  ASSERT_TRUE(store_->flush().ok());
  reopen();
  auto loaded = store_->loadDeployment("checkout-1");
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(deploymentToJson(*loaded), deploymentToJson(d));
  EXPECT_EQ(loaded->waves[0].clusters[3].message, "xx");
}

TEST_F(StoreTest, AfterAFailedFlushTheDeploymentIsRewrittenWhole) {
  store_->setGroupCommit(true);
  Deployment d = wideDeployment("checkout-1", 300);
  ASSERT_TRUE(store_->commit(d, {}, {}, 2000).ok());
  ASSERT_TRUE(store_->flush().ok());
  const uint64_t first = store_->bytesWritten();
  // Refused before RocksDB sees it (the free-space guard): what reached the disk is unknown
  // in general, so the retry does not trust the last written form.
  store_->setMinFreeBytes(UINT64_MAX);
  d.waves[0].clusters[9].message = "nine";
  ASSERT_TRUE(store_->commit(d, {}, {}, 3000).ok());
  EXPECT_FALSE(store_->flush().ok());
  EXPECT_TRUE(store_->hasPending("checkout-1"));
  store_->setMinFreeBytes(0);
  ASSERT_TRUE(store_->flush().ok());
  EXPECT_FALSE(store_->hasPending("checkout-1"));
  EXPECT_GT((store_->bytesWritten() - first) * 2, first);
  reopen();
  auto loaded = store_->loadDeployment("checkout-1");
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(deploymentToJson(*loaded), deploymentToJson(d));
}

TEST_F(StoreTest, ARecordWithItsClustersInlineStillLoads) {
  // The form written before clusters had records of their own.
  Effects fx;
  Deployment d = busyDeployment(fx);
  putRaw("deployment/checkout-7", deploymentToJson(d));
  auto loaded = store_->loadDeployment("checkout-7");
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(deploymentToJson(*loaded), deploymentToJson(d));
  // Written again, it takes the new form and still loads the same.
  ASSERT_TRUE(store_->commit(*loaded, {}, {}, loaded->updated_ms).ok());
  reopen();
  auto again = store_->loadDeployment("checkout-7");
  ASSERT_TRUE(again.ok()) << again.status().toString();
  EXPECT_EQ(deploymentToJson(*again), deploymentToJson(d));
}

TEST_F(StoreTest, ARecordFromBeforeActorsAndApprovalRecordsStillLoads) {
  // What a coordinator without submitted_by, plan_sha256, approvals and the plan's
  // approvals_required / approval_expires_ms wrote.
  Effects fx;
  Deployment d = busyDeployment(fx);
  nlohmann::json old = nlohmann::json::parse(deploymentToJson(d));
  old.erase("submitted_by");
  old.erase("plan_sha256");
  for (auto& w : old["waves"]) w.erase("approvals");
  for (auto& w : old["plan"]["waves"]) {
    w.erase("approvals_required");
    w.erase("approval_expires_ms");
  }
  putRaw("deployment/checkout-7", old.dump());
  auto loaded = store_->loadDeployment("checkout-7");
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(loaded->submitted_by, "");
  // The hash of the plan it holds, so that approvals given from now on name it.
  EXPECT_EQ(loaded->plan_sha256, common::sha256Hex(common::planToJson(loaded->plan)));
  EXPECT_TRUE(loaded->waves[1].approved);  // an older coordinator's word stands
  EXPECT_TRUE(loaded->waves[1].approvals.empty());
  EXPECT_TRUE(loaded->plan.waves[1].approval_required);
  EXPECT_EQ(loaded->plan.waves[1].approvals_required, 1u);
  EXPECT_EQ(loaded->plan.waves[1].approval_expires, std::chrono::hours(24));
  ASSERT_EQ(loaded->waves[1].clusters.size(), 2u);
  EXPECT_EQ(loaded->waves[1].clusters[0], d.waves[1].clusters[0]);
}

TEST_F(StoreTest, AMissingOrBrokenClusterRecordIsCorruption) {
  Deployment d = wideDeployment("checkout-1", 3);
  ASSERT_TRUE(store_->commit(d, {}, {}, 2000).ok());
  putRaw("cluster/checkout-1/0000/0000001", "{not json");
  auto broken = store_->loadDeployment("checkout-1");
  ASSERT_FALSE(broken.ok());
  EXPECT_TRUE(broken.status().isCorruption()) << broken.status().toString();
  // The header says three; a third record that was never written is a gap.
  Deployment e = wideDeployment("checkout-2", 3);
  ASSERT_TRUE(store_->commit(e, {}, {}, 2000).ok());
  putRaw("cluster/checkout-2/0000/0000009", "{}");
  putRaw("deployment/checkout-3", deploymentHeaderJson(wideDeployment("checkout-3", 2)));
  auto missing = store_->loadDeployment("checkout-3");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().isCorruption()) << missing.status().toString();
  auto stray = store_->loadDeployment("checkout-2");  // a record past the count is ignored
  EXPECT_TRUE(stray.ok()) << stray.status().toString();
  putRaw("cluster/checkout-2/0000/x", "{}");
  EXPECT_TRUE(store_->loadDeployment("checkout-2").status().isCorruption());
  // The listing reads headers only.
  auto summaries = store_->loadDeploymentSummaries();
  ASSERT_TRUE(summaries.ok()) << summaries.status().toString();
  EXPECT_EQ(summaries->size(), 3u);
}

TEST_F(StoreTest, LoadDeploymentsReturnsEveryDeployment) {
  auto empty = store_->loadDeployments();
  ASSERT_TRUE(empty.ok()) << empty.status().toString();
  EXPECT_TRUE(empty->empty());

  committed("checkout-1");
  committed("checkout-2");
  committed("checkout-10");
  committed("payments-1", "payments");
  reopen();
  auto all = store_->loadDeployments();
  ASSERT_TRUE(all.ok()) << all.status().toString();
  std::set<std::string> ids;
  for (const auto& d : *all) ids.insert(d.id);
  EXPECT_EQ(ids, (std::set<std::string>{"checkout-1", "checkout-2", "checkout-10", "payments-1"}));
  for (const auto& d : *all) {
    EXPECT_EQ(d.plan.service, d.id.starts_with("payments") ? "payments" : "checkout");
    EXPECT_EQ(d.waves.size(), 2u);
  }
  auto summaries = store_->loadDeploymentSummaries();
  ASSERT_TRUE(summaries.ok()) << summaries.status().toString();
  ASSERT_EQ(summaries->size(), 4u);
  for (const auto& d : *summaries) {
    EXPECT_EQ(d.waves.size(), 2u);
    for (const auto& w : d.waves) EXPECT_TRUE(w.clusters.empty()) << d.id;  // not read
  }
}

TEST_F(StoreTest, UnknownDeploymentIsNotFound) {
  committed("a-1");
  for (const std::string id : {"a-10", "a", "a-", "", "b-1"}) {
    auto d = store_->loadDeployment(id);
    ASSERT_FALSE(d.ok()) << id;
    EXPECT_TRUE(d.status().isNotFound()) << id << ": " << d.status().toString();
  }
}

TEST_F(StoreTest, DeploymentThatDoesNotDecodeIsCorruption) {
  committed("checkout-1");
  putRaw("deployment/checkout-2", "{\"id\": \"checkout-2\"}");
  auto one = store_->loadDeployment("checkout-2");
  ASSERT_FALSE(one.ok());
  EXPECT_TRUE(one.status().isCorruption()) << one.status().toString();
  auto all = store_->loadDeployments();
  ASSERT_FALSE(all.ok());
  EXPECT_TRUE(all.status().isCorruption()) << all.status().toString();
  EXPECT_TRUE(store_->loadDeployment("checkout-1").ok());
}

// ---- Agents ---------------------------------------------------------------------------------

TEST_F(StoreTest, AgentsRoundTrip) {
  auto none = store_->loadAgents();
  ASSERT_TRUE(none.ok()) << none.status().toString();
  EXPECT_TRUE(none->empty());

  ASSERT_TRUE(
      store_->putAgent({"prod-eu-1", {{"environment", "production"}, {"region", "eu"}}, "0.1.0"})
          .ok());
  ASSERT_TRUE(store_->putAgent({"staging-eu", {}, "0.1.0"}).ok());
  ASSERT_TRUE(store_->putAgent({"prod-eu-1", {{"environment", "production"}}, "0.2.0"}).ok());
  reopen();
  auto agents = store_->loadAgents();
  ASSERT_TRUE(agents.ok()) << agents.status().toString();
  ASSERT_EQ(agents->size(), 2u);
  std::map<std::string, StoredAgent> by_name;
  for (const auto& a : *agents) by_name[a.cluster] = a;
  ASSERT_EQ(by_name.count("prod-eu-1"), 1u);
  ASSERT_EQ(by_name.count("staging-eu"), 1u);
  EXPECT_EQ(by_name["prod-eu-1"].labels,
            (std::map<std::string, std::string>{{"environment", "production"}}));
  EXPECT_EQ(by_name["prod-eu-1"].agent_version, "0.2.0");
  EXPECT_TRUE(by_name["staging-eu"].labels.empty());
  EXPECT_EQ(by_name["staging-eu"].agent_version, "0.1.0");
}

TEST_F(StoreTest, AgentsAreNotMixedWithOtherKeys) {
  committed("agent-1", "agent");  // a service named "agent": deployment/agent-1, event/agent-1/...
  ASSERT_TRUE(store_->putAgent({"eu-1", {}, "0.1.0"}).ok());
  auto agents = store_->loadAgents();
  ASSERT_TRUE(agents.ok()) << agents.status().toString();
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].cluster, "eu-1");
}

// ---- Opening --------------------------------------------------------------------------------

TEST_F(StoreTest, OpeningOnARegularFileIsIoError) {
  const std::string file = root_ + "/not-a-dir";
  std::ofstream(file) << "hello";
  auto opened = Store::open(file);
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(opened.status().isIoError()) << opened.status().toString();
  auto under = Store::open(file + "/db");
  ASSERT_FALSE(under.ok());
  EXPECT_TRUE(under.status().isIoError()) << under.status().toString();
}

TEST_F(StoreTest, SecondOpenOfAnOpenStoreIsIoError) {
  // Two coordinators on one directory: the second is refused, the first keeps working.
  auto second = Store::open(dir_);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().isIoError()) << second.status().toString();
  EXPECT_TRUE(store_->bumpEpoch().ok());
}

}  // namespace
}  // namespace flotilla::coordinator
