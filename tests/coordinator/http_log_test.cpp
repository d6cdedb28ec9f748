// Tests for the deployment log routes (coordinator/http_log.cpp) and the submission form of
// `POST /api/v1/deployments`: the release stored and shown, notes (who may, bounds, audit,
// finished deployments), and `GET /api/v1/log` with its filters and their refusals.
#include <gtest/gtest.h>

#include <string>

#include "tests/coordinator/http_api_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using HttpLog = HttpApiTest;
using nlohmann::json;

constexpr char kForm[] = "application/vnd.flotilla.submission+json";

constexpr char kStagingPlan[] = R"(service: cart
version: "3.0.0"
steps: {apply: ./apply.sh, rollback: ./rollback.sh}
waves:
  - name: staging
    clusters: [staging-eu]
)";

TEST_F(HttpLog, ASubmissionFormStoresTheReleaseWithTheDeployment) {
  const json form{{"plan", kPlan},
                  {"changes", "- faster\n- <script>alert(1)</script>"},
                  {"release_notes_url", "https://example.com/notes/1.4.2"}};
  auto res = post("/api/v1/deployments", form.dump(), admin_, kForm);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 201) << res->body;
  const std::string id = body(res)["id"];
  json detail = body(get("/api/v1/deployments/" + id, viewer_));
  EXPECT_EQ(detail["changes"], "- faster\n- <script>alert(1)</script>");
  EXPECT_EQ(detail["release_notes_url"], "https://example.com/notes/1.4.2");
  EXPECT_EQ(detail["notes"], json::array());
}

TEST_F(HttpLog, ABadReleaseIsRefusedAndNothingIsStored) {
  for (const json& form : {json{{"plan", kPlan}, {"release_notes_url", "javascript:alert(1)"}},
                           json{{"plan", kPlan}, {"changes", std::string(64 * 1024 + 1, 'x')}},
                           json{{"plan", kPlan}, {"changes", "\x1b]0;pwned\x07"}},
                           json{{"plan", kPlan}, {"x", "y"}}, json{{"changes", "no plan"}}}) {
    auto res = post("/api/v1/deployments", form.dump(), admin_, kForm);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << form.dump().substr(0, 200) << " -> " << res->body;
  }
  // A plan with problems in the form: each problem's position is in the plan's own text.
  auto res = post("/api/v1/deployments", json{{"plan", "service: Bad\n"}}.dump(), admin_, kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(body(res)["problems"][0]["line"], 1);
  EXPECT_EQ(body(get("/api/v1/deployments"))["deployments"].size(), 0u);
}

TEST_F(HttpLog, ANoteIsAddedToAFinishedDeploymentAndAudited) {
  const std::string id = submit();  // its agents are lost: it ends before long
  for (int i = 0; i < 200; ++i) {
    if (body(get("/api/v1/deployments/" + id))["finished_at"].is_string()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_TRUE(body(get("/api/v1/deployments/" + id))["finished_at"].is_string());
  auto res = post("/api/v1/deployments/" + id + "/notes",
                  json{{"text", "agents were down; check them first"}}.dump());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(body(res)["notes_total"], 1);
  json detail = body(get("/api/v1/deployments/" + id, viewer_));
  ASSERT_EQ(detail["notes"].size(), 1u);
  EXPECT_EQ(detail["notes"][0]["text"], "agents were down; check them first");
  EXPECT_EQ(detail["notes"][0]["by"], "admin");
  json record = lastAudit("POST /api/v1/deployments/{id}/notes");
  EXPECT_EQ(record["target"], id);
  EXPECT_EQ(record["outcome"], "ok");
  json events = body(get("/api/v1/deployments/" + id + "/events?type=deployment.note"));
  ASSERT_EQ(events["events"].size(), 1u) << events.dump();
}

TEST_F(HttpLog, BadNotesAreRefused) {
  const std::string id = submit();
  const std::string path = "/api/v1/deployments/" + id + "/notes";
  auto status = [&](const std::string& body, const std::string& token) {
    auto res = post(path, body, token);
    return res ? res->status : -1;
  };
  EXPECT_EQ(status(json{{"text", std::string(4097, 'x')}}.dump(), admin_), 400);
  EXPECT_EQ(status(json{{"text", ""}}.dump(), admin_), 400);
  EXPECT_EQ(status(json{{"text", 3}}.dump(), admin_), 400);
  EXPECT_EQ(status(json{{"text", "a"}, {"more", "b"}}.dump(), admin_), 400);
  EXPECT_EQ(status("not json", admin_), 400);
  // A viewer reads the log but does not write it; a deployer only in its environments.
  EXPECT_EQ(status(json{{"text", "hi"}}.dump(), viewer_), 403);
  EXPECT_EQ(status(json{{"text", "hi"}}.dump(), deployer_), 403);
  auto res = post("/api/v1/deployments/nope-99/notes", json{{"text", "hi"}}.dump());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = post("/api/v1/deployments/Bad_Id/notes", json{{"text", "hi"}}.dump());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(body(get("/api/v1/deployments/" + id))["notes"].size(), 0u);
}

TEST_F(HttpLog, ADeployerNotesDeploymentsOfItsEnvironments) {
  auto submitted = post("/api/v1/deployments", kStagingPlan, deployer_, "application/yaml");
  ASSERT_TRUE(submitted);
  ASSERT_EQ(submitted->status, 201) << submitted->body;
  const std::string id = body(submitted)["id"];
  auto res = post("/api/v1/deployments/" + id + "/notes", json{{"text", "fine"}}.dump(), deployer_);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST_F(HttpLog, TheLogListsDeploymentsNewestFirstWithFilters) {
  const std::string first = submit();
  auto staged = post("/api/v1/deployments", kStagingPlan, admin_, "application/yaml");
  ASSERT_TRUE(staged);
  ASSERT_EQ(staged->status, 201);
  const std::string second = body(staged)["id"];

  json log = body(get("/api/v1/log", viewer_));
  ASSERT_EQ(log["entries"].size(), 2u) << log.dump();
  EXPECT_EQ(log["truncated"], false);
  EXPECT_EQ(log["entries"][0]["id"], second);
  EXPECT_EQ(log["entries"][1]["id"], first);
  EXPECT_EQ(log["entries"][1]["environments"], json({"production", "staging"}));
  EXPECT_EQ(log["entries"][1]["submitted_by"], "admin");

  log = body(get("/api/v1/log?service=checkout"));
  ASSERT_EQ(log["entries"].size(), 1u);
  EXPECT_EQ(log["entries"][0]["id"], first);
  log = body(get("/api/v1/log?environment=production"));
  ASSERT_EQ(log["entries"].size(), 1u);
  EXPECT_EQ(log["entries"][0]["id"], first);
  EXPECT_EQ(body(get("/api/v1/log?limit=1"))["entries"].size(), 1u);
  EXPECT_EQ(body(get("/api/v1/log?since=1h"))["entries"].size(), 2u);
  EXPECT_EQ(body(get("/api/v1/log?service=none"))["entries"].size(), 0u);
}

TEST_F(HttpLog, BadLogFiltersAreRefused) {
  for (const char* query :
       {"?limit=0", "?limit=1001", "?limit=ten", "?since=yesterday", "?service=Bad_Name",
        "?environment=a%20b", "?what=1", "?service=a&service=b"}) {
    auto res = get(std::string("/api/v1/log") + query);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << query << " -> " << res->body;
  }
  auto res = get("/api/v1/log", "");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
}

}  // namespace
}  // namespace flotilla::coordinator::testing
