// The deployment commands and their help: submit, status, approve, rollback, pause, resume,
// cancel.
#include "cli/deployments.hpp"

#include <CLI/CLI.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/api.hpp"
#include "cli/render.hpp"

namespace flotilla::cli {

using nlohmann::json;

std::string readPlanFile(const std::string& file) {
  std::error_code error;
  if (std::filesystem::is_directory(file, error)) {
    throw CliError("cannot read plan file " + file + ": it is a directory", kExitTrouble);
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw CliError("cannot read plan file " + file + ": " + std::strerror(errno), kExitTrouble);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw CliError("cannot read plan file " + file + ": read error", kExitTrouble);
  }
  return text.str();
}

std::string planContentType(const std::string& file) {
  std::string extension = std::filesystem::path(file).extension().string();
  for (auto& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (extension == ".json") return "application/json";
  // YAML is the plan's native format (and nearly a superset of JSON), so any other name
  // is sent as YAML rather than refused here; the coordinator has the final word.
  return "application/yaml";
}

int submitCommand(Api& api, const std::string& file) {
  std::string plan = readPlanFile(file);
  const std::string path = "/api/v1/deployments";
  common::HttpResult result = api.rawPost(path, std::move(plan), planContentType(file));
  if (const auto* reply = std::get_if<common::HttpReply>(&result); reply && reply->status == 400) {
    json body = json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
    if (body.is_object() && body.contains("problems") && body["problems"].is_array() &&
        !body["problems"].empty()) {
      for (const auto& line : formatPlanProblems(file, body["problems"])) {
        std::cerr << line << '\n';
      }
      return kExitFailed;
    }
  }
  json body = api.accept(result, "POST", path, "");
  std::string id = fieldText(body, "id");
  if (id.empty()) {
    throw CliError("the coordinator accepted the plan but sent no deployment id", kExitTrouble);
  }
  printLine(id);
  return kExitOk;
}

int statusCommand(Api& api, const std::string& id, bool as_json) {
  const auto now = std::chrono::system_clock::now();
  if (id.empty()) {
    if (as_json) {
      printLine(api.getPretty("/api/v1/deployments"));
      return kExitOk;
    }
    const json list = api.getList("/api/v1/deployments", "deployments");
    if (list.empty()) {
      printLine("No deployments yet. Submit one with: flotilla submit PLAN.yaml");
      return kExitOk;
    }
    std::cout << renderDeploymentList(list, now) << std::flush;
    return kExitOk;
  }
  if (as_json) {
    printLine(api.getPretty(deploymentPath(id), id));
    return kExitOk;
  }
  json detail = api.get(deploymentPath(id), id);
  const json agents = agentsForView(api);
  for (const auto& line : renderDeploymentDetail(detail, now, agents)) std::cout << line << '\n';
  std::cout << std::flush;
  return kExitOk;
}

int actionCommand(Api& api, const std::string& id, const std::string& action,
                  const std::string& what, const std::string& body) {
  json detail = api.post(deploymentPath(id) + "/" + action, body, id);
  printLine(id + ": " + what + " accepted; state is now " + fieldText(detail, "state"));
  return kExitOk;
}

int approveCommand(Api& api, const std::string& id, const std::string& wave) {
  if (wave.empty()) return actionCommand(api, id, "approve", "approval", "");
  return actionCommand(api, id, "approve", "approval of wave " + wave, json{{"wave", wave}}.dump());
}

// ---- command line ---------------------------------------------------------------------------

void addSubmitCommand(CLI::App& app, Commands& commands) {
  auto file = std::make_shared<std::string>();
  auto* submit = app.add_subcommand(
      "submit", "Submit a plan file (YAML or JSON); prints the new deployment's id");
  submit->add_option("FILE", *file, "Plan file; .json is sent as JSON, anything else as YAML")
      ->required();
  submit->footer(R"(The coordinator checks the plan and either stores and starts it, or refuses it
with every problem listed, one per line on stderr as FILE:LINE:COLUMN: message
(nothing is stored then). On success only the id is printed, so scripts can do:
  id=$(flotilla submit checkout.yaml) && flotilla wait "$id" --timeout 30m

Exit: 0 submitted; 1 plan refused (or another coordinator error); 2 the file cannot be
read or the coordinator cannot be reached.)");
  commands.push_back({submit, [file](Api& api) { return submitCommand(api, *file); }});
}

void addStatusCommand(CLI::App& app, Commands& commands) {
  struct Args {
    std::string id;
    bool as_json = false;
  };
  auto args = std::make_shared<Args>();
  auto* status = app.add_subcommand("status", "Show all deployments, or one deployment in detail");
  status->add_option("ID", args->id, kIdHelp);
  status->add_flag("--json", args->as_json, "Print the coordinator's JSON instead of text");
  status->footer(R"(Without ID: one line per deployment, newest first, with columns
  ID  SERVICE  VERSION  STATE  WAVE (current wave, e.g. "2/3 prod-canary")  AGE
With ID: the deployment's state, then each wave and each of its clusters with their
state, current or last step (with the strategy step and traffic weight during a canary,
e.g. "analyze 2/3 50%"), from -> to version, and message (led by "agent unknown" or
"agent lost" when the cluster's agent has gone quiet), and what failed if something did.

States: pending, running, awaiting_approval (run 'flotilla approve'), paused,
rolling_back, and the final ones succeeded, rolled_back, failed (a rollback itself
failed: the clusters listed need a human), cancelled.)");
  commands.push_back(
      {status, [args](Api& api) { return statusCommand(api, args->id, args->as_json); }});
}

void addApproveCommand(CLI::App& app, Commands& commands) {
  struct Args {
    std::string id;
    std::string wave;
  };
  auto args = std::make_shared<Args>();
  auto* approve = app.add_subcommand(
      "approve", "Approve a wave waiting for approval ('approval: required' in the plan)");
  approve->add_option("ID", args->id, kIdHelp)->required();
  approve->add_option("WAVE", args->wave,
                      "Wave to approve; without it, the wave the deployment is waiting on");
  approve->footer(R"(Without WAVE the coordinator approves the wave the deployment is waiting on;
naming it makes sure you approve the wave you checked. 'flotilla status ID' shows
which wave waits (state awaiting_approval).

Exit: 0 approved; 1 the coordinator refused (unknown ID, nothing waiting, wrong wave);
2 the coordinator could not be reached.)");
  commands.push_back(
      {approve, [args](Api& api) { return approveCommand(api, args->id, args->wave); }});
}

void addActionCommands(CLI::App& app, Commands& commands) {
  struct Action {
    const char* name;
    const char* what;  // for the confirmation line
    const char* help;
    const char* footer;
  };
  static constexpr Action kActions[] = {
      {"rollback", "rollback",
       "Roll back every cluster a deployment reached to the previous version",
       "Clusters go back newest wave first; clusters the deployment never reached are not\n"
       "touched. Follow it with 'flotilla watch ID'."},
      {"pause", "pause", "Pause a deployment: nothing new starts until 'flotilla resume'",
       "A paused deployment keeps what it already rolled out. Continue it with\n"
       "'flotilla resume ID', or undo it with 'flotilla rollback ID'."},
      {"resume", "resume", "Resume a paused deployment where it stopped", ""},
      {"cancel", "cancel", "Cancel a deployment for good: it stops and will not continue",
       "Cancelling does not undo what was rolled out already; use 'flotilla rollback ID'\n"
       "for that."},
  };
  for (const auto& action : kActions) {
    struct Args {
      std::string id;
      std::string reason;
    };
    auto args = std::make_shared<Args>();
    const bool is_rollback = std::string(action.name) == "rollback";
    auto* sub = app.add_subcommand(action.name, action.help);
    sub->add_option("ID", args->id, kIdHelp)->required();
    if (is_rollback) {
      sub->add_option("--reason", args->reason,
                      "Why: recorded in the deployment's events and the audit trail, with your "
                      "token's name")
          ->type_name("TEXT");
    }
    std::string footer = action.footer;
    if (!footer.empty()) footer += "\n\n";
    footer +=
        "Prints one line with the deployment's new state.\n\n"
        "Exit: 0 accepted; 1 the coordinator refused (unknown ID, or not possible in the\n"
        "current state); 2 the coordinator could not be reached.";
    sub->footer(footer);
    commands.push_back({sub, [args, action, is_rollback](Api& api) {
                          const bool with_reason = is_rollback && !args->reason.empty();
                          return actionCommand(
                              api, args->id, action.name, action.what,
                              with_reason ? json{{"reason", args->reason}}.dump() : "");
                        }});
  }
}

}  // namespace flotilla::cli
