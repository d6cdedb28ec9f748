// The script driver through the Driver interface: real shells, real process groups.
#include "agent/script/driver.hpp"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "tests/support/files.hpp"

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using common::Outcome;
using common::Step;

class ScriptDriverTest : public ::testing::Test {
 protected:
  // Starts `script` as an apply step; the message lives in the fixture like the agent's frame.
  common::StatusOr<std::unique_ptr<StepRun>> start(const std::string& script,
                                                   std::map<std::string, std::string> env = {}) {
    message_ = std::make_unique<capnp::MallocMessageBuilder>();
    auto cmd = message_->initRoot<schema::StageCommand>();
    cmd.setStep(Step::APPLY);
    cmd.setCommand(script);
    StepCommand command{StageKey{"d1", "c1/apply", 1}, cmd.asReader(), std::move(env)};
    return driver_.start(command, [] {});
  }

  // The first lines the run prints (polled, bounded): it has started.
  static std::vector<std::string> firstLines(StepRun& run) {
    std::vector<std::string> lines;
    std::vector<AlertReport> alerts;
    std::vector<FiguresReport> figures;
    const auto give_up = Clock::now() + 10s;
    while (lines.empty() && Clock::now() < give_up) {
      run.collect(lines, alerts, figures);
      std::this_thread::sleep_for(10ms);
    }
    return lines;
  }

  // Polls until the run ends (bounded), collecting every line.
  StepEnd finish(StepRun& run, std::vector<std::string>* lines = nullptr) {
    std::vector<std::string> seen;
    std::vector<AlertReport> alerts;
    std::vector<FiguresReport> figures;
    const auto give_up = Clock::now() + 30s;
    while (Clock::now() < give_up) {
      run.collect(seen, alerts, figures);
      if (auto end = run.poll(Clock::now())) {
        run.collect(seen, alerts, figures);
        if (lines) *lines = seen;
        EXPECT_TRUE(alerts.empty());
        EXPECT_TRUE(figures.empty());
        return *end;
      }
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "the step never ended";
    return {};
  }

  support::TempDir dir_{"script-driver"};
  ScriptDriver driver_{dir_.path(), 300ms};
  std::unique_ptr<capnp::MallocMessageBuilder> message_;
};

TEST_F(ScriptDriverTest, ASucceedingCommandEndsWithItsLastLine) {
  auto run = start("echo one; echo \"$FLOTILLA_WEIGHT\"; echo last");
  ASSERT_TRUE(run.ok()) << run.status().toString();
  EXPECT_GT((*run)->group(), 0);
  EXPECT_GT((*run)->groupStartTicks(), 0u);
  std::vector<std::string> lines;
  StepEnd end = finish(**run, &lines);
  EXPECT_EQ(end.outcome, Outcome::SUCCEEDED);
  EXPECT_EQ(end.exit_code, 0);
  EXPECT_EQ(end.message, "last");
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "", "last"}));
}

TEST_F(ScriptDriverTest, TheStepsVariablesReachTheCommand) {
  auto run = start("echo \"$FLOTILLA_WEIGHT/$FLOTILLA_ENVIRONMENT\"",
                   {{"FLOTILLA_WEIGHT", "10"}, {"FLOTILLA_ENVIRONMENT", "staging"}});
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(finish(**run).message, "10/staging");
}

TEST_F(ScriptDriverTest, AFailingCommandSaysHowItExitedAndWhatItSaidLast) {
  auto run = start("echo 'cannot reach the cluster' >&2; printf 'no newline'; exit 3");
  ASSERT_TRUE(run.ok());
  StepEnd end = finish(**run);
  EXPECT_EQ(end.outcome, Outcome::FAILED);
  EXPECT_EQ(end.exit_code, 3);
  EXPECT_NE(end.message.find("3"), std::string::npos) << end.message;
  EXPECT_NE(end.message.find("no newline"), std::string::npos) << end.message;
}

TEST_F(ScriptDriverTest, AStoppedStepEndsAbortedEvenIfItExitsZero) {
  auto run = start("trap 'exit 0' TERM; echo started; while :; do sleep 0.05; done");
  ASSERT_TRUE(run.ok());
  ASSERT_EQ(firstLines(**run), std::vector<std::string>{"started"});
  (*run)->stop(Clock::now());
  EXPECT_EQ(finish(**run).outcome, Outcome::ABORTED);
}

TEST_F(ScriptDriverTest, AStepThatIgnoresSigtermIsKilledAfterTheGrace) {
  auto run = start("trap '' TERM; echo started; while :; do sleep 0.05; done");
  ASSERT_TRUE(run.ok());
  ASSERT_EQ(firstLines(**run), std::vector<std::string>{"started"});
  (*run)->stop(Clock::now());
  StepEnd end = finish(**run);
  EXPECT_EQ(end.outcome, Outcome::ABORTED);
}

TEST_F(ScriptDriverTest, AnEmptyCommandIsRefused) {
  auto run = start("");
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.status().message().find("empty command"), std::string::npos);
}

TEST_F(ScriptDriverTest, NothingToRecover) {
  EXPECT_TRUE(driver_.recover([](const std::string&) {}).ok());
  EXPECT_STREQ(driver_.name(), "script");
}

}  // namespace
}  // namespace flotilla::agent
