// The deployment commands against a fake coordinator on loopback: what submit sends and prints
// (the id, or every problem of a refused plan), status views, and the steering actions' bodies.
#include "cli/deployments.hpp"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "cli/api.hpp"
#include "tests/cli/command_output.hpp"
#include "tests/support/http_server.hpp"

namespace flotilla::cli {
namespace {

using nlohmann::json;

class DeploymentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/flotilla-plans-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto& s = local_.server();
    s.Post("/api/v1/deployments", [this](const httplib::Request& req, httplib::Response& res) {
      last_.set(req);
      if (req.has_param("dry_run")) {
        res.set_content(R"({"dry_run":true,"service":"shop","version":"2.0","driver":"script",
            "commands":{"build":"","apply":"./apply","verify":"","rollback":"./undo",
                        "timeout":"5m"},
            "waves":[{"name":"staging","clusters":["staging-eu"],"selector":null,
                      "steps":[{"step":"apply"}],"approval":null,"strategy":null,"bake":null,
                      "max_parallel":null},
                     {"name":"prod","clusters":["prod-eu-1","prod-eu-2"],
                      "selector":{"environment":"production"},
                      "steps":[{"step":"deploy"},{"step":"shift","weight":10},
                               {"step":"analyze","weight":10,"duration":"30s"}],
                      "approval":{"required":2,"expires":"2h"},
                      "strategy":{"type":"canary","steps":[10,100],"pause":"30s"},
                      "bake":"15m","max_parallel":1}]})",
                        "application/json");
        return;
      }
      if (req.body.find("unknown") != std::string::npos) {
        res.status = 400;
        res.set_content(R"({"error":"plan refused","problems":[
            {"line":7,"column":5,"wave":"prod",
             "message":"wave \"prod\": no agent has registered cluster \"prod-eu1\"; did you mean \"prod-eu-1\"?"}],
            "known_clusters":["prod-eu-1","staging-eu"],"known_clusters_total":5})",
                        "application/json");
        return;
      }
      if (req.body.find("bad") != std::string::npos) {
        res.status = 400;
        res.set_content(R"({"error":"plan refused","problems":[
            {"line":2,"column":3,"message":"unknown field \"bad\""},
            {"line":5,"message":"no waves"}]})",
                        "application/json");
        return;
      }
      res.status = 201;
      if (req.body.find("queue-me") != std::string::npos) {
        res.set_content(R"({"id":"shop-7","state":"queued","waits_for":"shop-6"})",
                        "application/json");
        return;
      }
      res.set_content(R"({"id":"shop-7"})", "application/json");
    });
    s.Get("/api/v1/deployments", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(mu_);
      res.set_content(json{{"deployments", deployments_}}.dump(), "application/json");
    });
    s.Post(R"(/api/v1/deployments/shop-7/(\w+))",
           [this](const httplib::Request& req, httplib::Response& res) {
             last_.set(req);
             const std::map<std::string, std::string> after = {{"pause", "paused"},
                                                               {"approve", "running"},
                                                               {"rollback", "rolling_back"},
                                                               {"promote", "running"},
                                                               {"retry", "running"}};
             res.set_content(json{{"id", "shop-7"}, {"state", after.at(req.matches[1])}}.dump(),
                             "application/json");
           });
    local_.start();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string writePlan(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  support::LocalHttpServer local_;
  std::string dir_;
  std::mutex mu_;
  support::LastRequest last_;
  json deployments_ = json::array();
};

TEST_F(DeploymentsTest, SubmitSendsThePlanAndPrintsOnlyTheId) {
  Api api(local_.url(), "", "");
  const std::string plan = writePlan("shop.yaml", "service: shop\n");
  CommandOutput submitted = runCaptured([&] { return submitCommand(api, plan); });
  EXPECT_EQ(submitted.exit_code, kExitOk);
  EXPECT_EQ(submitted.out, "shop-7\n");
  EXPECT_EQ(submitted.err, "");
  EXPECT_EQ(last_.get().body, "service: shop\n");
  EXPECT_EQ(last_.get().get_header_value("Content-Type"), "application/yaml");

  runCaptured([&] { return submitCommand(api, writePlan("shop.JSON", "{}")); });
  EXPECT_EQ(last_.get().get_header_value("Content-Type"), "application/json");
}

TEST_F(DeploymentsTest, SubmitAsksForNoQueueOrSupersedeAndSaysWhenQueued) {
  Api api(local_.url(), "", "");
  const std::string plan = writePlan("shop.yaml", "service: queue-me\n");
  CommandOutput queued = runCaptured([&] { return submitCommand(api, plan); });
  EXPECT_EQ(queued.exit_code, kExitOk);
  EXPECT_EQ(queued.out, "shop-7\n");  // scripts still read the id alone
  EXPECT_NE(queued.err.find("shop-7 is queued behind shop-6"), std::string::npos) << queued.err;
  EXPECT_FALSE(last_.get().has_param("queue"));
  EXPECT_FALSE(last_.get().has_param("supersede"));
  runCaptured([&] { return submitCommand(api, plan, {.queue = false}); });
  EXPECT_EQ(last_.get().get_param_value("queue"), "false");
  runCaptured([&] { return submitCommand(api, plan, {.supersede = true}); });
  EXPECT_EQ(last_.get().get_param_value("supersede"), "true");
  EXPECT_FALSE(last_.get().has_param("queue"));
}

TEST_F(DeploymentsTest, ARefusedPlanListsEveryProblemWhereItIs) {
  Api api(local_.url(), "", "");
  const std::string plan = writePlan("bad.yaml", "service: shop\n  bad: 1\n");
  CommandOutput refused = runCaptured([&] { return submitCommand(api, plan); });
  EXPECT_EQ(refused.exit_code, kExitFailed);
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(refused.err, plan + ":2:3: unknown field \"bad\"\n" + plan + ":5: no waves\n");
}

TEST_F(DeploymentsTest, ARefusedClusterListsTheKnownOnes) {
  Api api(local_.url(), "", "");
  const std::string plan = writePlan("unknown.yaml", "service: shop # unknown\n");
  CommandOutput refused = runCaptured([&] { return submitCommand(api, plan); });
  EXPECT_EQ(refused.exit_code, kExitFailed);
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(refused.err, plan +
                             ":7:5: wave \"prod\": no agent has registered cluster \"prod-eu1\"; "
                             "did you mean \"prod-eu-1\"?\n"
                             "known clusters: prod-eu-1, staging-eu (and 3 more)\n");
}

TEST_F(DeploymentsTest, ADryRunPrintsWavesStepsAndGates) {
  Api api(local_.url(), "", "");
  const std::string plan = writePlan("shop.yaml", "service: shop\n");
  CommandOutput dry = runCaptured([&] { return submitCommand(api, plan, {.dry_run = true}); });
  EXPECT_EQ(dry.exit_code, kExitOk);
  EXPECT_EQ(last_.get().get_param_value("dry_run"), "true");
  EXPECT_EQ(dry.out,
            "shop 2.0 (script driver): dry run, nothing was stored\n"
            "  apply: ./apply\n"
            "  rollback: ./undo\n"
            "  timeout: 5m\n"
            "wave 1/2 staging: staging-eu\n"
            "  steps: apply\n"
            "  gates: none\n"
            "wave 2/2 prod: prod-eu-1, prod-eu-2 (selector environment=production)\n"
            "  steps: deploy, shift 10%, analyze 10% 30s\n"
            "  gates: approval by 2 (counts for 2h); strategy canary 10/100%, pause 30s; bake "
            "15m; max_parallel 1\n");
  CommandOutput as_json =
      runCaptured([&] { return submitCommand(api, plan, {.dry_run = true, .as_json = true}); });
  EXPECT_EQ(as_json.exit_code, kExitOk);
  json parsed = json::parse(as_json.out);
  EXPECT_EQ(parsed["waves"][1]["clusters"], (json{"prod-eu-1", "prod-eu-2"}));
  // Without --dry-run, the ordinary submission (no parameter); --json prints the id as JSON.
  ASSERT_EQ(runCaptured([&] { return submitCommand(api, plan); }).exit_code, kExitOk);
  EXPECT_FALSE(last_.get().has_param("dry_run"));
  EXPECT_EQ(runCaptured([&] {
              return submitCommand(api, plan, {false, true});
            }).out,
            "{\"id\":\"shop-7\"}\n");
}

TEST_F(DeploymentsTest, AnUnreadablePlanIsTroubleNamingTheFile) {
  Api api(local_.url(), "", "");
  CommandOutput missing = runCaptured([&] { return submitCommand(api, dir_ + "/none.yaml"); });
  EXPECT_EQ(missing.exit_code, kExitTrouble);
  EXPECT_EQ(missing.err,
            "flotilla: cannot read plan file " + dir_ + "/none.yaml: No such file or directory\n");
  CommandOutput directory = runCaptured([&] { return submitCommand(api, dir_); });
  EXPECT_EQ(directory.err, "flotilla: cannot read plan file " + dir_ + ": it is a directory\n");
}

TEST(PlanContentType, JsonByNameYamlOtherwise) {
  EXPECT_EQ(planContentType("a/plan.json"), "application/json");
  EXPECT_EQ(planContentType("plan.Json"), "application/json");
  EXPECT_EQ(planContentType("plan.yml"), "application/yaml");
  EXPECT_EQ(planContentType("plan"), "application/yaml");
}

TEST_F(DeploymentsTest, StatusWithoutDeploymentsSaysHowToStart) {
  Api api(local_.url(), "", "");
  CommandOutput empty = runCaptured([&] { return statusCommand(api, "", false); });
  EXPECT_EQ(empty.exit_code, kExitOk);
  EXPECT_EQ(empty.out, "No deployments yet. Submit one with: flotilla submit PLAN.yaml\n");

  {
    std::lock_guard lock(mu_);
    deployments_.push_back({{"id", "shop-7"}, {"service", "shop"}, {"state", "running"}});
  }
  CommandOutput table = runCaptured([&] { return statusCommand(api, "", false); });
  EXPECT_EQ(table.out,
            "ID      SERVICE  VERSION  STATE    WAVE  AGE\n"
            "shop-7  shop     -        running  -     -\n");
  CommandOutput as_json = runCaptured([&] { return statusCommand(api, "", true); });
  EXPECT_EQ(json::parse(as_json.out)["deployments"][0]["id"], "shop-7");
}

TEST_F(DeploymentsTest, ActionsPostTheirBodyAndPrintTheNewState) {
  Api api(local_.url(), "", "");
  CommandOutput paused =
      runCaptured([&] { return actionCommand(api, "shop-7", "pause", "pause", ""); });
  EXPECT_EQ(paused.out, "shop-7: pause accepted; state is now paused\n");
  EXPECT_EQ(last_.get().body, "");

  CommandOutput approved = runCaptured([&] { return approveCommand(api, "shop-7", "prod"); });
  EXPECT_EQ(approved.out, "shop-7: approval of wave prod accepted; state is now running\n");
  EXPECT_EQ(last_.get().body, R"({"wave":"prod"})");
}

TEST_F(DeploymentsTest, RollbackSendsItsReason) {
  CLI::App app{"test", "flotilla"};
  Commands commands;
  addActionCommands(app, commands);
  app.parse("rollback shop-7 --reason \"bad canary\"", false);
  Api api(local_.url(), "", "");
  for (auto& command : commands) {
    if (!command.app->parsed()) continue;
    CommandOutput rolled = runCaptured([&] { return command.run(api); });
    EXPECT_EQ(rolled.out, "shop-7: rollback accepted; state is now rolling_back\n");
  }
  EXPECT_EQ(last_.get().path, "/api/v1/deployments/shop-7/rollback");
  EXPECT_EQ(last_.get().body, R"({"reason":"bad canary"})");
}

TEST_F(DeploymentsTest, PromoteAndRetrySendWhatTheCommandLineSays) {
  struct Case {
    const char* line;
    const char* path;
    const char* body;
    const char* out;
  };
  const Case cases[] = {
      {"promote shop-7", "/api/v1/deployments/shop-7/promote", "",
       "shop-7: promote accepted; state is now running\n"},
      {"promote shop-7 --wave staging --reason \"no traffic\"",
       "/api/v1/deployments/shop-7/promote", R"({"reason":"no traffic","wave":"staging"})",
       "shop-7: promote of wave staging accepted; state is now running\n"},
      {"retry shop-7 staging-eu", "/api/v1/deployments/shop-7/retry", R"({"cluster":"staging-eu"})",
       "shop-7: retry on staging-eu accepted; state is now running\n"},
      {"retry shop-7 staging-eu --reason fixed", "/api/v1/deployments/shop-7/retry",
       R"({"cluster":"staging-eu","reason":"fixed"})",
       "shop-7: retry on staging-eu accepted; state is now running\n"},
  };
  for (const Case& c : cases) {
    CLI::App app{"test", "flotilla"};
    Commands commands;
    addOverrideCommands(app, commands);
    app.parse(c.line, false);
    Api api(local_.url(), "", "");
    int ran = 0;
    for (auto& command : commands) {
      if (!command.app->parsed()) continue;
      ++ran;
      CommandOutput out = runCaptured([&] { return command.run(api); });
      EXPECT_EQ(out.out, c.out) << c.line;
    }
    EXPECT_EQ(ran, 1) << c.line;
    EXPECT_EQ(last_.get().path, c.path) << c.line;
    EXPECT_EQ(last_.get().body, c.body) << c.line;
  }
  // retry needs its cluster.
  CLI::App app{"test", "flotilla"};
  Commands commands;
  addOverrideCommands(app, commands);
  EXPECT_THROW(app.parse("retry shop-7", false), CLI::RequiredError);
}

}  // namespace
}  // namespace flotilla::cli
