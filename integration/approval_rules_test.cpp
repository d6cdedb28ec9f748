// Approvals that mean something, against real processes and API tokens: two approvers, neither
// of them the submitter; one approver counts once; approvals expire; events name who acted.
#include <regex>
#include <thread>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

const std::vector<std::string> kProduction = {"prod-eu-1", "prod-eu-2", "prod-us-1"};

class ApprovalRulesTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(startFleet());
    alice_ = createToken("alice", "deployer");
    bob_ = createToken("bob", "approver");
    carol_ = createToken("carol", "approver");
    dana_ = createToken("dana", "admin");
    ASSERT_FALSE(alice_.empty() || bob_.empty() || carol_.empty() || dana_.empty());
  }

  // Production needs two approvers within `expires`.
  std::string planText(const std::string& version, const std::string& expires) {
    const ScriptPlan plan{
        .service = "ledger",
        .version = version,
        .apply = logStep("apply"),
        .verify = "",
        .waves = {waveOf("staging", {"staging-eu"}),
                  waveSelecting("production", "environment: production",
                                {"approval: {required: 2, expires: " + expires + "}"})}};
    return replaceAll(plan.yaml(), "@DIR@", dir());
  }

  // Submits as the token's owner; returns the id.
  std::string submitAs(const std::string& token, const std::string& plan) {
    HttpResponse r =
        request("POST", "/api/v1/deployments", token, plan, {{"Content-Type", "application/yaml"}});
    EXPECT_EQ(r.status, 201) << r.body;
    json body = r.parsed();
    return body.is_object() && body.contains("id") ? body["id"].get<std::string>() : "";
  }

  HttpResponse act(const std::string& token, const std::string& id, const std::string& verb,
                   const json& body) {
    return request("POST", "/api/v1/deployments/" + id + "/" + verb, token, body.dump());
  }

  HttpResponse approve(const std::string& token, const std::string& id) {
    return act(token, id, "approve", json{{"wave", "production"}});
  }

  static std::string errorOf(const HttpResponse& r) {
    json body = r.parsed();
    return body.is_object() && body.contains("error") && body["error"].is_string()
               ? body["error"].get<std::string>()
               : r.body;
  }

  // The production wave holds: nothing ran there.
  bool productionUntouched(const std::string& id) {
    for (const auto& cluster : kProduction) {
      if (hasStepLog(id, cluster)) return false;
    }
    return stateOf(id) == "awaiting_approval";
  }

  std::string alice_, bob_, carol_, dana_;
};

TEST_F(ApprovalRulesTest, TwoApproversNeitherOfThemTheSubmitterEachCountedOnce) {
  const std::string id = submitAs(alice_, planText("2.0.0", "1h"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "awaiting_approval"));

  json detail = deployment(id);
  EXPECT_EQ(detail["submitted_by"], "alice");
  ASSERT_TRUE(detail["plan_sha256"].is_string());
  EXPECT_TRUE(
      std::regex_match(detail["plan_sha256"].get<std::string>(), std::regex("[0-9a-f]{64}")))
      << detail["plan_sha256"];
  const json& staging = detail["waves"][0];
  EXPECT_EQ(staging["approvals_required"], 0);
  const json& waiting = detail["waves"][1];
  EXPECT_EQ(waiting["approvals_required"], 2);
  EXPECT_TRUE(waiting["approvals"].empty()) << waiting.dump();
  EXPECT_TRUE(waiting["approval_expires_in"].is_null()) << waiting.dump();

  // Alice submitted it: she may not approve it (a deployer cannot approve anything anyway).
  HttpResponse self = approve(alice_, id);
  EXPECT_EQ(self.status, 403) << self.body;

  HttpResponse first = approve(bob_, id);
  ASSERT_EQ(first.status, 200) << first.body;
  detail = deployment(id);
  const json& one = detail["waves"][1];
  ASSERT_EQ(one["approvals"].size(), 1u) << one.dump();
  EXPECT_EQ(one["approvals"][0]["by"], "bob");
  EXPECT_EQ(one["approvals"][0]["role"], "approver");
  ASSERT_TRUE(one["approval_expires_in"].is_number()) << one.dump();
  EXPECT_GT(one["approval_expires_in"].get<int64_t>(), 3500);
  EXPECT_LE(one["approval_expires_in"].get<int64_t>(), 3600);
  EXPECT_FALSE(one["approved"].get<bool>());
  // One of two: production does not start.
  EXPECT_TRUE(holdsFor(
      "production waits for its second approver", [&] { return productionUntouched(id); }, 1000ms));

  // Bob again is not a second approver: 409, and nothing changes.
  HttpResponse again = approve(bob_, id);
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_NE(errorOf(again).find("already approved by bob"), std::string::npos) << again.body;
  EXPECT_EQ(deployment(id)["waves"][1]["approvals"].size(), 1u);
  EXPECT_TRUE(productionUntouched(id));

  CommandResult status = cli({"status", id});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("approved by bob (1 of 2)"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("by alice"), std::string::npos) << status.out;

  HttpResponse second = approve(carol_, id);
  ASSERT_EQ(second.status, 200) << second.body;
  ASSERT_TRUE(waitForState(id, "succeeded"));
  for (const auto& cluster : kProduction) {
    EXPECT_EQ(stepLog(id, cluster), (std::vector<std::string>{"build", "apply"})) << cluster;
  }

  const json ev = events(id);
  const int submitted = findEvent(ev, "deployment.submitted");
  ASSERT_GE(submitted, 0);
  EXPECT_EQ(ev[submitted]["message"], "ledger 2.0.0 in 2 waves by alice");
  const int partial = findEvent(ev, "wave.approval", "production");
  const int approved = findEvent(ev, "wave.approved", "production");
  const int started = findEvent(ev, "wave.started", "production");
  ASSERT_GE(partial, 0);
  ASSERT_GE(approved, 0);
  EXPECT_EQ(ev[partial]["message"], "by bob: 1 of 2 approvals; 1 more needed");
  EXPECT_EQ(ev[approved]["message"], "by carol: 2 of 2 approvals (bob, carol)");
  EXPECT_LT(partial, approved);
  EXPECT_LT(approved, started);
  EXPECT_EQ(eventsOf(ev, "wave.approval").size(), 1u);  // the refused second yes left no trace

  status = cli({"status", id});
  EXPECT_NE(status.out.find("approved by bob, carol (2 of 2)"), std::string::npos) << status.out;
}

TEST_F(ApprovalRulesTest, ApprovalsExpireAndActionsNameWhoTookThem) {
  // Dana is an admin: she may approve, only not what she submitted herself.
  const std::string id = submitAs(dana_, planText("2.1.0", "2s"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "awaiting_approval"));
  HttpResponse self = approve(dana_, id);
  EXPECT_EQ(self.status, 403) << self.body;
  EXPECT_NE(errorOf(self).find("dana submitted " + id + " and cannot approve it"),
            std::string::npos)
      << self.body;
  EXPECT_TRUE(deployment(id)["waves"][1]["approvals"].empty());

  // Paused and resumed by alice, with her reason, while it waits.
  ASSERT_EQ(act(alice_, id, "pause", json{{"reason", "checking the graphs"}}).status, 200);
  ASSERT_EQ(act(alice_, id, "resume", json::object()).status, 200);

  // Bob's approval is older than 2s when carol's arrives: it does not count.
  ASSERT_EQ(approve(bob_, id).status, 200);
  std::this_thread::sleep_for(2500ms);
  HttpResponse late = approve(carol_, id);
  ASSERT_EQ(late.status, 200) << late.body;
  json after = late.parsed();
  EXPECT_EQ(after["state"], "awaiting_approval") << late.body;
  ASSERT_EQ(after["waves"][1]["approvals"].size(), 1u) << late.body;
  EXPECT_EQ(after["waves"][1]["approvals"][0]["by"], "carol");
  // Bob again, now that his first expired (and within 2s of carol's): production opens.
  ASSERT_EQ(approve(bob_, id).status, 200);
  ASSERT_TRUE(waitForState(id, "succeeded"));
  json ev = events(id);
  const int expired = findEvent(ev, "wave.approval_expired", "production");
  ASSERT_GE(expired, 0) << ev.dump();
  EXPECT_NE(ev[expired]["message"].get<std::string>().find("approval by bob"), std::string::npos)
      << ev[expired].dump();
  EXPECT_LT(expired, findEvent(ev, "wave.approved", "production"));

  // And rolled back by alice, who says why.
  ASSERT_EQ(act(alice_, id, "rollback", json{{"reason", "error budget burnt"}}).status, 200);
  ASSERT_TRUE(waitForState(id, "rolled_back"));
  ev = events(id);
  auto messageOf = [&](const std::string& type) {
    const int at = findEvent(ev, type);
    return at < 0 ? std::string() : ev[at]["message"].get<std::string>();
  };
  EXPECT_EQ(messageOf("deployment.submitted"), "ledger 2.1.0 in 2 waves by dana");
  EXPECT_EQ(messageOf("deployment.paused").rfind("paused by alice: checking the graphs", 0), 0u)
      << messageOf("deployment.paused");
  EXPECT_EQ(messageOf("deployment.resumed"), "resumed by alice");
  EXPECT_EQ(messageOf("deployment.rolling_back"),
            "rollback requested by alice: error budget burnt");
  EXPECT_EQ(messageOf("wave.approved"), "by bob: 2 of 2 approvals (carol, bob)");
}

}  // namespace
}  // namespace flotilla::integration
