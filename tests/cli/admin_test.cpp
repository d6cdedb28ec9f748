// Agents, tokens and the audit trail against a fake coordinator on loopback: what each command
// sends, prints on stdout (secrets alone, for scripts) and on stderr, and its exit code.
#include "cli/admin.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>

#include "cli/api.hpp"
#include "common/time_format.hpp"
#include "tests/cli/command_output.hpp"
#include "tests/support/http_server.hpp"

namespace flotilla::cli {
namespace {

using nlohmann::json;

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& s = local_.server();
    auto reply = [this](json body) {
      return [this, body](const httplib::Request& req, httplib::Response& res) {
        last_.set(req);
        res.set_content(body.dump(), "application/json");
      };
    };
    s.Get("/api/v1/agents", reply({{"agents", json::array()}}));
    s.Post("/api/v1/agents/eu-1/enroll",
           reply({{"token", "flt_enroll"}, {"expires_at", "2026-11-27T03:00:00.000Z"}}));
    s.Post("/api/v1/agents/eu-1/revoke", reply(json::object()));
    s.Delete("/api/v1/agents/eu-1", reply(json::object()));
    s.Post("/api/v1/tokens", reply({{"name", "ci"}, {"token", "flt_new"}}));
    s.Get("/api/v1/tokens", reply({{"tokens",
                                    {{{"name", "admin"},
                                      {"role", "admin"},
                                      {"created_at", "2026-11-27T01:00:00.000Z"},
                                      {"created_by", "bootstrap-admin"}},
                                     {{"name", "ci"},
                                      {"role", "deployer"},
                                      {"envs", {"staging", "qa"}},
                                      {"created_at", "2026-11-27T02:00:00.000Z"},
                                      {"created_by", "admin"}}}}}));
    s.Get("/api/v1/audit", reply({{"records",
                                   {{{"seq", 1},
                                     {"time", "2026-11-27T01:00:00.000Z"},
                                     {"actor", "admin"},
                                     {"role", "admin"},
                                     {"action", "POST /api/v1/tokens"},
                                     {"target", "ci"},
                                     {"outcome", "ok"},
                                     {"client", "127.0.0.1"}}}}}));
    s.Get("/api/v1/audit/verify", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(intact_ ? R"({"ok":true,"records":12})"
                              : R"({"ok":false,"first_bad":7,"problem":"hash mismatch"})",
                      "application/json");
    });
    local_.start();
  }

  support::LocalHttpServer local_;
  support::LastRequest last_;
  std::atomic<bool> intact_{true};
};

TEST_F(AdminTest, NoAgentsYet) {
  Api api(local_.url(), "", "");
  CommandOutput listed = runCaptured([&] { return agentsCommand(api, false); });
  EXPECT_EQ(listed.exit_code, kExitOk);
  EXPECT_EQ(listed.out, "No agents have registered yet.\n");
}

TEST_F(AdminTest, EnrollPrintsOnlyTheTokenOnStdout) {
  Api api(local_.url(), "", "");
  CommandOutput enrolled =
      runCaptured([&] { return agentsEnrollCommand(api, "eu-1", std::chrono::minutes(90)); });
  EXPECT_EQ(enrolled.exit_code, kExitOk);
  EXPECT_EQ(enrolled.out, "flt_enroll\n");
  EXPECT_EQ(enrolled.err,
            "flotilla: enrollment token for eu-1, usable once until 2026-11-27T03:00:00.000Z: "
            "start the agent with --cluster eu-1 --enroll-token TOKEN\n");
  EXPECT_EQ(json::parse(last_.get().body), (json{{"ttl_seconds", 5400}}));
}

TEST_F(AdminTest, RevokeAndRemoveAnAgent) {
  Api api(local_.url(), "", "");
  EXPECT_EQ(runCaptured([&] { return agentsRevokeCommand(api, "eu-1"); }).out,
            "agent eu-1 revoked: its key is removed and its connection closed\n");
  EXPECT_EQ(last_.get().body, "{}");
  EXPECT_EQ(runCaptured([&] { return agentsRemoveCommand(api, "eu-1"); }).out,
            "agent eu-1 removed\n");
  EXPECT_EQ(last_.get().method, "DELETE");
}

TEST_F(AdminTest, TokensCreateAndList) {
  Api api(local_.url(), "", "");
  CommandOutput created =
      runCaptured([&] { return tokensCreateCommand(api, "ci", "deployer", {"staging"}); });
  EXPECT_EQ(created.out, "flt_new\n");
  EXPECT_EQ(created.err,
            "flotilla: token ci (deployer of staging) created; it is shown only this once\n");
  EXPECT_EQ(json::parse(last_.get().body),
            (json{{"name", "ci"}, {"role", "deployer"}, {"envs", {"staging"}}}));

  CommandOutput listed = runCaptured([&] { return tokensListCommand(api, false); });
  EXPECT_EQ(listed.out,
            "NAME   ROLE      ENVIRONMENTS  CREATED                   BY\n"
            "admin  admin     all           2026-11-27T01:00:00.000Z  bootstrap-admin\n"
            "ci     deployer  staging,qa    2026-11-27T02:00:00.000Z  admin\n");
}

TEST_F(AdminTest, AuditListsRecordsSinceADurationAgo) {
  Api api(local_.url(), "", "");
  CommandOutput listed = runCaptured([&] { return auditCommand(api, "1h", 50, false, false); });
  EXPECT_EQ(listed.exit_code, kExitOk);
  EXPECT_EQ(listed.out,
            "SEQ  TIME                      WHO            ACTION               TARGET  OUTCOME  "
            "CLIENT     DETAIL\n"
            "1    2026-11-27T01:00:00.000Z  admin (admin)  POST /api/v1/tokens  ci      ok       "
            "127.0.0.1\n");
  httplib::Request req = last_.get();
  EXPECT_EQ(req.get_param_value("limit"), "50");
  // A time an hour back, in whole seconds.
  auto since = common::parseRfc3339(req.get_param_value("since"));
  ASSERT_TRUE(since.has_value()) << req.get_param_value("since");
  const int64_t ago = common::toUnixMillis(std::chrono::system_clock::now()) - *since;
  EXPECT_GE(ago, 3600 * 1000);
  EXPECT_LT(ago, 3600 * 1000 + 5000);
  EXPECT_EQ(*since % 1000, 0);
}

TEST_F(AdminTest, AuditVerifyExitCodeIsTheVerdict) {
  Api api(local_.url(), "", "");
  CommandOutput intact = runCaptured([&] { return auditCommand(api, "", 1000, false, true); });
  EXPECT_EQ(intact.exit_code, kExitOk);
  EXPECT_EQ(intact.out, "audit trail intact: 12 records checked\n");
  intact_ = false;
  CommandOutput broken = runCaptured([&] { return auditCommand(api, "", 1000, false, true); });
  EXPECT_EQ(broken.exit_code, kExitFailed);
  EXPECT_EQ(broken.out, "audit trail broken at record 7: hash mismatch\n");
}

}  // namespace
}  // namespace flotilla::cli
