// The policy file the coordinator runs with (--policy FILE): read at start (any mistake stops
// the start, each with its line:column), read again on SIGHUP and on POST
// /api/v1/policy/reload. A reload that finds a mistake keeps the policy in force and says why.
// The plan templates its triggers name are read and parsed with it (a template's mistake is the
// policy's: refused at start, a reload keeps the old policy).
// Thread-safe: HTTP threads read the policy in force while the loop reloads it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
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
  // The trigger templates' mistakes (when not ok), each "FILE:line:column: message" (or
  // "FILE: why" when it cannot be read).
  std::vector<std::string> template_problems;
};

// A policy trigger's plan template (`triggers: [{name, plan}]`), read and parsed with the
// policy: `POST /api/v1/triggers/{name}` deploys it with the version it is given.
struct TriggerTemplate {
  std::string name;
  std::string environment;  // the environment whose `triggers` list names it
  std::string path;         // the file, relative to the policy file's directory
  common::Plan plan;        // as parsed (its version is replaced when it is started)
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
  // The trigger `name` of the policy in force (its template parsed); nullopt when none.
  std::optional<TriggerTemplate> trigger(const std::string& name) const;
  // For GET /api/v1/policy: path, sha256, loaded_at, the policy, the last reload's outcome.
  nlohmann::json toJson() const;

 private:
  using Templates = std::map<std::string, TriggerTemplate>;  // by trigger name
  // Reads and parses the file and its trigger templates; problems when any has them.
  PolicyReload read(std::shared_ptr<const common::Policy>* parsed, Templates* templates) const;
  // Reads and parses every trigger template `policy` names into `templates`, each mistake into
  // `problems`.
  void readTemplates(const common::Policy& policy, Templates* templates,
                     std::vector<std::string>* problems) const;

  std::string path_;
  mutable std::mutex mu_;
  std::shared_ptr<const common::Policy> current_;
  Templates templates_;
  int64_t loaded_at_ms_ = 0;
  PolicyReload last_reload_;
  int64_t last_reload_at_ms_ = 0;
};

}  // namespace flotilla::coordinator
