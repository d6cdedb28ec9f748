// The route table and the role and environment rules.
#include "coordinator/permissions.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <set>

namespace flotilla::coordinator {

using common::Status;

namespace {

// Every route of coordinator/http_api.cpp. A new route is refused (403) until it is listed
// here; integration/http_auth_test.cpp tries every row with every kind of caller.
constexpr std::array kRoutes = {
    Route{"GET", "/healthz", Permission::kPublic},
    // The dashboard: its files, and a session traded for a token (http_ui.cpp, http_session.cpp).
    Route{"GET", "/", Permission::kAnyone},
    Route{"GET", "/ui/{file}", Permission::kAnyone},
    Route{"POST", "/api/v1/session", Permission::kAnyone},
    Route{"GET", "/api/v1/session", Permission::kRead},
    Route{"DELETE", "/api/v1/session", Permission::kRead},
    Route{"GET", "/metrics", Permission::kRead},
    Route{"GET", "/api/v1/deployments", Permission::kRead},
    Route{"POST", "/api/v1/deployments", Permission::kDeploy},
    Route{"GET", "/api/v1/deployments/{id}", Permission::kRead},
    Route{"GET", "/api/v1/deployments/{id}/events", Permission::kRead},
    Route{"GET", "/api/v1/deployments/{id}/clusters", Permission::kRead},
    Route{"POST", "/api/v1/deployments/{id}/approve", Permission::kApprove},
    Route{"POST", "/api/v1/deployments/{id}/rollback", Permission::kDeploy},
    Route{"POST", "/api/v1/deployments/{id}/pause", Permission::kDeploy},
    Route{"POST", "/api/v1/deployments/{id}/resume", Permission::kDeploy},
    Route{"POST", "/api/v1/deployments/{id}/cancel", Permission::kDeploy},
    // Operator overrides: the on-call deployer steers its own rollouts (as pause, resume and
    // rollback) and needs no approver at night. Neither passes an approval gate: promote only
    // ends an analysis or bake early, retry reruns a step the plan said to hold.
    Route{"POST", "/api/v1/deployments/{id}/promote", Permission::kDeploy},
    Route{"POST", "/api/v1/deployments/{id}/retry", Permission::kDeploy},
    // Ending the post-deploy watch early is promote's kind of override: the deployer who
    // watches the rollout decides it has seen enough (audited, and named in the events).
    Route{"POST", "/api/v1/deployments/{id}/watch-end", Permission::kDeploy},
    // A note (lessons learned) on a deployment, any time later: who may steer a deployment may
    // write down what it taught; a viewer reads the log but does not write it.
    Route{"POST", "/api/v1/deployments/{id}/notes", Permission::kDeploy},
    Route{"GET", "/api/v1/log", Permission::kRead},
    Route{"GET", "/api/v1/agents", Permission::kRead},
    Route{"POST", "/api/v1/agents/{cluster}/enroll", Permission::kAdmin},
    Route{"POST", "/api/v1/agents/{cluster}/revoke", Permission::kAdmin},
    Route{"DELETE", "/api/v1/agents/{cluster}", Permission::kAdmin},
    Route{"GET", "/api/v1/tokens", Permission::kAdmin},
    Route{"POST", "/api/v1/tokens", Permission::kAdmin},
    Route{"DELETE", "/api/v1/tokens/{name}", Permission::kAdmin},
    Route{"GET", "/api/v1/audit", Permission::kRead},
    Route{"GET", "/api/v1/audit/verify", Permission::kRead},
    Route{"GET", "/api/v1/policy", Permission::kRead},
    Route{"POST", "/api/v1/policy/reload", Permission::kAdmin},
    Route{"GET", "/api/v1/releases/{service}/{version}", Permission::kRead},
    Route{"POST", "/api/v1/releases/{service}/{version}/checks", Permission::kDeploy},
    // Starts a policy trigger's plan template; its environment's deployers rule applies too.
    Route{"POST", "/api/v1/triggers/{name}", Permission::kDeploy},
    // Incident freezes: freezing and lifting is the admins' (DESIGN.md: admin manages
    // freezes); so are the post-mortem notes, part of the same record (an environment-limited
    // deployer's rule would not say whose a fleet-wide freeze is).
    Route{"GET", "/api/v1/freeze", Permission::kRead},
    Route{"POST", "/api/v1/freeze", Permission::kAdmin},
    Route{"DELETE", "/api/v1/freeze", Permission::kAdmin},
    Route{"GET", "/api/v1/freezes/{id}", Permission::kRead},
    Route{"POST", "/api/v1/freezes/{id}/notes", Permission::kAdmin},
};

// Whether `path` matches `pattern` segment by segment ({x} matches one non-empty segment).
bool matches(std::string_view pattern, std::string_view path) {
  while (true) {
    if (pattern.empty() || path.empty()) return pattern.empty() && path.empty();
    if (pattern.front() != '/' || path.front() != '/') return false;
    pattern.remove_prefix(1);
    path.remove_prefix(1);
    const size_t pe = std::min(pattern.find('/'), pattern.size());
    const size_t se = std::min(path.find('/'), path.size());
    std::string_view want = pattern.substr(0, pe);
    std::string_view got = path.substr(0, se);
    const bool placeholder = want.size() >= 2 && want.front() == '{' && want.back() == '}';
    if (placeholder ? got.empty() : want != got) return false;
    pattern.remove_prefix(pe);
    path.remove_prefix(se);
  }
}

const char* verbFor(Permission p) { return p == Permission::kApprove ? "approve" : "deploy"; }

std::string envList(const std::vector<std::string>& envs) {
  std::string out;
  for (const auto& e : envs) out += (out.empty() ? "" : ", ") + e;
  return out;
}

bool inEnvs(const Actor& actor, const std::string& env) {
  return std::find(actor.envs.begin(), actor.envs.end(), env) != actor.envs.end();
}

// The check for one wave: clusters already chosen, or what its plan entry names and selects.
Status checkWave(const Actor& actor, Permission permission, const common::Wave& spec,
                 const WaveProgress* progress,
                 const std::map<std::string, const AgentInfo*>& by_name) {
  const std::string who =
      "token " + actor.name + " (" + actor.role + " of " + envList(actor.envs) + ")";
  auto checkCluster = [&](const std::string& cluster) -> Status {
    auto it = by_name.find(cluster);
    if (it == by_name.end()) {
      return Status::PermissionDenied(who + " may not " + verbFor(permission) + " to cluster " +
                                      cluster + " in wave " + spec.name +
                                      ": no agent of that name is known, so its environment "
                                      "is unknown");
    }
    auto env = it->second->labels.find("environment");
    if (env == it->second->labels.end()) {
      return Status::PermissionDenied(who + " may not " + verbFor(permission) + " to cluster " +
                                      cluster + " in wave " + spec.name +
                                      ": it has no environment label");
    }
    if (!inEnvs(actor, env->second)) {
      return Status::PermissionDenied(who + " may not " + verbFor(permission) + " to cluster " +
                                      cluster + " (environment " + env->second + ") in wave " +
                                      spec.name);
    }
    return Status::Ok();
  };

  if (progress != nullptr && progress->resolved) {
    for (const auto& c : progress->clusters) {
      Status s = checkCluster(c.name);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }
  for (const auto& name : spec.clusters) {
    Status s = checkCluster(name);
    if (!s.ok()) return s;
  }
  if (spec.selector.empty()) return Status::Ok();
  // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
  for (const auto& entry : by_name) {
    const auto& agent = entry.second;
    const bool selected = std::all_of(spec.selector.begin(), spec.selector.end(), [&](auto& kv) {
      auto label = agent->labels.find(kv.first);
      return label != agent->labels.end() && label->second == kv.second;
    });
    if (!selected) continue;
    Status s = checkCluster(entry.first);
    if (!s.ok()) return s;
  }
  auto pinned = spec.selector.find("environment");
  if (pinned == spec.selector.end() || !inEnvs(actor, pinned->second)) {
    return Status::PermissionDenied(who + " may not " + verbFor(permission) + " to wave " +
                                    spec.name + ": its selector does not pin environment to " +
                                    envList(actor.envs) +
                                    ", so it could pick clusters of other environments");
  }
  return Status::Ok();
}

std::map<std::string, const AgentInfo*> index(const std::vector<AgentInfo>& agents) {
  std::map<std::string, const AgentInfo*> out;
  for (const auto& a : agents) out[a.cluster] = &a;
  return out;
}

bool limited(const Actor& actor) { return actor.role != "admin" && !actor.envs.empty(); }

}  // namespace

const char* permissionName(Permission p) {
  switch (p) {
    case Permission::kPublic:
      return "public";
    case Permission::kAnyone:
      return "anyone";
    case Permission::kRead:
      return "read";
    case Permission::kDeploy:
      return "deploy";
    case Permission::kApprove:
      return "approve";
    case Permission::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::span<const Route> routeTable() { return kRoutes; }

const Route* findRoute(std::string_view method, std::string_view path) {
  if (method == "HEAD") method = "GET";
  for (const Route& r : kRoutes) {
    if (r.method == method && matches(r.pattern, path)) return &r;
  }
  return nullptr;
}

bool roleGrants(Role role, Permission permission) {
  switch (permission) {
    case Permission::kPublic:
    case Permission::kAnyone:
    case Permission::kRead:
      return true;
    case Permission::kDeploy:
      return role == Role::kDeployer || role == Role::kAdmin;
    case Permission::kApprove:
      return role == Role::kApprover || role == Role::kAdmin;
    case Permission::kAdmin:
      return role == Role::kAdmin;
  }
  return false;
}

Status checkPlanEnvironments(const Actor& actor, const common::Plan& plan,
                             const std::vector<AgentInfo>& agents) {
  if (!limited(actor)) return Status::Ok();
  auto by_name = index(agents);
  for (const auto& wave : plan.waves) {
    Status s = checkWave(actor, Permission::kDeploy, wave, nullptr, by_name);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status checkDeploymentEnvironments(const Actor& actor, const Deployment& d,
                                   const std::vector<AgentInfo>& agents,
                                   std::optional<size_t> wave) {
  if (!limited(actor)) return Status::Ok();
  const Permission permission = wave ? Permission::kApprove : Permission::kDeploy;
  auto by_name = index(agents);
  for (size_t i = 0; i < d.plan.waves.size(); ++i) {
    if (wave && *wave != i) continue;
    const WaveProgress* progress = i < d.waves.size() ? &d.waves[i] : nullptr;
    Status s = checkWave(actor, permission, d.plan.waves[i], progress, by_name);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace flotilla::coordinator
