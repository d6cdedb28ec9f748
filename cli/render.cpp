// Rendering: the coordinator's JSON turned into text for people.
#include "cli/render.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/analysis_figures.hpp"
#include "common/rules.hpp"
#include "common/time_format.hpp"

namespace flotilla::cli {

using nlohmann::json;

namespace {

std::string text(const json& object, const char* key) { return fieldText(object, key); }

std::optional<long long> integer(const json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  return it->get<long long>();
}

bool flag(const json& object, const char* key) {
  if (!object.is_object()) return false;
  auto it = object.find(key);
  return it != object.end() && it->is_boolean() && it->get<bool>();
}

const json& array(const json& object, const char* key) {
  static const json kEmpty = json::array();
  if (!object.is_object()) return kEmpty;
  auto it = object.find(key);
  return it != object.end() && it->is_array() ? *it : kEmpty;
}

const json& items(const json& maybe_array) {
  static const json kEmpty = json::array();
  return maybe_array.is_array() ? maybe_array : kEmpty;
}

std::string orDash(std::string value) { return value.empty() ? "-" : value; }

std::string padRight(std::string value, std::size_t width) {
  std::size_t current = displayWidth(value);
  if (current < width) value.append(width - current, ' ');
  return value;
}

void trimRight(std::string& line) {
  while (!line.empty() && line.back() == ' ') line.pop_back();
}

std::optional<TimePoint> timeOf(const std::string& stamp) {
  auto ms = common::parseRfc3339(stamp);
  if (!ms) return std::nullopt;
  return common::fromUnixMillis(*ms);
}

// "2026-11-27T01:02:03.456Z (5m ago)", or the raw text when it is not a timestamp.
std::string timeWithAge(const std::string& stamp, TimePoint now) {
  if (stamp.empty()) return "-";
  auto when = timeOf(stamp);
  if (!when) return stamp;
  return stamp + " (" + formatAge(std::chrono::duration_cast<std::chrono::seconds>(now - *when)) +
         " ago)";
}

std::string ageSince(const std::string& stamp, TimePoint now) {
  auto when = timeOf(stamp);
  if (!when) return orDash(stamp);
  return formatAge(std::chrono::duration_cast<std::chrono::seconds>(now - *when));
}

// "approved by bob, carol (2 of 2)"; "" when nobody approved yet (or the coordinator is older
// than approval records).
std::string approvedBy(const json& wave) {
  std::string names;
  for (const auto& approval : array(wave, "approvals")) {
    names += (names.empty() ? "" : ", ") + text(approval, "by");
  }
  if (names.empty()) return "";
  std::string out = "approved by " + names;
  if (auto required = integer(wave, "approvals_required")) {
    out += " (" + std::to_string(array(wave, "approvals").size()) + " of " +
           std::to_string(*required) + ")";
  }
  return out;
}

std::string waveMessage(const json& wave, const std::string& deployment_id) {
  if (!flag(wave, "approval_required")) return "";
  const std::string by = approvedBy(wave);
  if (flag(wave, "approved")) return by.empty() ? "approved" : by;
  std::string message =
      text(wave, "state") == "awaiting_approval"
          ? "waiting for approval: flotilla approve " + deployment_id + " " + text(wave, "name")
          : "needs approval";
  return by.empty() ? message : message + "; " + by;
}

std::string clusterMessage(const json& cluster) {
  std::string message = text(cluster, "message");
  auto exit_code = integer(cluster, "exit_code");
  if (exit_code && *exit_code != 0) {
    std::string note = "exit " + std::to_string(*exit_code);
    message = message.empty() ? note : message + " (" + note + ")";
  }
  return message;
}

// The agent of `name` in a `GET /api/v1/agents` list; null when it is not there.
const json& agentOf(const json& agents, const std::string& name) {
  static const json kNone;
  for (const auto& agent : items(agents)) {
    if (text(agent, "cluster") == name) return agent;
  }
  return kNone;
}

}  // namespace

std::string clusterStepText(const json& cluster) {
  std::string step = text(cluster, "step");
  auto at = integer(cluster, "strategy_step");
  auto of = integer(cluster, "strategy_steps");
  if (at && of && *of > 0) {
    step += (step.empty() ? "" : " ") + std::to_string(*at) + "/" + std::to_string(*of);
  }
  if (auto weight = integer(cluster, "weight")) {
    step += (step.empty() ? "" : " ") + std::to_string(*weight) + "%";
  }
  return step;
}

std::string clusterFiguresText(const json& cluster) {
  if (!cluster.is_object() || !cluster.contains("figures") || !cluster["figures"].is_object()) {
    return "";
  }
  auto figures = common::figuresFromJson(cluster["figures"]);
  if (!figures.ok()) return "";  // a surprise in the server's JSON renders as a blank
  return sanitize(common::figuresSummary(*figures));
}

std::string clusterChecksText(const json& cluster) {
  std::string out;
  for (const auto& check : array(cluster, "checks")) {
    const std::string state = text(check, "state");
    std::string mark;
    if (state == "passed") {
      mark = "✓";
    } else if (state == "running") {
      mark = "…";
    } else if (state == "pending") {
      mark = "-";
    } else if (state == "timed_out") {
      mark = "✗ (timed out)";
    } else if (auto exit_code = integer(check, "exit_code"); exit_code && *exit_code != 0) {
      mark = "✗ (exit " + std::to_string(*exit_code) + ")";
    } else {
      mark = "✗ (" + orDash(state) + ")";
    }
    out += (out.empty() ? "verify: " : " ") + text(check, "name") + " " + mark;
  }
  return out;
}

std::string clusterVersionText(const json& cluster) {
  const std::string to = text(cluster, "to_version");
  if (to.empty()) return "";
  const std::string from = text(cluster, "from_version");
  return (from.empty() ? "(none)" : from) + " → " + to;
}

std::string clusterNotes(const json& cluster, const json& agent, TimePoint now, bool with_age) {
  std::string message = clusterMessage(cluster);
  const std::string agent_state = text(agent, "state");
  if (agent_state == "unknown" || agent_state == "lost") {
    std::string note = "agent " + (with_age ? agentStateText(agent, now) : agent_state);
    message = message.empty() ? note : note + "; " + message;
  }
  return message;
}

std::string clusterSummary(const json& cluster, const json& agents, TimePoint now) {
  std::string line = orDash(text(cluster, "name")) + " " + orDash(text(cluster, "state"));
  for (const std::string& part :
       {clusterStepText(cluster), clusterVersionText(cluster),
        clusterNotes(cluster, agentOf(agents, text(cluster, "name")), now, false)}) {
    if (!part.empty()) line += "  " + part;
  }
  return line;
}

std::string fieldText(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "";
  if (it->is_string()) return sanitize(it->get_ref<const std::string&>());
  if (it->is_boolean()) return it->get<bool>() ? "true" : "false";
  if (it->is_number()) return it->dump();
  return "";
}

bool isFinalState(std::string_view state) {
  return state == "succeeded" || state == "rolled_back" || state == "failed" ||
         state == "cancelled";
}

std::string formatAge(std::chrono::seconds age) {
  long long s = std::max<long long>(age.count(), 0);
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string sanitize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n' || c == '\r' || c == '\t') {
      out.push_back(' ');
    } else if (c < 0x20 || c == 0x7F) {
      out.push_back('?');
    } else if (c == 0xC2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9F) {
      // U+0080..U+009F: C1 controls, which include a one-character CSI escape.
      out.push_back('?');
      ++i;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::size_t displayWidth(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // not a continuation byte
  }));
}

std::string truncateToWidth(std::string_view text, std::size_t width) {
  if (displayWidth(text) <= width) return std::string(text);
  if (width == 0) return "";
  std::size_t columns = 0;
  std::size_t pos = 0;
  for (; pos < text.size(); ++pos) {
    if ((static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) continue;
    if (columns == width - 1) break;
    ++columns;
  }
  return std::string(text.substr(0, pos)) + "…";
}

std::string renderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths(headers.size(), 0);
  auto measure = [&widths](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], displayWidth(row[i]));
    }
  };
  measure(headers);
  for (const auto& row : rows) measure(row);

  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < widths.size(); ++i) {
      if (i > 0) line += "  ";
      line += padRight(i < row.size() ? row[i] : "", widths[i]);
    }
    trimRight(line);
    out += line + "\n";
  };
  emit(headers);
  for (const auto& row : rows) emit(row);
  return out;
}

std::string waveProgress(const json& summary) {
  std::string wave = text(summary, "current_wave");
  if (wave.empty()) return "-";
  auto index = integer(summary, "wave_index");
  auto total = integer(summary, "waves_total");
  if (!index || !total) return wave;
  return std::to_string(*index + 1) + "/" + std::to_string(*total) + " " + wave;
}

std::string renderDeploymentList(const json& deployments, TimePoint now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& summary : items(deployments)) {
    // A hotfix is marked beside its version.
    const std::string version =
        orDash(text(summary, "version")) + (text(summary, "hotfix").empty() ? "" : " [hotfix]");
    rows.push_back({orDash(text(summary, "id")), orDash(text(summary, "service")), version,
                    orDash(text(summary, "state")), waveProgress(summary),
                    ageSince(text(summary, "created_at"), now)});
  }
  return renderTable({"ID", "SERVICE", "VERSION", "STATE", "WAVE", "AGE"}, rows);
}

std::string msText(const json& object, const char* key) {
  if (!object.contains(key) || !object[key].is_number_integer()) return "?";
  return common::formatDuration(std::chrono::milliseconds(std::max<int64_t>(0, object[key])));
}

// Whole seconds, rounded up ("6s", not "5s956ms"): a countdown.
std::string secondsLeft(const json& object, const char* key) {
  if (!object.contains(key) || !object[key].is_number_integer()) return "?";
  const int64_t ms = std::max<int64_t>(0, object[key]);
  return common::formatDuration(std::chrono::seconds((ms + 999) / 1000));
}

// The post-deploy watch: "tier intense (1 of 3): 12s left, checks every 500ms; then regular
// 1h, standard 24h"; "" when the plan has none.
std::string watchText(const json& detail) {
  if (!detail.contains("watch") || !detail["watch"].is_object()) return "";
  const json& watch = detail["watch"];
  const json& tiers = array(watch, "tiers");
  std::string all;
  for (const auto& t : tiers) {
    all += (all.empty() ? "" : ", ") + text(t, "name") + " " + msText(t, "for_ms") + " (every " +
           msText(t, "interval_ms") + ")";
  }
  if (std::string by = text(watch, "ended_by"); !by.empty()) return "ended early " + by;
  if (watch.value("done", false)) return "done: " + all;
  if (!watch.contains("tier") || !watch["tier"].is_number_integer()) return "after 100%: " + all;
  const auto index = watch["tier"].get<int64_t>();
  if (index < 0 || static_cast<size_t>(index) >= tiers.size()) return all;
  const json& tier = tiers[static_cast<size_t>(index)];
  std::string out = "tier " + text(tier, "name") + " (" + std::to_string(index + 1) + " of " +
                    std::to_string(tiers.size()) + "): " + secondsLeft(watch, "tier_left_ms") +
                    " left, checks every " + msText(tier, "interval_ms");
  std::string next;
  for (size_t i = static_cast<size_t>(index) + 1; i < tiers.size(); ++i) {
    next += (next.empty() ? "" : ", ") + text(tiers[i], "name") + " " + msText(tiers[i], "for_ms");
  }
  if (!next.empty()) out += "; then " + next;
  return out;
}

std::vector<std::string> renderDeploymentDetail(const json& detail, TimePoint now,
                                                const json& agents) {
  std::vector<std::string> lines;
  const std::string id = text(detail, "id");
  std::string state = orDash(text(detail, "state"));
  if (std::string wave = waveProgress(detail); wave != "-") state += ", wave " + wave;

  lines.push_back("Deployment  " + orDash(id));
  lines.push_back("Service     " + orDash(text(detail, "service")) + " " +
                  orDash(text(detail, "version")));
  lines.push_back("State       " + state);
  if (std::string hotfix = text(detail, "hotfix"); !hotfix.empty()) {
    lines.push_back("Hotfix      " + hotfix);
  }
  if (std::string by = text(detail, "submitted_by"); !by.empty()) {
    lines.push_back("Submitted   by " + by);
  }
  if (std::string reason = text(detail, "reason"); !reason.empty()) {
    lines.push_back("Reason      " + reason);
  }
  if (std::string watch = watchText(detail); !watch.empty()) {
    lines.push_back("Watch       " + watch);
  }
  lines.push_back("Created     " + timeWithAge(text(detail, "created_at"), now));
  lines.push_back("Updated     " + timeWithAge(text(detail, "updated_at"), now));

  const json& waves = array(detail, "waves");
  if (!waves.empty()) {
    // A coordinator that sends versions gets a VERSION column; an older one the table it had.
    bool versions = false;
    for (const auto& wave : waves) {
      for (const auto& cluster : array(wave, "clusters")) {
        versions |= !text(cluster, "to_version").empty();
      }
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& wave : waves) {
      // The policy's environment beside the wave's name: "production (production)".
      std::string name = text(wave, "name");
      if (std::string env = text(wave, "environment"); !env.empty() && env != name) {
        name += " (" + env + ")";
      }
      std::vector<std::string> row = {name, text(wave, "state"), ""};
      if (versions) row.emplace_back();
      row.push_back(waveMessage(wave, id));
      rows.push_back(std::move(row));
      for (const auto& cluster : array(wave, "clusters")) {
        row = {"  " + text(cluster, "name"), text(cluster, "state"), clusterStepText(cluster)};
        if (versions) row.push_back(clusterVersionText(cluster));
        row.push_back(clusterNotes(cluster, agentOf(agents, text(cluster, "name")), now, true));
        rows.push_back(std::move(row));
      }
      // A wave not started yet (awaiting approval, say): the clusters it will touch.
      for (const auto& cluster : array(wave, "planned_clusters")) {
        if (cluster.is_string()) {
          rows.push_back({"  " + sanitize(cluster.get<std::string>()), "planned", "", ""});
        }
      }
    }
    lines.emplace_back();
    std::string table =
        versions ? renderTable({"WAVE/CLUSTER", "STATE", "STEP", "VERSION", "MESSAGE"}, rows)
                 : renderTable({"WAVE/CLUSTER", "STATE", "STEP", "MESSAGE"}, rows);
    std::size_t start = 0;
    for (std::size_t end; (end = table.find('\n', start)) != std::string::npos; start = end + 1) {
      lines.push_back(table.substr(start, end - start));
    }
    bool heading = false;
    for (const auto& wave : waves) {
      for (const auto& cluster : array(wave, "clusters")) {
        const std::string figures = clusterFiguresText(cluster);
        if (figures.empty()) continue;
        if (!heading) {
          lines.emplace_back();
          lines.push_back("Last analysis");
          heading = true;
        }
        lines.push_back("  " + text(cluster, "name") + "  " + figures);
      }
    }
    heading = false;
    for (const auto& wave : waves) {
      for (const auto& cluster : array(wave, "clusters")) {
        const std::string checks = clusterChecksText(cluster);
        if (checks.empty()) continue;
        if (!heading) {
          lines.emplace_back();
          lines.push_back("Verification");
          heading = true;
        }
        lines.push_back("  " + text(cluster, "name") + "  " + checks);
      }
    }
  }

  bool blank_added = false;
  auto addTrailer = [&](std::string line) {
    if (!blank_added) lines.emplace_back();
    blank_added = true;
    lines.push_back(std::move(line));
  };
  if (detail.is_object() && detail.contains("failure") && detail["failure"].is_object()) {
    addTrailer(formatFailure(detail["failure"]));
  }
  const json& stuck = array(detail, "rollback_failed_clusters");
  if (!stuck.empty()) {
    std::string names;
    for (const auto& name : stuck) {
      if (!names.empty()) names += ", ";
      names += name.is_string() ? sanitize(name.get_ref<const std::string&>()) : name.dump();
    }
    addTrailer("rollback failed on: " + names + " (these clusters need a human)");
  }
  return lines;
}

std::vector<std::string> renderDeploymentDetail(const json& detail, TimePoint now) {
  return renderDeploymentDetail(detail, now, json());
}

std::string formatFailure(const json& failure) {
  std::string cluster = text(failure, "cluster");
  std::string step = text(failure, "step");
  std::string message = text(failure, "message");
  std::string out = "failed:";
  if (!cluster.empty()) out += " cluster " + cluster;
  if (!step.empty()) out += " step " + step;
  if (out.back() != ':') out += ":";
  return message.empty() ? out.substr(0, out.size() - 1) : out + " " + message;
}

std::string formatStateLine(const json& detail) {
  std::string line = orDash(text(detail, "id")) + " " + orDash(text(detail, "state"));
  if (std::string reason = text(detail, "reason"); !reason.empty()) {
    line += ": " + reason;
  } else if (detail.is_object() && detail.contains("failure") && detail["failure"].is_object()) {
    line += " (" + formatFailure(detail["failure"]) + ")";
  }
  return line;
}

namespace {

std::string eventWhere(const json& event) {
  std::string where;
  for (const char* key : {"wave", "cluster", "step"}) {
    std::string part = text(event, key);
    if (part.empty()) continue;
    if (!where.empty()) where += "/";
    where += part;
  }
  return orDash(where);
}

}  // namespace

EventColumns measureEvents(const json& events) {
  EventColumns columns{0, 0};
  for (const auto& event : items(events)) {
    columns.type = std::max(columns.type, displayWidth(text(event, "type")));
    columns.where = std::max(columns.where, displayWidth(eventWhere(event)));
  }
  return columns;
}

std::string formatEvent(const json& event, EventColumns columns) {
  std::string line = orDash(text(event, "time")) + "  " +
                     padRight(orDash(text(event, "type")), columns.type) + "  " +
                     padRight(eventWhere(event), columns.where) + "  " + text(event, "message");
  trimRight(line);
  return line;
}

std::string agentStateText(const json& agent, TimePoint now) {
  const std::string state = orDash(text(agent, "state"));
  std::string seen;
  if (auto silent = integer(agent, "silent_ms"); silent && !text(agent, "last_seen").empty()) {
    seen = "last seen " + formatAge(std::chrono::seconds(*silent / 1000)) + " ago";
  } else if (std::string last = text(agent, "last_seen"); timeOf(last)) {
    seen = "last seen " + ageSince(last, now) + " ago";  // a coordinator without silent_ms
  } else if (integer(agent, "silent_ms")) {
    seen = "not heard from since the coordinator started";
  }
  // The deadline that comes next: unknown for a connected agent, lost for an unknown one.
  std::string deadline;
  auto deadlineText = [](long long ms) {
    return common::formatDuration(std::chrono::milliseconds(std::max(0LL, ms)));
  };
  if (auto after = integer(agent, "unknown_after_ms"); after && state == "connected") {
    deadline = "unknown at " + deadlineText(*after);
  } else if (auto lost = integer(agent, "lost_after_ms"); lost && state != "connected") {
    deadline = "lost at " + deadlineText(*lost);
  }
  std::string detail = seen;
  if (!deadline.empty()) detail += (detail.empty() ? "" : "; ") + deadline;
  return detail.empty() ? state : state + " (" + detail + ")";
}

std::string renderAgents(const json& agents, TimePoint now) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& agent : items(agents)) {
    std::string labels;
    if (agent.is_object() && agent.contains("labels") && agent["labels"].is_object()) {
      for (const auto& [key, value] : agent["labels"].items()) {
        if (!labels.empty()) labels += ",";
        labels +=
            sanitize(key) + "=" +
            (value.is_string() ? sanitize(value.get_ref<const std::string&>()) : value.dump());
      }
    }
    rows.push_back({orDash(text(agent, "cluster")), agentStateText(agent, now), orDash(labels)});
  }
  return renderTable({"CLUSTER", "STATE", "LABELS"}, rows);
}

std::vector<std::string> formatPlanProblems(std::string_view file, const json& problems) {
  std::vector<std::string> lines;
  for (const auto& problem : items(problems)) {
    std::string where(file);
    auto line = integer(problem, "line");
    auto column = integer(problem, "column");
    if (line && *line > 0) {
      where += ":" + std::to_string(*line);
      if (column && *column > 0) where += ":" + std::to_string(*column);
    }
    lines.push_back(where + ": " + text(problem, "message"));
  }
  return lines;
}

}  // namespace flotilla::cli
