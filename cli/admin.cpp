// Agents, tokens and the audit trail: the admin's commands and their help.
#include "cli/admin.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/api.hpp"
#include "cli/args.hpp"
#include "cli/render.hpp"

namespace flotilla::cli {

using nlohmann::json;

namespace {

std::string joinedList(const json& list) {
  std::string out;
  if (!list.is_array()) return out;
  for (const auto& item : list) {
    if (item.is_string()) out += (out.empty() ? "" : ",") + sanitize(item.get<std::string>());
  }
  return out;
}

}  // namespace

// ---- agents -----------------------------------------------------------------------------------

int agentsCommand(Api& api, bool as_json) {
  if (as_json) {
    printLine(api.getPretty("/api/v1/agents"));
    return kExitOk;
  }
  const json list = api.getList("/api/v1/agents", "agents");
  if (list.empty()) {
    printLine("No agents have registered yet.");
    return kExitOk;
  }
  std::cout << renderAgents(list, std::chrono::system_clock::now()) << std::flush;
  return kExitOk;
}

int agentsEnrollCommand(Api& api, const std::string& cluster, std::chrono::milliseconds ttl) {
  const long long seconds = std::max<long long>(1, ttl.count() / 1000);
  json body = api.post("/api/v1/agents/" + common::urlEncode(cluster) + "/enroll",
                       json{{"ttl_seconds", seconds}}.dump(), "");
  std::string token = fieldText(body, "token");
  if (token.empty()) throw CliError("the coordinator created no enrollment token", kExitTrouble);
  printLine(token);
  std::cerr << "flotilla: enrollment token for " << cluster << ", usable once until "
            << fieldText(body, "expires_at") << ": start the agent with --cluster " << cluster
            << " --enroll-token TOKEN\n";
  return kExitOk;
}

int agentsRevokeCommand(Api& api, const std::string& cluster) {
  api.post("/api/v1/agents/" + common::urlEncode(cluster) + "/revoke", "{}", "");
  printLine("agent " + cluster + " revoked: its key is removed and its connection closed");
  return kExitOk;
}

int agentsRemoveCommand(Api& api, const std::string& cluster) {
  api.del("/api/v1/agents/" + common::urlEncode(cluster));
  printLine("agent " + cluster + " removed");
  return kExitOk;
}

// ---- tokens -----------------------------------------------------------------------------------

int tokensCreateCommand(Api& api, const std::string& name, const std::string& role,
                        const std::vector<std::string>& envs) {
  json body =
      api.post("/api/v1/tokens", json{{"name", name}, {"role", role}, {"envs", envs}}.dump(), "");
  std::string token = fieldText(body, "token");
  if (token.empty()) throw CliError("the coordinator created no token", kExitTrouble);
  printLine(token);
  std::cerr << "flotilla: token " << name << " (" << role
            << (envs.empty() ? "" : " of " + joinedList(json(envs)))
            << ") created; it is shown only "
            << "this once\n";
  return kExitOk;
}

int tokensListCommand(Api& api, bool as_json) {
  if (as_json) {
    printLine(api.getPretty("/api/v1/tokens"));
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : api.getList("/api/v1/tokens", "tokens")) {
    std::string envs = joinedList(t.contains("envs") ? t["envs"] : json::array());
    rows.push_back({fieldText(t, "name"), fieldText(t, "role"), envs.empty() ? "all" : envs,
                    fieldText(t, "created_at"), fieldText(t, "created_by")});
  }
  std::cout << renderTable({"NAME", "ROLE", "ENVIRONMENTS", "CREATED", "BY"}, rows) << std::flush;
  return kExitOk;
}

int tokensRevokeCommand(Api& api, const std::string& name) {
  api.del("/api/v1/tokens/" + common::urlEncode(name));
  printLine("token " + name + " revoked");
  return kExitOk;
}

// ---- audit ------------------------------------------------------------------------------------

int auditCommand(Api& api, const std::string& since, int limit, bool as_json, bool verify) {
  if (verify) {
    json verdict = api.get("/api/v1/audit/verify");
    if (as_json) {
      printLine(verdict.dump(2));
    } else if (verdict.value("ok", false)) {
      printLine("audit trail intact: " + fieldText(verdict, "records") + " records checked");
    } else {
      printLine("audit trail broken at record " + fieldText(verdict, "first_bad") + ": " +
                fieldText(verdict, "problem"));
    }
    return verdict.value("ok", false) ? kExitOk : kExitFailed;
  }
  std::string path = "/api/v1/audit?limit=" + std::to_string(limit);
  if (!since.empty()) {
    path += "&since=" + common::urlEncode(sinceParam(since, std::chrono::system_clock::now()));
  }
  if (as_json) {
    printLine(api.getPretty(path));
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : api.getList(path, "records")) {
    std::string who = fieldText(r, "actor");
    if (!fieldText(r, "role").empty()) who += " (" + fieldText(r, "role") + ")";
    rows.push_back({fieldText(r, "seq"), fieldText(r, "time"), who, fieldText(r, "action"),
                    fieldText(r, "target"), fieldText(r, "outcome"), fieldText(r, "client"),
                    fieldText(r, "detail")});
  }
  if (rows.empty()) {
    printLine("No audit records" + std::string(since.empty() ? "." : " since " + since + "."));
    return kExitOk;
  }
  std::cout << renderTable(
                   {"SEQ", "TIME", "WHO", "ACTION", "TARGET", "OUTCOME", "CLIENT", "DETAIL"}, rows)
            << std::flush;
  return kExitOk;
}

// ---- command line ---------------------------------------------------------------------------

void addAgentsCommands(CLI::App& app, Commands& commands) {
  struct Args {
    bool as_json = false;
    std::string cluster;
    std::string ttl_text = "1h";
  };
  auto args = std::make_shared<Args>();
  auto* agents = app.add_subcommand(
      "agents", "List the agents (one per cluster) and whether they are connected");
  agents->add_flag("--json", args->as_json, "Print the coordinator's JSON instead of a table");
  agents->footer(
      "Columns: CLUSTER  STATE  LABELS. The state is judged against the coordinator's clock now,\n"
      "with the time since the agent was last heard from and the deadline that comes next:\n"
      "  connected (last seen 1s ago; unknown at 3s)   heard from within three heartbeats\n"
      "  unknown (last seen 21s ago; lost at 30s)      silent: its steps may still be running\n"
      "  lost (last seen 40s ago; lost at 30s)         silent past the deadline: its in-flight\n"
      "                                                steps count as failed");
  // Not required: 'flotilla agents' alone lists them.
  agents->require_subcommand(0, 1);
  auto* enroll = agents->add_subcommand(
      "enroll", "Create a one-time enrollment token for CLUSTER's agent and print it (admin)");
  enroll->add_option("CLUSTER", args->cluster, "Cluster name the agent will speak as")->required();
  enroll->add_option("--ttl", args->ttl_text, "How long the token may be used")
      ->type_name("DURATION")
      ->capture_default_str()
      ->check(durationCheck());
  enroll->footer(R"(Only the token is printed on stdout. Give it to the agent once:
  flotilla-agent --cluster CLUSTER --enroll-token TOKEN --coordinator-key KEY ...
Its key is then bound to CLUSTER and the token is spent.)");
  commands.push_back({enroll, [args](Api& api) {
                        return agentsEnrollCommand(api, args->cluster, durationOf(args->ttl_text));
                      }});
  auto* revoke = agents->add_subcommand(
      "revoke", "Remove CLUSTER's agent key and close its connection (admin)");
  revoke->add_option("CLUSTER", args->cluster, "Cluster name")->required();
  revoke->footer("It cannot come back without a new 'flotilla agents enroll'.");
  commands.push_back(
      {revoke, [args](Api& api) { return agentsRevokeCommand(api, args->cluster); }});
  auto* remove = agents->add_subcommand(
      "remove", "Forget a cluster that is gone: its record and its key (admin)");
  remove->add_option("CLUSTER", args->cluster, "Cluster name")->required();
  commands.push_back(
      {remove, [args](Api& api) { return agentsRemoveCommand(api, args->cluster); }});
  // After its subcommands: the first parsed entry of `commands` runs.
  commands.push_back({agents, [args](Api& api) { return agentsCommand(api, args->as_json); }});
}

void addTokensCommands(CLI::App& app, Commands& commands) {
  struct Args {
    std::string name;
    std::string role;
    std::vector<std::string> envs;
    bool as_json = false;
  };
  auto args = std::make_shared<Args>();
  auto* tokens = app.add_subcommand("tokens", "Manage API tokens (admin)");
  tokens->require_subcommand(1);
  auto* create =
      tokens->add_subcommand("create", "Create an API token and print it (shown only this once)");
  create->add_option("NAME", args->name, "Token name, e.g. alice or ci (a-z, 0-9, '-')")
      ->required();
  create->add_option("--role", args->role, "viewer, deployer, approver or admin")
      ->required()
      ->check(CLI::IsMember({"viewer", "deployer", "approver", "admin"}));
  create
      ->add_option("--env", args->envs,
                   "Environment (agents' environment label) a deployer or approver "
                   "is limited to; repeatable; default: all")
      ->type_name("ENV");
  create->footer(
      R"(Roles: viewer reads everything; deployer submits, pauses, resumes, cancels and
rolls back deployments whose every cluster is in its environments; approver
approves waves in its environments; admin does everything (tokens, agents).
Only the token is printed on stdout:
  flotilla tokens create ci --role deployer --env staging > ci.token && chmod 600 ci.token)");
  commands.push_back({create, [args](Api& api) {
                        return tokensCreateCommand(api, args->name, args->role, args->envs);
                      }});
  auto* list = tokens->add_subcommand("list", "List API tokens (never their secrets)");
  list->add_flag("--json", args->as_json, "Print the coordinator's JSON instead of a table");
  commands.push_back({list, [args](Api& api) { return tokensListCommand(api, args->as_json); }});
  auto* revoke = tokens->add_subcommand("revoke", "Revoke an API token: it stops working at once");
  revoke->add_option("NAME", args->name, "Token name")->required();
  commands.push_back({revoke, [args](Api& api) { return tokensRevokeCommand(api, args->name); }});
}

void addAuditCommand(CLI::App& app, Commands& commands) {
  struct Args {
    std::string since;
    int limit = 1000;
    bool as_json = false;
    bool verify = false;
  };
  auto args = std::make_shared<Args>();
  auto* audit = app.add_subcommand(
      "audit", "List the audit trail (who did what, refusals included), or verify it");
  audit
      ->add_option("--since", args->since,
                   "From this time on: RFC 3339, or a duration ago (e.g. 1h)")
      ->type_name("TIME");
  audit->add_option("--limit", args->limit, "At most this many records (the newest)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  audit->add_flag("--json", args->as_json, "Print the coordinator's JSON");
  audit->add_flag("--verify", args->verify,
                  "Check the hash chain instead: exit 1 and name the first record that does not "
                  "match");
  audit->footer(R"(Every change asked of the coordinator (refused ones too), every agent enrollment,
revocation and refused agent frame is a record: SEQ TIME WHO ACTION TARGET OUTCOME
CLIENT DETAIL. Records form a hash chain; --verify walks it.

Exit: 0 listed, or intact; 1 the chain is broken (--verify) or the coordinator refused;
2 the coordinator could not be reached.)");
  commands.push_back({audit, [args](Api& api) {
                        return auditCommand(api, args->since, args->limit, args->as_json,
                                            args->verify);
                      }});
}

}  // namespace flotilla::cli
