// Tests for common/failpoint.cpp: the FLOTILLA_FAILPOINTS syntax and its refusals, hit
// counting, and the crash itself. FLOTILLA_FAILPOINTS is read once per process and a crash
// kills it, so those cases run this test binary again as a child (see ChildMode) with the
// variable set, and look at how it died and what it wrote.
#include "common/failpoint.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/files.hpp"
#include "tests/support/process.hpp"

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;
using support::contains;

// Set in a child's environment: the failpoints it reaches, in order, comma-separated.
constexpr const char* kChildVariable = "FLOTILLA_FAILPOINT_TEST_CHILD";

// Every crash point the code has (the list in failpoint.cpp).
const std::vector<std::string> kCrashPoints = {
    "coordinator.after_submit_commit_before_reply",
    "coordinator.after_commit_before_send",
    "coordinator.after_rollback_commit_before_send",
    "coordinator.mid_rollback",
    "coordinator.after_result_before_commit",
    "coordinator.after_flush_before_release",
    "agent.after_record_started_before_spawn",
    "agent.after_child_exit_before_record",
    "agent.after_record_before_result",
};

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// The child: before any test runs, with kChildVariable set, it writes a line to stdout through
// stdio's buffer (flushed only by an orderly exit), reaches each named failpoint in order
// (saying so on stderr, unbuffered, first), then prints "hits NAME=N" for each and exits 0.
class ChildMode : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* plan = std::getenv(kChildVariable);
    if (plan == nullptr) return;
    std::printf("buffered\n");
    const std::vector<std::string> names = split(plan);
    std::map<std::string, int> seen;
    for (const std::string& name : names) {
      const std::string line = "reaching " + name + " " + std::to_string(++seen[name]) + "\n";
      if (::write(2, line.data(), line.size()) < 0) ::_exit(3);
      FLOTILLA_FAILPOINT(name.c_str());
    }
    for (const auto& [name, n] : seen) {
      std::printf("hits %s=%llu\n", name.c_str(),
                  static_cast<unsigned long long>(failpointHits(name)));
    }
    std::fflush(stdout);
    ::_exit(0);
  }
};
::testing::Environment* const kChildMode = ::testing::AddGlobalTestEnvironment(new ChildMode);

class FailpointChildTest : public ::testing::Test {
 protected:
  // Runs the child with FLOTILLA_FAILPOINTS=`spec`, reaching `reached` in order.
  support::CommandResult child(const std::string& spec, const std::string& reached) {
    const std::string self = std::filesystem::read_symlink("/proc/self/exe");
    return support::runCommand({self}, tmp_.path(), 60s,
                               {{"FLOTILLA_FAILPOINTS", spec}, {kChildVariable, reached}});
  }
  support::TempDir tmp_{"failpoint-test"};
};

constexpr int kKilled = 128 + 9;  // SIGKILL

TEST_F(FailpointChildTest, NothingArmedNothingHappensAndNothingIsCounted) {
  auto r = child("", "coordinator.mid_rollback,coordinator.mid_rollback");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "buffered\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "hits coordinator.mid_rollback=0\n")) << r.out;
  EXPECT_FALSE(contains(r.err, "FAILPOINT")) << r.err;
}

TEST_F(FailpointChildTest, CrashKillsAtTheFirstHitWithoutFlushingAnything) {
  auto r = child("coordinator.mid_rollback=crash",
                 "coordinator.after_commit_before_send,coordinator.mid_rollback,"
                 "coordinator.mid_rollback");
  EXPECT_EQ(r.exit_code, kKilled) << r.out << r.err;
  EXPECT_TRUE(contains(r.err,
                       "reaching coordinator.mid_rollback 1\n"
                       "FAILPOINT coordinator.mid_rollback hit 1: crashing (SIGKILL)\n"))
      << r.err;
  EXPECT_FALSE(contains(r.err, "reaching coordinator.mid_rollback 2")) << r.err;
  // Like a power cut of the process: stdio's buffer is lost.
  EXPECT_FALSE(contains(r.out, "buffered")) << r.out;
}

TEST_F(FailpointChildTest, CrashAtTheNthHit) {
  auto r = child("agent.after_record_before_result=crash@3",
                 "agent.after_record_before_result,agent.after_record_before_result,"
                 "agent.after_record_before_result,agent.after_record_before_result");
  EXPECT_EQ(r.exit_code, kKilled) << r.out << r.err;
  EXPECT_TRUE(contains(r.err,
                       "reaching agent.after_record_before_result 3\n"
                       "FAILPOINT agent.after_record_before_result hit 3: crashing"))
      << r.err;
  EXPECT_FALSE(contains(r.err, "reaching agent.after_record_before_result 4")) << r.err;
}

TEST_F(FailpointChildTest, SeveralArmedEachCountsItsOwnHits) {
  // Both separators, and blanks around every part.
  auto r = child(" coordinator.mid_rollback = crash@2 ; agent.after_record_before_result=crash@2,",
                 "coordinator.mid_rollback,agent.after_record_before_result,"
                 "agent.after_record_before_result,coordinator.mid_rollback");
  EXPECT_EQ(r.exit_code, kKilled) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "FAILPOINT agent.after_record_before_result hit 2: crashing"))
      << r.err;
  EXPECT_FALSE(contains(r.err, "FAILPOINT coordinator.mid_rollback")) << r.err;
  EXPECT_FALSE(contains(r.err, "FLOTILLA_FAILPOINTS:")) << r.err;
}

TEST_F(FailpointChildTest, WhileArmedEveryFailpointIsCounted) {
  auto r = child("coordinator.mid_rollback=crash@100",
                 "coordinator.after_commit_before_send,coordinator.mid_rollback,"
                 "coordinator.after_commit_before_send,coordinator.after_commit_before_send");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "hits coordinator.after_commit_before_send=3\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "hits coordinator.mid_rollback=1\n")) << r.out;
}

TEST_F(FailpointChildTest, AMisspeltNameIsReportedAndArmedAnyway) {
  auto r = child("coordinator.mid_rolback=crash", "coordinator.mid_rolback");
  EXPECT_EQ(r.exit_code, kKilled) << r.out << r.err;
  EXPECT_TRUE(contains(r.err,
                       "FLOTILLA_FAILPOINTS: failpoint coordinator.mid_rolback is not a "
                       "known crash point (armed anyway)"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "FAILPOINT coordinator.mid_rolback hit 1: crashing")) << r.err;
}

TEST_F(FailpointChildTest, AnUnusableSpecIsReportedAndArmsNothing) {
  auto r = child("coordinator.mid_rollback=explode", "coordinator.mid_rollback");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err,
                       "FLOTILLA_FAILPOINTS: failpoint \"coordinator.mid_rollback=explode\""
                       ": expected NAME=crash or NAME=crash@N"))
      << r.err;
  r = child("coordinator.mid_rollback=crash@0", "coordinator.mid_rollback");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "\"@0\" is not a hit number")) << r.err;
}

// ---- In this process: configureFailpoints and failpointHits, never reaching an armed hit -----

class FailpointTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_EQ(configureFailpoints(""), ""); }
};

TEST_F(FailpointTest, EveryCrashPointOfTheCodeIsKnown) {
  for (const std::string& name : kCrashPoints) {
    EXPECT_EQ(configureFailpoints(name + "=crash@1000"), "") << name;
  }
  std::string all;
  for (const std::string& name : kCrashPoints) all += name + "=crash@1000,";
  EXPECT_EQ(configureFailpoints(all), "");
}

TEST_F(FailpointTest, TheSyntaxAndItsRefusals) {
  EXPECT_EQ(configureFailpoints(""), "");
  EXPECT_EQ(configureFailpoints(" , ;; "), "");
  EXPECT_EQ(configureFailpoints("coordinator.mid_rollback"), "") << "the action defaults to crash";
  EXPECT_EQ(configureFailpoints("coordinator.mid_rollback=crash@12"), "");
  const std::map<std::string, std::string> refused = {
      {"coordinator.mid_rollback=explode", "expected NAME=crash or NAME=crash@N"},
      {"=crash", "expected NAME=crash or NAME=crash@N"},
      {"coordinator.mid_rollback=", "expected NAME=crash or NAME=crash@N"},
      {"coordinator.mid_rollback=crash@", "\"@\" is not a hit number"},
      {"coordinator.mid_rollback=crash@0", "\"@0\" is not a hit number"},
      {"coordinator.mid_rollback=crash@two", "\"@two\" is not a hit number"},
      {"coordinator.mid_rollback=crash@2x", "\"@2x\" is not a hit number"},
      {"coordinator.no_such_point=crash", "not a known crash point (armed anyway)"},
  };
  for (const auto& [spec, problem] : refused) {
    const std::string problems = configureFailpoints(spec);
    EXPECT_TRUE(contains(problems, problem)) << spec << " -> " << problems;
  }
  // Every problem of a spec is reported, not just the first.
  const std::string two = configureFailpoints("a=crash@0,coordinator.mid_rollback=boom");
  EXPECT_TRUE(contains(two, "\"@0\"")) << two;
  EXPECT_TRUE(contains(two, "boom")) << two;
}

TEST_F(FailpointTest, AHitNumberIsDigitsOnly) {
  // A hit that can never come (a sign, a number past 64 bits) would silently turn a crash test
  // into a test of nothing.
  for (const char* count : {"-1", "18446744073709551616"}) {
    const std::string problems =
        configureFailpoints(std::string("coordinator.mid_rollback=crash@") + count);
    EXPECT_TRUE(contains(problems, "is not a hit number")) << count << " -> " << problems;
  }
}

TEST_F(FailpointTest, HitsAreCountedOnlyWhileSomethingIsArmed) {
  ASSERT_EQ(configureFailpoints(""), "");
  FLOTILLA_FAILPOINT("coordinator.after_commit_before_send");
  EXPECT_EQ(failpointHits("coordinator.after_commit_before_send"), 0u);
  ASSERT_EQ(configureFailpoints("coordinator.mid_rollback=crash@1000"), "");
  for (int i = 0; i < 5; ++i) FLOTILLA_FAILPOINT("coordinator.after_commit_before_send");
  FLOTILLA_FAILPOINT("coordinator.mid_rollback");
  EXPECT_EQ(failpointHits("coordinator.after_commit_before_send"), 5u);
  EXPECT_EQ(failpointHits("coordinator.mid_rollback"), 1u);
  EXPECT_EQ(failpointHits("agent.after_record_before_result"), 0u);
  // A new configuration starts the counts again.
  ASSERT_EQ(configureFailpoints("coordinator.mid_rollback=crash@1000"), "");
  EXPECT_EQ(failpointHits("coordinator.after_commit_before_send"), 0u);
  // Disarmed: not counted any more.
  ASSERT_EQ(configureFailpoints(""), "");
  FLOTILLA_FAILPOINT("coordinator.mid_rollback");
  EXPECT_EQ(failpointHits("coordinator.mid_rollback"), 0u);
}

TEST_F(FailpointTest, AnUnusableSpecArmsNothing) {
  EXPECT_NE(configureFailpoints("coordinator.mid_rollback=crash@0"), "");
  // Had it armed anything, hits would be counted.
  FLOTILLA_FAILPOINT("coordinator.mid_rollback");
  EXPECT_EQ(failpointHits("coordinator.mid_rollback"), 0u);
}

TEST_F(FailpointTest, HitsFromManyThreadsAreAllCounted) {
  ASSERT_EQ(configureFailpoints("coordinator.mid_rollback=crash@1000000"), "");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < 1000; ++i) FLOTILLA_FAILPOINT("coordinator.after_result_before_commit");
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failpointHits("coordinator.after_result_before_commit"), 4000u);
}

}  // namespace
}  // namespace flotilla::common
