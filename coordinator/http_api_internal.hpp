// Internal to the HTTP API (coordinator/http_*.cpp): the replies, JSON errors and audit
// plumbing every group of routes shares. The API is split by what it serves:
//
//   http_api.cpp          the server: limits, TLS, bind, serve, the one list of route groups
//   http_auth.cpp         before routing: Host, bearer token, the route's permission
//                         (permissions.cpp holds the table), Content-Type, rate limit, body
//                         encoding; the audit records of requests
//   http_deployments.cpp  deployments: submit, list, show, approve/rollback/pause/resume/cancel
//   http_deployment_json.cpp  a deployment's JSON: summary, detail, the bounded summary view,
//                         a page of a wave's clusters
//   http_events.cpp       a deployment's events (filtered by type, cluster, time): a JSON
//                         page, or a live SSE stream
//   http_agents.cpp       agents: list, enroll, revoke, remove
//   http_tokens.cpp       API tokens and the audit trail
//   http_policy.cpp       the policy in force, and its reload
//   http_releases.cpp     releases: the checks CI reports, each environment's checklist
//   http_freeze.cpp       incident freezes: freeze, unfreeze, the active ones, notes
//   http_log.cpp          the deployment log, and notes on deployments
//   http_triggers.cpp     policy triggers: a stored plan template started with a version
//   http_session.cpp      dashboard sessions: a token traded for a cookie, logout
//   http_ui.cpp           the dashboard's files (web/, built into the binary)
#pragma once

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "coordinator/freeze.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/permissions.hpp"
#include "coordinator/promotion.hpp"
#include "coordinator/records.hpp"
#include "coordinator/wave_clusters.hpp"

namespace flotilla::coordinator {

namespace http_internal {

using nlohmann::json;

inline constexpr size_t kMaxBodyBytes = 1024 * 1024;

// Request text quoted in a JSON error: escaped, invalid UTF-8 replaced (nlohmann throws on it
// otherwise), and cut short so a hostile path cannot make a huge reply.
std::string quoted(const std::string& text);
int httpStatus(const common::Status& s);
// "ok", or the HTTP status of an error: the outcome of an audit record.
std::string outcomeOf(const common::Status& s);
void reply(httplib::Response& res, int status, const json& body);
void replyError(httplib::Response& res, const common::Status& s);
std::string rfc3339(int64_t ms);
int64_t nowMs();
std::string lower(std::string text);
bool isMutating(const std::string& method);
// A JSON object body with only `keys`, each a string; nothing is required here (an empty body
// has no fields). Unknown fields and other types are refused, naming the known ones.
common::StatusOr<std::map<std::string, std::string>> stringFields(
    const std::string& body, std::initializer_list<const char*> keys);
// "ADDRESS:PORT" of the caller ("[ADDRESS]:PORT" for IPv6).
std::string clientOf(const httplib::Request& req);
// The dashboard session id of the request's `flotilla_session` cookie, if it has one that
// could be ours (hex, bounded); nothing otherwise.
std::optional<std::string> sessionCookie(const httplib::Request& req);
// The header a change made with a session cookie must carry: the session's CSRF secret.
inline constexpr char kCsrfHeader[] = "X-Flotilla-CSRF";

// A deployment id from a request, checked before it reaches the store. Deployment ids are
// "<service>-<n>": anything else (traversal, control characters, huge strings) is refused.
common::Status checkDeploymentId(const std::string& id);
common::StatusOr<Deployment> loadById(Store& store, const std::string& id);

// The filters of `GET /api/v1/deployments/ID/events`: ?type=P[,P...] where P is a family
// ("stage", "stage.*") or one type ("stage.failed") of a known family; ?cluster=NAME;
// ?since=RFC3339. Every value is bounded and checked; an empty filter matches every event.
struct EventFilter {
  std::vector<std::string> families;  // "stage" matches every stage.* event
  std::vector<std::string> types;     // exact types
  std::string cluster;
  std::optional<int64_t> since_ms;

  static common::StatusOr<EventFilter> fromQuery(const httplib::Request& req);
  bool matches(const StoredEvent& e) const;
};

// The release and log fields of a deployment's detail (http_log.cpp): changes,
// release_notes_url, notes, finished_at.
void addReleaseLog(const Deployment& d, json& detail);

// One agent of `GET /api/v1/agents`: its state against now, last_seen (null when not heard
// from in this run), silent_ms, unknown_after_ms (null: not asked to beat) and lost_after_ms.
json agentJson(const AgentView& v);

// Incident freezes (http_freeze.cpp): one as the API shows it, the active ones as the store
// holds them (durable), and a list of them.
json freezeJson(const Freeze& f);
common::StatusOr<std::vector<Freeze>> activeFreezes(const Store& store);
json freezesJson(const std::vector<Freeze>& freezes);

// A deployment as the API shows it (http_deployment_json.cpp). The list's entry:
json summaryJson(const Deployment& d);
// The whole detail (kFull: every cluster, and the plan), or the view that stays small for
// 10,000 clusters (kSummary, `?view=summary`: per wave the count of clusters in each state and
// at most 50 needing attention instead of every cluster; no plan).
enum class DetailView { kFull, kSummary };
json detailJson(const Deployment& d, const AgentsByName& agents, const std::vector<Freeze>& freezes,
                DetailView view = DetailView::kFull);
// The active freezes for a status view; none when the store cannot be read (the view is not
// refused for it: the engine, not this, enforces them).
std::vector<Freeze> freezesForView(const Store& store);
// A page of one wave's clusters (`GET /api/v1/deployments/ID/clusters`), optionally only those
// in one state: {wave, total (matching), offset, limit, clusters}.
inline constexpr size_t kMaxClusterPage = 500;
struct ClusterPageQuery {
  std::string wave;
  size_t offset = 0;
  size_t limit = 50;
  std::string state;  // a cluster state's name; "" every state
};
common::StatusOr<json> clusterPageJson(const Deployment& d, const ClusterPageQuery& q);

// Submission's refusals (http_deployments.cpp), shared with triggers (http_triggers.cpp).
// A plan whose waves name clusters nobody registered, or select none: 400, each problem with
// its wave's position, and the clusters that do exist.
json clusterProblemsJson(const PlanClusters& resolved);
// A refused plan's answer: "<what>: N problems" and each with its line and column.
json problemsJson(const std::string& what, const std::vector<common::PlanProblem>& problems);
// FailedPrecondition when every wave of `plan` requires checks its release has not met (read
// from what is durable), naming what each wave needs.
common::Status wholePlanBlocked(Store& store, const common::Plan& plan);
// The waves of `plan` whose promotion (coordinator/promotion.hpp) its release, as durable now,
// does not meet at submission.
common::StatusOr<std::vector<PromotionGap>> submissionPromotionGaps(Store& store,
                                                                    const common::Plan& plan,
                                                                    int64_t now_ms);

}  // namespace http_internal

// What gate() decided about a request.
struct HttpApi::Gate {
  int status = 0;                   // 0: let it through; otherwise the answer
  std::string error;                // for the answer
  std::optional<Actor> actor;       // who, once the token checked out
  std::optional<std::string> csrf;  // set when by a dashboard session: its CSRF secret
  const Route* route = nullptr;
};

template <typename T>
common::StatusOr<T> HttpApi::audited(AuditEntry entry,
                                     std::function<common::StatusOr<T>(AuditEntry&)> change) {
  return tasks_.call<T>([&]() -> common::StatusOr<T> {
    common::StatusOr<T> result = change(entry);
    entry.outcome = http_internal::outcomeOf(result.status());
    if (!result.ok()) entry.detail = result.status().message();
    common::Status s = audit_.append(entry, http_internal::nowMs());
    if (!s.ok()) spdlog::error("audit: cannot record {}: {}", entry.action, s.toString());
    return result;
  });
}

}  // namespace flotilla::coordinator
