// The deployment log commands and their help: note, log; and the changelog file of `submit
// --changes`.
#include "cli/log.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/api.hpp"
#include "cli/render.hpp"
#include "common/http_client.hpp"
#include "common/rules.hpp"

namespace flotilla::cli {

using nlohmann::json;

std::string readChangesFile(const std::string& file) {
  std::error_code error;
  if (std::filesystem::is_directory(file, error)) {
    throw CliError("cannot read changes file " + file + ": it is a directory", kExitTrouble);
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw CliError("cannot read changes file " + file + ": " + std::strerror(errno), kExitTrouble);
  }
  // One byte past the limit is enough to know it is too long; a huge file is never read whole.
  std::string text(common::kMaxChangesBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) throw CliError("cannot read changes file " + file + ": read error", kExitTrouble);
  text.resize(static_cast<size_t>(in.gcount()));
  common::Status ok = common::checkFreeText(text, "changes file " + file, common::kMaxChangesBytes);
  if (!ok.ok()) throw CliError(ok.message(), kExitTrouble);
  return text;
}

void checkNotesUrl(const std::string& url) {
  if (!common::isValidHttpUrl(url)) {
    throw CliError("--notes must be an http:// or https:// URL of at most " +
                       std::to_string(common::kMaxUrlLength) + " characters without spaces",
                   kExitFailed);
  }
}

// ---- Markdown ---------------------------------------------------------------------------------

std::string markdownInline(std::string_view text) {
  static constexpr std::string_view kPunctuation = "\\`*_{}[]()#+-.!|~\"'=:";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (c == '&') {
      out += "&amp;";
    } else if (c == '\n' || c == '\r' || c == '\t') {
      out += ' ';
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += '?';
    } else {
      if (kPunctuation.find(c) != std::string_view::npos) out += '\\';
      out += c;
    }
  }
  return out;
}

std::string markdownFence(std::string_view text) {
  size_t longest = 0;
  for (size_t i = 0, run = 0; i < text.size(); ++i) {
    run = text[i] == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  const std::string fence(std::max<size_t>(3, longest + 1), '`');
  std::string out = fence + "text\n";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\r') continue;  // CRLF line ends
    out += (byte < 0x20 && c != '\n' && c != '\t') || byte == 0x7f ? '?' : c;
  }
  if (!out.empty() && out.back() != '\n') out += '\n';
  return out + fence + "\n";
}

std::string markdownLink(std::string_view url) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "<";
  for (char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f ||
        std::string_view("<>\\`\"'()[]|*_").find(c) != std::string_view::npos) {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out + ">";
}

// ---- The log's entries ------------------------------------------------------------------------

namespace {

const json& arrayAt(const json& object, const char* key) {
  static const json kEmpty = json::array();
  if (!object.is_object() || !object.contains(key) || !object[key].is_array()) return kEmpty;
  return object[key];
}

std::string joined(const json& items, const char* separator = ", ") {
  std::string out;
  for (const auto& item : items) {
    if (item.is_string()) out += (out.empty() ? "" : separator) + item.get<std::string>();
  }
  return out;
}

std::string textAt(const json& object, const char* key) {
  return object.is_object() && object.contains(key) && object[key].is_string()
             ? object[key].get<std::string>()
             : "";
}

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// "2.0.0 -> 2.1.0", with every previous version when clusters came from several.
std::string versionsText(const json& entry) {
  const std::string previous = joined(arrayAt(entry, "previous_versions"), " / ");
  return (previous.empty() ? std::string("(new)") : previous) + " -> " + textAt(entry, "version");
}

std::string issueText(const json& issue) {
  std::string where = textAt(issue, "cluster");
  if (!textAt(issue, "step").empty()) where += (where.empty() ? "" : " ") + textAt(issue, "step");
  return textAt(issue, "type") + (where.empty() ? "" : " (" + where + ")") + ": " +
         textAt(issue, "message");
}

std::string approvalText(const json& a) {
  return "wave " + textAt(a, "wave") + " by " + textAt(a, "by") + " at " + textAt(a, "at");
}

std::string rollbackText(const json& entry) {
  if (!entry.value("rolled_back", false)) return "";
  std::string cause = textAt(entry, "rollback_cause");
  return cause.empty() ? textAt(entry, "reason") : cause;
}

std::string moreIssues(const json& entry) {
  const size_t listed = arrayAt(entry, "issues").size();
  const size_t total = entry.value("issues_total", listed);
  std::string out;
  if (total > listed) out = std::to_string(total - listed) + " more not listed";
  if (entry.value("issues_truncated", false)) {
    out += (out.empty() ? "" : "; ") + std::string("only the first events were read");
  }
  return out;
}

}  // namespace

std::vector<std::string> renderLogText(const json& entries) {
  std::vector<std::string> lines;
  if (!entries.is_array() || entries.empty()) {
    lines.push_back("No deployments match.");
    return lines;
  }
  for (const auto& e : entries) {
    if (!e.is_object()) continue;
    if (!lines.empty()) lines.push_back("");
    lines.push_back(sanitize(textAt(e, "id") + "  " + textAt(e, "service") + " " + versionsText(e) +
                             "  " + textAt(e, "state")));
    const std::string finished = textAt(e, "finished_at");
    lines.push_back("  when:          " + sanitize(textAt(e, "created_at")) +
                    (finished.empty() ? " (not finished)" : " to " + sanitize(finished)));
    const std::string envs = joined(arrayAt(e, "environments"));
    lines.push_back("  environments:  " + (envs.empty() ? "-" : sanitize(envs)));
    lines.push_back("  submitted by:  " + sanitize(textAt(e, "submitted_by")));
    if (const std::string hotfix = textAt(e, "hotfix"); !hotfix.empty()) {
      lines.push_back("  hotfix:        " + sanitize(hotfix));
    }
    for (const auto& a : arrayAt(e, "approvals")) {
      lines.push_back("  approved:      " + sanitize(approvalText(a)));
    }
    const std::string url = textAt(e, "release_notes_url");
    if (!url.empty()) lines.push_back("  release notes: " + sanitize(url));
    const std::string changes = textAt(e, "changes");
    if (!changes.empty()) {
      lines.push_back("  changes:");
      for (const auto& line : splitLines(changes)) lines.push_back("    " + sanitize(line));
    }
    for (const auto& issue : arrayAt(e, "issues")) {
      lines.push_back("  issue:         " + sanitize(issueText(issue)));
    }
    if (const std::string more = moreIssues(e); !more.empty()) {
      lines.push_back("  issues:        " + more);
    }
    if (const std::string why = rollbackText(e); !why.empty()) {
      lines.push_back("  rolled back:   " + sanitize(why));
    }
    for (const auto& n : arrayAt(e, "notes")) {
      lines.push_back("  note:          " + sanitize(textAt(n, "by")) + " at " +
                      sanitize(textAt(n, "at")) + ":");
      for (const auto& line : splitLines(textAt(n, "text"))) {
        lines.push_back("    " + sanitize(line));
      }
    }
  }
  return lines;
}

std::string renderLogMarkdown(const json& entries, const std::string& title) {
  std::string out = "# " + markdownInline(title) + "\n";
  if (!entries.is_array() || entries.empty()) return out + "\nNo deployments match.\n";
  for (const auto& e : entries) {
    if (!e.is_object()) continue;
    out += "\n## " + markdownInline(textAt(e, "id")) + ": " +
           markdownInline(textAt(e, "service") + " " + versionsText(e)) + " (" +
           markdownInline(textAt(e, "state")) + ")\n\n";
    const std::string finished = textAt(e, "finished_at");
    out += "- **When:** " + markdownInline(textAt(e, "created_at")) +
           (finished.empty() ? " \\(not finished\\)" : " to " + markdownInline(finished)) + "\n";
    const std::string envs = joined(arrayAt(e, "environments"));
    out += "- **Environments:** " + (envs.empty() ? "\\-" : markdownInline(envs)) + "\n";
    out += "- **Submitted by:** " + markdownInline(textAt(e, "submitted_by")) + "\n";
    if (const std::string hotfix = textAt(e, "hotfix"); !hotfix.empty()) {
      out += "- **Hotfix:** " + markdownInline(hotfix) + "\n";
    }
    const json& approvals = arrayAt(e, "approvals");
    if (approvals.empty()) {
      out += "- **Approvals:** none\n";
    } else {
      out += "- **Approvals:**\n";
      for (const auto& a : approvals) out += "  - " + markdownInline(approvalText(a)) + "\n";
    }
    const std::string url = textAt(e, "release_notes_url");
    if (!url.empty()) out += "- **Release notes:** " + markdownLink(url) + "\n";
    const std::string why = rollbackText(e);
    out += "- **Rolled back:** " + (why.empty() ? std::string("no") : markdownInline(why)) + "\n";
    const std::string changes = textAt(e, "changes");
    if (!changes.empty()) out += "\n### Changes\n\n" + markdownFence(changes);
    const json& issues = arrayAt(e, "issues");
    if (!issues.empty()) {
      out += "\n### Issues\n\n";
      for (const auto& issue : issues) out += "- " + markdownInline(issueText(issue)) + "\n";
      if (const std::string more = moreIssues(e); !more.empty()) {
        out += "- " + markdownInline(more) + "\n";
      }
    }
    const json& notes = arrayAt(e, "notes");
    if (!notes.empty()) {
      out += "\n### Notes\n\n";
      for (const auto& n : notes) {
        out += "- **" + markdownInline(textAt(n, "by")) + "**, " + markdownInline(textAt(n, "at")) +
               ":";
        // Each line of the note escaped on its own and kept inside the list item by its indent,
        // ending in a hard line break.
        for (const auto& line : splitLines(textAt(n, "text"))) {
          out += "  \n  " + markdownInline(line);
        }
        out += "\n";
      }
    }
  }
  return out;
}

std::vector<std::string> renderReleaseLog(const json& detail) {
  constexpr size_t kChangeLines = 10;  // the whole text is in `flotilla log`
  std::vector<std::string> lines;
  const std::string url = textAt(detail, "release_notes_url");
  if (!url.empty()) lines.push_back("Release notes: " + sanitize(url));
  const std::vector<std::string> changes = splitLines(textAt(detail, "changes"));
  if (!changes.empty()) {
    lines.push_back("Changes:");
    for (size_t i = 0; i < changes.size() && i < kChangeLines; ++i) {
      lines.push_back("  " + sanitize(changes[i]));
    }
    if (changes.size() > kChangeLines) {
      lines.push_back("  (" + std::to_string(changes.size() - kChangeLines) +
                      " more lines: flotilla log --service " + sanitize(textAt(detail, "service")) +
                      ")");
    }
  }
  for (const auto& n : arrayAt(detail, "notes")) {
    lines.push_back("Note by " + sanitize(textAt(n, "by")) + " at " + sanitize(textAt(n, "at")) +
                    ": " + sanitize(textAt(n, "text")));
  }
  return lines;
}

// ---- Commands ---------------------------------------------------------------------------------

std::string logQuery(const LogOptions& options) {
  std::string query;
  auto add = [&](const char* key, const std::string& value) {
    if (value.empty()) return;
    query += (query.empty() ? "?" : "&") + std::string(key) + "=" + common::urlEncode(value);
  };
  add("service", options.service);
  add("environment", options.environment);
  add("since", options.since);
  add("limit", std::to_string(options.limit));
  return query;
}

int noteCommand(Api& api, const std::string& id, const std::string& text) {
  common::Status ok = common::checkFreeText(text, "the note", common::kMaxNoteBytes);
  if (!ok.ok()) throw CliError(ok.message(), kExitFailed);
  json answer = api.post(deploymentPath(id) + "/notes", json{{"text", text}}.dump(), id);
  printLine(id + ": note added (" + fieldText(answer, "notes_total") + " notes)");
  return kExitOk;
}

int logCommand(Api& api, const LogOptions& options) {
  const std::string path = "/api/v1/log" + logQuery(options);
  if (options.as_json) {
    printLine(api.getPretty(path));
    return kExitOk;
  }
  const json answer = api.get(path);
  const json entries =
      answer.is_object() && answer.contains("entries") && answer["entries"].is_array()
          ? answer["entries"]
          : json::array();
  if (answer.is_object() && answer.value("truncated", false)) {
    printNote("the log was cut at the coordinator's size limit after " +
              std::to_string(entries.size()) +
              " entries: narrow it with --service, --env, "
              "--since or --limit");
  }
  if (options.as_markdown) {
    std::string title = "Deployment log";
    if (!options.service.empty()) title += ": " + options.service;
    if (!options.environment.empty()) title += " in " + options.environment;
    if (!options.since.empty()) title += " since " + options.since;
    std::cout << renderLogMarkdown(entries, title) << std::flush;
    return kExitOk;
  }
  for (const auto& line : renderLogText(entries)) std::cout << line << '\n';
  std::cout << std::flush;
  return kExitOk;
}

void addNoteCommand(CLI::App& app, Commands& commands) {
  struct Args {
    std::string id;
    std::string text;
  };
  auto args = std::make_shared<Args>();
  auto* note = app.add_subcommand(
      "note", "Add a note (a lesson learned) to a deployment, at any time, even after it ended");
  note->add_option("ID", args->id, kIdHelp)->required();
  note->add_option("TEXT", args->text, "The note: UTF-8 text, at most 4096 bytes (quote it)")
      ->required();
  note->footer(R"(The note is kept with the deployment, with your token's name and the time, and
shows in 'flotilla status ID', 'flotilla log' and the audit trail (a deployment.note
event names it too). A deployment keeps at most 100 notes. Needs the deploy
permission in the deployment's environments (deployer or admin); viewers and
approvers may read notes but not write them.

Exit: 0 added; 1 the coordinator refused (unknown ID, empty or too long text,
100 notes already, not allowed); 2 the coordinator could not be reached.)");
  commands.push_back({note, [args](Api& api) { return noteCommand(api, args->id, args->text); }});
}

void addLogCommand(CLI::App& app, Commands& commands) {
  auto options = std::make_shared<LogOptions>();
  auto* log = app.add_subcommand(
      "log", "The deployment log: what was deployed where, by whom, what went wrong, and notes");
  log->add_option("--service", options->service, "Only deployments of this service")
      ->type_name("SERVICE");
  log->add_option("--env", options->environment,
                  "Only deployments that reached (or are headed for) clusters of this "
                  "environment (the agents' environment label)")
      ->type_name("ENV");
  log->add_option("--since", options->since,
                  "Only deployments not finished before T: an RFC 3339 time "
                  "(2026-11-27T10:00:00Z) or a duration back from now (24h, 90m, 7d)")
      ->type_name("T");
  log->add_option("--limit", options->limit, "At most this many entries (1 to 1000)")
      ->check(CLI::Range(1, 1000))
      ->type_name("N")
      ->capture_default_str();
  auto* as_json =
      log->add_flag("--json", options->as_json, "Print the coordinator's JSON (GET /api/v1/log)");
  log->add_flag("--markdown", options->as_markdown,
                "Print a Markdown document to paste into a post-mortem")
      ->excludes(as_json);
  log->footer(R"(One entry per deployment, newest first: its id, service, version and the
version(s) its clusters ran before, when it was created and finished, the
environments it reached, who submitted it and who approved which wave, the
release's changes and release notes (submit --changes FILE --notes URL), the
issues met (failed steps and analyses, alerts, lost agents, failed rollbacks),
whether and why it rolled back, its final state, and the notes added later
('flotilla note ID TEXT').

--markdown escapes everything that comes from users (versions, reasons, notes,
changes): pasted into a wiki or an issue it cannot break the document or inject
HTML.

Exit: 0 printed; 1 the coordinator refused (a bad filter); 2 the coordinator could
not be reached.)");
  commands.push_back({log, [options](Api& api) { return logCommand(api, *options); }});
}

}  // namespace flotilla::cli
