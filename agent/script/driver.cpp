// The script driver.
#include "agent/script/driver.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>

#include "agent/script/watch.hpp"
#include "agent/thread_run.hpp"
#include "common/crypto.hpp"
#include "common/logging.hpp"

namespace flotilla::agent {

using common::Status;
using common::StatusOr;

namespace {

// One shell command and its process group.
class ScriptRun : public StepRun {
 public:
  ScriptRun(std::unique_ptr<ChildProcess> child, std::chrono::milliseconds kill_grace)
      : child_(std::move(child)), kill_grace_(kill_grace) {
    auto ticks = processStartTicks(child_->pid());
    start_ticks_ = ticks.ok() ? *ticks : 0;
  }

  void pollFds(std::vector<int>& fds) const override {
    if (child_->outputFd() >= 0) fds.push_back(child_->outputFd());
    if (!child_->exited()) fds.push_back(child_->exitFd());
  }

  void collect(std::vector<std::string>& lines, std::vector<AlertReport>&,
               std::vector<FiguresReport>&) override {
    std::vector<std::string> fresh;
    child_->readOutput(fresh);
    for (auto& l : tail_) fresh.push_back(std::move(l));
    tail_.clear();
    for (auto& l : fresh) {
      if (!l.empty()) last_line_ = l;
      lines.push_back(std::move(l));
    }
  }

  void stop(Clock::time_point now) override {
    stopped_ = true;
    child_->signalGroup(SIGTERM);
    kill_at_ = now + kill_grace_;
  }

  std::optional<StepEnd> poll(Clock::time_point now) override {
    if (stopped_ && now >= kill_at_) child_->signalGroup(SIGKILL);
    auto exit = child_->tryReap();
    if (!exit) return std::nullopt;
    // The shell is gone; take what is left in the pipe without waiting for background
    // processes that may still hold it open.
    child_->readOutput(tail_);
    child_->closeOutput();
    std::string partial = child_->takePartialLine();
    if (!partial.empty()) tail_.push_back(std::move(partial));
    for (const auto& l : tail_) {
      if (!l.empty()) last_line_ = l;
    }
    if (stopped_) {
      // The group may hold stragglers that ignored SIGTERM.
      child_->signalGroup(SIGKILL);
      return StepEnd{Outcome::ABORTED, exit->exit_code, last_line_};
    }
    if (exit->signal == 0 && exit->exit_code == 0)
      return StepEnd{Outcome::SUCCEEDED, 0, last_line_};
    std::string message = exit->describe();
    if (!last_line_.empty()) message += ": " + last_line_;
    return StepEnd{Outcome::FAILED, exit->exit_code, message};
  }

  pid_t group() const override { return child_->pid(); }
  uint64_t groupStartTicks() const override { return start_ticks_; }

 private:
  std::unique_ptr<ChildProcess> child_;
  std::chrono::milliseconds kill_grace_;
  uint64_t start_ticks_ = 0;
  bool stopped_ = false;
  Clock::time_point kill_at_{};
  std::vector<std::string> tail_;  // read at the exit, not collected yet
  std::string last_line_;
};

}  // namespace

ScriptDriver::ScriptDriver(std::string workdir, std::chrono::milliseconds kill_grace,
                           LaunchPolicy launch, std::string cluster)
    : workdir_(std::move(workdir)),
      kill_grace_(kill_grace),
      launch_(std::move(launch)),
      cluster_(std::move(cluster)) {}

StatusOr<std::unique_ptr<StepRun>> ScriptDriver::start(const StepCommand& command,
                                                       const std::function<void()>& wake) {
  const Step step = command.wire.getStep();
  if (step == Step::ANALYZE || step == Step::BAKE || step == Step::WATCH) {
    return startWatch(command, wake);
  }
  if (common::isProcessStep(step)) {
    return Status::InvalidArgument(std::string(common::stepName(step)) +
                                   " is a process-driver step and the command has no spec");
  }
  ChildSpec spec;
  spec.command = command.wire.getCommand().cStr();
  if (spec.command.empty()) return Status::InvalidArgument("empty command");
  spec.workdir = workdir_;
  // stepEnvironment() keeps only FLOTILLA_* of these: the coordinator never sets PATH,
  // LD_PRELOAD and the like.
  spec.env = command.env;
  auto child = ChildProcess::spawn(spec, launch_);
  if (!child.ok()) return child.status();
  // The command is the plan's text: at info only what identifies it, in full at debug.
  spdlog::info("stage {} started: {} step, command sha256:{}", command.key.toString(),
               common::stepName(command.wire.getStep()),
               common::sha256Hex(spec.command).substr(0, 12));
  spdlog::debug("stage {} command: {}", command.key.toString(),
                common::loggable(spec.command, 8192));
  return std::unique_ptr<StepRun>(
      std::make_unique<ScriptRun>(std::move(child).value(), kill_grace_));
}

StatusOr<std::unique_ptr<StepRun>> ScriptDriver::startWatch(const StepCommand& command,
                                                            const std::function<void()>& wake) {
  const Step step = command.wire.getStep();
  // A bad spec fails the step like any error.
  StatusOr<Spec> spec = readCommandSpec(command, SpecField::kWatch, cluster_);
  if (!spec.ok()) return EndedRun::failed(step, spec.status().message());
  spdlog::info("stage {} started ({} step of the script driver: {} {})", command.key.toString(),
               common::stepName(step), spec->service, spec->version);
  // A watch step's command (the plan's steps.watch) runs at each of its checks, started like
  // any step of this driver.
  ChildSpec watch_command;
  if (step == Step::WATCH) {
    watch_command.command = command.wire.getCommand().cStr();
    watch_command.workdir = workdir_;
    watch_command.env = command.env;
  }
  ThreadJob job = [step, spec = std::move(spec).value(), watch_command, launch = launch_](
                      const std::atomic<bool>& cancel, const LineSink& log, const AlertSink& alerts,
                      const FiguresSink& figures) {
    return runScriptWatch(step, spec, cancel, log, alerts, figures, watch_command, launch);
  };
  return std::unique_ptr<StepRun>(std::make_unique<ThreadRun>(std::move(job), wake));
}

}  // namespace flotilla::agent
