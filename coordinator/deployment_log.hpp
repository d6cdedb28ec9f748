// The deployment log (issue 13, item 6): what a submission adds to a deployment (the release's
// changelog and release-notes link, in the submission form), and the log itself, one entry per
// deployment, built from the stored deployment and its events: when, what, who submitted and
// who approved, issues met, whether and why it rolled back, and the notes added later.
// `GET /api/v1/log` serves it (coordinator/http_log.cpp); the CLI renders it as text or Markdown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "coordinator/deployment.hpp"
#include "coordinator/records.hpp"
#include "coordinator/store.hpp"
#include "coordinator/wave_clusters.hpp"

namespace flotilla::coordinator {

// ---- The submission form ---------------------------------------------------------------------
//
// A plan alone is submitted as its own text (application/yaml or application/json). A plan with
// its release's description is submitted as this media type: a JSON object
//   {"plan": "<the plan's text, YAML or JSON>", "changes": "<changelog text>",
//    "release_notes_url": "https://...", "hotfix": true, "hotfix_reason": "..."}
// where only "plan" is required (hotfix, a boolean, and hotfix_reason: coordinator/hotfix.hpp). One
// JSON object, because the changelog is up to 64 KiB of multi-line text (too long for a query
// parameter or a header), and multipart/form-data is what any web page may post cross-origin
// without asking (the API takes changes only in media types a browser must ask for first).
inline constexpr char kSubmissionMediaType[] = "application/vnd.flotilla.submission+json";

struct SubmissionForm {
  std::string plan;  // the plan's text, for common::parsePlan
  std::string changes;
  std::string release_notes_url;
  bool hotfix = false;
  std::optional<std::string> hotfix_reason;
};
// Whether a Content-Type (parameters allowed) is the submission form's.
bool isSubmissionForm(std::string_view content_type);
// InvalidArgument for a body that is not the object above, an unknown field, a field that is
// not a string (hotfix: a boolean), a changelog that breaks common::checkFreeText or
// kMaxChangesBytes, or a link that is not an http(s) URL (common::isValidHttpUrl).
common::StatusOr<SubmissionForm> readSubmissionForm(const std::string& body);
// The checks of the two release fields alone (also used by the form).
common::Status checkReleaseFields(const std::string& changes, const std::string& release_notes_url);

// ---- The log -----------------------------------------------------------------------------------

// The environments of a deployment: each wave's policy environment (set at submission under
// --policy), and the distinct `environment` labels (the label the token
// environment rule of coordinator/permissions.cpp reads) of the agents of its clusters: those
// its waves resolved, those its plan names for waves not resolved yet, and the environment a
// pending wave's selector pins. Sorted. Clusters whose agent is gone or unlabelled add none.
// The one place that says what "the environment of a deployment" means for the log.
std::vector<std::string> deploymentEnvironments(const Deployment& d, const AgentsByName& agents);

// Event types that are issues met on the way: failed steps (analysis and bake verdicts
// included), alerts raised, agents lost, failed rollbacks.
bool isIssueEvent(const Event& e);
// At most this many issues are listed per entry (issues_total counts them all), and at most
// this many events of a deployment are read looking for them (issues_truncated says so).
inline constexpr size_t kMaxIssuesListed = 50;
inline constexpr size_t kMaxEventsScanned = 20000;

// One entry: `issues` are the deployment's issue events, oldest first (only the first
// kMaxIssuesListed are listed); `issues_total` how many there were; `truncated` whether its
// events were not all read.
nlohmann::json logEntryJson(const Deployment& d, const std::vector<StoredEvent>& issues,
                            size_t issues_total, bool truncated,
                            const std::vector<std::string>& environments);

inline constexpr size_t kDefaultLogLimit = 100;
inline constexpr size_t kMaxLogLimit = 1000;

struct LogQuery {
  std::string service;      // "" = every service
  std::string environment;  // "" = every environment
  // Deployments not finished before this time (created at or after it, or still going then).
  std::optional<int64_t> since_ms;
  size_t limit = kDefaultLogLimit;
};
// `since` as RFC 3339 ("2026-11-27T10:00:00Z") or a duration back from `now_ms`: "24h", "90m"
// (common::parseDuration) or whole days "7d". InvalidArgument otherwise.
common::StatusOr<int64_t> parseSince(const std::string& text, int64_t now_ms);

// The log: entries newest first (by creation), at most query.limit, each matching the query, in
// `{"entries": [...], "truncated": bool}`. An entry may hold 64 KiB of changes and 400 KiB of
// notes, so the entries stop once they pass kMaxLogBytes (truncated: true; ask again with
// filters or a smaller limit).
inline constexpr size_t kMaxLogBytes = 16 * 1024 * 1024;
common::StatusOr<nlohmann::json> buildLog(Store& store, const AgentsByName& agents,
                                          const LogQuery& query);

}  // namespace flotilla::coordinator
