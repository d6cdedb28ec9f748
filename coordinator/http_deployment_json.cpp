// A deployment as the HTTP API shows it: the list's summary, the whole detail, the bounded
// summary view of a large deployment (`?view=summary`: counts per wave and the clusters that
// need attention) and a page of one wave's clusters (`/clusters`).
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/analysis_figures.hpp"
#include "common/plan.hpp"
#include "common/time_format.hpp"
#include "coordinator/cluster_view.hpp"
#include "coordinator/freeze.hpp"
#include "coordinator/http_api_internal.hpp"
#include "coordinator/wave_clusters.hpp"

namespace flotilla::coordinator::http_internal {

using common::Status;
using common::StatusOr;

namespace {

// The summary view lists at most this many clusters per wave (needing attention, or planned).
constexpr size_t kMaxAttention = 50;

// A wave's approvals: who approved and when, and, while the wave has not started, how long the
// oldest of them still counts (null when there is none). Read against the wall clock: the
// engine drops what expired when it next looks at the wave.
void addApprovals(const Deployment& d, size_t i, int64_t now_ms, json& wave) {
  const common::Wave& pw = d.plan.waves[i];
  const WaveProgress& w = d.waves[i];
  json approvals = json::array();
  std::optional<int64_t> oldest;
  for (const auto& a : w.approvals) {
    approvals.push_back({{"by", a.by}, {"role", a.role}, {"at", rfc3339(a.at_ms)}});
    oldest = oldest ? std::min(*oldest, a.at_ms) : a.at_ms;
  }
  const bool waiting = w.state == WaveState::kPending || w.state == WaveState::kAwaitingApproval;
  wave["approvals_required"] = pw.approval_required ? pw.approvals_required : 0;
  wave["approvals"] = std::move(approvals);
  wave["approval_expires_in"] =
      waiting && oldest
          ? json(std::max<int64_t>(0, (*oldest + pw.approval_expires.count() - now_ms) / 1000))
          : json(nullptr);
}

// The post-deploy watch (null when the plan has none): its tiers, the one running and how long
// it has left by the wall clock, and who ended it early.
json watchJson(const Deployment& d, int64_t now_ms) {
  if (d.plan.watch.empty()) return nullptr;
  json tiers = json::array();
  for (const auto& t : d.plan.watch) {
    tiers.push_back(
        {{"name", t.name}, {"for_ms", t.duration.count()}, {"interval_ms", t.interval.count()}});
  }
  json out = {{"tiers", std::move(tiers)},
              {"tier", nullptr},
              {"tier_name", nullptr},
              {"tier_started_at", nullptr},
              {"tier_left_ms", nullptr},
              {"done", d.watch_tier >= static_cast<int>(d.plan.watch.size())},
              {"ended_by", d.watch_ended_by.empty() ? json(nullptr) : json(d.watch_ended_by)}};
  if (d.watch_tier >= 0 && static_cast<size_t>(d.watch_tier) < d.plan.watch.size()) {
    const common::WatchTier& t = d.plan.watch[static_cast<size_t>(d.watch_tier)];
    out["tier"] = d.watch_tier;
    out["tier_name"] = t.name;
    out["tier_started_at"] = rfc3339(d.watch_tier_started_ms);
    out["tier_left_ms"] =
        std::max<int64_t>(0, d.watch_tier_started_ms + t.duration.count() - now_ms);
  }
  return out;
}

// Where the cluster is in its strategy (null where it has none), and its versions.
void addClusterView(const ClusterView& v, json& cluster) {
  cluster["strategy_step"] = v.strategy_step ? json(*v.strategy_step) : json(nullptr);
  cluster["strategy_steps"] = v.strategy_steps;
  cluster["weight"] = v.weight ? json(*v.weight) : json(nullptr);
  cluster["from_version"] = v.from_version;
  cluster["to_version"] = v.to_version;
}

// A cluster's verification checklist, every check of the plan's in order: "pending" until it is
// sent, then "running", "passed", "failed", "timed_out", "aborted", "unknown" ([] without a
// checklist).
json checklistJson(const common::Plan& plan, const ClusterProgress& c) {
  json out = json::array();
  for (const common::VerifyCheck& check : plan.steps.verify_checks) {
    json entry = {{"name", check.name}, {"state", "pending"}};
    for (const CheckRun& run : c.checks) {
      if (run.name != check.name) continue;
      entry["state"] = checkRunStateName(run);
      // Sent and never answered, and no longer out (its agent was lost, the cluster gave up).
      if (run.running && !(c.in_flight && c.check == run.name)) entry["state"] = "unknown";
      if (!run.running) {
        entry["duration_ms"] = run.duration_ms;
        entry["exit_code"] = run.exit_code;
        entry["message"] = run.message;
      }
    }
    out.push_back(std::move(entry));
  }
  return out;
}

// One cluster as every view shows it: its state and step, where it is in its strategy (weight),
// its checklist and the figures of its last analysis window.
json clusterJson(const Deployment& d, size_t wave, const ClusterProgress& c) {
  json out = {{"name", c.name},
              {"state", clusterStateName(c.state)},
              {"step", c.step ? stepName(*c.step) : ""},
              {"attempt", c.attempt},
              {"previous_version", c.previous_version},
              {"message", c.message},
              {"exit_code", c.exit_code ? json(*c.exit_code) : json(nullptr)}};
  addClusterView(viewCluster(d, wave, c), out);
  out["checks"] = checklistJson(d.plan, c);
  out["figures"] = c.figures ? common::figuresToJson(*c.figures) : json(nullptr);
  return out;
}

// Whether a cluster needs someone's eyes: it failed, its rollback did or is under way, or it was
// stopped. The summary view lists these first (at most kMaxAttention).
bool needsAttention(const ClusterProgress& c) {
  return c.state == ClusterState::kFailed || c.state == ClusterState::kRollbackFailed ||
         c.state == ClusterState::kRollingBack || c.state == ClusterState::kAborted;
}

// The summary view's wave: how many clusters, how many in each state, and those that need
// attention (bounded), instead of every cluster.
void addWaveCounts(const Deployment& d, size_t i, json& wave) {
  const WaveProgress& w = d.waves[i];
  std::vector<size_t> counts(kClusterStateCount, 0);
  json attention = json::array();
  size_t attention_total = 0;
  for (const ClusterProgress& c : w.clusters) {
    ++counts[static_cast<size_t>(c.state)];
    if (!needsAttention(c)) continue;
    if (++attention_total <= kMaxAttention) attention.push_back(clusterJson(d, i, c));
  }
  json by_state = json::object();
  for (int s = 0; s < kClusterStateCount; ++s) {
    if (counts[static_cast<size_t>(s)] > 0) {
      by_state[clusterStateName(static_cast<ClusterState>(s))] = counts[static_cast<size_t>(s)];
    }
  }
  wave["clusters_total"] = w.clusters.size();
  wave["counts"] = std::move(by_state);
  wave["attention"] = std::move(attention);
  wave["attention_total"] = attention_total;
}

// The environments a deployment's waves run in, each once, in wave order.
json environmentsOf(const common::Plan& plan) {
  std::vector<std::string> envs;
  for (const common::Wave& w : plan.waves) {
    if (!w.environment.empty() &&
        std::find(envs.begin(), envs.end(), w.environment) == envs.end()) {
      envs.push_back(w.environment);
    }
  }
  return envs;
}

}  // namespace

json summaryJson(const Deployment& d) {
  json current = nullptr;
  if (d.wave_index < d.waves.size()) current = d.waves[d.wave_index].name;
  return json{{"id", d.id},
              {"service", d.plan.service},
              {"version", d.plan.version},
              {"state", deploymentStateName(d.state)},
              {"current_wave", current},
              {"wave_index", std::min(d.wave_index, d.waves.size())},
              {"waves_total", d.waves.size()},
              {"created_at", rfc3339(d.created_ms)},
              {"updated_at", rfc3339(d.updated_ms)},
              {"reason", d.reason},
              {"waits_for", d.waits_for.empty() ? json(nullptr) : json(d.waits_for)},
              {"hotfix", d.plan.hotfix ? json(d.plan.hotfix->reason) : json(nullptr)},
              {"submitted_by", d.submitted_by},
              {"environments", environmentsOf(d.plan)}};
}

// The active freezes for a status view; a store that cannot be read shows none (the view is
// not refused for it, and the engine, not this, enforces them).
std::vector<Freeze> freezesForView(const Store& store) {
  auto active = activeFreezes(store);
  if (active.ok()) return std::move(active).value();
  spdlog::warn("reading freezes for a status view: {}", active.status().toString());
  return {};
}

json detailJson(const Deployment& d, const AgentsByName& agents, const std::vector<Freeze>& freezes,
                DetailView view) {
  const bool full = view == DetailView::kFull;
  json out = summaryJson(d);
  // Every active freeze (the CLI's banner), and the one that holds this deployment, if any.
  out["freezes"] = freezesJson(freezes);
  const Freeze* covering = isFinal(d.state) ? nullptr : coveringFreeze(freezes, d, agents);
  out["frozen_by"] = covering != nullptr ? freezeJson(*covering) : json(nullptr);
  out["plan_sha256"] = d.plan_sha256;
  out["last_event_seq"] = d.last_event_seq;
  out["driver"] = common::driverName(d.plan.driver);
  const int64_t now_ms = common::toUnixMillis(std::chrono::system_clock::now());
  json waves = json::array();
  for (size_t i = 0; i < d.waves.size(); ++i) {
    const WaveProgress& w = d.waves[i];
    json wave = {
        {"name", w.name},
        {"state", waveStateName(w.state)},
        {"environment",
         d.plan.waves[i].environment.empty() ? json(nullptr) : json(d.plan.waves[i].environment)},
        {"strategy", d.plan.driver == common::DriverKind::kProcess
                         ? json(common::strategyName(d.plan.strategyFor(i).kind))
                         : json(nullptr)},
        {"approval_required", d.plan.waves[i].approval_required},
        {"approved", w.approved}};
    if (full) {
      json clusters = json::array();
      for (const auto& c : w.clusters) clusters.push_back(clusterJson(d, i, c));
      wave["clusters"] = std::move(clusters);
    } else {
      addWaveCounts(d, i, wave);
    }
    addApprovals(d, i, now_ms, wave);
    // Before a wave starts (awaiting its approval, above all): the clusters it will touch if it
    // starts now, so that an approver sees where the version goes.
    json planned = nullptr;
    if (!w.resolved && !isFinal(d.state)) {
      std::vector<std::string> names = upcomingWaveClusters(d, i, agents);
      wave["planned_clusters_total"] = names.size();
      if (!full && names.size() > kMaxAttention) names.resize(kMaxAttention);
      planned = std::move(names);
    }
    wave["planned_clusters"] = std::move(planned);
    waves.push_back(std::move(wave));
  }
  out["waves"] = waves;
  out["failure"] = d.failure ? json{{"cluster", d.failure->cluster},
                                    {"step", d.failure->step},
                                    {"message", d.failure->message}}
                             : json(nullptr);
  out["rollback_failed_clusters"] = d.rollback_failed;
  out["watch"] = watchJson(d, now_ms);
  addReleaseLog(d, out);
  if (full) out["plan"] = json::parse(common::planToJson(d.plan));
  return out;
}

StatusOr<json> clusterPageJson(const Deployment& d, const ClusterPageQuery& q) {
  if (q.limit == 0 || q.limit > kMaxClusterPage) {
    return Status::InvalidArgument("limit must be 1 to " + std::to_string(kMaxClusterPage));
  }
  std::optional<ClusterState> state;
  if (!q.state.empty()) {
    for (int s = 0; s < kClusterStateCount; ++s) {
      if (q.state == clusterStateName(static_cast<ClusterState>(s))) {
        state = static_cast<ClusterState>(s);
      }
    }
    if (!state)
      return Status::InvalidArgument("state " + quoted(q.state) + " is not a cluster state");
  }
  for (size_t i = 0; i < d.waves.size(); ++i) {
    const WaveProgress& w = d.waves[i];
    if (w.name != q.wave) continue;
    json clusters = json::array();
    size_t matching = 0;
    for (const ClusterProgress& c : w.clusters) {
      if (state && c.state != *state) continue;
      if (matching >= q.offset && clusters.size() < q.limit) {
        clusters.push_back(clusterJson(d, i, c));
      }
      ++matching;
    }
    return json{{"wave", w.name},
                {"total", matching},
                {"offset", q.offset},
                {"limit", q.limit},
                {"clusters", std::move(clusters)}};
  }
  return Status::NotFound("deployment " + d.id + " has no wave " + quoted(q.wave));
}

}  // namespace flotilla::coordinator::http_internal
