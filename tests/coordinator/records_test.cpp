// Tests for coordinator/records.cpp: the store's per-cluster and per-event records round-trip
// every field, still read the JSON form earlier builds wrote, and turn bytes that do not decode
// (truncated, misaligned, out of range, oversized) into Corruption instead of a crash.
#include "coordinator/records.hpp"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/deployment.hpp"
#include "store.capnp.h"

namespace flotilla::coordinator {
namespace {

TEST(RecordsTest, EventRecordsRoundTripAndOldJsonRecordsStillDecode) {
  Event e{"cluster.failed", "prod", "prod-eu-1", "verify", "exit 3: \"quoted\"\n\xff"};
  auto back = decodeEventRecord(encodeEventRecord(17, 123456, e));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->seq, 17u);
  EXPECT_EQ(back->time_ms, 123456);
  EXPECT_EQ(back->event.type, "cluster.failed");
  EXPECT_EQ(back->event.wave, "prod");
  EXPECT_EQ(back->event.cluster, "prod-eu-1");
  EXPECT_EQ(back->event.step, "verify");
  EXPECT_EQ(back->event.message, e.message);
  // What coordinators wrote before events were Cap'n Proto.
  auto old = decodeEventRecord(
      R"({"seq":3,"time_ms":9,"type":"wave.started","wave":"w","cluster":"","step":"","message":"m"})");
  ASSERT_TRUE(old.ok()) << old.status().toString();
  EXPECT_EQ(old->seq, 3u);
  EXPECT_EQ(old->event.type, "wave.started");
  for (std::string_view bad :
       {std::string_view(""), std::string_view("{not json"), std::string_view("\x01\x02\x03"),
        std::string_view("\0\0\0\0\x10\0\0\0", 8)}) {
    EXPECT_TRUE(decodeEventRecord(bad).status().isCorruption()) << bad.size();
  }
}

// An analysis window's figures as the engine keeps them on a cluster.
common::AnalysisFigures sampleFigures() {
  common::AnalysisFigures f;
  f.window = 2;
  f.window_ms = 60'000;
  f.candidate = common::SetFigures{"2.0.0", 420, 7.0, 0.008, 0.012, 2};
  f.stable = common::SetFigures{"1.0.0", 400, 6.6, 0.005, std::nullopt, 2};
  f.error_rate_limit = 0.01;
  f.min_requests = 20;
  f.verdict = common::WindowVerdict::kInconclusive;
  f.health_checks = 30;
  f.health_failing = 1;
  f.health_threshold = 3;
  f.strategy_step = 1;
  f.strategy_steps = 3;
  return f;
}

TEST(RecordsTest, ClusterRecordsKeepTheLastFiguresAndEventsTheirData) {
  ClusterProgress c;
  c.name = "prod-eu-1";
  c.figures = sampleFigures();
  c.figures_stage = "prod-eu-1/analyze-2#1";
  auto back = decodeClusterRecord(encodeClusterRecord(c));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_TRUE(*back == c);
  Event e{"cluster.analysis",  "prod",           "prod-eu-1", "analyze",
          "analysis 1/3: ...", R"({"window":2})"};
  auto event = decodeEventRecord(encodeEventRecord(5, 6, e));
  ASSERT_TRUE(event.ok()) << event.status().toString();
  EXPECT_EQ(event->event.data, e.data);
  // Figures the store cannot read make the record corrupt, as any other field would.
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<schema::ClusterRecord>();
  r.setName("prod-eu-1");
  r.setFigures("{\"window\": 0}");
  auto words = capnp::messageToFlatArray(m);
  auto bytes = words.asBytes();
  EXPECT_TRUE(
      decodeClusterRecord(std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size()))
          .status()
          .isCorruption());
}

TEST(RecordsTest, ClusterRecordsRoundTripEveryField) {
  ClusterProgress c;
  c.name = "prod-eu-1";
  c.state = ClusterState::kRollingBack;
  c.step = Step::ROLLBACK;
  c.step_index = 3;
  c.attempt = 2;
  c.in_flight = true;
  c.abort_sent = true;
  c.agent_lost = true;
  c.rollback_lost = true;
  c.applied = true;
  c.previous_version = "1.4.1";
  c.message = std::string(3000, 'x');
  c.exit_code = -9;
  auto back = decodeClusterRecord(encodeClusterRecord(c));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_TRUE(*back == c);
  ClusterProgress fresh;  // nothing sent: no step, no exit code
  fresh.name = "staging-eu";
  auto fresh_back = decodeClusterRecord(encodeClusterRecord(fresh));
  ASSERT_TRUE(fresh_back.ok()) << fresh_back.status().toString();
  EXPECT_TRUE(*fresh_back == fresh);
  EXPECT_FALSE(fresh_back->step.has_value());
  EXPECT_FALSE(fresh_back->exit_code.has_value());
}

TEST(RecordsTest, ClusterRecordsOutOfRangeOrTruncatedAreCorruption) {
  ClusterProgress c;
  c.name = "prod-eu-1";
  std::string bytes = encodeClusterRecord(c);
  EXPECT_TRUE(decodeClusterRecord(bytes.substr(0, bytes.size() - 8)).status().isCorruption());
  EXPECT_TRUE(decodeClusterRecord(bytes.substr(0, 5)).status().isCorruption());
  EXPECT_TRUE(decodeClusterRecord("{\"name\": 3}").status().isCorruption());
  // A state no coordinator writes: the data section's first byte after the header words.
  c.state = static_cast<ClusterState>(200);
  EXPECT_TRUE(decodeClusterRecord(encodeClusterRecord(c)).status().isCorruption());
  c.state = ClusterState::kPending;
  c.step = static_cast<Step>(100);
  EXPECT_TRUE(decodeClusterRecord(encodeClusterRecord(c)).status().isCorruption());
}

TEST(RecordsTest, EveryClusterStateAndStepRoundTrips) {
  for (int state = 0; state <= static_cast<int>(ClusterState::kRollbackFailed); ++state) {
    for (int step = -1; step <= static_cast<int>(Step::ROLL); ++step) {
      ClusterProgress c;
      c.name = "prod-eu-1";
      c.state = static_cast<ClusterState>(state);
      if (step >= 0) c.step = static_cast<Step>(step);
      auto back = decodeClusterRecord(encodeClusterRecord(c));
      ASSERT_TRUE(back.ok()) << state << "/" << step << ": " << back.status().toString();
      EXPECT_TRUE(*back == c) << state << "/" << step;
    }
  }
}

TEST(RecordsTest, ClusterRecordsInTheJsonFormOfEarlierBuildsStillDecode) {
  auto old = decodeClusterRecord(
      R"({"name":"prod-eu-1","state":"applying","step":"apply","step_index":1,"attempt":2,)"
      R"("in_flight":true,"abort_sent":false,"applied":false,"previous_version":"1.4.1",)"
      R"("message":"","exit_code":null})");
  ASSERT_TRUE(old.ok()) << old.status().toString();
  EXPECT_EQ(old->name, "prod-eu-1");
  EXPECT_EQ(old->state, ClusterState::kApplying);
  EXPECT_EQ(old->step, Step::APPLY);
  EXPECT_EQ(old->step_index, 1);
  EXPECT_EQ(old->attempt, 2u);
  EXPECT_TRUE(old->in_flight);
  EXPECT_FALSE(old->agent_lost) << "a field added later reads as false";
  EXPECT_EQ(old->previous_version, "1.4.1");
  EXPECT_FALSE(old->exit_code.has_value());
  EXPECT_TRUE(decodeClusterRecord("{").status().isCorruption());
  EXPECT_TRUE(decodeClusterRecord(R"({"name":"x","state":"exploded"})").status().isCorruption());
}

TEST(RecordsTest, EmptyTextFieldsAndExtremeNumbersRoundTrip) {
  auto back = decodeEventRecord(encodeEventRecord(UINT64_MAX, INT64_MIN, Event{}));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->seq, UINT64_MAX);
  EXPECT_EQ(back->time_ms, INT64_MIN);
  EXPECT_EQ(back->event.type, "");
  EXPECT_EQ(back->event.message, "");
  ClusterProgress c;  // no name at all
  c.step_index = -1;
  c.attempt = UINT32_MAX;
  c.exit_code = INT32_MIN;
  auto cluster = decodeClusterRecord(encodeClusterRecord(c));
  ASSERT_TRUE(cluster.ok()) << cluster.status().toString();
  EXPECT_TRUE(*cluster == c);
}

TEST(RecordsTest, TextWithNulBytesIsKeptWhole) {
  // Peer text (a step's message) may hold any byte; the JSON records kept a NUL, so do these.
  const std::string nul("exit 3: a\0b", 11);
  auto back = decodeEventRecord(encodeEventRecord(1, 2, Event{"t", "w", "c", "s", nul}));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->event.message, nul);
  ClusterProgress c;
  c.name = "prod-eu-1";
  c.message = nul;
  c.previous_version = std::string("1.4\0", 4);
  auto cluster = decodeClusterRecord(encodeClusterRecord(c));
  ASSERT_TRUE(cluster.ok()) << cluster.status().toString();
  EXPECT_EQ(cluster->message, nul);
  EXPECT_EQ(cluster->previous_version, c.previous_version);
}

TEST(RecordsTest, RecordsDecodeFromBytesOfAnyAlignment) {
  // RocksDB hands out values at whatever address it likes.
  Event e{"cluster.succeeded", "prod", "prod-eu-1", "verify", "ok"};
  const std::string bytes = encodeEventRecord(5, 6, e);
  std::vector<char> buffer(bytes.size() + 8);
  for (size_t offset = 1; offset < 8; ++offset) {
    std::memcpy(buffer.data() + offset, bytes.data(), bytes.size());
    auto back = decodeEventRecord(std::string_view(buffer.data() + offset, bytes.size()));
    ASSERT_TRUE(back.ok()) << offset << ": " << back.status().toString();
    EXPECT_EQ(back->event.cluster, "prod-eu-1");
  }
}

TEST(RecordsTest, EventRecordsMissingAFieldOrTruncatedAreCorruption) {
  EXPECT_TRUE(
      decodeEventRecord(R"({"seq":3,"time_ms":9,"type":"wave.started"})").status().isCorruption());
  EXPECT_TRUE(decodeEventRecord(R"({"seq":"three","time_ms":9,"type":"t","wave":"w",)"
                                R"("cluster":"","step":"","message":""})")
                  .status()
                  .isCorruption());
  const std::string bytes = encodeEventRecord(1, 2, Event{"t", "w", "c", "s", "message"});
  for (size_t cut = 8; cut < bytes.size(); cut += 8) {
    EXPECT_TRUE(decodeEventRecord(bytes.substr(0, cut)).status().isCorruption()) << cut;
  }
  EXPECT_TRUE(decodeEventRecord(bytes + "x").status().isCorruption()) << "not whole words";
}

TEST(RecordsTest, ARecordLargerThanTheReadLimitIsCorruption) {
  // Bytes that claim (or hold) more than the 1 MiB a record may take are refused, not read.
  const std::string huge =
      encodeEventRecord(1, 2, Event{"t", "", "", "", std::string(2 << 20, 'x')});
  auto refused = decodeEventRecord(huge);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().isCorruption()) << refused.status().toString();
  // A large message under the limit is read back.
  const std::string big(256 << 10, 'y');
  auto back = decodeEventRecord(encodeEventRecord(1, 2, Event{"t", "", "", "", big}));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->event.message, big);
}

}  // namespace
}  // namespace flotilla::coordinator
