#include "agent/thread_run.hpp"

namespace flotilla::agent {

ThreadRun::ThreadRun(ThreadJob job, std::function<void()> wake) : wake_(std::move(wake)) {
  thread_ = std::thread([this, job = std::move(job)] {
    auto sink = [this](const std::string& line) {
      {
        std::lock_guard lock(mu_);
        lines_.push_back(line);
      }
      wake_();
    };
    auto alerts = [this](const AlertReport& alert) {
      {
        std::lock_guard lock(mu_);
        alerts_.push_back(alert);
      }
      wake_();
    };
    auto figures = [this](const FiguresReport& f) {
      {
        std::lock_guard lock(mu_);
        figures_.push_back(f);
      }
      wake_();
    };
    report_ = job(cancel_, sink, alerts, figures);
    done_ = true;
    wake_();
  });
}

ThreadRun::~ThreadRun() {
  cancel_ = true;
  if (thread_.joinable()) thread_.join();
}

void ThreadRun::collect(std::vector<std::string>& lines, std::vector<AlertReport>& alerts,
                        std::vector<FiguresReport>& figures) {
  std::lock_guard lock(mu_);
  for (auto& l : lines_) lines.push_back(std::move(l));
  for (auto& a : alerts_) alerts.push_back(std::move(a));
  for (auto& f : figures_) figures.push_back(std::move(f));
  lines_.clear();
  alerts_.clear();
  figures_.clear();
}

std::optional<StepEnd> ThreadRun::poll(Clock::time_point) {
  if (!done_) return std::nullopt;
  if (thread_.joinable()) thread_.join();
  return StepEnd{report_.outcome, report_.outcome == Outcome::SUCCEEDED ? 0 : 1, report_.message};
}

}  // namespace flotilla::agent
