// Tests for the API token and audit routes (coordinator/http_tokens.cpp).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/http_api_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using HttpTokens = HttpApiTest;

TEST_F(HttpTokens, CreateListAndRevoke) {
  auto made = post("/api/v1/tokens", R"({"name": "bob", "role": "approver", "envs": ["prod"]})");
  ASSERT_TRUE(made);
  ASSERT_EQ(made->status, 201) << made->body;
  nlohmann::json answer = body(made);
  EXPECT_EQ(answer["name"], "bob");
  EXPECT_EQ(answer["role"], "approver");
  EXPECT_EQ(answer["envs"], nlohmann::json::array({"prod"}));
  const std::string secret = answer["token"];
  ASSERT_FALSE(secret.empty());
  // The new token works at once; the secret is in no listing or audit record.
  auto as_bob = get("/api/v1/deployments", secret);
  ASSERT_TRUE(as_bob);
  EXPECT_EQ(as_bob->status, 200);
  nlohmann::json listed = body(get("/api/v1/tokens"));
  EXPECT_EQ(listed.dump().find(secret), std::string::npos);
  EXPECT_NE(listed.dump().find("\"bob\""), std::string::npos);
  nlohmann::json record = lastAudit("POST /api/v1/tokens");
  EXPECT_EQ(record["target"], "bob");
  EXPECT_EQ(record["detail"], "role approver envs prod");
  EXPECT_EQ(body(get("/api/v1/audit")).dump().find(secret), std::string::npos);

  auto revoked = del("/api/v1/tokens/bob");
  ASSERT_TRUE(revoked);
  EXPECT_EQ(revoked->status, 200);
  auto after = get("/api/v1/deployments", secret);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 401);
}

TEST_F(HttpTokens, NamesRolesAndEnvironmentsAreChecked) {
  const std::string name_rule =
      "use 1 to 63 characters from [a-z0-9-], not starting or ending with '-'";
  auto bad_name = post("/api/v1/tokens", R"({"name": "Bob", "role": "viewer"})");
  ASSERT_TRUE(bad_name);
  EXPECT_EQ(bad_name->status, 400);
  EXPECT_EQ(body(bad_name)["error"], "not a valid token name: " + name_rule);
  auto bad_env = post("/api/v1/tokens", R"({"name": "bob", "role": "deployer", "envs": ["Prod"]})");
  ASSERT_TRUE(bad_env);
  EXPECT_EQ(bad_env->status, 400);
  EXPECT_EQ(body(bad_env)["error"], "not a valid environment name: " + name_rule);
  for (const std::string& bad :
       std::vector<std::string>{R"({"name": "bob", "role": "root"})", R"({"name": "bob"})",
                                R"({"name": "bob", "role": "viewer", "envs": "prod"})",
                                R"({"name": "bob", "role": "viewer", "envs": ["prod"]})", "[]"}) {
    auto res = post("/api/v1/tokens", bad);
    ASSERT_TRUE(res) << bad;
    EXPECT_EQ(res->status, 400) << bad;
  }
  EXPECT_EQ(lastAudit("POST /api/v1/tokens")["outcome"], "400");
}

TEST_F(HttpTokens, TheLastAdminCannotBeRevoked) {
  auto res = del("/api/v1/tokens/admin");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 409);
  EXPECT_EQ(get("/api/v1/tokens")->status, 200);
  auto bad = del("/api/v1/tokens/Admin");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

TEST_F(HttpTokens, TheAuditTrailPagesAndVerifies) {
  ASSERT_EQ(post("/api/v1/tokens", R"({"name": "a", "role": "viewer"})")->status, 201);
  ASSERT_EQ(post("/api/v1/tokens", R"({"name": "b", "role": "viewer"})")->status, 201);
  // The newest records, oldest first: bootstrap-admin's, then the two tokens.
  nlohmann::json all = body(get("/api/v1/audit"))["records"];
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0]["action"], "bootstrap-admin");
  nlohmann::json one = body(get("/api/v1/audit?limit=1"))["records"];
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0]["target"], "b");
  EXPECT_EQ(body(get("/api/v1/audit?since=2999-01-01T00:00:00Z"))["records"],
            nlohmann::json::array());
  for (const char* bad : {"limit=0", "limit=10001", "limit=x", "since=yesterday"}) {
    auto res = get(std::string("/api/v1/audit?") + bad);
    ASSERT_TRUE(res) << bad;
    EXPECT_EQ(res->status, 400) << bad;
  }
  nlohmann::json verdict = body(get("/api/v1/audit/verify", viewer_));
  EXPECT_EQ(verdict["ok"], true);
  EXPECT_EQ(verdict["records"], 3);
  EXPECT_TRUE(verdict["first_bad"].is_null());
}

}  // namespace
}  // namespace flotilla::coordinator::testing
