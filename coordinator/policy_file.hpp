// The policy file the coordinator runs with (--policy FILE): read at start (any mistake stops
// the start, each with its line:column), read again on SIGHUP and on POST
// /api/v1/policy/reload. A reload that finds a mistake keeps the policy in force and says why.
// Thread-safe: HTTP threads read the policy in force while the loop reloads it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/plan.hpp"
#include "common/policy.hpp"
#include "common/status.hpp"

namespace flotilla::coordinator {

// Policy files are a few kilobytes; anything past this is refused unread.
inline constexpr uint64_t kMaxPolicyFileBytes = 1 << 20;

struct PolicyReload {
  bool ok = false;
  std::string sha256;                         // of the policy in force after it
  std::string message;                        // what happened, one line
  std::vector<common::PlanProblem> problems;  // the file's mistakes (when not ok)
};

class PolicyFile {
 public:
  // `path` empty: no policy (every call below reports that; current() is null).
  explicit PolicyFile(std::string path);

  // The first read. Not OK (InvalidArgument listing every problem as "FILE:line:column:
  // message") when the file cannot be read or has a mistake.
  common::Status load();
  // Reads the file again; in force only when it has no mistake.
  PolicyReload reload();

  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  // The policy in force (null without --policy). Copies stay valid across reloads.
  std::shared_ptr<const common::Policy> current() const;
  // For GET /api/v1/policy: path, sha256, loaded_at, the policy, the last reload's outcome.
  nlohmann::json toJson() const;

 private:
  // Reads and parses the file; problems when it has any.
  PolicyReload read(std::shared_ptr<const common::Policy>* parsed) const;

  std::string path_;
  mutable std::mutex mu_;
  std::shared_ptr<const common::Policy> current_;
  int64_t loaded_at_ms_ = 0;
  PolicyReload last_reload_;
  int64_t last_reload_at_ms_ = 0;
};

}  // namespace flotilla::coordinator
