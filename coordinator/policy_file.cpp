#include "coordinator/policy_file.hpp"

#include <chrono>
#include <fstream>
#include <sstream>

#include "common/time_format.hpp"
#include "common/user_text.hpp"

namespace flotilla::coordinator {
namespace {

using common::Status;
using nlohmann::json;

int64_t nowMs() { return common::toUnixMillis(std::chrono::system_clock::now()); }

json problemsJson(const std::vector<common::PlanProblem>& problems) {
  json out = json::array();
  for (const auto& p : problems) {
    out.push_back({{"line", p.line}, {"column", p.column}, {"message", p.message}});
  }
  return out;
}

}  // namespace

PolicyFile::PolicyFile(std::string path) : path_(std::move(path)) {}

PolicyReload PolicyFile::read(std::shared_ptr<const common::Policy>* parsed) const {
  PolicyReload out;
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    out.message = "cannot read the policy file " + common::quote(path_);
    return out;
  }
  std::string text;
  text.resize(kMaxPolicyFileBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxPolicyFileBytes) {
    out.message = "the policy file " + common::quote(path_) + " is larger than " +
                  std::to_string(kMaxPolicyFileBytes) + " bytes";
    return out;
  }
  common::PolicyParseResult result = common::parsePolicy(text);
  if (!result.policy) {
    out.problems = std::move(result.problems);
    const size_t n = out.problems.size();
    out.message = "the policy file " + common::quote(path_) + " has " + std::to_string(n) +
                  (n == 1 ? " mistake" : " mistakes");
    return out;
  }
  out.ok = true;
  out.sha256 = result.policy->sha256;
  *parsed = std::make_shared<const common::Policy>(std::move(*result.policy));
  return out;
}

Status PolicyFile::load() {
  if (!enabled()) return Status::Ok();
  std::shared_ptr<const common::Policy> parsed;
  PolicyReload r = read(&parsed);
  if (!r.ok) {
    std::string text = r.message;
    for (const auto& p : r.problems) text += "\n  " + path_ + ":" + p.toString();
    return Status::InvalidArgument(text);
  }
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(parsed);
  loaded_at_ms_ = nowMs();
  return Status::Ok();
}

PolicyReload PolicyFile::reload() {
  PolicyReload r;
  if (!enabled()) {
    r.message = "the coordinator runs without a policy (start it with --policy FILE)";
    return r;
  }
  std::shared_ptr<const common::Policy> parsed;
  r = read(&parsed);
  std::lock_guard<std::mutex> lock(mu_);
  if (r.ok) {
    const bool same = current_ && current_->sha256 == parsed->sha256;
    current_ = std::move(parsed);
    loaded_at_ms_ = nowMs();
    r.message = same ? "policy reloaded, unchanged (sha256 " + r.sha256 + ")"
                     : "policy reloaded: sha256 " + r.sha256;
  } else {
    r.sha256 = current_ ? current_->sha256 : "";
    r.message += "; the policy in force (sha256 " + r.sha256 + ") stays";
  }
  last_reload_ = r;
  last_reload_at_ms_ = nowMs();
  return r;
}

std::shared_ptr<const common::Policy> PolicyFile::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

json PolicyFile::toJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!current_) return json{{"enabled", false}};
  json out{{"enabled", true},
           {"path", path_},
           {"sha256", current_->sha256},
           {"loaded_at", common::formatRfc3339(common::fromUnixMillis(loaded_at_ms_))},
           {"policy", common::policyToJson(*current_)},
           {"last_reload", nullptr}};
  if (last_reload_at_ms_ != 0) {
    out["last_reload"] = {{"at", common::formatRfc3339(common::fromUnixMillis(last_reload_at_ms_))},
                          {"ok", last_reload_.ok},
                          {"message", last_reload_.message},
                          {"problems", problemsJson(last_reload_.problems)}};
  }
  return out;
}

}  // namespace flotilla::coordinator
