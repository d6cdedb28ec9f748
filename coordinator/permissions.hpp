// Who may call which route: the one table mapping every HTTP route to the one permission it
// needs, what each role is granted, and the environment rule for deployers and approvers.
// A route missing from the table is refused (deny by default).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/plan.hpp"
#include "common/status.hpp"
#include "coordinator/actor.hpp"
#include "coordinator/deployment.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/tokens.hpp"

namespace flotilla::coordinator {

enum class Permission {
  kPublic,   // anyone, without a token (liveness only)
  kAnyone,   // anyone on an allowed Host name, without a token: the dashboard's files, login
  kRead,     // every role: deployments, events, agents, audit, metrics
  kDeploy,   // deployer (every target cluster in one of its environments) and admin
  kApprove,  // approver (the wave's clusters in its environments) and admin
  kAdmin,    // admin only: tokens, agent enrollment, revocation and removal, freezes
};

const char* permissionName(Permission p);

struct Route {
  std::string_view method;   // GET, POST, DELETE (HEAD is checked as GET)
  std::string_view pattern;  // "/api/v1/deployments/{id}/approve": {x} is one path segment
  Permission permission;
};

// The table. Every route the HTTP API serves appears here exactly once.
std::span<const Route> routeTable();

// The table's entry for a request, or nothing (then the request is refused with 403).
const Route* findRoute(std::string_view method, std::string_view path);

// Whether `role` holds `permission` at all (environments aside).
bool roleGrants(Role role, Permission permission);

// The environment rule, for an actor already holding kDeploy or kApprove. Each check returns
// PermissionDenied naming the first cluster (and its environment) outside the actor's
// environments; OK when the actor is not limited to environments.
//
// A plan about to be submitted: each wave's named clusters, and the agents its selector
// matches now. A selector that does not pin `environment` to one of the actor's environments
// is refused too, since it could pick clusters registering later.
common::Status checkPlanEnvironments(const Actor& actor, const common::Plan& plan,
                                     const std::vector<AgentInfo>& agents);
// A deployment: the clusters of its resolved waves, and its plan's waves not resolved yet.
// `wave` set: that wave only (an approval).
common::Status checkDeploymentEnvironments(const Actor& actor, const Deployment& d,
                                           const std::vector<AgentInfo>& agents,
                                           std::optional<size_t> wave = std::nullopt);

}  // namespace flotilla::coordinator
