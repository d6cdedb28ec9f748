// The deployment plan: typed model, parser (YAML or JSON text) and the
// stored JSON form. The parser reports every problem at once, each with the
// 1-based line and column where it was found.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

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

struct ScriptSteps {
  std::string build;     // optional; empty = nothing to build
  std::string apply;     // required
  std::string verify;    // optional
  std::string rollback;  // required
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
  std::vector<uint32_t> steps;          // percentages, increasing, ending at 100
  std::chrono::milliseconds pause{0};   // analysis window after each step below 100
  uint32_t max_unavailable = 1;         // rolling: replicas that may be out at once
  uint32_t max_surge = 1;               // rolling: replicas over the count during the roll
};

struct HttpHealth {
  std::string path = "/health";
  std::chrono::milliseconds interval{2000};
  std::chrono::milliseconds timeout{1000};
  uint32_t failure_threshold = 3;  // this many in a row are tolerated; one more triggers
};

struct MetricsAnalysis {
  double error_rate_increase = 0.5;  // relative to the stable set
  double latency_p95_ratio = 2.0;
  uint64_t min_requests = 20;        // per set and window; fewer is inconclusive
  bool fail_when_inconclusive = false;  // false: keep watching (up to 3 more windows)
};

struct Health {
  HttpHealth http;
  std::optional<MetricsAnalysis> metrics;  // source: scrape (the replicas' /metrics)
};

struct Wave {
  std::string name;                             // [a-z0-9-], unique in the plan
  std::vector<std::string> clusters;            // by name, or ...
  std::map<std::string, std::string> selector;  // ... by labels (all must match)
  bool approval_required = false;
  uint32_t max_parallel = 0;  // 0 = every cluster of the wave at once
  std::optional<Strategy> strategy;   // overrides the plan's (process driver)
  std::chrono::milliseconds bake{0};  // watch at 100% before the wave is done (process driver)
};

struct Plan {
  std::string service;  // [a-z0-9-], 1..63
  std::string version;  // 1..128 printable characters, no whitespace
  DriverKind driver = DriverKind::kScript;
  ScriptSteps steps;
  std::vector<Wave> waves;
  RollbackScope rollback_scope = RollbackScope::kFleet;
  // process driver only
  ProcessSpec process;
  std::optional<HaproxyTraffic> haproxy;
  Strategy strategy;
  Health health;

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

// "300s", "5m", "1h", "250ms", "1h30m" -> milliseconds.
StatusOr<std::chrono::milliseconds> parseDuration(const std::string& text);
std::string formatDuration(std::chrono::milliseconds d);

// [a-z0-9-], 1..63, no leading or trailing '-'. Shared by service, cluster and wave names.
bool isValidName(const std::string& name);

const char* driverName(DriverKind d);
const char* rollbackScopeName(RollbackScope s);
const char* strategyName(StrategyKind s);

}  // namespace flotilla::common
