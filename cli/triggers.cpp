#include "cli/triggers.hpp"

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/api.hpp"
#include "cli/log.hpp"
#include "cli/render.hpp"
#include "common/http_client.hpp"
#include "common/rules.hpp"

namespace flotilla::cli {

using nlohmann::json;

int triggerCommand(Api& api, const TriggerArgs& args) {
  if (!common::isValidName(args.name)) {
    throw CliError("trigger name " + sanitize(args.name) + ": " + common::kNameRule, kExitTrouble);
  }
  if (!common::isValidVersion(args.version)) {
    throw CliError("version " + sanitize(args.version) + ": " + common::kVersionRule, kExitTrouble);
  }
  json body{{"version", args.version}};
  if (!args.changes_file.empty()) body["changes"] = readChangesFile(args.changes_file);
  if (!args.notes_url.empty()) {
    checkNotesUrl(args.notes_url);
    body["release_notes_url"] = args.notes_url;
  }
  json reply = api.post("/api/v1/triggers/" + common::urlEncode(args.name),
                        body.dump(-1, ' ', false, json::error_handler_t::replace), "");
  const std::string id = fieldText(reply, "id");
  if (id.empty()) {
    throw CliError("the coordinator accepted the trigger but sent no deployment id", kExitTrouble);
  }
  printLine(args.as_json ? reply.dump() : id);
  if (!args.as_json) {
    printNote("trigger " + args.name + " started " + id + " (" + args.version + " to " +
              fieldText(reply, "environment") + ")");
  }
  return kExitOk;
}

void addTriggerCommand(CLI::App& app, Commands& commands) {
  auto args = std::make_shared<TriggerArgs>();
  auto* trigger = app.add_subcommand(
      "trigger", "Start a policy trigger: its plan template, with VERSION, to its environment");
  trigger->add_option("NAME", args->name, "The trigger's name (`flotilla policy` lists them)")
      ->required();
  trigger->add_option("VERSION", args->version, "The version to deploy")->required();
  trigger
      ->add_option("--changes", args->changes_file,
                   "A file with the release's changelog, kept with the deployment")
      ->type_name("FILE");
  trigger->add_option("--notes", args->notes_url, "A link to the release notes (http(s)://)")
      ->type_name("URL");
  trigger->add_flag("--json", args->as_json, "Print the coordinator's answer as JSON");
  trigger->footer(R"(What CI calls on a merge (POST /api/v1/triggers/NAME {"version": "1.4.3"}): the
policy's trigger names a plan template, read with the policy; its version is
replaced with VERSION and it is deployed, with nobody to approve it, to the
trigger's environment only. The token needs the deployer role and must be one
of that environment's deployers. Prints the deployment id.
  flotilla trigger develop-merge 1.4.3
Exit: 0 started; 1 refused (unknown trigger, checks, promotion, a freeze).)");
  commands.push_back({trigger, [args](Api& api) { return triggerCommand(api, *args); }});
}

}  // namespace flotilla::cli
