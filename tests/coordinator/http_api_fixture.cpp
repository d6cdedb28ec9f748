// The HTTP API test fixture (see the header).
#include "tests/coordinator/http_api_fixture.hpp"

#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>

namespace flotilla::coordinator::testing {

void HttpApiTest::SetUp() {
  spdlog::set_level(spdlog::level::warn);
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/flotilla-http-test-XXXXXX";
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  dir_ = pattern;
  EngineOptions engine_options;
  // The known agents never come back: lost at the engine's first look, so that no step waits
  // for them.
  engine_options.agent_lost_after = std::chrono::milliseconds(1);
  auto started = support::InProcessCoordinator::start(
      dir_, "admin", {{"viewer", Role::kViewer, {}}, {"deployer", Role::kDeployer, {"staging"}}},
      known_agents_, engine_options);
  ASSERT_TRUE(started.ok()) << started.status().toString();
  coordinator_ = std::move(started).value();
  admin_ = coordinator_->token("admin");
  viewer_ = coordinator_->token("viewer");
  deployer_ = coordinator_->token("deployer");
  client_ = std::make_unique<httplib::Client>("127.0.0.1", coordinator_->port());
  client_->set_connection_timeout(10, 0);
  client_->set_read_timeout(30, 0);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto all_lost = [&] {
    std::vector<AgentInfo> agents = coordinator_->engine().agentsSnapshot();
    return agents.size() == known_agents_.size() &&
           std::all_of(agents.begin(), agents.end(),
                       [](const AgentInfo& a) { return a.state == AgentState::kLost; });
  };
  while (!all_lost()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the known agents were not lost";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void HttpApiTest::TearDown() {
  client_.reset();
  coordinator_.reset();
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

httplib::Headers HttpApiTest::bearer(const std::string& token) const {
  if (token.empty()) return {};
  return {{"Authorization", "Bearer " + token}};
}

httplib::Result HttpApiTest::get(const std::string& path, const std::string& token) {
  return client_->Get(path, bearer(token));
}

httplib::Result HttpApiTest::post(const std::string& path, const std::string& body,
                                  const std::string& token, const std::string& content_type) {
  return client_->Post(path, bearer(token), body, content_type);
}

httplib::Result HttpApiTest::del(const std::string& path, const std::string& token) {
  // A DELETE is a change: it needs a JSON Content-Type, body or not (the CLI sends one).
  httplib::Headers headers = bearer(token);
  headers.emplace("Content-Type", "application/json");
  return client_->Delete(path, headers);
}

nlohmann::json HttpApiTest::body(const httplib::Result& result) {
  EXPECT_TRUE(result) << "no answer";
  if (!result) return nullptr;
  nlohmann::json parsed = nlohmann::json::parse(result->body, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << result->body;
  return parsed.is_discarded() ? nlohmann::json(nullptr) : parsed;
}

std::string HttpApiTest::submit(const std::string& plan) {
  auto res = post("/api/v1/deployments", plan, admin_, "application/yaml");
  EXPECT_TRUE(res && res->status == 201) << (res ? res->body : "no answer");
  nlohmann::json answer = body(res);
  return answer.is_object() ? answer.value("id", "") : "";
}

nlohmann::json HttpApiTest::lastAudit(const std::string& action, bool wait) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (true) {
    nlohmann::json records = body(get("/api/v1/audit"))["records"];
    nlohmann::json found = nullptr;
    for (const auto& r : records.is_array() ? records : nlohmann::json::array()) {
      if (r.value("action", "") == action) found = r;
    }
    if (!found.is_null() || !wait || std::chrono::steady_clock::now() > deadline) return found;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The coordinator's loop (coordinator/server.cpp) without the agent endpoint.
}  // namespace flotilla::coordinator::testing
