// What a deployment does to its release (coordinator/releases.hpp): the artifact digest its
// build reported, the environments its waves succeeded in, and the promotion rule
// (coordinator/promotion.hpp) holding a wave until the release may enter its environment. The
// changed release goes out in Effects::release; the engine writes it with the deployment.
#include "coordinator/deployment.hpp"
#include "coordinator/deployment_internal.hpp"
#include "coordinator/promotion.hpp"

namespace flotilla::coordinator::deployment_internal {

namespace {

// The release as this transition sees it: as it changed it so far, else as the engine holds it.
const ReleaseRecord* releaseNow(const Context& ctx, const Effects& fx) {
  return fx.release ? &*fx.release : ctx.release;
}

ReleaseRecord& releaseToChange(const Deployment& d, const Context& ctx, Effects& fx) {
  if (!fx.release) {
    fx.release = ctx.release != nullptr ? *ctx.release : ReleaseRecord{};
    fx.release->service = d.plan.service;
    fx.release->version = d.plan.version;
  }
  return *fx.release;
}

}  // namespace

void recordArtifact(Deployment& d, const std::string& wave, const std::string& cluster,
                    const std::string& digest, const Context& ctx, Effects& fx) {
  d.artifact = digest;
  fx.changed = true;
  const ReleaseRecord* now = releaseNow(ctx, fx);
  if (now != nullptr && now->artifact == digest) return;  // another cluster built the same
  const std::string before_by = now != nullptr ? now->artifact_deployment : "";
  const std::string replaced =
      setArtifact(releaseToChange(d, ctx, fx), digest, d.id, common::toUnixMillis(ctx.now));
  const std::string release = d.plan.service + " " + d.plan.version;
  if (replaced.empty()) {
    emit(fx, "release.artifact", wave, cluster, "build", release + " is artifact " + digest);
  } else {
    emit(fx, "release.artifact_changed", wave, cluster, "build",
         release + " was built again with another artifact: " + digest + " replaces " + replaced +
             (before_by.empty() ? "" : " (built by " + before_by + ")"));
  }
}

void recordEnvironmentSuccess(Deployment& d, const common::Wave& pw, const Context& ctx,
                              Effects& fx) {
  if (pw.environment.empty()) return;
  const ReleaseRecord* now = releaseNow(ctx, fx);
  EnvironmentSuccess success;
  success.environment = pw.environment;
  // What it deployed: what its own build reported, else the release's artifact.
  success.artifact = !d.artifact.empty() ? d.artifact : now != nullptr ? now->artifact : "";
  success.deployment = d.id;
  success.at_ms = common::toUnixMillis(ctx.now);
  ReleaseRecord& release = releaseToChange(d, ctx, fx);
  release.succeeded[pw.environment] = success;
  release.updated_ms = success.at_ms;
  if (release.created_ms == 0) release.created_ms = success.at_ms;
  emit(fx, "release.environment_succeeded", pw.name, "", "",
       d.plan.service + " " + d.plan.version + " succeeded in " + pw.environment +
           (success.artifact.empty() ? "" : " with " + success.artifact));
}

bool promotionHolds(Deployment& d, const common::Wave& pw, const Context& ctx, Effects& fx) {
  if (pw.promote_from.empty()) return true;
  const PromotionVerdict v =
      judgePromotion(releaseNow(ctx, fx), d.plan.service, d.plan.version, pw.promote_from,
                     promotionSoak(d.plan, pw), common::toUnixMillis(ctx.now));
  if (v.met) return true;
  const std::string where = pw.environment.empty() ? "" : " (" + pw.environment + ")";
  const std::string reason = "wave " + pw.name + where + " waits for promotion: " + v.held;
  if (d.state != DeploymentState::kBlockedByChecks || d.reason != reason) {
    emit(fx, "wave.blocked_by_promotion", pw.name, "", "", v.missing);
    d.state = DeploymentState::kBlockedByChecks;
    d.reason = reason;
    fx.changed = true;
  }
  return false;
}

}  // namespace flotilla::coordinator::deployment_internal
