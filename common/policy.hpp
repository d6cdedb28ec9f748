// The policy file (DESIGN.md "Policy", issue 13): the organisation's rules per environment —
// which agents belong to it, who may deploy, approvals, the checks a release must have passed,
// promotion, triggers and the post-deploy watch — and the hotfix rules. This is the model and
// its parser; the coordinator does not read a policy yet.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/plan.hpp"

namespace flotilla::common {

// Check, CheckOp and CheckThreshold live in common/plan.hpp: waves carry the checks their
// environment requires.

struct EnvironmentApproval {
  uint32_t required = 1;  // 1 to 10 approvers
};

// An environment accepts a version only after it succeeded in `from` at least `soak` ago.
struct Promotion {
  std::string from;
  std::chrono::milliseconds soak{0};
};

// `POST /api/v1/triggers/{name}` starts the stored plan `plan` in this environment.
struct Trigger {
  std::string name;  // [a-z0-9-], unique across the file
  std::string plan;
};

// WatchTier (one tier of the post-deploy watch) lives in common/plan.hpp: plans carry the
// tiers of their environment.

struct Environment {
  std::string name;
  std::map<std::string, std::string> clusters;  // agent label selector, at least one label
  std::vector<std::string> deployers;           // roles or token names; empty: every deployer
  std::optional<EnvironmentApproval> approval;
  std::vector<Check> checks;
  std::optional<Promotion> promotion;
  std::vector<Trigger> triggers;
  std::vector<WatchTier> watch;
};

// Hotfix (the `hotfix:` rules) lives in common/plan.hpp too: a hotfix plan carries them.

struct Policy {
  std::map<std::string, Environment> environments;
  std::vector<std::string> environment_order;  // the names as the file lists them
  std::optional<Hotfix> hotfix;
  std::string sha256;  // of the file text, 64 hex digits
};

struct PolicyParseResult {
  std::optional<Policy> policy;       // set only when problems is empty
  std::vector<PlanProblem> problems;  // sorted by line, then column
};

// Parses YAML or JSON policy text, reporting every mistake with its line:column.
PolicyParseResult parsePolicy(const std::string& text);

// For GET /api/v1/policy: environments in file order, checks as text, durations in ms, sha256.
nlohmann::json policyToJson(const Policy& policy);

}  // namespace flotilla::common
