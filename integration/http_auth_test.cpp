// Who may call the HTTP API: every route of the permission table with every kind of caller,
// then hand-written cases that do not read the table (so a wrong table fails), and the audit
// trail's hash chain against a record changed on disk.
#include <sys/stat.h>

#include <memory>
#include <regex>

#include "coordinator/permissions.hpp"
#include "coordinator/store.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

using coordinator::Permission;

// Steps that do nothing, in one wave: who may submit it depends on where the wave goes.
std::string authzPlan(const std::string& version, PlanWave wave) {
  ScriptPlan plan = noopPlan("authz", version, {std::move(wave)});
  plan.timeout = "20s";
  return plan.yaml();
}

// Waits for approval on prod-eu-1: nothing runs unless someone approves.
const std::string kProductionPlan =
    authzPlan("1.0.0", waveOf("prod", {"prod-eu-1"}, {"approval: required"}));
const std::string kStagingPlan =
    authzPlan("1.0.1", waveSelecting("staging", "environment: staging"));
// Selects by region only: it reaches production clusters.
const std::string kRegionPlan = authzPlan("1.0.2", waveSelecting("eu", "region: eu"));

enum class Who {
  kNone,     // no Authorization header
  kBad,      // a well-formed token nobody issued
  kRevoked,  // a token that worked until it was revoked
  kViewer,
  kDeployerStaging,     // deployer --env staging
  kDeployerProduction,  // deployer --env production
  kApproverProduction,  // approver --env production
  kAdmin,
};

const char* whoName(Who who) {
  switch (who) {
    case Who::kNone:
      return "no token";
    case Who::kBad:
      return "bad token";
    case Who::kRevoked:
      return "revoked token";
    case Who::kViewer:
      return "viewer";
    case Who::kDeployerStaging:
      return "deployer:staging";
    case Who::kDeployerProduction:
      return "deployer:production";
    case Who::kApproverProduction:
      return "approver:production";
    case Who::kAdmin:
      return "admin";
  }
  return "?";
}

constexpr Who kEveryone[] = {Who::kNone,
                             Who::kBad,
                             Who::kRevoked,
                             Who::kViewer,
                             Who::kDeployerStaging,
                             Who::kDeployerProduction,
                             Who::kApproverProduction,
                             Who::kAdmin};

// The rules as the issue states them, independent of the code's table: whether `who` may use
// a route needing `permission` on a target in production.
// A release's checks are facts about a service + version, not about an environment: any
// deployer may report them (CI's token is often limited to one environment).
bool releaseRoute(const std::string& path) { return path.starts_with("/api/v1/releases/"); }
// A trigger's environment is known only once the trigger is found (promotion_test covers who
// may start one): at the gate any deployer passes; an unknown trigger is then 404.
bool triggerRoute(const std::string& path) { return path.starts_with("/api/v1/triggers/"); }

bool mayOnProduction(Who who, Permission permission) {
  if (permission == Permission::kPublic || permission == Permission::kAnyone) return true;
  if (who == Who::kNone || who == Who::kBad || who == Who::kRevoked) return false;
  switch (permission) {
    case Permission::kPublic:
    case Permission::kAnyone:
    case Permission::kRead:
      return true;
    case Permission::kDeploy:
      return who == Who::kAdmin || who == Who::kDeployerProduction;
    case Permission::kApprove:
      return who == Who::kAdmin || who == Who::kApproverProduction;
    case Permission::kAdmin:
      return who == Who::kAdmin;
  }
  return false;
}

class HttpAuthTest : public FleetTest {
 protected:
  // The fleet, and one token of each kind.
  void startWithTokens() {
    ASSERT_NO_FATAL_FAILURE(startFleet());
    tokens_[Who::kAdmin] = adminToken();
    tokens_[Who::kViewer] = createToken("viewer", "viewer");
    tokens_[Who::kDeployerStaging] = createToken("deploy-staging", "deployer", {"staging"});
    tokens_[Who::kDeployerProduction] = createToken("deploy-prod", "deployer", {"production"});
    tokens_[Who::kApproverProduction] = createToken("approve-prod", "approver", {"production"});
    tokens_[Who::kRevoked] = createToken("gone", "admin");
    tokens_[Who::kBad] = "flt_" + std::string(64, '0');
    tokens_[Who::kNone] = "";
    ASSERT_EQ(del("/api/v1/tokens/gone").status, 200);
    for (const auto& [who, token] : tokens_) {
      if (who != Who::kNone) {
        ASSERT_FALSE(token.empty()) << whoName(who);
      }
    }
  }

  HttpResponse as(Who who, const std::string& method, const std::string& path,
                  const std::string& body = "",
                  const std::map<std::string, std::string>& headers = {}) {
    return request(method, path, tokens_[who], body, headers);
  }

  std::map<Who, std::string> tokens_;
};

TEST_F(HttpAuthTest, EveryRouteWithEveryCaller) {
  ASSERT_NO_FATAL_FAILURE(startWithTokens());
  const std::string plan = readFile(writePlan("production.yaml", kProductionPlan));
  // Submitted by the production deployer, so that nobody below approves their own deployment.
  HttpResponse submitted = as(Who::kDeployerProduction, "POST", "/api/v1/deployments", plan,
                              {{"Content-Type", "application/yaml"}});
  ASSERT_EQ(submitted.status, 201) << submitted.body;
  const std::string id = submitted.parsed()["id"];
  ASSERT_TRUE(waitForState(id, "awaiting_approval"));

  // A value for every placeholder the table uses; a new one must be added here.
  const std::map<std::string, std::string> values = {
      {"{id}", id},         {"{cluster}", "ghost-1"}, {"{file}", "app.js"},
      {"{name}", "nobody"}, {"{service}", "ledger"},  {"{version}", "1.0.0"}};
  int checked = 0;
  int token_seq = 0;
  for (const coordinator::Route& route : coordinator::routeTable()) {
    std::string path(route.pattern);
    for (size_t open = path.find('{'); open != std::string::npos; open = path.find('{')) {
      const std::string placeholder = path.substr(open, path.find('}', open) - open + 1);
      auto value = values.find(placeholder);
      ASSERT_NE(value, values.end())
          << "no test value for " << placeholder << " in " << route.pattern;
      path.replace(open, placeholder.size(), value->second);
    }
    const std::string method(route.method);
    for (Who who : kEveryone) {
      std::string body = "{}";
      std::map<std::string, std::string> headers;
      if (method == "POST" && path == "/api/v1/deployments") {
        body = plan;
        headers["Content-Type"] = "application/yaml";
      } else if (method == "POST" && path == "/api/v1/tokens") {
        body = json{{"name", "m-" + std::to_string(++token_seq)}, {"role", "viewer"}}.dump();
      } else if (path.ends_with("/approve")) {
        body = json{{"wave", "prod"}}.dump();
      } else if (path.ends_with("/rollback")) {
        body = json{{"reason", "matrix"}}.dump();
      } else if (triggerRoute(path)) {
        body = json{{"version", "1.0.0"}}.dump();
      }
      const HttpResponse r = as(who, method, path, method == "GET" ? "" : body, headers);
      const std::string context = method + " " + path + " as " + whoName(who) + " (needs " +
                                  coordinator::permissionName(route.permission) + ") -> " +
                                  std::to_string(r.status) + " " + r.body.substr(0, 300);
      ASSERT_NE(r.status, 0) << context << ": " << r.error;
      EXPECT_LT(r.status, 500) << context;
      if (route.permission == Permission::kPublic) {
        EXPECT_EQ(r.status, 200) << context;
      } else if (route.permission == Permission::kAnyone) {
        // The dashboard's files and its login ask for no token (the login checks its body's).
        EXPECT_TRUE(r.status != 401 && r.status != 403) << context;
      } else if (who == Who::kNone || who == Who::kBad || who == Who::kRevoked) {
        EXPECT_EQ(r.status, 401) << context;
      } else if (mayOnProduction(who, route.permission) ||
                 ((releaseRoute(path) || triggerRoute(path)) && who == Who::kDeployerStaging)) {
        EXPECT_TRUE(r.status != 401 && r.status != 403) << context;
      } else {
        EXPECT_EQ(r.status, 403) << context;
      }
      if (r.status >= 400) {
        json error = r.parsed();
        EXPECT_TRUE(error.is_object() && error.contains("error")) << context;
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 20 * 8);
}

TEST_F(HttpAuthTest, HandWrittenCases) {
  ASSERT_NO_FATAL_FAILURE(startWithTokens());
  const std::string production = readFile(writePlan("production.yaml", kProductionPlan));
  const std::string staging = readFile(writePlan("staging.yaml", kStagingPlan));
  const std::string region = readFile(writePlan("region.yaml", kRegionPlan));
  const std::map<std::string, std::string> yaml = {{"Content-Type", "application/yaml"}};

  // Only /healthz is open.
  EXPECT_EQ(as(Who::kNone, "GET", "/healthz").status, 200);
  HttpResponse anonymous = as(Who::kNone, "GET", "/api/v1/deployments");
  EXPECT_EQ(anonymous.status, 401) << anonymous.body;
  EXPECT_EQ(as(Who::kNone, "GET", "/metrics").status, 401);
  EXPECT_EQ(as(Who::kNone, "POST", "/api/v1/deployments", production, yaml).status, 401);
  EXPECT_EQ(as(Who::kRevoked, "GET", "/api/v1/agents").status, 401);
  EXPECT_EQ(as(Who::kViewer, "GET", "/api/v1/agents").status, 200);
  EXPECT_EQ(as(Who::kViewer, "GET", "/api/v1/deployments").status, 200);
  // Odd Authorization headers.
  for (const std::string& header : std::vector<std::string>{
           "Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer " + std::string(5000, 'a'),
           "Bearer " + tokens_[Who::kAdmin] + " x", "bearer\t" + tokens_[Who::kAdmin]}) {
    HttpResponse r = as(Who::kNone, "GET", "/api/v1/deployments", "", {{"Authorization", header}});
    EXPECT_EQ(r.status, 401) << header.substr(0, 40) << ": " << r.body;
  }

  // A deployer of staging: staging yes, production no, naming the cluster and environment.
  HttpResponse refused = as(Who::kDeployerStaging, "POST", "/api/v1/deployments", production, yaml);
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_NE(refused.body.find("prod-eu-1"), std::string::npos) << refused.body;
  EXPECT_NE(refused.body.find("production"), std::string::npos) << refused.body;
  HttpResponse by_region = as(Who::kDeployerStaging, "POST", "/api/v1/deployments", region, yaml);
  EXPECT_EQ(by_region.status, 403) << by_region.body;
  HttpResponse allowed = as(Who::kDeployerStaging, "POST", "/api/v1/deployments", staging, yaml);
  ASSERT_EQ(allowed.status, 201) << allowed.body;
  const std::string staging_id = allowed.parsed()["id"];
  ASSERT_TRUE(waitForState(staging_id, "succeeded"));

  HttpResponse prod = as(Who::kDeployerProduction, "POST", "/api/v1/deployments", production, yaml);
  ASSERT_EQ(prod.status, 201) << prod.body;
  const std::string prod_id = prod.parsed()["id"];
  ASSERT_TRUE(waitForState(prod_id, "awaiting_approval"));
  const std::string actions = "/api/v1/deployments/" + prod_id;
  // Neither the staging deployer nor a viewer may touch it; the approver of production may
  // not pause it; only approvers (and admins) approve.
  EXPECT_EQ(as(Who::kDeployerStaging, "POST", actions + "/pause", "{}").status, 403);
  EXPECT_EQ(as(Who::kDeployerStaging, "POST", actions + "/rollback", "{}").status, 403);
  EXPECT_EQ(as(Who::kViewer, "POST", actions + "/cancel", "{}").status, 403);
  EXPECT_EQ(as(Who::kApproverProduction, "POST", actions + "/pause", "{}").status, 403);
  EXPECT_EQ(as(Who::kDeployerProduction, "POST", actions + "/approve", "{}").status, 403);
  EXPECT_EQ(as(Who::kDeployerStaging, "POST", "/api/v1/deployments/" + staging_id + "/rollback",
               R"({"reason": "staging check"})")
                .status,
            200);
  EXPECT_EQ(stateOf(prod_id), "awaiting_approval");
  // Admin routes.
  EXPECT_EQ(as(Who::kViewer, "GET", "/api/v1/tokens").status, 403);
  EXPECT_EQ(as(Who::kDeployerProduction, "POST", "/api/v1/tokens",
               R"({"name": "sneaky", "role": "admin"})")
                .status,
            403);
  EXPECT_EQ(as(Who::kApproverProduction, "DELETE", "/api/v1/tokens/viewer").status, 403);
  EXPECT_EQ(as(Who::kDeployerProduction, "POST", "/api/v1/agents/prod-eu-1/revoke", "{}").status,
            403);
  EXPECT_EQ(as(Who::kViewer, "DELETE", "/api/v1/agents/prod-eu-1").status, 403);
  // A route nobody listed is refused, not served.
  EXPECT_EQ(as(Who::kAdmin, "GET", "/api/v1/nothing-here").status, 403);
  EXPECT_EQ(as(Who::kAdmin, "OPTIONS", "/api/v1/deployments").status, 403);

  // Changes only as JSON or YAML; no CORS headers; a foreign Host is refused.
  HttpResponse text =
      as(Who::kAdmin, "POST", actions + "/pause", "{}", {{"Content-Type", "text/plain"}});
  EXPECT_EQ(text.status, 415) << text.body;
  HttpResponse form = as(Who::kAdmin, "POST", "/api/v1/deployments", production,
                         {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(form.status, 415) << form.body;
  EXPECT_EQ(as(Who::kAdmin, "POST", actions + "/pause", "{}", {{"Content-Type", ""}}).status, 415);
  HttpResponse foreign =
      as(Who::kAdmin, "GET", "/api/v1/deployments", "",
         {{"Host", "evil.example:" + serverUrl().substr(serverUrl().rfind(':') + 1)}});
  EXPECT_EQ(foreign.status, 421) << foreign.body;
  EXPECT_EQ(as(Who::kAdmin, "GET", "/api/v1/deployments", "", {{"Host", "localhost"}}).status, 421);
  EXPECT_EQ(stateOf(prod_id), "awaiting_approval");

  // Refusals are audited with who and what.
  CommandResult audit = cli({"audit", "--json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  json records = json::parse(audit.out, nullptr, false);
  ASSERT_TRUE(records.is_object() && records["records"].is_array()) << audit.out;
  bool refused_submit = false;
  bool anonymous_post = false;
  bool foreign_type = false;
  for (const auto& r : records["records"]) {
    refused_submit |= r["actor"] == "deploy-staging" && r["action"] == "POST /api/v1/deployments" &&
                      r["outcome"] == "403" &&
                      r["detail"].get<std::string>().find("prod-eu-1") != std::string::npos;
    anonymous_post |= r["actor"] == "anonymous" && r["outcome"] == "401";
    foreign_type |= r["actor"] == "admin" && r["outcome"] == "415";
    const std::string action = r["action"];
    if (action.starts_with("POST ") || action.starts_with("DELETE ")) {
      EXPECT_FALSE(r["client"].get<std::string>().empty()) << r.dump();
    }
  }
  EXPECT_TRUE(refused_submit) << audit.out;
  EXPECT_TRUE(anonymous_post) << audit.out;
  EXPECT_TRUE(foreign_type) << audit.out;
  CommandResult verify = cli({"audit", "--verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST_F(HttpAuthTest, CliTokensAndTokenFiles) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator());
  CommandResult made = cli({"tokens", "create", "alice", "--role", "deployer", "--env", "staging"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string alice = made.out.substr(0, made.out.find('\n'));
  EXPECT_TRUE(alice.starts_with("flt_")) << made.out;
  EXPECT_EQ(made.out, alice + "\n") << "only the token on stdout";

  CommandResult list = cli({"tokens", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("alice"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("staging"), std::string::npos) << list.out;
  EXPECT_EQ(list.out.find(alice), std::string::npos) << "a secret was listed";
  CommandResult dup = cli({"tokens", "create", "alice", "--role", "viewer"});
  EXPECT_EQ(dup.exit_code, 1) << dup.out;
  CommandResult bad_env = cli({"tokens", "create", "bob", "--role", "admin", "--env", "prod"});
  EXPECT_EQ(bad_env.exit_code, 1) << bad_env.out;

  // The token file must be the owner's alone.
  const std::string file = dir() + "/alice.token";
  writeFile(file, alice + "\n");
  ::chmod(file.c_str(), 0644);
  CommandResult open_file =
      runCommand({FLOTILLA_CLI_BIN, "--server", serverUrl(), "--token-file", file, "status"},
                 dir() + "/scratch", 30s);
  EXPECT_EQ(open_file.exit_code, 2) << open_file.err;
  EXPECT_NE(open_file.err.find("chmod 600"), std::string::npos) << open_file.err;
  ::chmod(file.c_str(), 0600);
  CommandResult ok =
      runCommand({FLOTILLA_CLI_BIN, "--server", serverUrl(), "--token-file", file, "status"},
                 dir() + "/scratch", 30s);
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  CommandResult no_token = runCommand({FLOTILLA_CLI_BIN, "--server", serverUrl(), "status"},
                                      dir() + "/scratch", 30s, {{"FLOTILLA_TOKEN", ""}});
  EXPECT_EQ(no_token.exit_code, 1) << no_token.err;
  EXPECT_NE(no_token.err.find("FLOTILLA_TOKEN"), std::string::npos) << no_token.err;

  CommandResult revoke = cli({"tokens", "revoke", "alice"});
  EXPECT_EQ(revoke.exit_code, 0) << revoke.err;
  CommandResult after =
      runCommand({FLOTILLA_CLI_BIN, "--server", serverUrl(), "--token-file", file, "status"},
                 dir() + "/scratch", 30s);
  EXPECT_EQ(after.exit_code, 1) << after.err;
  // The last admin token stays.
  CommandResult last = cli({"tokens", "revoke", "admin"});
  EXPECT_EQ(last.exit_code, 1) << last.out;
  EXPECT_NE(last.err.find("last admin"), std::string::npos) << last.err;

  // bootstrap-admin: refused while the coordinator holds the store, and once an admin exists;
  // either way it prints no token.
  auto bootstrapRefused = [&](const std::string& why) {
    CommandResult r =
        runCommand({FLOTILLA_COORDINATOR_BIN, "bootstrap-admin", "--data-dir", dir() + "/data"},
                   dir() + "/scratch", 30s);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  };
  bootstrapRefused("in use");
  ASSERT_NO_FATAL_FAILURE(stopCoordinator());
  bootstrapRefused("exists");
}

TEST_F(HttpAuthTest, AuditVerifyNamesATamperedRecord) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator());
  ASSERT_FALSE(createToken("one", "viewer").empty());
  ASSERT_FALSE(createToken("two", "viewer").empty());
  ASSERT_EQ(del("/api/v1/tokens/one").status, 200);
  CommandResult intact = cli({"audit", "--verify"});
  ASSERT_EQ(intact.exit_code, 0) << intact.out << intact.err;
  CommandResult listed = cli({"audit"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("POST /api/v1/tokens"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("bootstrap-admin"), std::string::npos) << listed.out;

  // The record of token "one" being created now says someone else created it.
  ASSERT_NO_FATAL_FAILURE(stopCoordinator());
  uint64_t seq = 0;
  {
    auto store = coordinator::Store::open(dir() + "/data");
    ASSERT_TRUE(store.ok()) << store.status().toString();
    auto records = (*store)->scanRecords("audit/");
    ASSERT_TRUE(records.ok());
    for (const auto& [key, value] : *records) {
      if (value.find(R"("target":"one")") == std::string::npos ||
          value.find(R"("action":"POST /api/v1/tokens")") == std::string::npos) {
        continue;
      }
      seq = std::stoull(key.substr(key.find('/') + 1));
      std::string changed =
          std::regex_replace(value, std::regex(R"("actor":"admin")"), R"("actor":"mallory")");
      ASSERT_NE(changed, value) << value;
      ASSERT_TRUE((*store)->putRecord(key, changed).ok());
      break;
    }
    ASSERT_NE(seq, 0u) << "no audit record of token one's creation";
  }
  ASSERT_NO_FATAL_FAILURE(restartCoordinator());
  CommandResult broken = cli({"audit", "--verify"});
  EXPECT_EQ(broken.exit_code, 1) << broken.out << broken.err;
  EXPECT_NE(broken.out.find("record " + std::to_string(seq) + ":"), std::string::npos)
      << broken.out;
  CommandResult as_json = cli({"audit", "--verify", "--json"});
  json verdict = json::parse(as_json.out, nullptr, false);
  ASSERT_TRUE(verdict.is_object()) << as_json.out;
  EXPECT_EQ(verdict["first_bad"], seq) << as_json.out;
  EXPECT_EQ(verdict["ok"], false);
}

}  // namespace
}  // namespace flotilla::integration
