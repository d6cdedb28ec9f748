#include "coordinator/policy_rules.hpp"

#include <algorithm>
#include <set>

#include "common/user_text.hpp"

namespace flotilla::coordinator {
namespace {

using common::Environment;
using common::Policy;
using common::Status;

using common::quote;

// At most a few names of a list, then how many more.
std::string someOf(const std::vector<std::string>& names) {
  constexpr size_t kShown = 3;
  std::string out;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) {
    if (i) out += ", ";
    out += names[i];
  }
  if (names.size() > kShown) out += " and " + std::to_string(names.size() - kShown) + " more";
  return out;
}

std::string selectorText(const std::map<std::string, std::string>& selector) {
  std::string out = "{";
  for (const auto& [label, value] : selector) {
    if (out.size() > 1) out += ", ";
    out += label + ": " + value;
  }
  return out + "}";
}

// What a wave of a hotfix still requires of the release: its environment's checks but those the
// hotfix rules skip.
std::vector<common::Check> requiredChecks(const Environment& env, const common::Plan& plan) {
  if (!plan.hotfix) return env.checks;
  const std::vector<std::string>& skip = plan.hotfix->rules.skip_checks;
  std::vector<common::Check> out;
  for (const common::Check& check : env.checks) {
    if (std::find(skip.begin(), skip.end(), check.name) == skip.end()) out.push_back(check);
  }
  return out;
}

// The approvers the policy asks of a wave: the environment's, for a hotfix at most the hotfix
// rules' and never none where the environment requires approval.
uint32_t requiredApprovers(const Environment& env, const common::Plan& plan) {
  const uint32_t required = env.approval->required;
  if (!plan.hotfix) return required;
  return std::max<uint32_t>(1, std::min(required, plan.hotfix->rules.approvals));
}

bool mayDeploy(const Environment& env, const Actor& actor) {
  if (env.deployers.empty() || actor.role == "admin") return true;
  return std::find(env.deployers.begin(), env.deployers.end(), actor.role) != env.deployers.end() ||
         std::find(env.deployers.begin(), env.deployers.end(), actor.name) != env.deployers.end();
}

}  // namespace

const Environment* environmentOf(const Policy& policy,
                                 const std::map<std::string, std::string>& labels) {
  for (const std::string& name : policy.environment_order) {
    auto it = policy.environments.find(name);
    if (it != policy.environments.end() && labelsMatch(it->second.clusters, labels)) {
      return &it->second;
    }
  }
  return nullptr;
}

PolicyVerdict applyPolicy(const Policy& policy, const Actor& actor, const PlanClusters& resolved,
                          const AgentsByName& agents, common::Plan& plan) {
  PolicyVerdict verdict;
  if (plan.hotfix) {
    if (!policy.hotfix) {
      verdict.hotfix = Status::FailedPrecondition(
          "the policy has no hotfix rules (no \"hotfix:\" in the policy file): submit it as a "
          "normal deployment (without --hotfix or the plan's hotfix:), or ask an admin to add "
          "them");
      return verdict;
    }
    plan.hotfix->rules = *policy.hotfix;
  }
  for (size_t w = 0; w < plan.waves.size() && w < resolved.waves.size(); ++w) {
    common::Wave& wave = plan.waves[w];
    auto problem = [&](const std::string& message) {
      verdict.problems.push_back(common::PlanProblem{wave.line, wave.column, message});
    };
    // Environment name -> the wave's clusters in it; and the clusters in none.
    std::map<std::string, std::vector<std::string>> placed;
    std::vector<std::string> outside;
    for (const std::string& cluster : resolved.waves[w]) {
      auto agent = agents.find(cluster);
      const Environment* env =
          agent == agents.end() ? nullptr : environmentOf(policy, agent->second.labels);
      (env ? placed[env->name] : outside).push_back(cluster);
    }
    const std::string where = "waves[" + std::to_string(w) + "] (" + quote(wave.name) + ")";
    if (!outside.empty()) {
      std::vector<std::string> selectors;
      for (const std::string& name : policy.environment_order) {
        selectors.push_back(name + " " + selectorText(policy.environments.at(name).clusters));
      }
      problem(where + ": " + someOf(outside) + (outside.size() == 1 ? " belongs" : " belong") +
              " to no environment of the policy (" + someOf(selectors) +
              "): with a policy, every cluster a plan reaches must be in one");
      continue;
    }
    if (placed.size() > 1) {
      std::vector<std::string> parts;
      for (const auto& [name, clusters] : placed) parts.push_back(name + ": " + someOf(clusters));
      problem(where + " spans environments (" + someOf(parts) +
              "): a wave deploys to one environment; split it into one wave per environment");
      continue;
    }
    if (placed.empty()) continue;  // resolvePlanClusters refused empty waves already
    const Environment& env = policy.environments.at(placed.begin()->first);
    wave.environment = env.name;
    if (verdict.denied.ok() && !mayDeploy(env, actor)) {
      verdict.denied = Status::PermissionDenied(
          "environment " + env.name + " (wave " + quote(wave.name) + ") accepts deployments from " +
          someOf(env.deployers) + " only; " + quote(actor.name) + " (role " + actor.role +
          ") is not one of them");
    }
    if (wave.clusters.empty()) {
      // Only clusters of this environment, also those registering before the wave starts.
      for (const auto& [label, value] : env.clusters) wave.selector.emplace(label, value);
    }
    wave.checks = requiredChecks(env, plan);
    // The watch after 100%: that of the last wave's environment that has one (a plan through
    // staging to production is watched as production is).
    if (!env.watch.empty()) plan.watch = env.watch;
    if (env.promotion) {
      wave.promote_from = env.promotion->from;
      wave.promote_soak = env.promotion->soak;
    }
    if (env.approval) {
      const uint32_t required = requiredApprovers(env, plan);
      wave.approvals_required =
          wave.approval_required ? std::max(wave.approvals_required, required) : required;
      wave.approval_required = true;
    }
  }
  // A hotfix is watched closer: its first tier (the intense one) runs watch_factor times as long.
  if (plan.hotfix && !plan.watch.empty()) {
    common::WatchTier& first = plan.watch.front();
    first.duration = std::chrono::milliseconds(static_cast<int64_t>(
        static_cast<double>(first.duration.count()) * plan.hotfix->rules.watch_factor));
  }
  return verdict;
}

}  // namespace flotilla::coordinator
