#include "cli/policy.hpp"

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/api.hpp"
#include "cli/render.hpp"
#include "common/rules.hpp"

namespace flotilla::cli {

using nlohmann::json;

namespace {

std::string joined(const json& list) {
  if (!list.is_array() || list.empty()) return "";
  std::string out;
  for (const auto& item : list) {
    if (!out.empty()) out += ", ";
    out += item.is_string() ? sanitize(item.get<std::string>()) : sanitize(item.dump());
  }
  return out;
}

std::string durationOf(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_number_integer()) return "";
  return common::formatDuration(std::chrono::milliseconds(object[key].get<int64_t>()));
}

std::string selectorText(const json& selector) {
  if (!selector.is_object()) return "";
  std::string out;
  for (const auto& [label, value] : selector.items()) {
    if (!out.empty()) out += ", ";
    out += sanitize(label) + "=" + (value.is_string() ? sanitize(value.get<std::string>()) : "");
  }
  return out;
}

}  // namespace

int policyShowCommand(Api& api, bool as_json) {
  if (as_json) {
    printLine(api.getPretty("/api/v1/policy"));
    return kExitOk;
  }
  json shown = api.get("/api/v1/policy");
  if (!shown.value("enabled", false)) {
    printLine("No policy: the coordinator runs without --policy (plans decide everything).");
    return kExitOk;
  }
  printLine("Policy " + fieldText(shown, "path") + " (sha256 " + fieldText(shown, "sha256") +
            "), loaded " + fieldText(shown, "loaded_at"));
  const json& policy = shown["policy"];
  std::vector<std::vector<std::string>> rows;
  for (const auto& env : policy.value("environments", json::array())) {
    std::string approval = "-";
    if (env.contains("approval") && env["approval"].is_object()) {
      approval = fieldText(env["approval"], "required") + " approver(s)";
    }
    std::string promotion = "-";
    if (env.contains("promotion") && env["promotion"].is_object()) {
      promotion = "from " + fieldText(env["promotion"], "from") + " after " +
                  durationOf(env["promotion"], "soak_ms");
    }
    std::string watch;
    for (const auto& tier : env.value("watch", json::array())) {
      if (!watch.empty()) watch += ", ";
      watch += fieldText(tier, "name") + " " + durationOf(tier, "for_ms") + " every " +
               durationOf(tier, "interval_ms");
    }
    const std::string deployers = joined(env.value("deployers", json::array()));
    const std::string checks = joined(env.value("checks", json::array()));
    rows.push_back({fieldText(env, "name"), selectorText(env.value("clusters", json::object())),
                    deployers.empty() ? "any deployer" : deployers, approval,
                    checks.empty() ? "-" : checks, promotion, watch.empty() ? "-" : watch});
  }
  std::cout << renderTable({"ENVIRONMENT", "CLUSTERS", "DEPLOYERS", "APPROVAL", "CHECKS",
                            "PROMOTION", "WATCH"},
                           rows)
            << std::flush;
  // Triggers: what CI may start with `flotilla trigger NAME VERSION`.
  std::vector<std::string> triggers;
  for (const auto& env : policy.value("environments", json::array())) {
    for (const auto& trigger : env.value("triggers", json::array())) {
      triggers.push_back("  " + fieldText(trigger, "name") + " -> " + fieldText(env, "name") +
                         " (plan " + fieldText(trigger, "plan") + ")");
    }
  }
  printLine(triggers.empty() ? "Triggers: none" : "Triggers (flotilla trigger NAME VERSION):");
  for (const auto& line : triggers) printLine(line);
  if (shown.contains("last_reload") && shown["last_reload"].is_object() &&
      !shown["last_reload"].value("ok", true)) {
    printLine("Last reload (" + fieldText(shown["last_reload"], "at") +
              ") refused: " + fieldText(shown["last_reload"], "message"));
  }
  return kExitOk;
}

int policyReloadCommand(Api& api) {
  const std::string path = "/api/v1/policy/reload";
  common::HttpResult result = api.rawPost(path, "", "application/json");
  if (const auto* reply = std::get_if<common::HttpReply>(&result); reply && reply->status == 422) {
    json body = json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
    std::cerr << "flotilla: " << fieldText(body, "error") << '\n';
    for (const auto& line : formatPlanProblems("policy", body.value("problems", json::array()))) {
      std::cerr << line << '\n';
    }
    for (const auto& line : body.value("template_problems", json::array())) {
      if (line.is_string()) std::cerr << sanitize(line.get<std::string>()) << '\n';
    }
    return kExitFailed;
  }
  json body = api.accept(result, "POST", path, "");
  printLine(fieldText(body, "message"));
  return kExitOk;
}

void addPolicyCommands(CLI::App& app, Commands& commands) {
  struct Args {
    bool as_json = false;
  };
  auto args = std::make_shared<Args>();
  auto* policy = app.add_subcommand(
      "policy", "Show the policy the coordinator enforces (environments and their rules)");
  policy->add_flag("--json", args->as_json, "Print the coordinator's JSON");
  policy->footer(R"(The policy is the organisation's rules, read by the coordinator from its
--policy FILE: each environment's clusters (by agent labels), who may deploy
there, the approvals it requires, the checks a release needs, promotion and the
post-deploy watch. A plan can add to them, never weaken them. Triggers (each
environment's `triggers`) name plan templates that `flotilla trigger NAME
VERSION` deploys there with no human.)");
  auto* reload = policy->add_subcommand(
      "reload",
      "Make the coordinator read its policy file again (admin); a file with a mistake is\n"
      "refused with each problem's line:column and the policy in force stays");
  commands.push_back({reload, [](Api& api) { return policyReloadCommand(api); }});
  commands.push_back({policy, [args](Api& api) { return policyShowCommand(api, args->as_json); }});
}

}  // namespace flotilla::cli
