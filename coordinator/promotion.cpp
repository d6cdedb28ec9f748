#include "coordinator/promotion.hpp"

#include <algorithm>

#include "common/rules.hpp"
#include "common/time_format.hpp"

namespace flotilla::coordinator {

using common::Status;

namespace {

// Whole seconds, rounded down (how long ago) or up (how long left).
std::string seconds(int64_t ms, bool up) {
  const int64_t s = up ? (ms + 999) / 1000 : ms / 1000;
  return common::formatDuration(std::chrono::seconds(s));
}

std::string at(int64_t ms) { return common::formatRfc3339(common::fromUnixMillis(ms)); }

}  // namespace

PromotionVerdict judgePromotion(const ReleaseRecord* release, const std::string& service,
                                const std::string& version, const std::string& from,
                                std::chrono::milliseconds soak, int64_t now_ms) {
  PromotionVerdict v;
  const EnvironmentSuccess* success = nullptr;
  if (release != nullptr) {
    auto it = release->succeeded.find(from);
    if (it != release->succeeded.end()) success = &it->second;
  }
  if (success == nullptr) {
    v.missing = v.held = service + " " + version + " has not succeeded in " + from;
    return v;
  }
  if (success->artifact != release->artifact) {
    const std::string ran =
        success->artifact.empty() ? "no recorded artifact" : shortDigest(success->artifact);
    const std::string is = release->artifact.empty() ? "none" : shortDigest(release->artifact);
    v.missing = v.held = "artifact differs: " + from + " ran " + ran + ", the release is " + is;
    return v;
  }
  const int64_t age = now_ms - success->at_ms;
  if (age < soak.count()) {
    v.ready_at_ms = success->at_ms + soak.count();
    const std::string soak_text = common::formatDuration(soak);
    v.missing = "succeeded in " + from + " " + seconds(age < 0 ? 0 : age, false) +
                " ago; soak is " + soak_text + " (" + seconds(v.ready_at_ms - now_ms, true) +
                " left)";
    v.held = "succeeded in " + from + " at " + at(success->at_ms) + "; soak is " + soak_text +
             " (until " + at(v.ready_at_ms) + ")";
    return v;
  }
  v.met = true;
  return v;
}

std::chrono::milliseconds promotionSoak(const common::Plan& plan, const common::Wave& wave) {
  // A hotfix's staging soak is the policy's hotfix.soak when that is shorter.
  if (plan.hotfix) return std::min(wave.promote_soak, plan.hotfix->rules.soak);
  return wave.promote_soak;
}

std::vector<PromotionGap> promotionGaps(const common::Plan& plan, const ReleaseRecord* release,
                                        int64_t now_ms) {
  std::vector<PromotionGap> gaps;
  for (size_t w = 0; w < plan.waves.size(); ++w) {
    const common::Wave& wave = plan.waves[w];
    if (wave.promote_from.empty()) continue;
    bool earlier = false;  // the plan deploys to `from` first: judged when the wave starts
    for (size_t e = 0; e < w; ++e)
      earlier = earlier || plan.waves[e].environment == wave.promote_from;
    if (earlier) continue;
    const PromotionVerdict v = judgePromotion(release, plan.service, plan.version,
                                              wave.promote_from, promotionSoak(plan, wave), now_ms);
    if (!v.met) gaps.push_back({wave.name, wave.environment, wave.promote_from, v.missing});
  }
  return gaps;
}

Status promotionRefusal(const common::Plan& plan, const std::vector<PromotionGap>& gaps) {
  if (gaps.empty()) return Status::Ok();
  std::string text;
  for (const PromotionGap& g : gaps) {
    if (!text.empty()) text += "; ";
    text += plan.service + " " + plan.version + " cannot enter " + g.environment + " (wave " +
            g.wave + ", promoted from " + g.from + "): " + g.missing;
  }
  return Status::FailedPrecondition(text);
}

nlohmann::json promotionGapsJson(const std::vector<PromotionGap>& gaps) {
  nlohmann::json out = nlohmann::json::array();
  for (const PromotionGap& g : gaps) {
    out.push_back({{"wave", g.wave},
                   {"environment", g.environment},
                   {"from", g.from},
                   {"missing", g.missing}});
  }
  return out;
}

}  // namespace flotilla::coordinator
