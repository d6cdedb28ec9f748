// The deployment commands and their help: submit, status, approve, promote, retry, rollback,
// pause, resume, cancel, watch-end.
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
#include "cli/freeze.hpp"
#include "cli/log.hpp"
#include "cli/render.hpp"
#include "common/http_client.hpp"
#include "common/rules.hpp"

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

namespace {

std::string joinedTexts(const json& items, const char* separator = ", ") {
  std::string out;
  if (!items.is_array()) return out;
  for (const auto& item : items) {
    if (!item.is_string() && !item.is_number()) continue;
    const std::string text = item.is_string() ? sanitize(item.get<std::string>()) : item.dump();
    out += (out.empty() ? "" : separator) + text;
  }
  return out;
}

// "known clusters: a, b (and 3 more)" under a refusal that lists clusters nobody registered.
std::string knownClustersLine(const json& body) {
  if (!body.contains("known_clusters") || !body["known_clusters"].is_array()) return "";
  const json& known = body["known_clusters"];
  if (known.empty()) return "known clusters: none (no agent has registered yet)";
  std::string line = "known clusters: " + joinedTexts(known);
  const auto total = body.value("known_clusters_total", json(known.size()));
  if (total.is_number_unsigned() && total.get<size_t>() > known.size()) {
    line += " (and " + std::to_string(total.get<size_t>() - known.size()) + " more)";
  }
  return line;
}

std::string stepText(const json& step) {
  std::string text = fieldText(step, "step");
  if (step.contains("weight")) text += " " + fieldText(step, "weight") + "%";
  if (step.contains("duration")) text += " " + fieldText(step, "duration");
  return text;
}

std::string gatesText(const json& wave) {
  std::vector<std::string> gates;
  if (wave.contains("approval") && wave["approval"].is_object()) {
    const json& a = wave["approval"];
    gates.push_back("approval by " + fieldText(a, "required") + " (counts for " +
                    fieldText(a, "expires") + ")");
  }
  if (wave.contains("strategy") && wave["strategy"].is_object()) {
    const json& st = wave["strategy"];
    std::string text = "strategy " + fieldText(st, "type");
    if (st.contains("steps") && st["steps"].is_array() && !st["steps"].empty()) {
      text += " " + joinedTexts(st["steps"], "/") + "%";
    }
    if (st.contains("pause") && st["pause"].is_string())
      text += ", pause " + fieldText(st, "pause");
    gates.push_back(text);
  }
  if (wave.contains("bake") && wave["bake"].is_string())
    gates.push_back("bake " + fieldText(wave, "bake"));
  if (wave.contains("max_parallel") && wave["max_parallel"].is_number()) {
    gates.push_back("max_parallel " + fieldText(wave, "max_parallel"));
  }
  std::string out;
  for (const auto& g : gates) out += (out.empty() ? "" : "; ") + g;
  return out.empty() ? "none" : out;
}

}  // namespace

std::vector<std::string> renderDryRun(const json& body) {
  std::vector<std::string> lines;
  lines.push_back(fieldText(body, "service") + " " + fieldText(body, "version") + " (" +
                  fieldText(body, "driver") + " driver): dry run, nothing was stored");
  if (body.contains("commands") && body["commands"].is_object()) {
    for (const char* name : {"build", "apply", "verify", "rollback"}) {
      const std::string command = fieldText(body["commands"], name);
      if (!command.empty()) lines.push_back("  " + std::string(name) + ": " + command);
    }
    lines.push_back("  timeout: " + fieldText(body["commands"], "timeout"));
  }
  const json waves =
      body.contains("waves") && body["waves"].is_array() ? body["waves"] : json::array();
  for (size_t i = 0; i < waves.size(); ++i) {
    const json& wave = waves[i];
    std::string selector;
    if (wave.contains("selector") && wave["selector"].is_object()) {
      for (const auto& [k, v] : wave["selector"].items()) {
        selector += (selector.empty() ? "" : ",") + sanitize(k) + "=" +
                    (v.is_string() ? sanitize(v.get<std::string>()) : "");
      }
    }
    lines.push_back("wave " + std::to_string(i + 1) + "/" + std::to_string(waves.size()) + " " +
                    fieldText(wave, "name") + ": " + joinedTexts(wave.value("clusters", json())) +
                    (selector.empty() ? "" : " (selector " + selector + ")"));
    std::string steps;
    if (wave.contains("steps") && wave["steps"].is_array()) {
      for (const auto& step : wave["steps"]) {
        if (step.is_object()) steps += (steps.empty() ? "" : ", ") + stepText(step);
      }
    }
    lines.push_back("  steps: " + steps);
    lines.push_back("  gates: " + gatesText(wave));
  }
  return lines;
}

int submitCommand(Api& api, const std::string& file, const SubmitOptions& options) {
  if (!options.hotfix_reason.empty() && !options.hotfix) {
    throw CliError("--reason is the reason of a hotfix: give --hotfix too", kExitTrouble);
  }
  if (options.hotfix && !options.hotfix_reason.empty()) {
    common::Status reason = common::checkHotfixReason(options.hotfix_reason, "--reason");
    if (!reason.ok()) throw CliError(reason.message(), kExitTrouble);
  }
  std::string plan = readPlanFile(file);
  std::string content_type = planContentType(file);
  if (!options.changes_file.empty() || !options.notes_url.empty()) {
    // The plan with its release's description, in one JSON object (the submission form).
    json form{{"plan", std::move(plan)}};
    if (!options.changes_file.empty()) form["changes"] = readChangesFile(options.changes_file);
    if (!options.notes_url.empty()) {
      checkNotesUrl(options.notes_url);
      form["release_notes_url"] = options.notes_url;
    }
    // The plan's bytes are sent as they are; a file that is not UTF-8 is the coordinator's to
    // refuse with its position, as for a plan sent alone.
    plan = form.dump(-1, ' ', false, json::error_handler_t::replace);
    content_type = kSubmissionMediaType;
  }
  std::string path = std::string("/api/v1/deployments") + (options.dry_run     ? "?dry_run=true"
                                                           : options.supersede ? "?supersede=true"
                                                           : !options.queue    ? "?queue=false"
                                                                               : "");
  if (options.hotfix) {
    path += std::string(path.find('?') == std::string::npos ? "?" : "&") + "hotfix=true";
    if (!options.hotfix_reason.empty()) {
      path += "&hotfix_reason=" + common::urlEncode(options.hotfix_reason);
    }
  }
  common::HttpResult result = api.rawPost(path, std::move(plan), content_type);
  if (const auto* reply = std::get_if<common::HttpReply>(&result); reply && reply->status == 400) {
    json body = json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
    if (body.is_object() && body.contains("problems") && body["problems"].is_array() &&
        !body["problems"].empty()) {
      for (const auto& line : formatPlanProblems(file, body["problems"])) {
        std::cerr << line << '\n';
      }
      const std::string known = knownClustersLine(body);
      if (!known.empty()) std::cerr << known << '\n';
      return kExitFailed;
    }
  }
  json body = api.accept(result, "POST", path, "");
  if (options.dry_run) {
    if (options.as_json) {
      printLine(body.dump(2));
    } else {
      for (const auto& line : renderDryRun(body)) std::cout << line << '\n';
      std::cout << std::flush;
    }
    return kExitOk;
  }
  std::string id = fieldText(body, "id");
  if (id.empty()) {
    throw CliError("the coordinator accepted the plan but sent no deployment id", kExitTrouble);
  }
  printLine(options.as_json ? json{{"id", id}}.dump() : id);
  if (std::string ahead = fieldText(body, "waits_for"); !ahead.empty()) {
    // stdout stays the id alone, for scripts.
    std::cerr << id << " is queued behind " << ahead
              << " (one deployment per service at a time); it starts when that one finishes\n";
  }
  return kExitOk;
}

int statusCommand(Api& api, const std::string& id, bool as_json) {
  const auto now = std::chrono::system_clock::now();
  if (id.empty()) {
    if (as_json) {
      printLine(api.getPretty("/api/v1/deployments"));
      return kExitOk;
    }
    const json answer = api.get("/api/v1/deployments");
    for (const auto& line : freezeBanner(answer.value("freezes", json::array()))) printLine(line);
    const json list = answer.contains("deployments") && answer["deployments"].is_array()
                          ? answer["deployments"]
                          : json::array();
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
  for (const auto& line : freezeBanner(detail.value("freezes", json::array()))) printLine(line);
  const json agents = agentsForView(api);
  for (const auto& line : renderDeploymentDetail(detail, now, agents)) std::cout << line << '\n';
  for (const auto& line : renderReleaseLog(detail)) std::cout << line << '\n';
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
  auto options = std::make_shared<SubmitOptions>();
  auto* submit = app.add_subcommand(
      "submit", "Submit a plan file (YAML or JSON); prints the new deployment's id");
  submit->add_option("FILE", *file, "Plan file; .json is sent as JSON, anything else as YAML")
      ->required();
  submit->add_flag("--dry-run", options->dry_run,
                   "Check the plan and resolve every wave's clusters, print what would run; "
                   "store and start nothing");
  submit->add_flag("--json", options->as_json,
                   "Print the coordinator's JSON answer (the dry run's, or {\"id\": ...})");
  submit->footer(R"(The coordinator checks the plan and either stores and starts it, or refuses it
with every problem listed, one per line on stderr as FILE:LINE:COLUMN: message
(nothing is stored then). Every wave's clusters are resolved against the agents that
have registered: a cluster name nobody registered, or a selector that matches no
registered cluster, is refused with the closest known name or the label values that
exist, and the known clusters are listed. On success only the id is printed, so
scripts can do:
  id=$(flotilla submit checkout.yaml) && flotilla wait "$id" --timeout 30m

One deployment per service at a time: while another deployment of the service is in
flight on any of the same clusters (or the service at all, when a wave picks clusters
by selector), the new one is stored as queued (stderr says behind which) and starts
by itself when that one ends, whatever way it ends. --no-queue refuses instead (exit 1,
naming the one in flight); --supersede stops that one (steps in flight are aborted),
rolls it back ("superseded by ID"), then starts the new one.

--hotfix --reason TEXT submits a hotfix (or give hotfix: {reason: TEXT} in the plan;
--reason wins): it supersedes the deployment of the service in flight (as --supersede),
and under a policy with hotfix rules its waves skip the checks the policy lets a hotfix
skip, need only hotfix.approvals approvers (at most what the environment asks, at least
one), and pass an incident freeze if hotfix.allowed_during_freeze is true. A policy
without hotfix rules refuses hotfixes. A hotfix without a reason is refused. It is
marked in 'flotilla status', its events and 'flotilla log'.

--dry-run prints each wave's clusters, the steps each cluster runs and the gates
between (approval, strategy, bake, max_parallel), and stores nothing.

--changes FILE and --notes URL describe the release for the deployment log: the
changelog text and the release notes' link are stored with the deployment and
shown by 'flotilla status ID' and 'flotilla log'. A file over 64 KiB, not UTF-8
text, or a URL that is not http(s) is refused before anything is sent.

Exit: 0 submitted (or the dry run passed); 1 plan refused (or another coordinator
error); 2 the file cannot be read or the coordinator cannot be reached.)");
  auto* no_queue = submit->add_flag_function(
      "--no-queue", [options](int64_t) { options->queue = false; },
      "Refuse instead of queueing when a deployment of the service is in flight");
  submit
      ->add_option("--changes", options->changes_file,
                   "The release's changelog: a UTF-8 text file of at most 64 KiB, kept with the "
                   "deployment for 'flotilla log'")
      ->type_name("FILE");
  submit
      ->add_option("--notes", options->notes_url,
                   "A link to the release notes (http:// or https://), kept with the deployment")
      ->type_name("URL");
  submit
      ->add_flag("--supersede", options->supersede,
                 "Stop the deployment of the service in flight, roll it back, then start")
      ->excludes(no_queue);
  auto* hotfix =
      submit
          ->add_flag("--hotfix", options->hotfix,
                     "A hotfix: the policy's hotfix rules apply and it supersedes the deployment "
                     "in flight; needs --reason (or hotfix.reason in the plan)")
          ->excludes(no_queue);
  submit
      ->add_option("--reason", options->hotfix_reason,
                   "Why the hotfix (one line, at most 500 bytes); kept with the deployment")
      ->type_name("TEXT")
      ->needs(hotfix);
  commands.push_back(
      {submit, [file, options](Api& api) { return submitCommand(api, *file, *options); }});
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
  status->footer(R"(While an incident freeze is active, every status output starts with a line
  FROZEN: freeze-N (SCOPE) by WHO since TIME: REASON; ...
Without ID: one line per deployment, newest first, with columns
  ID  SERVICE  VERSION  STATE  WAVE (current wave, e.g. "2/3 prod-canary")  AGE
With ID: the deployment's state, then each wave and each of its clusters with their
state, current or last step (with the strategy step and traffic weight during a canary,
e.g. "analyze 2/3 50%"), from -> to version, and message (led by "agent unknown" or
"agent lost" when the cluster's agent has gone quiet), and what failed if something did.
Below the table, "Last analysis": per cluster, its last analysis window (or bake slice)
against the thresholds in force, the window's verdict and the health-check streak, e.g.
  prod-eu-1  analysis 2/3: 2.1.0 err 0.8% p95 12 ms (420 req) vs 2.0.0 err 0.5% p95 10 ms
  (400 req); limits err 1.0%, p95 20 ms, min 20 req; pass · health 0/3 failing
Then "Verification" for a plan whose steps.verify is a checklist: per cluster, each check
passed (✓), failed (✗ with its exit code or "timed out"), running (…) or not run (-), e.g.
  prod-eu-1  verify: health ✓ smoke ✗ (exit 1) integration -

States: pending, queued (waits for another deployment of its service: waits_for),
running, awaiting_approval (run 'flotilla approve'), blocked_by_checks (the release
lacks checks its environment requires), paused, frozen (an incident freeze holds it
at a step boundary: 'flotilla unfreeze' lets it go on), watching (at 100% everywhere,
the post-deploy watch runs; the "Watch" line shows the tier and the time left;
'flotilla watch-end ID' ends it), rolling_back, and the final ones succeeded,
rolled_back, failed (a rollback itself failed: the clusters listed need a human),
cancelled.)");
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
      {"cancel", "cancel",
       "Cancel a deployment for good: stop it and roll back every cluster it reached",
       "Steps in flight are aborted; then every cluster the new version reached (in any\n"
       "wave) is rolled back, newest wave first, and the deployment ends cancelled with\n"
       "every cluster on a known version. If a rollback fails it ends failed, like any\n"
       "rollback: 'flotilla rollback ID' retries it. A queued deployment is cancelled at\n"
       "once (nothing ran); a deployment already rolling back cannot be cancelled.\n"
       "'flotilla rollback ID' of a cancelled deployment also works (it ends rolled_back)."},
      {"watch-end", "end of the watch",
       "End the post-deploy watch of a watching deployment now: it succeeds",
       "After 100% everywhere a deployment placed in an environment with a watch (the\n"
       "policy's environments.NAME.watch tiers) is 'watching': health checks, metric\n"
       "analysis and the plan's steps.watch keep running with the automatic rollback\n"
       "armed until the last tier ends. watch-end stops the watch stages in flight and\n"
       "the deployment succeeds at once (events deployment.watch_ending, watch_ended,\n"
       "naming you; audited). A failure reported before the stop still rolls back."},
  };
  for (const auto& action : kActions) {
    struct Args {
      std::string id;
      std::string reason;
    };
    auto args = std::make_shared<Args>();
    const bool takes_reason =
        std::string(action.name) == "rollback" || std::string(action.name) == "watch-end";
    auto* sub = app.add_subcommand(action.name, action.help);
    sub->add_option("ID", args->id, kIdHelp)->required();
    if (takes_reason) {
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
    commands.push_back({sub, [args, action, takes_reason](Api& api) {
                          const bool with_reason = takes_reason && !args->reason.empty();
                          return actionCommand(
                              api, args->id, action.name, action.what,
                              with_reason ? json{{"reason", args->reason}}.dump() : "");
                        }});
  }
}

void addOverrideCommands(CLI::App& app, Commands& commands) {
  struct PromoteArgs {
    std::string id;
    std::string wave;
    std::string reason;
  };
  auto promote_args = std::make_shared<PromoteArgs>();
  auto* promote = app.add_subcommand(
      "promote", "Skip the analysis or bake the running wave's clusters are in now");
  promote->add_option("ID", promote_args->id, kIdHelp)->required();
  promote
      ->add_option("--wave", promote_args->wave,
                   "Only when WAVE is the running wave (refused otherwise): makes sure you "
                   "promote the wave you checked")
      ->type_name("WAVE");
  promote
      ->add_option("--reason", promote_args->reason,
                   "Why: recorded in the deployment's events and the audit trail, with your "
                   "token's name")
      ->type_name("TEXT");
  promote->footer(R"(Like Argo Rollouts' promote: every cluster of the running wave whose step in
flight is an analysis (canary: new replicas compared with the stable ones) or a
bake has that step stopped and counted as passed, and goes on to its next step
(for example the next traffic weight). Useful when the analysis cannot judge, as
with too little traffic in staging. A failure the agent reported before the promote
reached it still fails (and rolls back). Promote never passes an approval gate:
a wave waiting for approval still needs 'flotilla approve'. Each promoted cluster
gets a cluster.promoted event naming you ('flotilla events ID').

Prints one line with the deployment's new state.

Exit: 0 promoted; 1 the coordinator refused (unknown ID, --wave is not the running
wave, nothing to promote: no cluster analyzing or baking); 2 the coordinator could
not be reached.)");
  commands.push_back({promote, [promote_args](Api& api) {
                        json body = json::object();
                        if (!promote_args->wave.empty()) body["wave"] = promote_args->wave;
                        if (!promote_args->reason.empty()) body["reason"] = promote_args->reason;
                        const std::string what = promote_args->wave.empty()
                                                     ? std::string("promote")
                                                     : "promote of wave " + promote_args->wave;
                        return actionCommand(api, promote_args->id, "promote", what,
                                             body.empty() ? "" : body.dump());
                      }});

  struct RetryArgs {
    std::string id;
    std::string cluster;
    std::string reason;
  };
  auto retry_args = std::make_shared<RetryArgs>();
  auto* retry = app.add_subcommand(
      "retry", "Run a cluster's failed step again (plans with 'on_step_failure: hold')");
  retry->add_option("ID", retry_args->id, kIdHelp)->required();
  retry->add_option("CLUSTER", retry_args->cluster, "The cluster whose failed step to run again")
      ->required();
  retry
      ->add_option("--reason", retry_args->reason,
                   "Why: recorded in the deployment's events and the audit trail, with your "
                   "token's name")
      ->type_name("TEXT");
  retry->footer(R"(With 'on_step_failure: hold' in the plan, a failed or timed-out build, apply,
verify (or process-driver deploy, shift, roll, finalize) step does not roll back:
the deployment is paused, its reason naming the cluster, the step and its message.
'flotilla retry ID CLUSTER' runs that step again on the cluster as a new attempt
(the agent runs it afresh; an earlier attempt is never run again) and resumes the
deployment once no cluster is held; 'flotilla rollback ID' rolls back instead.
A step is retried at most 3 times. Analysis and bake verdicts, health failures and
lost agents always roll back.

Prints one line with the deployment's new state.

Exit: 0 retried; 1 the coordinator refused (unknown ID or cluster, the plan does not
hold failed steps, the cluster has no failed step, 3 retries used, the deployment
ended); 2 the coordinator could not be reached.)");
  commands.push_back({retry, [retry_args](Api& api) {
                        json body{{"cluster", retry_args->cluster}};
                        if (!retry_args->reason.empty()) body["reason"] = retry_args->reason;
                        return actionCommand(api, retry_args->id, "retry",
                                             "retry on " + retry_args->cluster, body.dump());
                      }});
}

}  // namespace flotilla::cli
