// Tests for agent/thread_run.cpp: a step on its own thread, as the agent's loop sees it.
#include "agent/thread_run.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/support/wait.hpp"

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(ThreadRunTest, LinesAlertsAndTheEndReachTheLoop) {
  std::atomic<int> wakes{0};
  ThreadRun run(
      [](const std::atomic<bool>&, const LineSink& log, const AlertSink& alerts,
         const FiguresSink& figures) {
        log("one");
        alerts(AlertReport{"error_rate", 0.2, 0.05, 0, "2.0.0", "too many errors"});
        log("two");
        common::AnalysisFigures f;
        f.window = 1;
        figures(f);
        return StepReport{Outcome::SUCCEEDED, "all good"};
      },
      [&wakes] { ++wakes; });
  ASSERT_TRUE(support::pollUntil([&] { return run.poll(Clock::now()).has_value(); }, 10s));
  std::vector<std::string> lines;
  std::vector<AlertReport> alerts;
  std::vector<FiguresReport> figures;
  run.collect(lines, alerts, figures);
  ASSERT_EQ(figures.size(), 1u);
  EXPECT_EQ(figures[0].window, 1u);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].rule, "error_rate");
  auto end = run.poll(Clock::now());
  EXPECT_EQ(end->outcome, Outcome::SUCCEEDED);
  EXPECT_EQ(end->exit_code, 0);
  EXPECT_EQ(end->message, "all good");
  EXPECT_GE(wakes.load(), 5) << "every line, alert, figures and the end wake the loop";
}

TEST(ThreadRunTest, StopSetsTheFlagTheJobWatches) {
  ThreadRun run(
      [](const std::atomic<bool>& cancel, const LineSink&, const AlertSink&, const FiguresSink&) {
        while (!cancel.load()) std::this_thread::sleep_for(1ms);
        return StepReport{Outcome::ABORTED, "stopped"};
      },
      [] {});
  EXPECT_FALSE(run.poll(Clock::now()).has_value());
  run.stop(Clock::now());
  ASSERT_TRUE(support::pollUntil([&] { return run.poll(Clock::now()).has_value(); }, 10s));
  EXPECT_EQ(run.poll(Clock::now())->outcome, Outcome::ABORTED);
  EXPECT_EQ(run.poll(Clock::now())->exit_code, 1);
}

TEST(ThreadRunTest, DestroyingARunningStepCancelsAndJoinsIt) {
  std::atomic<bool> ended{false};
  {
    ThreadRun run(
        [&ended](const std::atomic<bool>& cancel, const LineSink&, const AlertSink&,
                 const FiguresSink&) {
          while (!cancel.load()) std::this_thread::sleep_for(1ms);
          ended = true;
          return StepReport{};
        },
        [] {});
  }
  EXPECT_TRUE(ended.load());
}

}  // namespace
}  // namespace flotilla::agent
