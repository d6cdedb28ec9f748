// The hotfix a submission asks for (issue 13 item 7, DESIGN.md "Policy"): `?hotfix=true&
// hotfix_reason=TEXT` on POST /api/v1/deployments, the same two fields in the submission form
// (coordinator/deployment_log.hpp), or `hotfix: {reason: ...}` in the plan. What a hotfix then
// does is other rules': the policy's (coordinator/policy_rules.hpp: skipped checks, fewer
// approvers), the freeze's (coordinator/freeze.hpp: passesFreezes), and the submission's (it
// supersedes the service's deployment in flight).
#pragma once

#include <optional>
#include <string>

#include "common/plan.hpp"
#include "common/status.hpp"

namespace flotilla::coordinator {

// What a query or a form said: `hotfix` true/false (absent: false), `hotfix_reason` (absent:
// nullopt).
struct HotfixRequest {
  bool hotfix = false;
  std::optional<std::string> reason;
};

// Sets plan.hotfix from the query's and the form's requests, on top of the plan's own: the
// reason given with the submission wins over the plan's. InvalidArgument (400) for a reason
// without hotfix=true, a reason in both the query and the form, a hotfix without a reason
// anywhere, or a reason that breaks common::checkHotfixReason. The rules stay the defaults until
// the policy's are applied.
common::Status applyHotfixRequest(const HotfixRequest& query, const HotfixRequest& form,
                                  common::Plan& plan);

// "hotfix: <reason>" for audit details and messages; "" for a plan that is not a hotfix.
std::string hotfixText(const common::Plan& plan);

}  // namespace flotilla::coordinator
