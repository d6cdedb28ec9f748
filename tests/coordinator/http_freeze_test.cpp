// Tests for the incident freeze routes (coordinator/http_freeze.cpp) and what a freeze shows in
// the deployment routes: admin only, input checked, submissions refused with 409 and the
// freeze, status answers and /metrics carrying it, notes, lifting; each change audited.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/coordinator/http_api_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using HttpFreeze = HttpApiTest;
using nlohmann::json;

TEST_F(HttpFreeze, OnlyAnAdminFreezesAndTheInputIsChecked) {
  for (const std::string& token : {viewer_, deployer_}) {
    auto refused = post("/api/v1/freeze", R"({"reason": "INC-1"})", token);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 403) << refused->body;
    auto lift = del("/api/v1/freeze", token);
    ASSERT_TRUE(lift);
    EXPECT_EQ(lift->status, 403) << lift->body;
    auto note = post("/api/v1/freezes/freeze-1/notes", R"({"text": "x"})", token);
    ASSERT_TRUE(note);
    EXPECT_EQ(note->status, 403) << note->body;
  }
  for (const std::string& bad : std::vector<std::string>{
           "", "{}", "[]", "not json", R"({"reason": ""})", R"({"reason": 7})",
           R"({"reason": "two\nlines"})", R"({"reason": "x", "environment": "prod uction"})",
           R"({"reason": "x", "env": "production"})",
           json{{"reason", std::string(501, 'r')}}.dump()}) {
    auto res = post("/api/v1/freeze", bad);
    ASSERT_TRUE(res) << bad;
    EXPECT_EQ(res->status, 400) << bad << ": " << res->body;
    EXPECT_TRUE(body(res).contains("error")) << bad;
  }
  auto frozen = body(get("/api/v1/freeze", viewer_));
  EXPECT_EQ(frozen["frozen"], false);
  EXPECT_TRUE(frozen["freezes"].empty());
  // The refusals are audited too (each record is written just after its answer).
  bool audited = false;
  for (int i = 0; i < 50 && !audited; ++i) {
    const json records = body(get("/api/v1/audit"))["records"];
    for (const auto& r : records) {
      audited |= r["action"] == "POST /api/v1/freeze" && r["outcome"] == "400";
    }
    if (!audited) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(audited);
}

TEST_F(HttpFreeze, AFreezeRefusesSubmissionsShowsEverywhereAndLifts) {
  auto made = post("/api/v1/freeze", R"({"reason": "INC-7: payments down",
                                         "environment": "production"})");
  ASSERT_TRUE(made);
  ASSERT_EQ(made->status, 201) << made->body;
  json f = body(made);
  EXPECT_EQ(f["id"], "freeze-1");
  EXPECT_EQ(f["environment"], "production");
  EXPECT_EQ(f["active"], true);
  EXPECT_FALSE(f["by"].get<std::string>().empty());
  auto again = post("/api/v1/freeze", R"({"reason": "twice", "environment": "production"})");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 409) << again->body;
  json record = lastAudit("POST /api/v1/freeze");
  EXPECT_EQ(record["target"], "production");
  EXPECT_EQ(record["outcome"], "409");

  // kPlan's prod wave is production: refused with the freeze, who and since when.
  auto refused = post("/api/v1/deployments", kPlan, admin_, "application/yaml");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 409) << refused->body;
  json why = body(refused);
  EXPECT_EQ(why["freeze"]["id"], "freeze-1");
  const std::string error = why["error"];
  EXPECT_NE(error.find("deployments are frozen: freeze-1 (environment production) by "),
            std::string::npos)
      << error;
  EXPECT_NE(error.find(" since 20"), std::string::npos) << error;
  EXPECT_NE(error.find("INC-7: payments down"), std::string::npos) << error;
  EXPECT_EQ(lastAudit("POST /api/v1/deployments")["outcome"], "409");
  // A dry run says so and stores nothing.
  auto dry = post("/api/v1/deployments?dry_run=true", kPlan, admin_, "application/yaml");
  ASSERT_TRUE(dry);
  EXPECT_EQ(dry->status, 200) << dry->body;
  EXPECT_EQ(body(dry)["frozen_by"]["id"], "freeze-1");

  // Every status answer carries it, and /metrics.
  EXPECT_EQ(body(get("/api/v1/deployments", viewer_))["freezes"][0]["id"], "freeze-1");
  json active = body(get("/api/v1/freeze", viewer_));
  EXPECT_EQ(active["frozen"], true);
  EXPECT_EQ(active["freezes"][0]["reason"], "INC-7: payments down");
  auto metrics = get("/metrics", viewer_);
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find(
                "flotilla_freeze_active{scope=\"environment\",environment=\"production\"} 1"),
            std::string::npos)
      << metrics->body;

  // Notes: bounded, on a freeze that exists.
  for (const auto& [path, text] : std::vector<std::pair<std::string, std::string>>{
           {"/api/v1/freezes/checkout-1/notes", R"({"text": "x"})"},
           {"/api/v1/freezes/freeze-1/notes", R"({"text": ""})"},
           {"/api/v1/freezes/freeze-1/notes", R"({"note": "x"})"},
           {"/api/v1/freezes/freeze-1/notes", json{{"text", std::string(2001, 'n')}}.dump()}}) {
    auto res = post(path, text);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << path << " " << text << ": " << res->body;
  }
  auto missing = post("/api/v1/freezes/freeze-9/notes", R"({"text": "x"})");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404) << missing->body;
  auto noted = post("/api/v1/freezes/freeze-1/notes",
                    R"({"text": "post-mortem: https://wiki.example.com/INC-7"})");
  ASSERT_TRUE(noted);
  ASSERT_EQ(noted->status, 201) << noted->body;
  EXPECT_EQ(lastAudit("POST /api/v1/freezes/{id}/notes")["target"], "freeze-1");

  // Lifting: the fleet is not frozen, production is.
  auto not_fleet = del("/api/v1/freeze");
  ASSERT_TRUE(not_fleet);
  EXPECT_EQ(not_fleet->status, 404) << not_fleet->body;
  EXPECT_NE(body(not_fleet)["error"].get<std::string>().find("freeze-1 (environment production)"),
            std::string::npos);
  auto bad_env = del("/api/v1/freeze?environment=a%20b");
  ASSERT_TRUE(bad_env);
  EXPECT_EQ(bad_env->status, 400) << bad_env->body;
  auto lifted = del("/api/v1/freeze?environment=production");
  ASSERT_TRUE(lifted);
  ASSERT_EQ(lifted->status, 200) << lifted->body;
  EXPECT_EQ(body(lifted)["active"], false);
  EXPECT_EQ(lastAudit("DELETE /api/v1/freeze")["outcome"], "ok");

  json shown = body(get("/api/v1/freezes/freeze-1", viewer_));
  EXPECT_EQ(shown["active"], false);
  ASSERT_EQ(shown["notes"].size(), 1u);
  EXPECT_EQ(shown["notes"][0]["text"], "post-mortem: https://wiki.example.com/INC-7");
  auto bad_id = get("/api/v1/freezes/freeze-x", viewer_);
  ASSERT_TRUE(bad_id);
  EXPECT_EQ(bad_id->status, 400);
  EXPECT_TRUE(body(get("/api/v1/deployments", viewer_))["freezes"].empty());
  const std::string id = submit();
  EXPECT_FALSE(id.empty());
  EXPECT_TRUE(body(get("/api/v1/deployments/" + id, viewer_))["frozen_by"].is_null());
}

}  // namespace
}  // namespace flotilla::coordinator::testing
