// Promotion (issue 13, "build once, promote the same artifact"): an environment whose policy
// says `promotion: {from: S, soak: D}` accepts a release only after the same service + version,
// with the artifact it has now, succeeded in S at least D ago (coordinator/releases.hpp records
// artifacts and successes). Judged at submission for the waves that no earlier wave of the plan
// deploys to S (refused with what is missing), and before each such wave starts (held in
// blocked_by_checks until met: the engine's once-a-second advance notices the soak's end).
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/plan.hpp"
#include "common/status.hpp"
#include "coordinator/releases.hpp"

namespace flotilla::coordinator {

struct PromotionVerdict {
  bool met = false;
  // What is missing, for a person now: "checkout 1.4.2 has not succeeded in staging",
  // "artifact differs: staging ran sha256:aaa…, the release is sha256:bbb…", "succeeded in
  // staging 12s ago; soak is 30m (29m48s left)".
  std::string missing;
  // The same, stable while nothing but the clock changes (a held wave's reason): the soak's
  // end as a time instead of what is left.
  std::string held;
  int64_t ready_at_ms = 0;  // soaking: when it is met
};

// THE promotion rule: may `release` (null: nothing recorded) of service + version enter an
// environment promoted from `from` after `soak`, at `now_ms`? The soak is a parameter so that
// a caller may pass another one (the hotfix rules' shorter soak, policy `hotfix.soak`: see
// promotionSoak() below and the wave's promote_soak set at submission).
PromotionVerdict judgePromotion(const ReleaseRecord* release, const std::string& service,
                                const std::string& version, const std::string& from,
                                std::chrono::milliseconds soak, int64_t now_ms);

// The soak a wave is judged with: its environment's (Wave::promote_soak, copied from the policy
// at submission), or for a hotfix the policy's hotfix.soak when that is shorter.
std::chrono::milliseconds promotionSoak(const common::Plan& plan, const common::Wave& wave);

struct PromotionGap {
  std::string wave;
  std::string environment;
  std::string from;
  std::string missing;  // PromotionVerdict::missing
};

// The waves of `plan` whose promotion is judged at submission — those with a promotion rule and
// no earlier wave of the plan in its `from` environment — that `release` does not meet now.
std::vector<PromotionGap> promotionGaps(const common::Plan& plan, const ReleaseRecord* release,
                                        int64_t now_ms);
// FailedPrecondition naming each gap ("checkout 1.4.2 cannot enter production: ..."); OK when
// there is none.
common::Status promotionRefusal(const common::Plan& plan, const std::vector<PromotionGap>& gaps);
// [{"wave", "environment", "from", "missing"}]: the 409's list.
nlohmann::json promotionGapsJson(const std::vector<PromotionGap>& gaps);

}  // namespace flotilla::coordinator
