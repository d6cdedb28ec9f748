// Tests for the HTTP server itself (coordinator/http_api.cpp): what is open, the answers
// cpp-httplib gives by itself, allowed Host names, /metrics.
#include "coordinator/http_api.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/http_api_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using HttpServer = HttpApiTest;

TEST_F(HttpServer, HealthzIsOpenAndNothingElseIs) {
  auto health = get("/healthz", "");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(body(health)["status"], "ok");
  for (const char* path : {"/metrics", "/api/v1/deployments", "/api/v1/agents"}) {
    auto res = get(path, "");
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 401) << path;
  }
}

TEST_F(HttpServer, MetricsAreTextForEveryRole) {
  for (const std::string& token : {admin_, viewer_, deployer_}) {
    auto res = get("/metrics", token);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4");
    EXPECT_NE(res->body.find("flotilla_"), std::string::npos);
  }
}

TEST_F(HttpServer, OversizedBodyIsAJsonError) {
  const std::string big(1024 * 1024 + 1, 'x');
  auto res = post("/api/v1/deployments", big, admin_, "application/yaml");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  EXPECT_EQ(body(res)["error"], "request body is over the 1048576 byte limit");
}

TEST_F(HttpServer, OnlyItsOwnHostNamesAreAnswered) {
  const std::string port = std::to_string(this->port());
  for (const std::string& host :
       std::vector<std::string>{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST:" + port}) {
    auto res =
        client().Get("/api/v1/agents", {{"Authorization", "Bearer " + admin_}, {"Host", host}});
    ASSERT_TRUE(res) << host;
    EXPECT_EQ(res->status, 200) << host;
  }
  for (const std::string& host :
       std::vector<std::string>{"evil.example:" + port, "127.0.0.1:1", "localhost"}) {
    auto res =
        client().Get("/api/v1/agents", {{"Authorization", "Bearer " + admin_}, {"Host", host}});
    ASSERT_TRUE(res) << host;
    EXPECT_EQ(res->status, 421) << host;
    EXPECT_NE(body(res)["error"].get<std::string>().find("--allowed-host"), std::string::npos);
  }
}

}  // namespace
}  // namespace flotilla::coordinator::testing
