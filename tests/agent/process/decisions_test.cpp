// agent/process/decisions.cpp: what each strategy does next, without a process or a clock.
#include "agent/process/decisions.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace flotilla::agent {
namespace {

// ---- Canary

TEST(AnalysisNextTest, PassAndFailEndTheStep) {
  EXPECT_EQ(afterWindow(Verdict::kPass, 0, true), AnalysisNext::kPass);
  EXPECT_EQ(afterWindow(Verdict::kFail, 0, true), AnalysisNext::kFail);
  // A verdict after extensions counts like the first.
  EXPECT_EQ(afterWindow(Verdict::kFail, kMaxInconclusiveExtensions, true), AnalysisNext::kFail);
  EXPECT_EQ(afterWindow(Verdict::kPass, kMaxInconclusiveExtensions, false), AnalysisNext::kPass);
}

TEST(AnalysisNextTest, TooLittleToJudgeWaitsOnlyWhenThePlanSaysSoAndOnlySoLong) {
  EXPECT_EQ(afterWindow(Verdict::kInconclusive, 0, false), AnalysisNext::kGiveUp);
  int windows = 1;
  while (afterWindow(Verdict::kInconclusive, windows - 1, true) == AnalysisNext::kWatchAgain) {
    ++windows;
  }
  EXPECT_EQ(windows, 1 + kMaxInconclusiveExtensions);
  EXPECT_EQ(afterWindow(Verdict::kInconclusive, windows - 1, true), AnalysisNext::kGiveUp);
}

// ---- Rollback

ReplicaSet set(const std::string& version) { return ReplicaSet{version, 100, {}}; }

TEST(PlanRollbackTest, TheCandidateStopsWhileTheNewVersionIsStillTheCandidate) {
  ServiceRecord rec;
  rec.stable = set("1.0");
  rec.candidate = set("2.0");
  EXPECT_EQ(planRollback(rec, "2.0", "1.0"), RollbackAction::kRetireCandidate);
  rec.stable.reset();  // a first deploy: nothing to go back to, the candidate still stops
  EXPECT_EQ(planRollback(rec, "2.0", ""), RollbackAction::kRetireCandidate);
}

TEST(PlanRollbackTest, AfterFinalizeThePreviousVersionComesBack) {
  ServiceRecord rec;
  rec.stable = set("2.0");
  EXPECT_EQ(planRollback(rec, "2.0", "1.0"), RollbackAction::kRestorePrevious);
  EXPECT_EQ(planRollback(rec, "2.0", ""), RollbackAction::kNothing);     // nothing known
  EXPECT_EQ(planRollback(rec, "2.0", "2.0"), RollbackAction::kNothing);  // a redeploy
}

TEST(PlanRollbackTest, AnEarlierRollbackHalfDoneIsFinishedNotUndone) {
  ServiceRecord rec;
  rec.stable = set("2.0");
  rec.candidate = set("1.0");  // the previous version, started again by a rollback that died
  EXPECT_EQ(planRollback(rec, "2.0", "1.0"), RollbackAction::kFinishEarlierRollback);
  rec.stable.reset();
  EXPECT_EQ(planRollback(rec, "2.0", "1.0"), RollbackAction::kFinishEarlierRollback);
  // A candidate of a third version next to the new stable one is somebody else's: it stops.
  rec.stable = set("2.0");
  rec.candidate = set("3.0");
  EXPECT_EQ(planRollback(rec, "2.0", "1.0"), RollbackAction::kRetireCandidate);
}

TEST(PlanRollbackTest, NothingOfTheNewVersionRunsNothingToDo) {
  ServiceRecord rec;
  EXPECT_EQ(planRollback(rec, "2.0", "1.0"), RollbackAction::kNothing);
  rec.stable = set("1.0");
  EXPECT_EQ(planRollback(rec, "2.0", "1.0"), RollbackAction::kNothing);
}

TEST(PlanRollbackTest, ARollingUpdateIsRolledBackTheWayItCame) {
  ServiceRecord rec;
  rec.stable = set("2.0");
  rec.rolling = RollState{};
  EXPECT_EQ(planRollback(rec, "2.0", "1.0"), RollbackAction::kRollBackTheRoll);
}

// ---- Rolling: whole updates simulated round by round with the two rules, each new replica
// healthy as soon as it started (the round after), checking the bounds at every moment.

struct Simulation {
  int rounds = 0;
  int fewest_serving = 1 << 30;
  int most_running = 0;
  bool finished = false;
};

Simulation simulate(const RollBounds& b, int old_replicas) {
  Simulation sim;
  int old_serving = old_replicas;
  int new_serving = 0;
  int new_starting = 0;
  for (; sim.rounds < 1000; ++sim.rounds) {
    if (old_serving == 0 && new_serving == b.wanted) {
      sim.finished = true;
      break;
    }
    // Surge, then the ones started become ready and serve.
    const int start = replicasToStart(b, RollCounts{new_serving + new_starting, old_serving, 0, 0});
    new_starting += start;
    sim.most_running = std::max(sim.most_running, new_serving + new_starting + old_serving);
    new_serving += new_starting;
    new_starting = 0;
    // Old ones out down to the floor.
    const int stop =
        oldReplicasToStop(b, RollCounts{new_serving, old_serving, new_serving, old_serving});
    old_serving -= stop;
    sim.fewest_serving = std::min(sim.fewest_serving, new_serving + old_serving);
    if (start == 0 && stop == 0) break;  // stuck
  }
  return sim;
}

TEST(RollingRulesTest, EveryBoundCombinationFinishesWithinItsBounds) {
  for (int wanted = 1; wanted <= 12; ++wanted) {
    for (int unavailable = 0; unavailable <= 3; ++unavailable) {
      for (int surge = 0; surge <= 3; ++surge) {
        if (unavailable == 0 && surge == 0) continue;  // refused by the plan: cannot move
        const RollBounds b{wanted, unavailable, surge};
        const Simulation sim = simulate(b, wanted);
        SCOPED_TRACE("wanted " + std::to_string(wanted) + ", max_unavailable " +
                     std::to_string(unavailable) + ", max_surge " + std::to_string(surge));
        EXPECT_TRUE(sim.finished);
        EXPECT_GE(sim.fewest_serving, b.floor());
        EXPECT_LE(sim.most_running, b.ceiling());
      }
    }
  }
}

TEST(RollingRulesTest, OneUnavailableOneSurgeOnFourReplicas) {
  const RollBounds b{4, 1, 1};
  EXPECT_EQ(b.floor(), 3);
  EXPECT_EQ(b.ceiling(), 5);
  // 4 old serving, nothing new: start 1 (5 running), stop 1 old (3 serving).
  EXPECT_EQ(replicasToStart(b, RollCounts{0, 4, 0, 4}), 1);
  EXPECT_EQ(oldReplicasToStop(b, RollCounts{0, 4, 0, 4}), 1);
  // A new replica serving but failing its checks does not count: no old one goes.
  EXPECT_EQ(oldReplicasToStop(b, RollCounts{1, 3, 0, 3}), 0);
  EXPECT_EQ(oldReplicasToStop(b, RollCounts{1, 3, 1, 3}), 1);
}

TEST(RollingRulesTest, NoSurgeMeansOldOnesGoFirst) {
  const RollBounds b{3, 1, 0};
  EXPECT_EQ(replicasToStart(b, RollCounts{0, 3, 0, 3}), 0);  // at the ceiling already
  EXPECT_EQ(oldReplicasToStop(b, RollCounts{0, 3, 0, 3}), 1);
  EXPECT_EQ(replicasToStart(b, RollCounts{0, 2, 0, 2}), 1);
}

TEST(RollingRulesTest, AfterAShrinkingReplicaCountNothingStartsAndExtraOnesGo) {
  const RollBounds b{2, 1, 1};
  EXPECT_EQ(replicasToStart(b, RollCounts{4, 0, 4, 0}), 0);
  EXPECT_EQ(oldReplicasToStop(b, RollCounts{2, 0, 2, 0}), 0);
}

}  // namespace
}  // namespace flotilla::agent
