// The deployment plan: typed model, parser (YAML or JSON text) and the
// stored JSON form. The parser reports every problem at once, each with the
// 1-based line and column where it was found. Names, versions and durations
// follow the rules of common/rules.hpp, included here for the plan's users.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/rules.hpp"  // names, versions and durations (parseDuration, formatDuration)
#include "common/status.hpp"

namespace flotilla::common {

enum class DriverKind {
  kScript,   // shell commands run by the agent
  kProcess,  // the agent runs the service's replicas as local processes
};

enum class RollbackScope {
  kFleet,  // every cluster the new version reached, newest wave first
  kWave,   // only the clusters of the wave that failed
};

// One check of a verification checklist (`steps.verify` written as a list, the workflow's
// health, smoke, integration, performance, logs): each runs as its own verify stage, in order,
// with FLOTILLA_CHECK=<name>; the first that fails or times out fails the cluster.
struct VerifyCheck {
  std::string name;                                  // isVerifyCheckName, unique in the list
  std::string command;                               // run like any step's
  std::optional<std::chrono::milliseconds> timeout;  // unset: steps.timeout

  bool operator==(const VerifyCheck&) const = default;
};
inline constexpr size_t kMaxVerifyChecks = 16;
// 1 to 63 characters from [a-z0-9_-].
bool isVerifyCheckName(std::string_view name);
inline constexpr char kVerifyCheckNameRule[] = "use 1 to 63 characters from [a-z0-9_-]";

struct ScriptSteps {
  std::string build;   // optional; empty = nothing to build
  std::string apply;   // required
  std::string verify;  // optional: `verify: COMMAND`, one check named "verify"
  // `verify: [{name, command, timeout}, ...]`: a checklist, at most kMaxVerifyChecks (then
  // `verify` is empty).
  std::vector<VerifyCheck> verify_checks;
  std::string rollback;  // required
  // Optional: moves traffic to the new version (FLOTILLA_WEIGHT) once `apply` brought it up
  // without any. Needed by blue_green; with a canary each step runs it instead of `apply`.
  std::string switch_traffic;
  // Optional: run at each interval of the post-deploy watch (WatchTier) on every cluster the
  // deployment reached; more than health.http.failure_threshold failures in a row roll back.
  std::string watch;
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

// process driver: how to run one replica.
struct ProcessSpec {
  std::string command;  // with {version}, {port} (and {cluster}) placeholders
  uint32_t replicas = 1;
  uint32_t port_min = 0;  // "ports: 18000-18099"
  uint32_t port_max = 0;
  std::string health_path = "/health";
};

// HAProxy in front of a cluster's replicas, driven through its runtime API.
struct HaproxyTraffic {
  std::string socket;   // stats socket path; may contain {cluster}
  std::string backend;  // with `server-template` slots the agent fills in
};

enum class StrategyKind {
  kAllAtOnce,  // no strategy given: the new set takes all traffic in one move
  kCanary,     // traffic moves in steps, analysed against the stable set after each
  kBlueGreen,  // a full new set, switched all at once (or in steps); old kept until the bake ends
  kRolling,    // replicas replaced a few at a time within max_unavailable / max_surge
};

struct Strategy {
  StrategyKind kind = StrategyKind::kAllAtOnce;
  std::vector<uint32_t> steps;         // percentages, increasing, ending at 100
  std::chrono::milliseconds pause{0};  // analysis window after each step below 100
  uint32_t max_unavailable = 1;        // rolling: replicas that may be out at once
  uint32_t max_surge = 1;              // rolling: replicas over the count during the roll
};

struct HttpHealth {
  std::string path = "/health";  // process driver: on each replica
  // Script driver: the service's own address, with {cluster}, {version} and {environment}
  // filled in by the agent ("" = no health checks).
  std::string url;
  std::chrono::milliseconds interval{2000};
  std::chrono::milliseconds timeout{1000};
  uint32_t failure_threshold = 3;  // this many in a row are tolerated; one more triggers
};

enum class MetricsSource { kScrape, kPrometheus };

// PromQL for `source: prometheus`, evaluated once per set (new and stable) at the end of each
// analysis window. Placeholders: {instances} is a regex of the set's "127.0.0.1:PORT" targets
// (Prometheus' `instance` label), {window} the window as a range ("30s"), {version} the set's
// version. Each query must give one number; an empty answer is "no data".
struct PrometheusQueries {
  std::string request_rate = "sum(rate(http_requests_total{instance=~\"{instances}\"}[{window}]))";
  std::string error_rate =
      "(sum(rate(http_requests_total{instance=~\"{instances}\",code=~\"5..\"}[{window}])) "
      "or vector(0)) / sum(rate(http_requests_total{instance=~\"{instances}\"}[{window}]))";
  std::string latency_p95 =
      "histogram_quantile(0.95, sum by (le) "
      "(rate(http_request_duration_seconds_bucket{instance=~\"{instances}\"}[{window}])))";
};

struct MetricsAnalysis {
  MetricsSource source = MetricsSource::kScrape;
  std::string prometheus;  // base URL of the Prometheus server (source: prometheus)
  PrometheusQueries queries;
  double error_rate_increase = 0.5;  // relative to the stable set
  double latency_p95_ratio = 2.0;
  uint64_t min_requests = 20;           // per set and window; fewer is inconclusive
  bool fail_when_inconclusive = false;  // false: keep watching (up to 3 more windows)
};

struct Health {
  HttpHealth http;
  std::optional<MetricsAnalysis> metrics;
};

// Thresholds that raise an alert (an event and a webhook POST) while the new version is
// watched. Alerts inform; they do not roll back by themselves (the health and metrics rules do).
// On by default with the workflow's thresholds (a process-driver plan without `alerts:` gets
// these); a plan changes a rule, turns one off (`cpu: off`: absent here) or all (`alerts: off`:
// no Alerts at all).
struct Alerts {
  std::optional<double> error_rate = 0.05;          // absolute share of 5xx
  std::optional<double> latency_p95_ratio = 2.0;    // against the stable version's p95
  std::optional<double> cpu = 0.9;                  // share of one core, per replica on average
  std::optional<double> memory = 0.9;               // share of the host's memory, the whole set
  std::string webhook;                              // http(s) URL; empty: events only
  std::chrono::milliseconds webhook_timeout{5000};  // per attempt
  uint32_t webhook_attempts = 3;
};

// `approval: {required: N, expires: D}`: an approval counts for at most a day (the default), so
// a wave approved ahead does not start on a yes that is no longer current.
constexpr std::chrono::milliseconds kMaxApprovalValidity = std::chrono::hours(24);
constexpr uint32_t kMaxApprovalsRequired = 10;

enum class CheckOp { kAtLeast, kAbove, kAtMost, kBelow, kEqual };

// ">=", ">", "<=", "<", "==".
const char* checkOpText(CheckOp op);

struct CheckThreshold {
  CheckOp op = CheckOp::kAtLeast;
  double value = 0;
};

// A check a release must have passed: "tests", or "coverage >= 80" with a threshold on the
// reported value. Names are 1 to 63 characters from [a-z0-9_] (the workflow's are tests,
// coverage, lint, security_scan, performance, docs, version_bumped, changelog, release_notes,
// migrations, config_changes, rollback_plan).
// Names are 1 to 63 characters from [a-z0-9_].
bool isCheckName(std::string_view name);
inline constexpr char kCheckNameRule[] = "use 1 to 63 characters from [a-z0-9_]";
// Whether a reported value meets the threshold.
bool thresholdMet(const CheckThreshold& threshold, double value);
// The operator of ">=", ">", "<=", "<", "=="; nothing for anything else.
std::optional<CheckOp> parseCheckOp(std::string_view text);

struct Check {
  std::string name;
  std::optional<CheckThreshold> threshold;
  // "tests", "coverage >= 80": what the file said, normalised.
  std::string text() const;
};

// The policy's hotfix rules (common/policy.hpp, `hotfix:` in the policy file). Here because a
// hotfix plan carries the rules in force when it was submitted.
struct Hotfix {
  uint32_t approvals = 1;                // 1 to 10
  std::vector<std::string> skip_checks;  // each required by some environment
  std::chrono::milliseconds soak{0};
  double watch_factor = 2;  // 1 to 10: how much longer the first watch tier runs
  bool allowed_during_freeze = false;
};

// A hotfix (`hotfix: {reason: ...}` in the plan, or `flotilla submit --hotfix --reason`).
struct PlanHotfix {
  std::string reason;  // why: 1 to kMaxHotfixReasonBytes of free text (checkHotfixReason)
  // The rules it ran under: the policy's `hotfix:` at submission, the defaults above without a
  // policy. Set by the coordinator, never read from the plan text. What reads them: approvals
  // and skip_checks, coordinator/policy_rules.cpp at submission; allowed_during_freeze,
  // coordinator/freeze.cpp (a freeze does not hold such a hotfix); soak, promotion; watch_factor,
  // the post-deploy watch's first tier.
  Hotfix rules;
};

// One tier of the post-deploy watch (the policy's environments[].watch): after a deployment
// reached 100% everywhere, its clusters are watched every `interval` for `duration`, with the
// automatic rollback still armed.
struct WatchTier {
  std::string name;
  std::chrono::milliseconds duration{0};  // `for` in the file
  std::chrono::milliseconds interval{0};  // at most `duration`

  bool operator==(const WatchTier&) const = default;
};

struct Wave {
  std::string name;                             // [a-z0-9-], unique in the plan
  std::vector<std::string> clusters;            // by name, or ...
  std::map<std::string, std::string> selector;  // ... by labels (all must match)
  bool approval_required = false;
  // With approval_required: distinct approvers needed (1..10), none of them the submitter, and
  // how long an approval counts (at most 24h) once given.
  uint32_t approvals_required = 1;
  std::chrono::milliseconds approval_expires{kMaxApprovalValidity};
  uint32_t max_parallel = 0;          // 0 = every cluster of the wave at once
  std::optional<Strategy> strategy;   // overrides the plan's
  std::chrono::milliseconds bake{0};  // watch at 100% before the wave is done
  // Clusters of this wave that may be lost at once before on_agent_lost applies; unset: the
  // plan's max_unavailable_clusters.
  std::optional<uint32_t> max_unavailable_clusters;
  // The policy environment its clusters belong to (coordinator/policy_rules.hpp), set by the
  // coordinator at submission when it runs with --policy; "" otherwise. Never read from a
  // submitted plan: a plan author cannot choose it.
  std::string environment;
  // The checks a release must have passed before this wave starts: its environment's, from
  // the policy at submission (coordinator/releases.hpp judges them). Never from the plan text.
  std::vector<Check> checks;
  // Its environment's promotion rule, from the policy at submission ("" none; never from the
  // plan text): the release must have succeeded in `promote_from`, with the artifact it has
  // now, at least `promote_soak` before this wave starts (coordinator/promotion.hpp).
  std::string promote_from;
  std::chrono::milliseconds promote_soak{0};
  // Where the wave starts in the submitted text (1-based; 0 when unknown). Not part of the stored
  // form: only submission's checks against the registry report it.
  int line = 0;
  int column = 0;
};

// What a cluster whose agent falls silent past the deadline does to the rollout, once more
// clusters are lost than max_unavailable_clusters allows. Up to that many are waited for.
enum class OnAgentLost {
  kRollback,  // roll the fleet back (the default: a lost cluster is a failed step)
  kWait,      // pause the deployment until enough of them come back
};

// What a forward step that fails or times out (build, apply, verify, deploy, shift, roll,
// finalize) does to the rollout. Analysis and bake verdicts, health failures and lost agents
// roll back whatever this says: they are the workflow's rollback triggers.
enum class OnStepFailure {
  kRollback,  // roll back (the default: a failed step is a rollback trigger)
  kHold,      // pause the deployment on the failed cluster until `flotilla retry` or `rollback`
};

struct Plan {
  std::string service;  // isValidName (kNameRule)
  std::string version;  // isValidVersion (kVersionRule)
  DriverKind driver = DriverKind::kScript;
  ScriptSteps steps;
  std::vector<Wave> waves;
  RollbackScope rollback_scope = RollbackScope::kFleet;
  OnAgentLost on_agent_lost = OnAgentLost::kRollback;
  OnStepFailure on_step_failure = OnStepFailure::kRollback;
  uint32_t max_unavailable_clusters = 0;  // lost at once in the whole fleet, waited for
  // process driver only
  ProcessSpec process;
  std::optional<HaproxyTraffic> haproxy;
  // both drivers (the script driver's steps move the traffic themselves)
  Strategy strategy;
  Health health;
  std::optional<Alerts> alerts;
  // Set: this deployment is a hotfix (marked in status, events and the log; supersedes the
  // service's deployment in flight).
  std::optional<PlanHotfix> hotfix;
  // The post-deploy watch, tier after tier: its environment's (coordinator/policy_rules.hpp),
  // set at submission when the coordinator runs with --policy. Never read from a submitted plan.
  std::vector<WatchTier> watch;

  const Strategy& strategyFor(size_t wave) const {
    return waves[wave].strategy ? *waves[wave].strategy : strategy;
  }
};

struct PlanProblem {
  int line = 0;    // 1-based; 0 when the problem has no position
  int column = 0;  // 1-based
  std::string message;
  std::string toString() const;  // "line:column: message"
};

struct PlanParseResult {
  std::optional<Plan> plan;           // set only when problems is empty
  std::vector<PlanProblem> problems;  // sorted by line, then column
};

// Parses YAML or JSON plan text.
PlanParseResult parsePlan(const std::string& text);

// The stored form (what the coordinator keeps in RocksDB).
std::string planToJson(const Plan& plan);
StatusOr<Plan> planFromJson(const std::string& json);

const char* driverName(DriverKind d);
const char* rollbackScopeName(RollbackScope s);
const char* strategyName(StrategyKind s);

}  // namespace flotilla::common
