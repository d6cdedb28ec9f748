// The approval rule: a wave that needs approval starts once enough distinct people other than
// its submitter approved it, each approval for this plan and younger than the wave's
// approval_expires. The drive asks approvalHolds() before it starts such a wave.
#include <algorithm>
#include <string>
#include <vector>

#include "common/time_format.hpp"
#include "coordinator/deployment.hpp"
#include "coordinator/deployment_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using deployment_internal::approvalProgress;
using deployment_internal::byActor;
using deployment_internal::emit;

namespace {

std::string rfc3339(int64_t ms) { return common::formatRfc3339(common::fromUnixMillis(ms)); }

bool approvalExpired(const Approval& a, const common::Wave& pw, int64_t now_ms) {
  return now_ms - a.at_ms > pw.approval_expires.count();
}

// Drops the approvals of wave `index` that no longer count at `now_ms`, each with an event that
// says whose it was and why.
void dropStaleApprovals(Deployment& d, size_t index, int64_t now_ms, Effects& fx) {
  WaveProgress& w = d.waves[index];
  const common::Wave& pw = d.plan.waves[index];
  std::vector<Approval> kept;
  for (const auto& a : w.approvals) {
    if (approvalExpired(a, pw, now_ms)) {
      emit(fx, "wave.approval_expired", w.name, "", "",
           "approval by " + a.by + " at " + rfc3339(a.at_ms) + " expired (approvals of wave " +
               w.name + " count for " + common::formatDuration(pw.approval_expires) + ")");
    } else if (a.plan_sha256 != d.plan_sha256) {
      emit(fx, "wave.approval_expired", w.name, "", "",
           "approval by " + a.by + " was for plan " + a.plan_sha256 + ", not " + d.plan_sha256);
    } else {
      kept.push_back(a);
    }
  }
  if (kept.size() != w.approvals.size()) {
    w.approvals = std::move(kept);
    fx.changed = true;
  }
}

}  // namespace

namespace deployment_internal {

bool approvalHolds(Deployment& d, size_t index, const Context& ctx, Effects& fx) {
  WaveProgress& w = d.waves[index];
  const common::Wave& pw = d.plan.waves[index];
  if (!pw.approval_required) return true;
  if (!w.approved) return false;
  // Approved by a coordinator that kept no approval records: its word stands.
  if (w.approvals.empty()) return true;
  dropStaleApprovals(d, index, common::toUnixMillis(ctx.now), fx);
  if (w.approvals.size() >= pw.approvals_required) return true;
  w.approved = false;
  fx.changed = true;
  return false;
}

std::string approvalProgress(const WaveProgress& w, const common::Wave& pw) {
  return std::to_string(w.approvals.size()) + " of " + std::to_string(pw.approvals_required) +
         " approvals";
}

}  // namespace deployment_internal

size_t liveApprovals(const Deployment& d, size_t wave, int64_t now_ms) {
  if (wave >= d.waves.size() || wave >= d.plan.waves.size()) return 0;
  const common::Wave& pw = d.plan.waves[wave];
  return static_cast<size_t>(std::count_if(
      d.waves[wave].approvals.begin(), d.waves[wave].approvals.end(), [&](const Approval& a) {
        return !approvalExpired(a, pw, now_ms) && a.plan_sha256 == d.plan_sha256;
      }));
}

Status approve(Deployment& d, const std::string& wave, const Actor& by, const Context& ctx,
               Effects& fx) {
  // Who, before what: the answer to a caller who may not approve does not depend on the state.
  if (by.name.empty() || by.name == Actor::system().name) {
    return Status::PermissionDenied(
        "an approval is a person's decision: the coordinator itself never approves a wave");
  }
  if (!d.submitted_by.empty() && by.name == d.submitted_by) {
    return Status::PermissionDenied(by.name + " submitted " + d.id +
                                    " and cannot approve it; another approver must");
  }
  if (isFinal(d.state) || d.state == DeploymentState::kRollingBack) {
    return Status::FailedPrecondition("deployment " + d.id + " is " + deploymentStateName(d.state) +
                                      "; nothing to approve");
  }
  size_t index = d.wave_index;
  if (!wave.empty()) {
    auto it = std::find_if(d.waves.begin(), d.waves.end(),
                           [&](const WaveProgress& w) { return w.name == wave; });
    if (it == d.waves.end())
      return Status::InvalidArgument("no wave named " + wave + " in " + d.id);
    index = static_cast<size_t>(it - d.waves.begin());
  } else if (d.state != DeploymentState::kAwaitingApproval &&
             !((d.state == DeploymentState::kPaused || d.state == DeploymentState::kFrozen) &&
               d.resume_to == DeploymentState::kAwaitingApproval)) {
    return Status::FailedPrecondition("deployment " + d.id + " is " + deploymentStateName(d.state) +
                                      ", not awaiting approval; name a wave to approve it ahead");
  }
  if (index >= d.waves.size()) return Status::FailedPrecondition("no wave left to approve");
  WaveProgress& w = d.waves[index];
  if (!d.plan.waves[index].approval_required) {
    return Status::FailedPrecondition("wave " + w.name + " does not need approval");
  }
  if (w.state != WaveState::kPending && w.state != WaveState::kAwaitingApproval) {
    return Status::FailedPrecondition("wave " + w.name + " is already " + waveStateName(w.state));
  }
  const common::Wave& pw = d.plan.waves[index];
  const int64_t now_ms = common::toUnixMillis(ctx.now);
  // A second yes from the same person is not a second approver; their first, if it expired,
  // no longer counts and may be given again.
  for (const Approval& a : w.approvals) {
    if (a.by == by.name && !approvalExpired(a, pw, now_ms)) {
      return Status::FailedPrecondition(
          "wave " + w.name + " of " + d.id + " is already approved by " + by.name + " (at " +
          rfc3339(a.at_ms) + "; " + std::to_string(liveApprovals(d, index, now_ms)) + " of " +
          std::to_string(pw.approvals_required) + " approvals); each approver counts once");
    }
  }
  if (w.approved) return Status::FailedPrecondition("wave " + w.name + " is already approved");
  dropStaleApprovals(d, index, now_ms, fx);
  w.approvals.push_back(Approval{by.name, by.role, now_ms, d.plan_sha256});
  fx.changed = true;
  if (w.approvals.size() < pw.approvals_required) {
    const size_t missing = pw.approvals_required - w.approvals.size();
    emit(fx, "wave.approval", w.name, "", "",
         byActor(by, "") + ": " + approvalProgress(w, pw) + "; " + std::to_string(missing) +
             " more needed");
    return Status::Ok();
  }
  w.approved = true;
  std::string approvers;
  for (const Approval& a : w.approvals) approvers += (approvers.empty() ? "" : ", ") + a.by;
  emit(fx, "wave.approved", w.name, "", "",
       byActor(by, "") + ": " + approvalProgress(w, pw) + " (" + approvers + ")");
  advance(d, ctx, fx);
  return Status::Ok();
}

}  // namespace flotilla::coordinator
