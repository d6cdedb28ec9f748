// The hotfix a submission asks for: the query's, the form's and the plan's, merged and checked.
#include "coordinator/hotfix.hpp"

namespace flotilla::coordinator {

using common::Status;

Status applyHotfixRequest(const HotfixRequest& query, const HotfixRequest& form,
                          common::Plan& plan) {
  for (const HotfixRequest* r : {&query, &form}) {
    if (r->reason && !r->hotfix) {
      return Status::InvalidArgument(
          "hotfix_reason is given but hotfix is not true: a reason is for a hotfix "
          "(hotfix=true&hotfix_reason=TEXT)");
    }
  }
  if (query.reason && form.reason) {
    return Status::InvalidArgument(
        "hotfix_reason is given twice, in the query and in the form: give it once");
  }
  if (!query.hotfix && !form.hotfix) {
    if (!plan.hotfix) return Status::Ok();
    // The plan's own (common::parsePlan checked its reason).
    return common::checkHotfixReason(plan.hotfix->reason, "hotfix.reason");
  }
  const std::optional<std::string>& given = query.reason ? query.reason : form.reason;
  if (!given && !plan.hotfix) {
    return Status::InvalidArgument(
        "a hotfix needs a reason: give hotfix_reason (flotilla submit --hotfix --reason TEXT) or "
        "hotfix: {reason: ...} in the plan");
  }
  const std::string reason = given ? *given : plan.hotfix->reason;
  Status valid = common::checkHotfixReason(reason, given ? "hotfix_reason" : "hotfix.reason");
  if (!valid.ok()) return valid;
  plan.hotfix = common::PlanHotfix{reason, common::Hotfix{}};
  return Status::Ok();
}

std::string hotfixText(const common::Plan& plan) {
  return plan.hotfix ? "hotfix: " + plan.hotfix->reason : std::string();
}

}  // namespace flotilla::coordinator
