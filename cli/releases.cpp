#include "cli/releases.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/api.hpp"
#include "cli/render.hpp"
#include "common/http_client.hpp"

namespace flotilla::cli {

using nlohmann::json;

namespace {

std::string releasePath(const std::string& service, const std::string& version) {
  return "/api/v1/releases/" + common::urlEncode(service) + "/" + common::urlEncode(version);
}

// "coverage ✓ 84.2 (alice) https://ci/..." for a reported check.
std::string reportLine(const json& check) {
  std::string line =
      std::string(check.value("passed", false) ? "✓ " : "✗ ") + fieldText(check, "name");
  if (!fieldText(check, "value").empty()) line += " = " + fieldText(check, "value");
  line += check.value("passed", false) ? " passed" : " failed";
  if (!fieldText(check, "by").empty()) line += " (" + fieldText(check, "by") + ", ";
  line += fieldText(check, "at") + ")";
  if (!fieldText(check, "url").empty()) line += " " + fieldText(check, "url");
  return line;
}

void printChecklist(const json& release) {
  printLine("Release " + fieldText(release, "service") + " " + fieldText(release, "version"));
  const json& reported = release.contains("checks") && release["checks"].is_array()
                             ? release["checks"]
                             : json::array();
  if (reported.empty()) {
    printLine("  no check reported yet");
  } else {
    printLine("Reported:");
    for (const auto& check : reported) printLine("  " + reportLine(check));
  }
  if (release.contains("artifact") && release["artifact"].is_object()) {
    const json& artifact = release["artifact"];
    printLine("Artifact: " + fieldText(artifact, "digest") + " (built by " +
              fieldText(artifact, "deployment") + ", " + fieldText(artifact, "at") + ")");
    for (const auto& previous : artifact.value("previous", json::array())) {
      if (previous.is_string()) printLine("  before: " + sanitize(previous.get<std::string>()));
    }
  } else {
    printLine("Artifact: none reported");
  }
  for (const auto& s : release.value("succeeded", json::array())) {
    const std::string digest = fieldText(s, "artifact");
    printLine("Succeeded in " + fieldText(s, "environment") + ": " + fieldText(s, "at") + " by " +
              fieldText(s, "deployment") + (digest.empty() ? "" : " with " + digest));
  }
  const json& envs = release.contains("environments") && release["environments"].is_array()
                         ? release["environments"]
                         : json::array();
  for (const auto& env : envs) {
    printLine(fieldText(env, "name") + ": " + (env.value("ready", false) ? "ready" : "blocked"));
    if (env.contains("promotion") && env["promotion"].is_object()) {
      const json& p = env["promotion"];
      const bool met = p.value("met", false);
      printLine(std::string("  ") + (met ? "✓ " : "✗ ") + "promoted from " + fieldText(p, "from") +
                " after " + fieldText(p, "soak") +
                (met ? "" : " (" + fieldText(p, "missing") + ")"));
    }
    const json& checks =
        env.contains("checks") && env["checks"].is_array() ? env["checks"] : json::array();
    if (checks.empty()) printLine("  requires no check");
    for (const auto& item : checks) {
      const bool met = item.value("met", false);
      std::string line = std::string("  ") + (met ? "✓ " : "✗ ") + fieldText(item, "check");
      if (!met) line += " (" + fieldText(item, "why") + ")";
      printLine(line);
    }
  }
}

}  // namespace

int checksReportCommand(Api& api, const CheckReportArgs& args) {
  json body{{"name", args.name}, {"passed", args.passed}};
  if (args.value) body["value"] = *args.value;
  if (!args.url.empty()) body["url"] = args.url;
  json release = api.post(releasePath(args.service, args.version) + "/checks", body.dump(), "");
  printLine(args.service + " " + args.version + ": " + args.name +
            (args.passed ? " passed" : " failed") + " recorded");
  for (const auto& env : release.value("environments", json::array())) {
    if (!env.value("ready", false)) {
      std::string missing;
      for (const auto& item : env.value("checks", json::array())) {
        if (!item.value("met", false)) {
          missing += (missing.empty() ? "" : ", ") + fieldText(item, "check");
        }
      }
      printLine("  " + fieldText(env, "name") + " still needs: " + missing);
    }
  }
  return kExitOk;
}

int releaseShowCommand(Api& api, const std::string& service, const std::string& version,
                       bool as_json) {
  if (as_json) {
    printLine(api.getPretty(releasePath(service, version)));
    return kExitOk;
  }
  printChecklist(api.get(releasePath(service, version)));
  return kExitOk;
}

void addReleaseCommands(CLI::App& app, Commands& commands) {
  auto args = std::make_shared<CheckReportArgs>();
  auto value = std::make_shared<double>(0);
  auto* checks = app.add_subcommand("checks", "Report CI checks against a release (deployer)");
  checks->require_subcommand(1);
  auto* report = checks->add_subcommand(
      "report", "Record a check's result for SERVICE VERSION (tests, coverage, lint, ...)");
  report->add_option("SERVICE", args->service, "Service name")->required();
  report->add_option("VERSION", args->version, "Version")->required();
  report->add_option("NAME", args->name, "Check name: 1 to 63 characters from [a-z0-9_]")
      ->required();
  auto* passed = report->add_flag("--passed", args->passed, "The check passed");
  auto failed = std::make_shared<bool>(false);  // CLI11 keeps a reference: not a local
  auto* failed_flag = report->add_flag("--failed", *failed, "The check failed");
  passed->excludes(failed_flag);
  auto* value_option =
      report->add_option("--value", *value, "Its figure, e.g. coverage 84.2")->type_name("N");
  report->add_option("--url", args->url, "Link to the CI job or report (http:// or https://)")
      ->type_name("URL");
  report->footer(R"(The policy names the checks each environment requires, some with a threshold
("coverage >= 80"). A wave whose environment requires a check the release has
not passed holds in blocked_by_checks until it is reported; the latest report
of a check counts. Exactly one of --passed and --failed.
  flotilla checks report checkout 2.4.0 tests --passed --url https://ci.example/run/812
  flotilla checks report checkout 2.4.0 coverage --passed --value 84.2)");
  report->callback([passed, failed_flag] {
    if (passed->count() == 0 && failed_flag->count() == 0) {
      throw CLI::ValidationError("one of --passed and --failed is required");
    }
  });
  commands.push_back({report, [args, value, value_option, failed](Api& api) {
                        if (value_option->count() > 0) args->value = *value;
                        return checksReportCommand(api, *args);
                      }});

  struct ShowArgs {
    std::string service;
    std::string version;
    bool as_json = false;
  };
  auto show_args = std::make_shared<ShowArgs>();
  auto* release = app.add_subcommand("release", "Show a release's checks, artifact and promotion");
  release->require_subcommand(1);
  auto* show = release->add_subcommand(
      "show",
      "A release's artifact digest, where it succeeded, its reported checks, and per\n"
      "environment each required check and its promotion rule ✓ or ✗");
  show->add_option("SERVICE", show_args->service, "Service name")->required();
  show->add_option("VERSION", show_args->version, "Version")->required();
  show->add_flag("--json", show_args->as_json, "Print the coordinator's JSON");
  commands.push_back({show, [show_args](Api& api) {
                        return releaseShowCommand(api, show_args->service, show_args->version,
                                                  show_args->as_json);
                      }});
}

}  // namespace flotilla::cli
