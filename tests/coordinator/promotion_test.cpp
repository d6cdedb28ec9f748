// Tests for coordinator/promotion.cpp: the promotion rule (succeeded in the `from`
// environment, with the release's artifact, at least the soak ago) and which waves of a plan
// are judged at submission.
#include "coordinator/promotion.hpp"

#include <gtest/gtest.h>

namespace flotilla::coordinator {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;

const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');
constexpr int64_t kNow = 1'800'000'000'000;

ReleaseRecord releaseIn(const std::string& env, const std::string& ran, const std::string& now_is,
                        int64_t at_ms) {
  ReleaseRecord r;
  r.service = "checkout";
  r.version = "1.4.2";
  r.artifact = now_is;
  r.succeeded[env] = EnvironmentSuccess{env, ran, "checkout-3", at_ms};
  return r;
}

TEST(Promotion, NotSucceededInTheSourceEnvironment) {
  PromotionVerdict none =
      judgePromotion(nullptr, "checkout", "1.4.2", "staging", minutes(30), kNow);
  EXPECT_FALSE(none.met);
  EXPECT_EQ(none.missing, "checkout 1.4.2 has not succeeded in staging");
  const ReleaseRecord dev = releaseIn("development", kA, kA, kNow - 3'600'000);
  EXPECT_EQ(judgePromotion(&dev, "checkout", "1.4.2", "staging", minutes(30), kNow).missing,
            "checkout 1.4.2 has not succeeded in staging");
}

TEST(Promotion, TheArtifactMustBeTheOneThatRanThere) {
  const ReleaseRecord r = releaseIn("staging", kA, kB, kNow - 3'600'000);
  PromotionVerdict v = judgePromotion(&r, "checkout", "1.4.2", "staging", minutes(30), kNow);
  EXPECT_FALSE(v.met);
  EXPECT_EQ(v.missing,
            "artifact differs: staging ran sha256:aaaaaaaaaaaa\u2026, the release is "
            "sha256:bbbbbbbbbbbb\u2026");
  const ReleaseRecord unknown = releaseIn("staging", "", kB, kNow - 3'600'000);
  EXPECT_NE(judgePromotion(&unknown, "checkout", "1.4.2", "staging", minutes(30), kNow)
                .missing.find("staging ran no recorded artifact"),
            std::string::npos);
  // Neither side recorded a digest: nothing differs.
  const ReleaseRecord neither = releaseIn("staging", "", "", kNow - 3'600'000);
  EXPECT_TRUE(judgePromotion(&neither, "checkout", "1.4.2", "staging", minutes(30), kNow).met);
}

TEST(Promotion, TheSoakMustHavePassed) {
  const ReleaseRecord r = releaseIn("staging", kA, kA, kNow - 12'000);
  PromotionVerdict v = judgePromotion(&r, "checkout", "1.4.2", "staging", minutes(30), kNow);
  EXPECT_FALSE(v.met);
  EXPECT_EQ(v.missing, "succeeded in staging 12s ago; soak is 30m (29m48s left)");
  EXPECT_EQ(v.ready_at_ms, kNow - 12'000 + 1'800'000);
  // The held reason does not change as the clock moves.
  PromotionVerdict later =
      judgePromotion(&r, "checkout", "1.4.2", "staging", minutes(30), kNow + 5'000);
  EXPECT_EQ(later.held, v.held);
  EXPECT_NE(v.held.find("(until "), std::string::npos) << v.held;
  // Exactly the soak, and a shorter soak passed in (the hotfix's): met.
  EXPECT_TRUE(judgePromotion(&r, "checkout", "1.4.2", "staging", milliseconds(12'000), kNow).met);
  EXPECT_TRUE(judgePromotion(&r, "checkout", "1.4.2", "staging", milliseconds(0), kNow).met);
}

common::Wave wave(const std::string& name, const std::string& env, const std::string& from) {
  common::Wave w;
  w.name = name;
  w.environment = env;
  w.promote_from = from;
  w.promote_soak = minutes(30);
  return w;
}

TEST(Promotion, AWaveAfterOneInItsSourceIsJudgedWhenItStartsNotAtSubmission) {
  common::Plan plan;
  plan.service = "checkout";
  plan.version = "1.4.2";
  plan.waves = {wave("prod", "production", "staging")};
  std::vector<PromotionGap> gaps = promotionGaps(plan, nullptr, kNow);
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].wave, "prod");
  EXPECT_EQ(gaps[0].from, "staging");
  common::Status refused = promotionRefusal(plan, gaps);
  EXPECT_TRUE(refused.isFailedPrecondition());
  EXPECT_NE(refused.message().find("checkout 1.4.2 cannot enter production (wave prod, promoted "
                                   "from staging): checkout 1.4.2 has not succeeded in staging"),
            std::string::npos)
      << refused.message();
  EXPECT_EQ(promotionGapsJson(gaps)[0]["missing"], "checkout 1.4.2 has not succeeded in staging");

  plan.waves = {wave("stage", "staging", ""), wave("prod", "production", "staging")};
  EXPECT_TRUE(promotionGaps(plan, nullptr, kNow).empty());
  EXPECT_TRUE(promotionRefusal(plan, {}).ok());
}

}  // namespace
}  // namespace flotilla::coordinator
