// Tests for the stored form (coordinator/deployment_json.cpp): round trips, records of older
// coordinators, corrupt records refused.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "coordinator/records.hpp"
#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using common::Plan;
using DeploymentJson = DeploymentTest;
using nlohmann::json;

// Every value of an enum, by its name table (a value past the last one is named "unknown").
template <typename E>
std::vector<E> allOf(const char* (*namer)(E)) {
  std::vector<E> out;
  for (int i = 0; std::string(namer(static_cast<E>(i))) != "unknown"; ++i) {
    out.push_back(static_cast<E>(i));
  }
  return out;
}

// The cluster records the store keeps for `d` beside its header (coordinator/store.hpp).
StoredClusters recordsOf(const Deployment& d) {
  StoredClusters out;
  for (size_t i = 0; i < d.waves.size(); ++i) {
    for (size_t k = 0; k < d.waves[i].clusters.size(); ++k) {
      out[{static_cast<uint32_t>(i), static_cast<uint32_t>(k)}] =
          encodeClusterRecord(d.waves[i].clusters[k]);
    }
  }
  return out;
}

TEST_F(DeploymentJson, StoredFormRoundTrips) {
  Plan p = threeWaves();
  p.waves[1].approval_required = true;
  versions_["staging-eu"] = "1.0.0";
  Deployment d = start(p);
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::FAILED).ok());
  std::string json = deploymentToJson(d);
  auto back = deploymentFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(deploymentToJson(*back), json);
  EXPECT_EQ(back->state, d.state);
  EXPECT_EQ(back->waves[0].clusters[0].previous_version, "1.0.0");
  EXPECT_TRUE(deploymentFromJson("{").status().isCorruption());
  EXPECT_TRUE(deploymentFromJson("{\"id\": 3}").status().isCorruption());
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

// The last figures of a cluster survive both stored forms (whole, and header plus records).
TEST_F(DeploymentJson, StoredFormKeepsTheLastAnalysisFigures) {
  Deployment d = start(threeWaves());
  ClusterProgress& c = d.waves[0].clusters[0];
  c.figures = sampleFigures();
  c.figures_stage = c.name + "/analyze-2#1";
  auto back = deploymentFromJson(deploymentToJson(d));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  ASSERT_TRUE(back->waves[0].clusters[0].figures.has_value());
  EXPECT_TRUE(back->waves[0].clusters[0] == c);
  EXPECT_EQ(deploymentToJson(*back), deploymentToJson(d));
  // A cluster record in the JSON form, as earlier builds wrote them, with and without figures.
  json whole = json::parse(deploymentToJson(d));
  json cluster = whole["waves"][0]["clusters"][0];
  auto with = clusterFromJsonText(cluster.dump());
  ASSERT_TRUE(with.ok()) << with.status().toString();
  EXPECT_TRUE(*with == c);
  cluster.erase("figures");
  cluster.erase("figures_stage");
  auto without = clusterFromJsonText(cluster.dump());
  ASSERT_TRUE(without.ok()) << without.status().toString();
  EXPECT_FALSE(without->figures.has_value());
  cluster["figures"] = {{"window", 1}};
  EXPECT_TRUE(clusterFromJsonText(cluster.dump()).status().isCorruption());
}

TEST_F(DeploymentJson, StoredFormKeepsActorsAndApprovals) {
  Deployment d = awaitingTwoApprovals();
  ASSERT_TRUE(approve(d, "", bob_, ctxAt(1234), fx_).ok());
  auto back = deploymentFromJson(deploymentToJson(d));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->submitted_by, "alice");
  EXPECT_EQ(back->plan_sha256, d.plan_sha256);
  EXPECT_EQ(back->waves[1].approvals,
            (std::vector<Approval>{{"bob", "approver", 1234, d.plan_sha256}}));
  EXPECT_EQ(back->plan.waves[1].approvals_required, 2u);
  // Restored, it still refuses bob twice and takes carol as the second.
  Effects fx;
  EXPECT_TRUE(approve(*back, "", bob_, ctxAt(2000), fx).isFailedPrecondition());
  ASSERT_TRUE(approve(*back, "", carol_, ctxAt(2000), fx).ok());
  EXPECT_EQ(back->state, DeploymentState::kRunning);
}

TEST_F(DeploymentJson, ARecordFromBeforeActorsLoadsAndTakesApprovals) {
  Deployment d = awaitingTwoApprovals();
  // What an older coordinator wrote: no submitted_by, plan_sha256, approvals, nor the plan's
  // approvals_required and approval_expires_ms.
  std::string json = deploymentToJson(d);
  for (const char* field :
       {"\"submitted_by\":\"alice\",", "\"approvals\":[],", "\"approvals_required\":1,",
        "\"approvals_required\":2,", "\"approval_expires_ms\":86400000,"}) {
    for (size_t at = json.find(field); at != std::string::npos; at = json.find(field)) {
      json.erase(at, std::string(field).size());
    }
  }
  const size_t sha = json.find("\"plan_sha256\":\"");
  ASSERT_NE(sha, std::string::npos);
  json.erase(sha, std::string("\"plan_sha256\":\"\",").size() + 64);
  ASSERT_EQ(json.find("approval"), json.find("approval_required")) << json;
  ASSERT_EQ(json.find("plan_sha256"), std::string::npos) << json;
  ASSERT_EQ(json.find("submitted_by"), std::string::npos) << json;

  auto old = deploymentFromJson(json);
  ASSERT_TRUE(old.ok()) << old.status().toString() << "\n" << json;
  EXPECT_EQ(old->submitted_by, "");
  EXPECT_EQ(old->plan_sha256, common::sha256Hex(common::planToJson(old->plan)));
  EXPECT_EQ(old->plan.waves[1].approvals_required, 1u);  // what `required` meant then
  EXPECT_EQ(old->plan.waves[1].approval_expires, std::chrono::hours(24));
  EXPECT_TRUE(old->waves[1].approvals.empty());
  // Anyone but the coordinator may approve it (its submitter is not known), once.
  Effects fx;
  EXPECT_TRUE(approve(*old, "", Actor::system(), ctx(), fx).isPermissionDenied());
  ASSERT_TRUE(approve(*old, "", alice_, ctx(), fx).ok());
  EXPECT_EQ(old->state, DeploymentState::kRunning);
}

TEST_F(DeploymentJson, EveryStateAndStepRoundTripsInBothForms) {
  Deployment d = start(threeWaves());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  ASSERT_EQ(d.waves[1].clusters.size(), 2u);
  ClusterProgress& c = d.waves[1].clusters[0];
  c.exit_code = 3;
  c.message = "exit code 3: \"quoted\"\nand a second line";
  d.failure = Failure{"prod-eu-2", "apply", "exit code 1"};
  d.rollback_failed = {"prod-eu-1"};

  auto roundTrip = [&](const std::string& what) {
    const std::string whole = deploymentToJson(d);
    auto back = deploymentFromJson(whole);
    ASSERT_TRUE(back.ok()) << what << ": " << back.status().toString();
    EXPECT_EQ(deploymentToJson(*back), whole) << what;
    auto stored = deploymentFromStored(deploymentHeaderJson(d), recordsOf(d));
    ASSERT_TRUE(stored.ok()) << what << ": " << stored.status().toString();
    EXPECT_EQ(deploymentToJson(*stored), whole) << what;
  };
  // Every value the name tables know must come back (the decoder counts them too).
  const auto deployment_states = allOf(deploymentStateName);
  EXPECT_EQ(deployment_states.size(), static_cast<size_t>(kDeploymentStateCount));
  EXPECT_EQ(deployment_states.size(), 13u);
  for (DeploymentState s : deployment_states) {
    d.state = s;
    d.resume_to = s;
    roundTrip(std::string("deployment ") + deploymentStateName(s));
  }
  const auto wave_states = allOf(waveStateName);
  EXPECT_EQ(wave_states.size(), 8u);
  for (WaveState s : wave_states) {
    d.waves[2].state = s;
    roundTrip(std::string("wave ") + waveStateName(s));
  }
  const auto cluster_states = allOf(clusterStateName);
  EXPECT_EQ(cluster_states.size(), 16u);
  for (ClusterState s : cluster_states) {
    c.state = s;
    roundTrip(std::string("cluster ") + clusterStateName(s));
  }
  for (int i = 0; i <= static_cast<int>(common::kLastStep); ++i) {
    c.step = static_cast<Step>(i);
    roundTrip(std::string("step ") + stepName(*c.step));
  }
  c.step.reset();
  c.exit_code.reset();
  roundTrip("no step, no exit code");
}

TEST_F(DeploymentJson, TheHeaderCountsClustersTheRecordsHold) {
  Deployment d = start(threeWaves());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  const json header = json::parse(deploymentHeaderJson(d));
  ASSERT_EQ(header.at("waves").size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_FALSE(header["waves"][i].contains("clusters")) << i;
    EXPECT_EQ(header["waves"][i].at("cluster_count"), d.waves[i].clusters.size()) << i;
  }
  // A record past its wave's count (left by an older write) is not read.
  StoredClusters records = recordsOf(d);
  records[{0, 1}] = "{not even json";
  auto back = deploymentFromStored(header.dump(), records);
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(deploymentToJson(*back), deploymentToJson(d));
  // Summaries read the header alone.
  auto summary = deploymentFromStored(header.dump(), StoredClusters{}, true);
  ASSERT_TRUE(summary.ok()) << summary.status().toString();
  EXPECT_EQ(summary->state, d.state);
  ASSERT_EQ(summary->waves.size(), 3u);
  for (const auto& w : summary->waves) EXPECT_TRUE(w.clusters.empty()) << w.name;
}

TEST_F(DeploymentJson, CorruptRecordsAreRefusedSayingWhatIsWrong) {
  Deployment d = start(threeWaves());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(answer(d, "staging-eu").ok());
  const json whole = json::parse(deploymentToJson(d));
  auto refused = [](const auto& loaded, const std::string& says) {
    ASSERT_FALSE(loaded.ok()) << says;
    EXPECT_TRUE(loaded.status().isCorruption()) << loaded.status().toString();
    EXPECT_NE(loaded.status().message().find(says), std::string::npos) << loaded.status().message();
  };
  refused(deploymentFromJson("{"), "stored deployment does not decode");
  refused(deploymentFromJson("[]"), "stored deployment does not decode");
  {
    json j = whole;
    j["state"] = "exploded";
    refused(deploymentFromJson(j.dump()), "unknown value \"exploded\"");
  }
  {
    json j = whole;
    j["waves"][1]["state"] = "sideways";
    refused(deploymentFromJson(j.dump()), "unknown value \"sideways\"");
  }
  {
    json j = whole;
    j["waves"][0]["clusters"][0]["step"] = "teleport";
    refused(deploymentFromJson(j.dump()), "unknown step \"teleport\"");
  }
  {
    json j = whole;
    j["waves"][0]["clusters"][0].erase("in_flight");
    refused(deploymentFromJson(j.dump()), "in_flight");
  }
  {
    json j = whole;
    j["waves"].erase(2);
    refused(deploymentFromJson(j.dump()), "checkout-1: wave count does not match its plan");
  }
  {
    json j = whole;
    j["plan"]["driver"] = "steam";
    refused(deploymentFromJson(j.dump()), "stored plan");
  }
  // The header and cluster records: one missing, one that does not decode.
  const std::string header = deploymentHeaderJson(d);
  StoredClusters records = recordsOf(d);
  StoredClusters missing = records;
  missing.erase({1, 1});
  refused(deploymentFromStored(header, missing),
          "deployment checkout-1: wave prod-eu has 2 clusters and no record of the 2");
  StoredClusters broken = records;
  broken[{1, 0}] = "{\"name\": 7}";
  refused(deploymentFromStored(header, broken),
          "deployment checkout-1: wave prod-eu, cluster 1: cluster record does not decode");
  refused(clusterFromJsonText("{\"name\": \"x\"}"), "cluster record does not decode");
}

}  // namespace
}  // namespace flotilla::coordinator::testing
