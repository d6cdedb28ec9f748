#include "coordinator/policy_file.hpp"

#include <chrono>
#include <filesystem>
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

// The file's text, at most `max` bytes; "" with `why` set when it cannot be read or is larger.
std::string readBounded(const std::string& path, uint64_t max, std::string* why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *why = "cannot read it";
    return "";
  }
  std::string text;
  text.resize(max + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > max) {
    *why = "it is larger than " + std::to_string(max) + " bytes";
    return "";
  }
  return text;
}

}  // namespace

PolicyFile::PolicyFile(std::string path) : path_(std::move(path)) {}

void PolicyFile::readTemplates(const common::Policy& policy, Templates* templates,
                               std::vector<std::string>* problems) const {
  const std::filesystem::path base = std::filesystem::path(path_).parent_path();
  for (const std::string& env : policy.environment_order) {
    for (const common::Trigger& trigger : policy.environments.at(env).triggers) {
      const std::string file = (base / trigger.plan).string();
      std::string why;
      const std::string text = readBounded(file, kMaxPolicyFileBytes, &why);
      if (!why.empty()) {
        problems->push_back(file + ": trigger " + trigger.name + "'s plan template: " + why);
        continue;
      }
      common::PlanParseResult result = common::parsePlan(text);
      if (!result.plan) {
        for (const auto& p : result.problems) problems->push_back(file + ":" + p.toString());
        continue;
      }
      (*templates)[trigger.name] =
          TriggerTemplate{trigger.name, env, trigger.plan, std::move(*result.plan)};
    }
  }
}

PolicyReload PolicyFile::read(std::shared_ptr<const common::Policy>* parsed,
                              Templates* templates) const {
  PolicyReload out;
  std::string why;
  const std::string text = readBounded(path_, kMaxPolicyFileBytes, &why);
  if (!why.empty()) {
    out.message = why == "cannot read it"
                      ? "cannot read the policy file " + common::quote(path_)
                      : "the policy file " + common::quote(path_) + " is " + why.substr(3);
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
  readTemplates(*result.policy, templates, &out.template_problems);
  if (!out.template_problems.empty()) {
    const size_t n = out.template_problems.size();
    out.message = "the policy file " + common::quote(path_) + "'s trigger templates have " +
                  std::to_string(n) + (n == 1 ? " mistake" : " mistakes");
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
  Templates templates;
  PolicyReload r = read(&parsed, &templates);
  if (!r.ok) {
    std::string text = r.message;
    for (const auto& p : r.problems) text += "\n  " + path_ + ":" + p.toString();
    for (const auto& p : r.template_problems) text += "\n  " + p;
    return Status::InvalidArgument(text);
  }
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(parsed);
  templates_ = std::move(templates);
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
  Templates templates;
  r = read(&parsed, &templates);
  std::lock_guard<std::mutex> lock(mu_);
  if (r.ok) {
    const bool same = current_ && current_->sha256 == parsed->sha256;
    current_ = std::move(parsed);
    templates_ = std::move(templates);
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

std::optional<TriggerTemplate> PolicyFile::trigger(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = templates_.find(name);
  if (it == templates_.end()) return std::nullopt;
  return it->second;
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
                          {"problems", problemsJson(last_reload_.problems)},
                          {"template_problems", last_reload_.template_problems}};
  }
  return out;
}

}  // namespace flotilla::coordinator
