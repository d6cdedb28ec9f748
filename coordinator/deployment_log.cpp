// The deployment log: the submission form's release fields, and the log's entries built from
// stored deployments and their events.
#include "coordinator/deployment_log.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/rules.hpp"
#include "common/time_format.hpp"
#include "common/user_text.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using nlohmann::json;

namespace {

std::string rfc3339(int64_t ms) { return common::formatRfc3339(common::fromUnixMillis(ms)); }

json timeOrNull(int64_t ms) { return ms > 0 ? json(rfc3339(ms)) : json(nullptr); }

// When a final deployment ended: finished_ms, or for records older than it the last change.
int64_t finishedMs(const Deployment& d) {
  if (!isFinal(d.state)) return 0;
  return d.finished_ms > 0 ? d.finished_ms : d.updated_ms;
}

bool rolledBack(const Deployment& d) {
  return !d.rollback_cause.empty() || d.state == DeploymentState::kRollingBack ||
         d.state == DeploymentState::kRolledBack;
}

}  // namespace

// ---- The submission form ---------------------------------------------------------------------

bool isSubmissionForm(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type == kSubmissionMediaType;
}

Status checkReleaseFields(const std::string& changes, const std::string& release_notes_url) {
  Status text = common::checkFreeText(changes, "\"changes\"", common::kMaxChangesBytes);
  if (!text.ok()) return text;
  if (!release_notes_url.empty() && !common::isValidHttpUrl(release_notes_url)) {
    return Status::InvalidArgument(
        "\"release_notes_url\" must be an http:// or https:// URL of at most " +
        std::to_string(common::kMaxUrlLength) + " characters without spaces, not " +
        common::quote(release_notes_url));
  }
  return Status::Ok();
}

StatusOr<SubmissionForm> readSubmissionForm(const std::string& body) {
  json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return Status::InvalidArgument(std::string("a ") + kSubmissionMediaType +
                                   " body must be a JSON object with \"plan\" (the plan's text), "
                                   "\"changes\", \"release_notes_url\", \"hotfix\" and "
                                   "\"hotfix_reason\"");
  }
  SubmissionForm form;
  for (const auto& item : parsed.items()) {
    const std::string& key = item.key();
    if (key == "hotfix") {
      if (!item.value().is_boolean())
        return Status::InvalidArgument("\"hotfix\" must be a boolean");
      form.hotfix = item.value().get<bool>();
      continue;
    }
    if (key == "hotfix_reason") {
      if (!item.value().is_string()) {
        return Status::InvalidArgument("\"hotfix_reason\" must be a string");
      }
      form.hotfix_reason = item.value().get<std::string>();
      continue;
    }
    std::string* field = key == "plan"                ? &form.plan
                         : key == "changes"           ? &form.changes
                         : key == "release_notes_url" ? &form.release_notes_url
                                                      : nullptr;
    if (field == nullptr) {
      return Status::InvalidArgument("unknown field " + common::quote(key) +
                                     " (known: \"plan\", \"changes\", \"release_notes_url\", "
                                     "\"hotfix\", \"hotfix_reason\")");
    }
    if (!item.value().is_string()) {
      return Status::InvalidArgument("\"" + key + "\" must be a string");
    }
    *field = item.value().get<std::string>();
  }
  if (form.plan.empty()) {
    return Status::InvalidArgument("\"plan\" is required: the plan's text (YAML or JSON)");
  }
  Status release = checkReleaseFields(form.changes, form.release_notes_url);
  if (!release.ok()) return release;
  return form;
}

// ---- The log ------------------------------------------------------------------------------------

std::vector<std::string> deploymentEnvironments(const Deployment& d, const AgentsByName& agents) {
  std::set<std::string> envs;
  auto addCluster = [&](const std::string& cluster) {
    auto agent = agents.find(cluster);
    if (agent == agents.end()) return;
    auto env = agent->second.labels.find("environment");
    if (env != agent->second.labels.end() && !env->second.empty()) envs.insert(env->second);
  };
  for (size_t i = 0; i < d.plan.waves.size(); ++i) {
    const common::Wave& pw = d.plan.waves[i];
    // The policy's environment (--policy), besides the agents' labels.
    if (!pw.environment.empty()) envs.insert(pw.environment);
    if (i < d.waves.size() && d.waves[i].resolved) {
      for (const auto& c : d.waves[i].clusters) addCluster(c.name);
      continue;
    }
    for (const auto& name : pw.clusters) addCluster(name);
    auto pinned = pw.selector.find("environment");
    if (pinned != pw.selector.end()) envs.insert(pinned->second);
  }
  return {envs.begin(), envs.end()};
}

bool isIssueEvent(const Event& e) {
  return e.type == "stage.failed" || e.type == "alert" || e.type == "agent.lost" ||
         e.type == "rollback.failed";
}

json logEntryJson(const Deployment& d, const std::vector<StoredEvent>& issues, size_t issues_total,
                  bool truncated, const std::vector<std::string>& environments) {
  // Previous versions as the clusters reached recorded them, each once, in wave order.
  std::vector<std::string> previous;
  for (const auto& w : d.waves) {
    for (const auto& c : w.clusters) {
      if (!c.previous_version.empty() &&
          std::find(previous.begin(), previous.end(), c.previous_version) == previous.end()) {
        previous.push_back(c.previous_version);
      }
    }
  }
  json approvals = json::array();
  for (const auto& w : d.waves) {
    for (const auto& a : w.approvals) {
      approvals.push_back(
          {{"wave", w.name}, {"by", a.by}, {"role", a.role}, {"at", rfc3339(a.at_ms)}});
    }
  }
  json listed = json::array();
  for (size_t i = 0; i < issues.size() && i < kMaxIssuesListed; ++i) {
    const StoredEvent& e = issues[i];
    listed.push_back({{"type", e.event.type},
                      {"at", rfc3339(e.time_ms)},
                      {"wave", e.event.wave},
                      {"cluster", e.event.cluster},
                      {"step", e.event.step},
                      {"message", e.event.message}});
  }
  json notes = json::array();
  for (const auto& n : d.notes) {
    notes.push_back({{"text", n.text}, {"by", n.by}, {"at", rfc3339(n.at_ms)}});
  }
  json failure = d.failure ? json{{"cluster", d.failure->cluster},
                                  {"step", d.failure->step},
                                  {"message", d.failure->message}}
                           : json(nullptr);
  return json{{"id", d.id},
              {"service", d.plan.service},
              {"version", d.plan.version},
              {"previous_versions", previous},
              {"environments", environments},
              {"state", deploymentStateName(d.state)},
              {"created_at", rfc3339(d.created_ms)},
              {"finished_at", timeOrNull(finishedMs(d))},
              {"submitted_by", d.submitted_by},
              {"approvals", std::move(approvals)},
              {"changes", d.changes},
              {"release_notes_url", d.release_notes_url},
              {"hotfix", d.plan.hotfix ? json(d.plan.hotfix->reason) : json(nullptr)},
              {"issues", std::move(listed)},
              {"issues_total", issues_total},
              {"issues_truncated", truncated},
              {"rolled_back", rolledBack(d)},
              {"rollback_cause", d.rollback_cause},
              {"reason", d.reason},
              {"failure", std::move(failure)},
              {"rollback_failed_clusters", d.rollback_failed},
              {"notes", std::move(notes)}};
}

StatusOr<int64_t> parseSince(const std::string& text, int64_t now_ms) {
  if (auto at = common::parseRfc3339(text)) return *at;
  // Whole days, which common::parseDuration does not take: a post-mortem looks back a week.
  if (text.size() >= 2 && text.size() <= 6 && text.back() == 'd' &&
      std::all_of(text.begin(), text.end() - 1, [](char c) { return c >= '0' && c <= '9'; })) {
    return now_ms - std::stoll(text.substr(0, text.size() - 1)) * 86400000LL;
  }
  auto back = common::parseDuration(text);
  if (!back.ok()) {
    return Status::InvalidArgument("since " + common::quote(text) +
                                   " is neither an RFC 3339 time (2026-11-27T10:00:00Z) nor a "
                                   "duration (24h, 90m, 7d)");
  }
  return now_ms - back->count();
}

namespace {

// The issue events of deployment `id`, the first kMaxIssuesListed of them, how many there are,
// and whether the scan stopped at kMaxEventsScanned.
struct Issues {
  std::vector<StoredEvent> listed;
  size_t total = 0;
  bool truncated = false;
};

StatusOr<Issues> readIssues(Store& store, const std::string& id) {
  constexpr size_t kPage = 1000;
  Issues out;
  uint64_t after = 0;
  for (size_t scanned = 0; scanned < kMaxEventsScanned;) {
    auto page = store.events(id, after, std::min(kPage, kMaxEventsScanned - scanned));
    if (!page.ok()) return page.status();
    for (auto& e : *page) {
      if (!isIssueEvent(e.event)) continue;
      ++out.total;
      if (out.listed.size() < kMaxIssuesListed) out.listed.push_back(std::move(e));
    }
    if (page->empty()) return out;
    scanned += page->size();
    after = page->back().seq;
  }
  // Scanned as many as allowed: more may follow.
  auto more = store.events(id, after, 1);
  if (!more.ok()) return more.status();
  out.truncated = !more->empty();
  return out;
}

}  // namespace

StatusOr<json> buildLog(Store& store, const AgentsByName& agents, const LogQuery& query) {
  auto summaries = store.loadDeploymentSummaries();
  if (!summaries.ok()) return summaries.status();
  std::vector<Deployment>& all = *summaries;
  all.erase(std::remove_if(all.begin(), all.end(),
                           [&](const Deployment& d) {
                             if (!query.service.empty() && d.plan.service != query.service) {
                               return true;
                             }
                             return query.since_ms && isFinal(d.state) &&
                                    finishedMs(d) < *query.since_ms;
                           }),
            all.end());
  std::sort(all.begin(), all.end(), [](const Deployment& a, const Deployment& b) {
    return a.created_ms != b.created_ms ? a.created_ms > b.created_ms
                                        : submissionOrder(a) > submissionOrder(b);
  });
  json entries = json::array();
  size_t bytes = 0;
  bool truncated = false;
  for (const Deployment& summary : all) {
    if (entries.size() >= query.limit) break;
    if (bytes > kMaxLogBytes) {
      truncated = true;
      break;
    }
    // The whole deployment: its clusters say where it went and from which versions.
    auto d = store.loadDeployment(summary.id);
    if (d.status().isNotFound()) continue;  // deleted meanwhile
    if (!d.ok()) return d.status();
    const std::vector<std::string> envs = deploymentEnvironments(*d, agents);
    if (!query.environment.empty() &&
        std::find(envs.begin(), envs.end(), query.environment) == envs.end()) {
      continue;
    }
    auto issues = readIssues(store, d->id);
    if (!issues.ok()) return issues.status();
    entries.push_back(logEntryJson(*d, issues->listed, issues->total, issues->truncated, envs));
    bytes += entries.back().dump(-1, ' ', false, json::error_handler_t::replace).size();
  }
  return json{{"entries", std::move(entries)}, {"truncated", truncated}};
}

}  // namespace flotilla::coordinator
