// The incident freeze commands and the status banner.
#include "cli/freeze.hpp"

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/api.hpp"
#include "cli/render.hpp"
#include "common/http_client.hpp"

namespace flotilla::cli {

using nlohmann::json;

namespace {

std::string unfreezeHint(const json& freeze) {
  const std::string env = fieldText(freeze, "environment");
  return env.empty() ? "flotilla unfreeze" : "flotilla unfreeze --env " + sanitize(env);
}

std::string scopeText(const json& freeze) {
  const std::string env = fieldText(freeze, "environment");
  return env.empty() ? "the whole fleet" : "environment " + sanitize(env);
}

std::string freezeLine(const json& f) {
  return sanitize(fieldText(f, "id")) + " (" + scopeText(f) + ") by " +
         sanitize(fieldText(f, "by")) + " since " + sanitize(fieldText(f, "since")) + ": " +
         sanitize(fieldText(f, "reason"));
}

}  // namespace

std::vector<std::string> freezeBanner(const json& freezes) {
  std::vector<std::string> out;
  if (!freezes.is_array()) return out;
  for (const auto& f : freezes) {
    if (!f.is_object()) continue;
    out.push_back("FROZEN: " + freezeLine(f) +
                  "; new deployments are refused, running ones stop at their next step (`" +
                  unfreezeHint(f) + "` lifts it)");
  }
  return out;
}

int freezeCommand(Api& api, const std::string& reason, const std::string& environment) {
  json body{{"reason", reason}};
  if (!environment.empty()) body["environment"] = environment;
  const json f = api.post("/api/v1/freeze", body.dump(), "");
  printLine(fieldText(f, "id"));
  printNote(scopeText(f) +
            " is frozen: new deployments are refused, running ones stop at their "
            "next step boundary (rollbacks still run). Lift it with: " +
            unfreezeHint(f));
  return kExitOk;
}

int unfreezeCommand(Api& api, const std::string& environment) {
  const std::string path = environment.empty()
                               ? "/api/v1/freeze"
                               : "/api/v1/freeze?environment=" + common::urlEncode(environment);
  const json f = api.del(path);
  printLine(sanitize(fieldText(f, "id")) + " lifted: " + scopeText(f) +
            " may deploy again; frozen deployments go on from where they stopped");
  return kExitOk;
}

int freezeShowCommand(Api& api, const std::string& id, bool as_json) {
  const std::string path =
      id.empty() ? "/api/v1/freeze" : "/api/v1/freezes/" + common::urlEncode(id);
  if (as_json) {
    printLine(api.getPretty(path));
    return kExitOk;
  }
  const json body = api.get(path);
  if (id.empty()) {
    const json& list = body.contains("freezes") ? body["freezes"] : json::array();
    if (!list.is_array() || list.empty()) {
      printLine("Not frozen.");
      return kExitOk;
    }
    for (const auto& line : freezeBanner(list)) printLine(line);
    return kExitOk;
  }
  printLine(freezeLine(body));
  if (fieldText(body, "lifted_at").empty()) {
    printLine("active");
  } else {
    printLine("lifted by " + sanitize(fieldText(body, "lifted_by")) + " at " +
              sanitize(fieldText(body, "lifted_at")));
  }
  if (body.contains("notes") && body["notes"].is_array()) {
    for (const auto& n : body["notes"]) {
      printLine("note by " + sanitize(fieldText(n, "by")) + " at " + sanitize(fieldText(n, "at")) +
                ": " + sanitize(fieldText(n, "text")));
    }
  }
  return kExitOk;
}

int freezeNoteCommand(Api& api, const std::string& id, const std::string& text) {
  const json f = api.post("/api/v1/freezes/" + common::urlEncode(id) + "/notes",
                          json{{"text", text}}.dump(), "");
  const size_t notes = f.contains("notes") && f["notes"].is_array() ? f["notes"].size() : 0;
  printLine(sanitize(fieldText(f, "id")) + ": note added (" + std::to_string(notes) +
            (notes == 1 ? " note)" : " notes)"));
  return kExitOk;
}

void addFreezeCommands(CLI::App& app, Commands& commands) {
  struct Args {
    std::string reason;
    std::string environment;
    std::string id;
    std::string text;
    bool as_json = false;
  };
  auto args = std::make_shared<Args>();
  auto* freeze = app.add_subcommand(
      "freeze",
      "Freeze deployments during an incident: the whole fleet, or one environment "
      "(admin)");
  freeze
      ->add_option("--reason", args->reason,
                   "Why (the incident), up to 500 bytes; required to freeze")
      ->type_name("TEXT");
  freeze
      ->add_option("--env", args->environment,
                   "Freeze only this environment (the agents' environment label); default: "
                   "the whole fleet")
      ->type_name("ENV");
  freeze->require_subcommand(0, 1);
  freeze->footer(R"(While a freeze is active:
  - new submissions whose clusters it covers are refused (exit 1, naming the freeze,
    who froze and since when);
  - running deployments it covers stop at their next step boundary: steps in flight
    finish, nothing new starts (no next step, no next wave); they show state frozen;
  - rollbacks still run: 'flotilla rollback', and automatic ones (a failed step or
    analysis).
'flotilla unfreeze [--env ENV]' lifts it and the frozen deployments go on from where they
stopped. A freeze is durable (a coordinator restart keeps it), shown by every
'flotilla status', on /metrics (flotilla_freeze_active) and in the audit trail.
An environment freeze covers a deployment when any of its clusters carries the agent
label environment=ENV. Only the freeze's id is printed on stdout:
  id=$(flotilla freeze --reason "INC-42: database failover" --env production)
  flotilla freeze note "$id" "post-mortem: https://wiki.example.com/INC-42"

Exit: 0 frozen; 1 refused (not an admin, that scope already frozen, a reason over 500
bytes or with control characters); 100+ the command line is wrong (no --reason).)");
  auto* show = freeze->add_subcommand(
      "show", "Show the active freezes, or one freeze (active or lifted) with its notes");
  show->add_option("ID", args->id, "Freeze id, as printed by 'flotilla freeze' (e.g. freeze-2)");
  show->add_flag("--json", args->as_json, "Print the coordinator's JSON");
  commands.push_back(
      {show, [args](Api& api) { return freezeShowCommand(api, args->id, args->as_json); }});
  auto* note =
      freeze->add_subcommand("note", "Add a note to a freeze, e.g. the post-mortem link (admin)");
  note->add_option("ID", args->id, "Freeze id (e.g. freeze-2)")->required();
  note->add_option("TEXT", args->text, "The note, up to 2000 bytes")->required();
  commands.push_back(
      {note, [args](Api& api) { return freezeNoteCommand(api, args->id, args->text); }});
  // --reason is required to freeze, not to show or note: checked once parsing is done.
  freeze->callback([show, note, args] {
    if (show->parsed() || note->parsed()) {
      if (!args->reason.empty() || !args->environment.empty()) {
        throw CLI::ValidationError("--reason/--env",
                                   "belong to 'flotilla freeze' itself, not to show or note");
      }
      return;
    }
    if (args->reason.empty()) throw CLI::RequiredError("--reason");
  });
  // After its subcommands: the first parsed entry of `commands` runs.
  commands.push_back(
      {freeze, [args](Api& api) { return freezeCommand(api, args->reason, args->environment); }});

  auto* unfreeze =
      app.add_subcommand("unfreeze", "Lift a freeze: the fleet-wide one, or --env ENV's (admin)");
  unfreeze->add_option("--env", args->environment, "Lift this environment's freeze")
      ->type_name("ENV");
  unfreeze->footer(
      R"(Frozen deployments go on from where they stopped: the next step, the next wave.
Without --env only the fleet-wide freeze is lifted; an environment's needs --env (the
refusal lists the active ones).)");
  commands.push_back(
      {unfreeze, [args](Api& api) { return unfreezeCommand(api, args->environment); }});
}

}  // namespace flotilla::cli
