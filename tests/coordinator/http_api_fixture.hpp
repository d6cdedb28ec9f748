// For the tests of the HTTP API (tests/coordinator/http_*_test.cpp): a real HttpApi on
// 127.0.0.1 port 0 in front of a real engine and RocksDB store in a temporary directory, with
// no agents, and the coordinator's loop (run posted work, tick, make the turn durable, answer)
// on a thread of its own. Tokens: an admin, a viewer, and a deployer limited to "staging".
// The registry knows the clusters of kPlan (staging-eu, environment=staging; prod-eu-1,
// environment=production) from the store, as after a restart, and they are lost before the
// first test step: a plan naming them is accepted, and a wave that starts fails over the lost
// agents. HttpApiNoAgentsTest knows none.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/time_format.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/store.hpp"
#include "coordinator/tokens.hpp"
#include "tests/support/in_process_coordinator.hpp"

namespace flotilla::coordinator::testing {

// A valid plan for the script driver naming two clusters that no agent serves.
inline constexpr char kPlan[] = R"(service: checkout
version: "1.4.2"
steps: {apply: ./apply.sh, rollback: ./rollback.sh}
waves:
  - name: staging
    clusters: [staging-eu]
  - name: prod
    clusters: [prod-eu-1]
    approval: required
)";

class HttpApiTest : public ::testing::Test {
 protected:
  // The clusters the registry knows, restored from the store at start.
  std::vector<StoredAgent> known_agents_{{"staging-eu", {{"environment", "staging"}}, "test"},
                                         {"prod-eu-1", {{"environment", "production"}}, "test"}};

  void SetUp() override;
  void TearDown() override;

  // Requests, with the admin's token unless another is given ("" for none).
  httplib::Result get(const std::string& path, const std::string& token);
  httplib::Result get(const std::string& path) { return get(path, admin_); }
  httplib::Result post(const std::string& path, const std::string& body, const std::string& token,
                       const std::string& content_type = "application/json");
  httplib::Result post(const std::string& path, const std::string& body) {
    return post(path, body, admin_);
  }
  httplib::Result del(const std::string& path, const std::string& token);
  httplib::Result del(const std::string& path) { return del(path, admin_); }
  // A request of one's own making (headers, chunked bodies).
  httplib::Client& client() { return *client_; }
  httplib::Headers bearer(const std::string& token) const;

  // The answer's body as JSON; a failed expectation (and null) when it is not.
  static nlohmann::json body(const httplib::Result& result);
  // Submits kPlan (or `plan`) as the admin and returns the deployment's id.
  std::string submit(const std::string& plan = kPlan);
  // The newest audit record whose action is `action`, read over the API; null when none. A
  // refusal's record is written after its answer: with `wait`, polls for up to 5 s.
  nlohmann::json lastAudit(const std::string& action, bool wait = true);

  Store& store() { return coordinator_->store(); }
  HttpApi& http() { return coordinator_->http(); }
  int port() const { return coordinator_->port(); }

  std::string admin_;
  std::string viewer_;
  std::string deployer_;  // limited to the environment "staging"

 private:
  std::string dir_;
  std::unique_ptr<support::InProcessCoordinator> coordinator_;
  std::unique_ptr<httplib::Client> client_;
};

class HttpApiNoAgentsTest : public HttpApiTest {
 protected:
  HttpApiNoAgentsTest() { known_agents_.clear(); }
};

}  // namespace flotilla::coordinator::testing
