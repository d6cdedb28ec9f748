// The process driver: the Driver interface, the step's thread, the service lock, recovery.
#include "agent/process/driver.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/process/service_ops.hpp"
#include "agent/process/steps.hpp"
#include "agent/thread_run.hpp"
#include "common/logging.hpp"
#include "common/rules.hpp"

namespace flotilla::agent {

using common::Status;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

ProcessDriver::ProcessDriver(std::string state_dir, std::string cluster, LaunchPolicy launch)
    : state_dir_(std::move(state_dir)), cluster_(std::move(cluster)), launch_(std::move(launch)) {}

StepReport ProcessDriver::run(Step step, const Spec& given, const std::atomic<bool>& cancel,
                              const LineSink& log, const AlertSink& alerts,
                              const FiguresSink& figures) {
  StepReport report;
  try {
    const Spec* spec = &given;
    std::unique_lock lock(serviceMutex(state_dir_, spec->service), std::defer_lock);
    // Another step of the same service still running (an abort racing a retry) is waited for,
    // but never past our own cancel.
    while (!lock.try_lock()) {
      if (cancel.load()) {
        report.outcome = Outcome::ABORTED;
        report.message = "cancelled while another step of " + spec->service + " ran";
        return report;
      }
      std::this_thread::sleep_for(kCancelSlice);
    }
    ServiceOps ops(state_dir_, spec->service, cancel, log, launch_);
    if (Status s = ops.load(); !s.ok()) {
      report.message = "cannot read the record of " + spec->service + ": " + s.message();
      return report;
    }
    StepRunner runner(ops, *spec, alerts, figures);
    std::string message;
    Status s;
    switch (step) {
      case Step::DEPLOY:
        s = runner.deploy(&message);
        break;
      case Step::SHIFT:
        s = runner.shift(&message);
        break;
      case Step::ANALYZE:
        s = runner.analyze(&message);
        break;
      case Step::BAKE:
        s = runner.bake(&message);
        break;
      case Step::WATCH:
        s = runner.watch(&message);
        break;
      case Step::FINALIZE:
        s = runner.finalize(&message);
        break;
      case Step::ROLLBACK:
        s = runner.rollback(&message);
        break;
      case Step::ROLL:
        s = runner.roll(&message);
        break;
      case Step::BUILD:
      case Step::APPLY:
      case Step::VERIFY:
        s = Status::InvalidArgument(std::string(stepName(step)) + " is a script step");
        break;
    }
    if (ops.aborted()) {
      report.outcome = Outcome::ABORTED;
      report.message = std::string(stepName(step)) + " of " + spec->version + " cancelled";
    } else if (s.ok()) {
      report.outcome = Outcome::SUCCEEDED;
      report.message = message;
    } else {
      report.outcome = Outcome::FAILED;
      report.message = s.message();
    }
  } catch (const std::exception& e) {
    report.outcome = Outcome::FAILED;
    report.message = std::string(stepName(step)) + ": internal error: " + e.what();
  } catch (...) {
    report.outcome = Outcome::FAILED;
    report.message = std::string(stepName(step)) + ": internal error";
  }
  if (log)
    log(std::string(stepName(step)) + " " + outcomeName(report.outcome) + ": " + report.message);
  return report;
}

common::StatusOr<std::unique_ptr<StepRun>> ProcessDriver::start(const StepCommand& command,
                                                                const std::function<void()>& wake) {
  const Step step = command.wire.getStep();
  // A bad spec fails the step like any error.
  common::StatusOr<Spec> spec = readCommandSpec(command, SpecField::kProcess, cluster_);
  if (!spec.ok()) return EndedRun::failed(step, spec.status().message());
  spdlog::info("stage {} started ({} step of the process driver: {} {})", command.key.toString(),
               stepName(step), spec->service, spec->version);
  ThreadJob job = [this, step, spec = std::move(spec).value()](
                      const std::atomic<bool>& cancel, const LineSink& log, const AlertSink& alerts,
                      const FiguresSink& figures) {
    return run(step, spec, cancel, log, alerts, figures);
  };
  return std::unique_ptr<StepRun>(std::make_unique<ThreadRun>(std::move(job), wake));
}

common::Status ProcessDriver::recover(const LineSink& log) {
  auto say = [&log](const std::string& line) {
    if (log) log(line);
  };
  const fs::path dir = fs::path(state_dir_) / "services";
  std::vector<std::string> services;
  try {
    if (!fs::exists(dir)) return Status::Ok();
    for (const auto& entry : fs::directory_iterator(dir)) {
      const fs::path& p = entry.path();
      if (p.extension() == ".json" && common::isValidName(p.stem().string())) {
        services.push_back(p.stem().string());
      }
    }
  } catch (const fs::filesystem_error& e) {
    return Status::IoError("list " + dir.string() + ": " + e.what());
  }
  std::sort(services.begin(), services.end());

  // One service's unreadable record must not keep the agent from serving the others: it is
  // reported here, and every step of that service fails with the same reason until someone
  // repairs or removes the file.
  static const std::atomic<bool> never{false};
  for (const std::string& service : services) {
    try {
      std::lock_guard lock(serviceMutex(state_dir_, service));
      ServiceOps ops(state_dir_, service, never, log, launch_);
      if (Status s = ops.load(); !s.ok()) {
        say("cannot read the record of " + service + ": " + s.toString());
        continue;
      }
      if (Status s = ops.dropDead(); !s.ok()) {
        say(service + ": cannot update the record: " + s.toString());
      }
      const ServiceRecord& rec = ops.record();
      std::string held;
      for (const auto* set : {&rec.stable, &rec.candidate}) {
        if (!*set) continue;
        held += (held.empty() ? "" : ", ") + std::to_string((*set)->replicas.size()) + " of " +
                (*set)->version + (set == &rec.stable ? " (stable)" : " (candidate)");
      }
      if (held.empty()) {
        say(service + ": no live replica recorded");
        continue;
      }
      say(service + ": re-adopted " + held);
      if (rec.rolling && !rec.rolling->done) {
        say(service + ": a rolling update to " + rec.rolling->to +
            " was under way: roll again to finish it, or roll back");
      }
      // HAProxy may have restarted (slots back at the placeholder) or be down; every step that
      // moves traffic attaches the slots again, so this is only a warning here.
      if (Status s = ops.attachAll(); !s.ok()) {
        say(service + ": cannot re-attach HAProxy slots: " + s.toString());
      }
    } catch (const std::exception& e) {
      say(service + ": recovery failed: " + e.what());
    }
  }
  return Status::Ok();
}

}  // namespace flotilla::agent
