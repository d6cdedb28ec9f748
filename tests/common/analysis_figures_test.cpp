// The figures of an analysis window: what a peer may not say, the JSON round trip and the line
// people read.
#include "common/analysis_figures.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace flotilla::common {
namespace {

AnalysisFigures sample() {
  AnalysisFigures f;
  f.window = 1;
  f.window_ms = 30'000;
  f.candidate = SetFigures{"2.1.0", 420, 14.0, 0.008, 0.012, 2};
  f.stable = SetFigures{"2.0.0", 400, 13.3, 0.005, 0.010, 2};
  f.error_rate_limit = 0.01;
  f.latency_p95_limit = 0.020;
  f.min_requests = 20;
  f.verdict = WindowVerdict::kPass;
  f.health_checks = 12;
  f.health_failing = 0;
  f.health_threshold = 3;
  f.strategy_step = 2;
  f.strategy_steps = 3;
  return f;
}

TEST(AnalysisFigures, SummaryReadsAsOneLine) {
  EXPECT_EQ(figuresSummary(sample()),
            "analysis 2/3: 2.1.0 err 0.8% p95 12 ms (420 req) vs 2.0.0 err 0.5% p95 10 ms "
            "(400 req); limits err 1.0%, p95 20 ms, min 20 req; pass · health 0/3 failing");
}

TEST(AnalysisFigures, SummaryOfABakeSliceWithoutAnalysis) {
  AnalysisFigures f = sample();
  f.bake = true;
  f.window = 3;
  f.stable.reset();
  f.error_rate_limit.reset();
  f.latency_p95_limit.reset();
  f.candidate.latency_p95.reset();
  f.verdict = WindowVerdict::kNone;
  f.strategy_step = 0;
  f.strategy_steps = 0;
  f.health_failing = 2;
  EXPECT_EQ(figuresSummary(f), "bake slice 3: 2.1.0 err 0.8% p95 - (420 req) · health 2/3 failing");
}

TEST(AnalysisFigures, JsonRoundTrip) {
  const AnalysisFigures f = sample();
  auto back = figuresFromJson(figuresToJson(f));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(*back, f);
  AnalysisFigures g = sample();
  g.stable.reset();
  g.latency_p95_limit.reset();
  g.candidate.latency_p95.reset();
  g.strategy_step = 0;
  g.bake = true;
  g.verdict = WindowVerdict::kInconclusive;
  auto back2 = figuresFromJson(figuresToJson(g));
  ASSERT_TRUE(back2.ok()) << back2.status().toString();
  EXPECT_EQ(*back2, g);
  EXPECT_TRUE(figuresToJson(g)["stable"].is_null());
}

TEST(AnalysisFigures, JsonWithAMissingOrMistypedFieldIsRefused) {
  nlohmann::json j = figuresToJson(sample());
  j.erase("health");
  EXPECT_FALSE(figuresFromJson(j).ok());
  j = figuresToJson(sample());
  j["verdict"] = "great";
  EXPECT_FALSE(figuresFromJson(j).ok());
  j = figuresToJson(sample());
  j["candidate"]["error_rate"] = "low";
  EXPECT_FALSE(figuresFromJson(j).ok());
  EXPECT_FALSE(figuresFromJson(nlohmann::json::array()).ok());
}

TEST(AnalysisFigures, PeerValuesOutsideTheRulesAreRefused) {
  EXPECT_TRUE(checkFigures(sample()).ok());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto refused = [](auto change) {
    AnalysisFigures f = sample();
    change(f);
    return !checkFigures(f).ok();
  };
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.candidate.error_rate = nan; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.candidate.error_rate = -0.1; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.candidate.error_rate = 1.5; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.candidate.request_rate = inf; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.candidate.request_rate = -1; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.stable->latency_p95 = -0.001; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.stable->latency_p95 = inf; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.error_rate_limit = nan; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.latency_p95_limit = -1; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.candidate.version = std::string(129, 'a'); }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.stable->version = "1.0\n\x1b[2J"; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.candidate.version = ""; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.window = 0; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.window = kMaxFiguresWindow + 1; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.health_failing = 13; }));
  EXPECT_TRUE(refused([&](AnalysisFigures& f) { f.strategy_step = 4; }));
}

}  // namespace
}  // namespace flotilla::common
