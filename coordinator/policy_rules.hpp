// What the policy (common/policy.hpp, --policy FILE) does to a plan at submission: places each
// wave in one environment, refuses a submitter the environment does not list as a deployer, and
// adds what the environment requires that the plan left out (an approval gate, more
// approvers). A plan can add to the policy, never weaken it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/plan.hpp"
#include "common/policy.hpp"
#include "common/status.hpp"
#include "coordinator/actor.hpp"
#include "coordinator/wave_clusters.hpp"

namespace flotilla::coordinator {

// The environment a cluster with these labels belongs to: the first of the policy's
// environments, in file order, whose selector its labels match; nullptr when none does.
const common::Environment* environmentOf(const common::Policy& policy,
                                         const std::map<std::string, std::string>& labels);

struct PolicyVerdict {
  // Waves the policy cannot place (a cluster in no environment, a wave across two), with the
  // wave's line and column: the submission is refused with 400 and all of them.
  std::vector<common::PlanProblem> problems;
  // The submitter may not deploy to one of the environments (403), naming it and who may.
  common::Status denied = common::Status::Ok();
  // A hotfix under a policy without `hotfix:` rules (FailedPrecondition, 409).
  common::Status hotfix = common::Status::Ok();
};

// Applies `policy` to `plan`, whose waves `resolved` resolved against `agents`
// (resolvePlanClusters, with no problems). On success every wave has its `environment`; a
// selector wave's selector also pins its environment's labels (so that a cluster registering
// later in another environment is never taken); a wave whose environment requires approval
// requires it, from at least as many approvers as the environment asks; each wave carries the
// checks its environment requires of the release and its promotion rule (promote_from/soak);
// the plan's post-deploy watch is the tiers of the last wave's environment that has any.
//
// A hotfix (plan.hotfix) takes the policy's hotfix rules (plan.hotfix->rules, refused when the
// policy has none): its waves do not require the checks named in skip_checks, and a wave whose
// environment requires N approvers requires min(N, hotfix.approvals) of them, never fewer than
// one (the plan may still ask for more).
// A hotfix's first watch tier runs watch_factor times as long.
PolicyVerdict applyPolicy(const common::Policy& policy, const Actor& actor,
                          const PlanClusters& resolved, const AgentsByName& agents,
                          common::Plan& plan);

}  // namespace flotilla::coordinator
