// The coordinator SIGKILLed at every named crash point (common/failpoint.hpp) and at random
// moments during a 3-wave, 4-cluster rollout, then restarted on the same data dir: every
// deployment ends in the right state, is still listed, and no step ran twice
// (integration/rollout_check.hpp holds the invariants).
#include <random>
#include <thread>

#include "integration/rollout_check.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

struct CrashPoint {
  const char* label;      // the test's name
  const char* failpoint;  // where the coordinator dies
  int hit;                // at its n-th hit
  bool failing_rollout;   // verify fails in wave 2: the kill lands on the way back
  const char* expected;   // final state
};

void PrintTo(const CrashPoint& p, std::ostream* os) {
  *os << p.failpoint << "@" << p.hit << (p.failing_rollout ? " (failing rollout)" : "");
}

CoordinatorOptions armed(const std::string& failpoint, int hit) {
  CoordinatorOptions options;
  options.env["FLOTILLA_FAILPOINTS"] = failpoint + "=crash@" + std::to_string(hit);
  return options;
}

class CoordinatorCrashTest : public RolloutTest,
                             public ::testing::WithParamInterface<CrashPoint> {};

TEST_P(CoordinatorCrashTest, KilledAtTheCrashPointRestartsAndFinishesRight) {
  const CrashPoint& p = GetParam();
  ASSERT_NO_FATAL_FAILURE(startFleet(armed(p.failpoint, p.hit)));
  const std::string plan = writeRollout(p.failing_rollout ? failingRollout() : RolloutShape{});
  std::string id;
  if (std::string(p.failpoint) == "coordinator.after_submit_commit_before_reply") {
    // The client never hears back; the deployment must exist all the same.
    CommandResult r = cli({"submit", plan});
    EXPECT_NE(r.exit_code, 0) << "submit answered although the coordinator died: " << r.out;
  } else {
    id = submit(plan);
    ASSERT_FALSE(id.empty());
  }
  ASSERT_TRUE(waitForCoordinatorCrash(p.failpoint));
  ASSERT_NO_FATAL_FAILURE(killCoordinator());  // reaps it
  ASSERT_NO_FATAL_FAILURE(restartCoordinator(CoordinatorOptions{}));

  std::vector<std::string> ids = listedIds();
  if (id.empty() && ids.empty()) {
    // The coordinator died before the submission became durable (under group commit it is
    // written at the end of the loop's turn, and only then answered): nobody was told of it, so
    // losing it is allowed, as long as nothing of it ran. The client may submit again.
    std::cout << "[crash] the unanswered submission was not durable yet: submitting again"
              << std::endl;
    for (const auto& cluster : kUsualClusters) {
      EXPECT_FALSE(fileExists(dir() + "/" + cluster + ".counter")) << cluster << " ran a step";
    }
    id = submit(plan);
    ASSERT_FALSE(id.empty());
    ids = listedIds();
  }
  ASSERT_EQ(ids.size(), 1u) << "one deployment stored, one listed";
  if (id.empty()) id = ids[0];
  EXPECT_EQ(ids[0], id);
  checkRollout(id, p.expected);
  if (p.failing_rollout) {
    // The exact sequences of the two clusters whose path does not depend on timing.
    EXPECT_EQ(counter("staging-eu", id),
              (std::vector<std::string>{"build", "apply", "verify", "rollback"}));
    EXPECT_EQ(counter("prod-eu-2", id),
              (std::vector<std::string>{"build", "apply", "verify", "rollback"}));
    EXPECT_TRUE(counter("prod-us-1", id).empty());
  }
  reportKills(1, std::string(p.failpoint) + "@" + std::to_string(p.hit));
}

INSTANTIATE_TEST_SUITE_P(
    CrashPoints, CoordinatorCrashTest,
    ::testing::Values(
        CrashPoint{"SubmitCommittedNotAnswered", "coordinator.after_submit_commit_before_reply", 1,
                   false, "succeeded"},
        // 5th commit that sends commands: inside wave 2.
        CrashPoint{"CommitBeforeSend", "coordinator.after_commit_before_send", 5, false,
                   "succeeded"},
        // 4th result: the first of wave 2.
        CrashPoint{"ResultBeforeCommit", "coordinator.after_result_before_commit", 4, false,
                   "succeeded"},
        CrashPoint{"CommitBeforeSendInFailingRollout", "coordinator.after_commit_before_send", 4,
                   true, "rolled_back"},
        CrashPoint{"RollbackCommitBeforeSend", "coordinator.after_rollback_commit_before_send", 1,
                   true, "rolled_back"},
        CrashPoint{"MidRollback", "coordinator.mid_rollback", 1, true, "rolled_back"},
        // The 6th flush with frames to send: durable, not sent (in wave 2).
        CrashPoint{"FlushedNotSent", "coordinator.after_flush_before_release", 6, false,
                   "succeeded"},
        CrashPoint{"FlushedNotSentInRollback", "coordinator.after_flush_before_release", 9, true,
                   "rolled_back"},
        // The 9th result is the failing verify or one after it: the kill lands in the rollback.
        CrashPoint{"ResultBeforeCommitInRollback", "coordinator.after_result_before_commit", 9,
                   true, "rolled_back"}),
    [](const ::testing::TestParamInfo<CrashPoint>& info) { return info.param.label; });

// ---- Random moments -------------------------------------------------------------------------

// Several rollouts one after the other on one fleet, each with its own kills.
constexpr int kRounds = 3;

class CoordinatorRandomCrashTest : public RolloutTest {
 protected:
  // Failpoints every rollout reaches within four hits, and those only a rollback reaches.
  static constexpr const char* kForwardPoints[] = {"coordinator.after_commit_before_send",
                                                   "coordinator.after_result_before_commit"};
  static constexpr const char* kAllPoints[] = {
      "coordinator.after_commit_before_send", "coordinator.after_result_before_commit",
      "coordinator.after_rollback_commit_before_send", "coordinator.mid_rollback"};

  std::string draw(std::mt19937& rng, bool forward_only) {
    std::uniform_int_distribution<int> point(0, forward_only ? 1 : 3);
    std::uniform_int_distribution<int> hit(1, 4);
    return std::string(forward_only ? kForwardPoints[point(rng)] : kAllPoints[point(rng)]) +
           "=crash@" + std::to_string(hit(rng));
  }

  // (Re)starts the coordinator armed at `spec` ("" = unarmed).
  void restartArmed(const std::string& spec) {
    armed_ = spec;
    CoordinatorOptions options;
    if (!spec.empty()) options.env["FLOTILLA_FAILPOINTS"] = spec;
    std::cout << "[crash] coordinator restarts with " << (spec.empty() ? "no failpoint" : spec)
              << std::endl;
    restartCoordinator(options);
  }

  // One rollout: the coordinator starts armed at a failpoint every rollout reaches; each crash
  // there is followed by a restart armed at another failpoint drawn from `rng` (hit counts start
  // again with each process), the last of `max_kills` restarts unarmed. Returns the kills.
  int rolloutWithFailpointCrashes(const RolloutShape& shape, const std::string& expected,
                                  std::mt19937& rng, int max_kills) {
    restartArmed(draw(rng, true));
    if (HasFatalFailure()) return 0;
    const std::string id = submit(writeRollout(shape));
    if (id.empty()) return 0;
    int kills = 0;
    while (true) {
      bool moved = waitUntil("a crash or the end of " + id, [&] {
        if (!coordinatorRunning()) return true;
        const std::string state = stateOf(id);
        return state == "succeeded" || state == "rolled_back" || state == "failed";
      });
      if (!moved || coordinatorRunning()) break;  // ended before the armed point came
      EXPECT_FALSE(armed_.empty()) << "the coordinator died with no failpoint armed";
      if (!waitForCoordinatorCrash(armed_.substr(0, armed_.find('=')))) break;
      ++kills;
      killCoordinator();  // reaps it
      restartArmed(kills < max_kills ? draw(rng, false) : "");
      if (HasFatalFailure()) return kills;
    }
    checkRollout(id, expected);
    return kills;
  }

  // One rollout; the coordinator is SIGKILLed from outside after random delays, anywhere in its
  // loop, and restarted, up to three times while the deployment has not ended.
  int rolloutWithSigkills(const RolloutShape& shape, const std::string& expected,
                          std::mt19937& rng) {
    const std::string id = submit(writeRollout(shape));
    if (id.empty()) return 0;
    std::uniform_int_distribution<int> delay_ms(100, 700);
    int kills = 0;
    for (int i = 0; i < 3; ++i) {
      const int delay = delay_ms(rng);
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      const std::string state = stateOf(id);
      if (state == "succeeded" || state == "rolled_back" || state == "failed") break;
      std::cout << "[crash] SIGKILL the coordinator after " << delay << " ms (" << id << " is "
                << state << ")" << std::endl;
      killCoordinator();
      restartCoordinator();
      if (HasFatalFailure()) return kills;
      ++kills;
    }
    checkRollout(id, expected);
    return kills;
  }

  // kRounds rollouts one after the other on one fleet (good ones, or failing ones that must
  // roll back), each with its kills: at failpoints, or by SIGKILL at random moments. The kills
  // are drawn from the seed `seed` (FLOTILLA_CRASH_SEED overrides it).
  void rounds(uint32_t seed, bool failing, bool at_failpoints) {
    std::mt19937 rng(crashSeed(seed));
    ASSERT_NO_FATAL_FAILURE(startFleet());
    const RolloutShape shape = failing ? failingRollout() : RolloutShape{};
    const std::string expected = failing ? "rolled_back" : "succeeded";
    int kills = 0;
    for (int round = 0; round < kRounds && !HasFailure(); ++round) {
      kills += at_failpoints ? rolloutWithFailpointCrashes(shape, expected, rng, 3)
                             : rolloutWithSigkills(shape, expected, rng);
    }
    EXPECT_GE(kills, kRounds);
    reportKills(kills, std::string(at_failpoints ? "random failpoint hits, "
                                                 : "SIGKILL at random moments, ") +
                           std::to_string(kRounds) + " rollouts");
  }

  std::string armed_;  // "name=crash@n" the running coordinator dies at ("" = none)
};

TEST_F(CoordinatorRandomCrashTest, RandomFailpointHitsDuringGoodRollouts) {
  rounds(1101, /*failing=*/false, /*at_failpoints=*/true);
}

TEST_F(CoordinatorRandomCrashTest, RandomFailpointHitsDuringFailingRollouts) {
  rounds(2202, /*failing=*/true, /*at_failpoints=*/true);
}

TEST_F(CoordinatorRandomCrashTest, SigkillAtRandomMomentsDuringGoodRollouts) {
  rounds(3303, /*failing=*/false, /*at_failpoints=*/false);
}

TEST_F(CoordinatorRandomCrashTest, SigkillAtRandomMomentsDuringFailingRollouts) {
  rounds(4404, /*failing=*/true, /*at_failpoints=*/false);
}

}  // namespace
}  // namespace flotilla::integration
