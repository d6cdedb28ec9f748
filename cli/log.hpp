// The deployment log commands: `flotilla note ID TEXT` and `flotilla log` (text, Markdown for a
// post-mortem, or the API's JSON), and the reading of a release's changelog for `submit
// --changes`. Rendering is pure (tested in tests/cli/log_test.cpp).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.hpp"

namespace flotilla::cli {

// The media type of a submission with its release's description (the coordinator's
// coordinator/deployment_log.hpp).
inline constexpr char kSubmissionMediaType[] = "application/vnd.flotilla.submission+json";

// The changelog file's text: CliError (exit 2) when it cannot be read, is over
// common::kMaxChangesBytes or is not UTF-8 text.
std::string readChangesFile(const std::string& file);
// CliError (exit 1... the command line's value) when `url` is not an http(s) URL.
void checkNotesUrl(const std::string& url);

// Markdown-safe text: every ASCII punctuation that Markdown reads is backslash-escaped, '<',
// '>' and '&' become entities (no HTML gets through), line breaks become spaces. For one line.
std::string markdownInline(std::string_view text);
// `text` as a fenced code block whose fence is longer than any run of backticks in it, so that
// nothing inside can close it. Lines end with "\n".
std::string markdownFence(std::string_view text);
// A URL as a Markdown autolink "<...>", the characters that could end or break it
// percent-encoded.
std::string markdownLink(std::string_view url);

struct LogOptions {
  std::string service;
  std::string environment;
  std::string since;
  size_t limit = 100;
  bool as_json = false;
  bool as_markdown = false;
};
// The query string of `GET /api/v1/log` ("" when nothing is set).
std::string logQuery(const LogOptions& options);

// The log's entries (the API's "entries") as text for a terminal: a block per entry.
std::vector<std::string> renderLogText(const nlohmann::json& entries);
// The same as a Markdown document: a title, then a section per entry.
std::string renderLogMarkdown(const nlohmann::json& entries, const std::string& title);

// The release and notes of a deployment's detail, for `status ID` below its table: the release
// notes link, the changes (first lines), and each note. Empty when it has none.
std::vector<std::string> renderReleaseLog(const nlohmann::json& detail);

int noteCommand(Api& api, const std::string& id, const std::string& text);
int logCommand(Api& api, const LogOptions& options);

void addNoteCommand(CLI::App& app, Commands& commands);
void addLogCommand(CLI::App& app, Commands& commands);

}  // namespace flotilla::cli
