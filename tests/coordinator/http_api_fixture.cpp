// The HTTP API test fixture (see the header).
#include "tests/coordinator/http_api_fixture.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>

namespace flotilla::coordinator::testing {
namespace {

// No agent is connected: what the engine sends goes nowhere.
class NowhereOutbox : public Outbox {
 public:
  // Interface
  void send(const std::string&, capnp::MessageBuilder&) override {}
  void sendTo(const std::string&, capnp::MessageBuilder&) override {}
  void bindCluster(const std::string&, const std::string&) override {}
  bool connectionOpen(const std::string&) const override { return false; }
  void dropConnection(const std::string&) override {}
};

}  // namespace

void HttpApiTest::SetUp() {
  spdlog::set_level(spdlog::level::warn);
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/flotilla-http-test-XXXXXX";
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  dir_ = pattern;
  auto opened = Store::open(dir_);
  ASSERT_TRUE(opened.ok()) << opened.status().toString();
  store_ = std::move(opened).value();

  // Tokens go in before the engine turns group commit on, as bootstrap-admin does.
  auto admin = bootstrapAdmin(*store_, "admin", 0);
  ASSERT_TRUE(admin.ok()) << admin.status().toString();
  admin_ = *admin;
  {
    Tokens early(*store_);
    ASSERT_TRUE(early.load().ok());
    auto viewer = early.create("viewer", Role::kViewer, {}, "admin", 0);
    auto deployer = early.create("deployer", Role::kDeployer, {"staging"}, "admin", 0);
    ASSERT_TRUE(viewer.ok() && deployer.ok());
    viewer_ = *viewer;
    deployer_ = *deployer;
  }

  for (const StoredAgent& agent : known_agents_) ASSERT_TRUE(store_->putAgent(agent).ok());

  outbox_ = std::make_unique<NowhereOutbox>();
  EngineOptions engine_options;
  // The known agents never come back: lost at the engine's first look, so that no step waits
  // for them.
  engine_options.agent_lost_after = std::chrono::milliseconds(1);
  engine_ = std::make_unique<Engine>(*store_, metrics_, *outbox_, clock_, engine_options);
  store_->setGroupCommit(true);
  engine_->setCommitListener([this](const std::string&) { committed_ = true; });
  ASSERT_TRUE(engine_->start().ok());
  tokens_ = std::make_unique<Tokens>(*store_);
  ASSERT_TRUE(tokens_->load().ok());
  audit_ = std::make_unique<AuditLog>(*store_);
  ASSERT_TRUE(audit_->load().ok());

  HttpOptions options;
  options.limits.min_threads = 4;
  options.limits.rate_per_second = 0;  // no rate limit: tests send bursts with one token
  http_ = std::make_unique<HttpApi>(*store_, *engine_, metrics_, tasks_, commits_, *audit_,
                                    *tokens_, options);
  auto bound = http_->bind("127.0.0.1:0");
  ASSERT_TRUE(bound.ok()) << bound.status().toString();
  port_ = *bound;
  http_thread_ = std::thread([this] { http_->serve(); });
  engine_thread_ = std::thread([this] { engineLoop(); });

  client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
  client_->set_connection_timeout(10, 0);
  client_->set_read_timeout(30, 0);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto all_lost = [&] {
    std::vector<AgentInfo> agents = engine_->agentsSnapshot();
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
  if (engine_thread_.joinable()) {
    stop_ = true;
    tasks_.post(nullptr);
    engine_thread_.join();
  }
  commits_.shutdown();
  tasks_.close();
  if (store_) flush();
  tasks_.complete(common::Status::Unavailable("the test is over"));
  if (http_thread_.joinable()) {
    http_->stop();
    http_thread_.join();
  }
  http_.reset();
  audit_.reset();
  tokens_.reset();
  engine_.reset();
  store_.reset();
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
void HttpApiTest::engineLoop() {
  while (!stop_) {
    pollfd p{tasks_.fd(), POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) tasks_.drain();
    engine_->tick();
    flush();
  }
}

void HttpApiTest::flush() {
  common::Status s = store_->flush();
  tasks_.complete(s);
  if (s.ok() && committed_) commits_.notify();
  committed_ = false;
}

}  // namespace flotilla::coordinator::testing
