// Tests for what is checked before a request is routed (coordinator/http_auth.cpp): the bearer
// token, the route's permission, the Content-Type of a change, chunked and compressed bodies,
// and the audit record of a refused change.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/http_api_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using HttpGate = HttpApiTest;

TEST_F(HttpGate, MissingOrMalformedTokensAre401WithAChallenge) {
  auto none = get("/api/v1/deployments", "");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer realm=\"flotilla\"");
  EXPECT_NE(body(none)["error"].get<std::string>().find("Authorization: Bearer TOKEN"),
            std::string::npos);

  for (const std::string& header :
       std::vector<std::string>{std::string("Basic abc"), std::string("Bearer"),
                                std::string("Bearer a b"), "Bearer " + std::string(5000, 'a')}) {
    auto res = client().Get("/api/v1/deployments", {{"Authorization", header}});
    ASSERT_TRUE(res) << header;
    EXPECT_EQ(res->status, 401) << header;
  }
  auto unknown = get("/api/v1/deployments", "flt_not_a_token");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 401);
  EXPECT_EQ(body(unknown)["error"], "the API token is not valid (unknown or revoked)");
  // The scheme is case-insensitive.
  auto lower = client().Get("/api/v1/deployments", {{"Authorization", "bearer " + admin_}});
  ASSERT_TRUE(lower);
  EXPECT_EQ(lower->status, 200);
}

TEST_F(HttpGate, ARoleWithoutThePermissionIs403NamingIt) {
  auto res = post("/api/v1/tokens", R"({"name": "x", "role": "viewer"})", viewer_);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  EXPECT_EQ(body(res)["error"],
            "token viewer (viewer) lacks the admin permission that POST /api/v1/tokens needs");
  auto unknown_route = get("/api/v1/nothing-here", admin_);
  ASSERT_TRUE(unknown_route);
  EXPECT_EQ(unknown_route->status, 403);
}

TEST_F(HttpGate, AChangeMustBeJsonOrYaml) {
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded", ""}) {
    auto res = post("/api/v1/deployments", kPlan, admin_, type);
    ASSERT_TRUE(res) << type;
    EXPECT_EQ(res->status, 415) << type;
  }
  for (const char* type :
       {"application/json", "application/yaml; charset=utf-8", "Application/X-YAML", "text/yaml"}) {
    auto res = post("/api/v1/deployments", "", admin_, type);
    ASSERT_TRUE(res) << type;
    EXPECT_EQ(res->status, 400) << type;  // through the gate; the empty plan is refused
  }
}

TEST_F(HttpGate, ChunkedAndCompressedBodiesAreRefused) {
  auto chunked = client().Post(
      "/api/v1/deployments", bearer(admin_),
      [](size_t offset, httplib::DataSink& sink) {
        if (offset == 0) sink.write(kPlan, sizeof(kPlan) - 1);
        if (offset != 0) sink.done();
        return true;
      },
      "application/yaml");
  if (chunked) {
    EXPECT_EQ(chunked->status, 411);  // the reset may beat the answer
  }
  auto gzip = client().Post("/api/v1/deployments",
                            {{"Authorization", "Bearer " + admin_}, {"Content-Encoding", "gzip"}},
                            kPlan, "application/yaml");
  ASSERT_TRUE(gzip);
  EXPECT_EQ(gzip->status, 415);
  auto health = get("/healthz", "");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(HttpGate, RefusedChangesAreAudited) {
  auto res = post("/api/v1/deployments/checkout-1/pause", "", viewer_);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 403);
  nlohmann::json record = lastAudit("POST /api/v1/deployments/{id}/pause");
  ASSERT_TRUE(record.is_object());
  EXPECT_EQ(record["actor"], "viewer");
  EXPECT_EQ(record["outcome"], "403");
  EXPECT_NE(record["detail"].get<std::string>().find("lacks the deploy permission"),
            std::string::npos);
  // Reads are not audited.
  ASSERT_TRUE(get("/api/v1/agents", viewer_));
  EXPECT_TRUE(lastAudit("GET /api/v1/agents", false).is_null());
}

}  // namespace
}  // namespace flotilla::coordinator::testing
