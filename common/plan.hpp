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
  kScript,  // shell commands run by the agent
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

struct Wave {
  std::string name;                             // [a-z0-9-], unique in the plan
  std::vector<std::string> clusters;            // by name, or ...
  std::map<std::string, std::string> selector;  // ... by labels (all must match)
  bool approval_required = false;
  uint32_t max_parallel = 0;  // 0 = every cluster of the wave at once
};

struct Plan {
  std::string service;  // [a-z0-9-], 1..63
  std::string version;  // 1..128 printable characters, no whitespace
  DriverKind driver = DriverKind::kScript;
  ScriptSteps steps;
  std::vector<Wave> waves;
  RollbackScope rollback_scope = RollbackScope::kFleet;
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

}  // namespace flotilla::common
