// Rendering: the coordinator's JSON turned into text for people (tables, status views, event
// lines), plus the ages and sanitising they need (timestamps are read with common/'s RFC 3339
// parser). Pure functions: the current time is passed in, nothing is printed.
#pragma once

#include <chrono>
#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace flotilla::cli {

using TimePoint = std::chrono::system_clock::time_point;

// A field as display text: strings sanitised, numbers and booleans spelled out, anything
// missing or oddly typed as "". The server is another team's moving target; a surprise in its
// JSON should render as a blank, not abort a status view.
std::string fieldText(const nlohmann::json& object, const char* key);

// succeeded, rolled_back, failed, cancelled: the deployment will not change any more.
bool isFinalState(std::string_view state);

// Coarse age for tables: "45s", "12m", "3h", "2d". Negative ages (clock skew) read "0s".
std::string formatAge(std::chrono::seconds age);

// Server text (cluster messages come from step output) may hold newlines or terminal escape
// sequences; either would break a table or the in-place redraw, so they are neutralised.
std::string sanitize(std::string_view text);
// Terminal columns taken by UTF-8 text, counting one per code point.
std::size_t displayWidth(std::string_view text);
// Cuts to at most `width` columns, marking the cut with "…".
std::string truncateToWidth(std::string_view text, std::size_t width);

// Left-aligned columns separated by two spaces, a header row first, no trailing blanks.
std::string renderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows);

// "2/3 prod-canary" from a Summary; "-" when no wave is current.
std::string waveProgress(const nlohmann::json& summary);

// The `status` table of an array of Summary objects (ID SERVICE VERSION STATE WAVE AGE).
std::string renderDeploymentList(const nlohmann::json& deployments, TimePoint now);

// The `status ID` view of a Detail: a header block, one line per wave and per cluster, then the
// failure and any clusters whose rollback failed. One string per line, without newlines.
// Below the table, each cluster's last analysis figures (clusterFiguresText) and its
// verification checklist (clusterChecksText) where it has any.
// Each cluster row shows its strategy step and weight, from -> to versions, and, first in its
// message, an agent that is unknown or lost in `agents` (a `GET /api/v1/agents` list).
std::vector<std::string> renderDeploymentDetail(const nlohmann::json& detail, TimePoint now,
                                                const nlohmann::json& agents);
std::vector<std::string> renderDeploymentDetail(const nlohmann::json& detail, TimePoint now);

// A cluster of a Detail: "analyze 2/3 50%" (the step, the strategy step, the traffic weight,
// each where the coordinator sends it).
std::string clusterStepText(const nlohmann::json& cluster);
// The cluster's last analysis window (or bake slice), "" when it has none (or an older
// coordinator's detail): "analysis 2/3: 2.1.0 err 0.8% p95 12 ms (420 req) vs 2.0.0 err 0.5%
// p95 10 ms (400 req); limits err 1.0%, p95 20 ms, min 20 req; pass · health 0/3 failing".
std::string clusterFiguresText(const nlohmann::json& cluster);
// The cluster's verification checklist, "" without one: "verify: health ✓ smoke ✗ (exit 1)
// integration -" (✓ passed, ✗ failed with why, … running, - not run).
std::string clusterChecksText(const nlohmann::json& cluster);
// "1.0.0 → 1.1.0" ("(none) → 1.1.0" on a first deployment); "" from an older coordinator.
std::string clusterVersionText(const nlohmann::json& cluster);
// The cluster's message, preceded by its agent's state when that is unknown or lost (with
// agentStateText's silence and deadline when `with_age`).
std::string clusterNotes(const nlohmann::json& cluster, const nlohmann::json& agent, TimePoint now,
                         bool with_age);
// One line per cluster for `watch` on a pipe, the same while nothing changes:
// "prod-eu-1 analyzing  analyze 2/3 50%  1.0.0 → 1.1.0  agent unknown".
std::string clusterSummary(const nlohmann::json& cluster, const nlohmann::json& agents,
                           TimePoint now);

// "failed: cluster prod-eu-1 step apply: message" from a Detail's "failure" object.
std::string formatFailure(const nlohmann::json& failure);

// "checkout-3 rolled_back: reason": the one line `wait` and `watch` end with.
std::string formatStateLine(const nlohmann::json& detail);

// Column widths for event lines; a batch is measured so that its columns align, a live stream
// uses fixed minimums because later events are not known yet.
struct EventColumns {
  std::size_t type = 22;
  std::size_t where = 30;
};
EventColumns measureEvents(const nlohmann::json& events);
// "time  type  wave/cluster/step  message".
std::string formatEvent(const nlohmann::json& event, EventColumns columns);

// An agent's state with its silence and the deadline that comes next:
// "connected (last seen 1s ago; unknown at 3s)", "unknown (last seen 21s ago; lost at 30s)".
std::string agentStateText(const nlohmann::json& agent, TimePoint now);
// The `agents` table of an array of agents (CLUSTER STATE LABELS).
std::string renderAgents(const nlohmann::json& agents, TimePoint now);

// "FILE:line:column: message" per problem of a refused plan, the format editors jump to.
std::vector<std::string> formatPlanProblems(std::string_view file, const nlohmann::json& problems);

}  // namespace flotilla::cli
