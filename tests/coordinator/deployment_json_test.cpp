// Tests for the stored form (coordinator/deployment_json.cpp): round trips, records of older
// coordinators, corrupt records refused.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using common::Plan;
using DeploymentJson = DeploymentTest;

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

}  // namespace
}  // namespace flotilla::coordinator::testing
