#include "common/steps.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace flotilla::common {
namespace {

TEST(StepsTest, EveryStepHasOneNameThatReadsBack) {
  std::set<std::string> names;
  for (int i = 0; i <= static_cast<int>(kLastStep); ++i) {
    const Step step = static_cast<Step>(i);
    const std::string name = stepName(step);
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << name << " names two steps";
    ASSERT_TRUE(stepFromName(name).has_value()) << name;
    EXPECT_EQ(*stepFromName(name), step);
  }
  EXPECT_EQ(names.size(), 11u);
}

TEST(StepsTest, NamesAreThoseOfEventsAndRecords) {
  // Stored cluster records, stage ids and events carry these strings: they never change.
  EXPECT_STREQ(stepName(Step::BUILD), "build");
  EXPECT_STREQ(stepName(Step::ROLLBACK), "rollback");
  EXPECT_STREQ(stepName(Step::ROLL), "roll");
  EXPECT_STREQ(stepName(Step::WATCH), "watch");
  EXPECT_STREQ(outcomeName(Outcome::TIMED_OUT), "timed_out");
  EXPECT_STREQ(outcomeName(Outcome::REFUSED), "refused");
}

TEST(StepsTest, UnknownNamesAndValuesAreRefused) {
  EXPECT_FALSE(stepFromName("").has_value());
  EXPECT_FALSE(stepFromName("Build").has_value());
  EXPECT_FALSE(stepFromName("unknown").has_value());
  EXPECT_FALSE(outcomeFromName("timedOut").has_value());
  // A value a newer peer might send is named, never read out of bounds.
  EXPECT_STREQ(stepName(static_cast<Step>(200)), "unknown");
  EXPECT_STREQ(outcomeName(static_cast<Outcome>(200)), "unknown");
}

TEST(StepsTest, EveryOutcomeHasOneNameThatReadsBack) {
  std::set<std::string> names;
  for (int i = 0; i <= static_cast<int>(kLastOutcome); ++i) {
    const Outcome outcome = static_cast<Outcome>(i);
    const std::string name = outcomeName(outcome);
    EXPECT_TRUE(names.insert(name).second) << name;
    EXPECT_EQ(outcomeFromName(name), outcome);
  }
  EXPECT_EQ(names.size(), 6u);
}

TEST(StepsTest, OnlyShiftAnalyzeAndWatchRepeat) {
  for (int i = 0; i <= static_cast<int>(kLastStep); ++i) {
    const Step step = static_cast<Step>(i);
    EXPECT_EQ(stepRepeats(step),
              step == Step::SHIFT || step == Step::ANALYZE || step == Step::WATCH)
        << stepName(step);
  }
}

TEST(StepsTest, ProcessStepsAreTheProcessDriversAlone) {
  EXPECT_FALSE(isProcessStep(Step::BUILD));
  EXPECT_FALSE(isProcessStep(Step::APPLY));
  EXPECT_FALSE(isProcessStep(Step::VERIFY));
  EXPECT_FALSE(isProcessStep(Step::ROLLBACK));  // both drivers roll back
  // The script driver shifts (its `switch` or `apply` again), analyzes and bakes too.
  EXPECT_FALSE(isProcessStep(Step::SHIFT));
  EXPECT_FALSE(isProcessStep(Step::ANALYZE));
  EXPECT_FALSE(isProcessStep(Step::BAKE));
  for (Step s : {Step::DEPLOY, Step::FINALIZE, Step::ROLL}) {
    EXPECT_TRUE(isProcessStep(s)) << stepName(s);
  }
}

}  // namespace
}  // namespace flotilla::common
