#include "agent/script/watch_command.hpp"

#include <poll.h>
#include <signal.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/logging.hpp"
#include "common/rules.hpp"

namespace flotilla::agent {

namespace {

using Clock = std::chrono::steady_clock;

// How often a wait looks at the cancel flag and the deadline between two events.
constexpr int kPollMs = 50;

}  // namespace

Probe runWatchCommand(const ChildSpec& spec, const LaunchPolicy& launch,
                      std::chrono::milliseconds timeout, const std::atomic<bool>& cancel,
                      const LineSink& log) {
  auto spawned = ChildProcess::spawn(spec, launch);
  if (!spawned.ok())
    return {false, false, "steps.watch did not start: " + spawned.status().message()};
  std::unique_ptr<ChildProcess> child = std::move(spawned).value();
  const auto deadline = Clock::now() + timeout;
  int logged = 0;
  int dropped = 0;
  std::string last_line;
  auto take = [&](std::vector<std::string>& lines) {
    for (auto& line : lines) {
      if (line.empty()) continue;
      last_line = line;
      if (logged < kMaxWatchCommandLines) {
        ++logged;
        if (log) log("steps.watch: " + common::loggable(line, 500));
      } else {
        ++dropped;
      }
    }
    lines.clear();
  };
  std::vector<std::string> lines;
  std::string ended;  // why it was stopped ("" = it exited by itself)
  std::optional<ChildExit> exit;
  while (!exit) {
    if (cancel.load()) {
      ended = "cancelled";
    } else if (Clock::now() >= deadline) {
      ended = "timed out after " + common::formatDuration(timeout);
    }
    if (!ended.empty()) {
      child->signalGroup(SIGKILL);
      while (!(exit = child->tryReap())) {
        pollfd fd{child->exitFd(), POLLIN, 0};
        ::poll(&fd, 1, kPollMs);
      }
      break;
    }
    std::vector<pollfd> fds;
    if (child->outputFd() >= 0) fds.push_back({child->outputFd(), POLLIN, 0});
    fds.push_back({child->exitFd(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), kPollMs);
    child->readOutput(lines);
    take(lines);
    exit = child->tryReap();
  }
  // What the pipe still holds (background children of the shell may keep it open: not waited).
  child->readOutput(lines);
  child->closeOutput();
  if (std::string partial = child->takePartialLine(); !partial.empty()) {
    lines.push_back(std::move(partial));
  }
  take(lines);
  // Whatever the shell left behind in its group goes with it.
  child->signalGroup(SIGKILL);
  if (dropped > 0 && log) {
    log("steps.watch: " + std::to_string(dropped) + " more output line(s) not logged");
  }
  const std::string tail = last_line.empty() ? "" : ": " + common::loggable(last_line, 200);
  if (!ended.empty()) return {false, false, "steps.watch " + ended + tail};
  if (exit->signal == 0 && exit->exit_code == 0) return {true, true, ""};
  return {false, true, "steps.watch " + exit->describe() + tail};
}

}  // namespace flotilla::agent
