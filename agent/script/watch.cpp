#include "agent/script/watch.hpp"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "agent/process/decisions.hpp"
#include "agent/process/service_ops.hpp"
#include "agent/script/watch_command.hpp"
#include "common/http_client.hpp"
#include "common/logging.hpp"
#include "common/strings.hpp"

namespace flotilla::agent {

using common::Status;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

namespace {

Probe probeUrl(const std::string& url, Millis timeout) {
  auto reply = common::httpGet(url, timeout);
  if (!reply.ok()) return {false, false, reply.status().message()};
  if (reply->status != 200) return {false, true, "HTTP " + std::to_string(reply->status)};
  return {true, true, ""};
}

Millis millis(Clock::duration d) { return std::chrono::duration_cast<Millis>(d); }

// The real world of a watch: the steady clock, sleeps that a cancel cuts short, the log.
class LiveContext : public StepContext {
 public:
  LiveContext(const std::atomic<bool>& cancel, const LineSink& log) : cancel_(cancel), log_(log) {}
  void say(const std::string& line) const override {
    if (log_) log_(line);
  }
  Clock::time_point now() const override { return Clock::now(); }
  bool pause(Clock::duration d) override { return sleepUnlessCancelled(d, cancel_, kCancelSlice); }
  Status abort() override {
    aborted_ = true;
    return Status::FailedPrecondition("cancelled");
  }
  std::vector<Probe> probe(const std::vector<int>&, const std::string&, Millis) override {
    return {};  // a script-driven service has no replicas of Flotilla's to probe
  }
  bool aborted() const { return aborted_; }

 private:
  const std::atomic<bool>& cancel_;
  const LineSink& log_;
  bool aborted_ = false;
};

}  // namespace

std::string healthUrl(const Spec& spec) {
  if (spec.health.url.empty()) return "";
  auto environment = spec.env.find("FLOTILLA_ENVIRONMENT");
  std::string out =
      common::replaceAll(spec.health.url, "{cluster}", common::urlEncode(spec.cluster));
  out = common::replaceAll(std::move(out), "{version}", common::urlEncode(spec.version));
  return common::replaceAll(
      std::move(out), "{environment}",
      common::urlEncode(environment == spec.env.end() ? "" : environment->second));
}

ScriptWatch::ScriptWatch(StepContext& ctx, const Spec& spec, const AlertSink& alerts,
                         const FiguresSink& figures, UrlProbe probe, CommandProbe command)
    : ctx_(ctx),
      spec_(spec),
      alerts_(alerts),
      figures_(figures),
      probe_(probe ? std::move(probe) : UrlProbe(probeUrl)),
      command_(std::move(command)),
      url_(healthUrl(spec)),
      failures_(spec.health.failure_threshold),
      command_failures_(spec.health.failure_threshold) {}

Status ScriptWatch::watchHealth(Clock::duration duration, Millis interval) {
  const auto end = ctx_.now() + duration;
  if (url_.empty() && !command_) {
    if (!ctx_.pause(end - ctx_.now())) return ctx_.abort();
    return Status::Ok();
  }
  while (true) {
    const auto round = ctx_.now();
    if (!url_.empty()) {
      const Probe result = probe_(url_, spec_.health.timeout);
      ++checks_;
      const bool crossed = failures_.record(result.ok);
      if (!result.ok) {
        if (crossed) {
          return Status::Unavailable("health check failed " + std::to_string(failures_.current()) +
                                     " times in a row on " + common::loggable(url_, 200) + ": " +
                                     result.detail);
        }
        ctx_.say("health check failed on " + common::loggable(url_, 200) + " (" + spec_.version +
                 ", " + std::to_string(failures_.current()) + " in a row): " + result.detail);
      }
    }
    if (command_) {
      // A run may take up to the interval (at least a second), never past the tier's end.
      const Millis budget =
          std::min(std::max<Millis>(interval, 1s), std::max<Millis>(millis(end - round), 1ms));
      const Probe result = command_(budget);
      // A run cut short by the step's cancel is no verdict.
      if (!ctx_.pause(Clock::duration::zero())) return ctx_.abort();
      ++command_runs_;
      const bool crossed = command_failures_.record(result.ok);
      if (!result.ok) {
        if (crossed) {
          return Status::Unavailable("steps.watch failed " +
                                     std::to_string(command_failures_.current()) +
                                     " times in a row: " + result.detail);
        }
        ctx_.say("steps.watch failed (" + spec_.version + ", " +
                 std::to_string(command_failures_.current()) + " in a row): " + result.detail);
      }
    }
    const auto next = round + interval;
    if (next >= end) {
      if (!ctx_.pause(end - ctx_.now())) return ctx_.abort();
      return Status::Ok();
    }
    if (!ctx_.pause(next - ctx_.now())) return ctx_.abort();
  }
}

WindowStats ScriptWatch::measure(const std::string& version, Millis window) {
  const QueryScope scope{"", version, spec_.cluster};
  auto stats = queryWindow(*spec_.metrics->prometheus, scope, window,
                           std::max<Millis>(spec_.health.timeout, kMinQueryTimeout));
  if (stats.ok()) return *stats;
  ctx_.say("Prometheus (" + version + "): " + stats.status().message());
  WindowStats none;
  none.window = window;
  return none;
}

std::string ScriptWatch::describe(const std::string& version, const WindowStats& w) const {
  char buf[200];
  std::snprintf(buf, sizeof(buf), "%s: %llu requests (%.1f/s), error rate %.3f", version.c_str(),
                static_cast<unsigned long long>(w.requests), w.request_rate, w.error_rate);
  std::string out = buf;
  if (w.latency_p95) {
    std::snprintf(buf, sizeof(buf), ", p95 %.1f ms", *w.latency_p95 * 1000);
    out += buf;
  }
  return out;
}

std::string ScriptWatch::healthSummary() const {
  std::string out;
  if (!url_.empty()) out += "; " + std::to_string(checks_) + " health checks passed";
  if (command_) out += "; steps.watch ran " + std::to_string(command_runs_) + " times";
  return out;
}

void ScriptWatch::reportFigures(FiguresReport figures) {
  if (!figures_) return;
  figures.health_checks = static_cast<uint32_t>(checks_);
  figures.health_failing = static_cast<uint32_t>(failures_.current());
  figures.health_threshold = static_cast<uint32_t>(std::max(spec_.health.failure_threshold, 0));
  if (Status s = common::checkFigures(figures); !s.ok()) {
    ctx_.say("figures of window " + std::to_string(figures.window) + " not sent: " + s.message());
    return;
  }
  figures_(figures);
}

void ScriptWatch::raiseAlerts(const WindowStats& stats, const WindowStats* baseline) {
  if (!spec_.alerts) return;
  // cpu and memory belong to processes the script driver does not run: never measured here.
  for (const Finding& f : checkAlerts(stats, baseline, *spec_.alerts, std::nullopt, std::nullopt)) {
    if (!alerted_.insert(f.rule).second) continue;
    ctx_.say("alert: " + spec_.version + ": " + f.message);
    if (alerts_) {
      alerts_(AlertReport{f.rule, f.canary, f.threshold, f.baseline, spec_.version, f.message});
    }
  }
}

Status ScriptWatch::analyze(std::string* message) {
  const auto started = ctx_.now();
  const bool judged = spec_.metrics && spec_.metrics->prometheus && !spec_.previous_version.empty();
  if (spec_.metrics && !judged) {
    ctx_.say("no stable version to compare " + spec_.version + " with: health checks only");
  }
  for (int extension = 0;; ++extension) {
    if (Status s = watchHealth(spec_.duration, spec_.health.interval); !s.ok()) return s;
    const Millis window = millis(ctx_.now() - started);
    if (!judged) {
      *message = "watched " + spec_.version + " for " + seconds(window) + healthSummary();
      return Status::Ok();
    }
    // Each verdict covers everything since the step began, extensions included.
    const WindowStats cand = measure(spec_.version, window);
    const WindowStats base = measure(spec_.previous_version, window);
    ctx_.say("window " + seconds(window) + ": " + describe(spec_.version, cand) + "; " +
             describe(spec_.previous_version, base));
    raiseAlerts(cand, &base);
    const AnalysisResult result = agent::analyze(cand, base, spec_.metrics->config);
    const MeasuredSet new_set{spec_.version, &cand, 0};
    const MeasuredSet stable_set{spec_.previous_version, &base, 0};
    reportFigures(agent::windowFigures(false, extension + 1, window, new_set, &stable_set,
                                       &spec_.metrics->config, &result));
    for (const Finding& f : result.findings) ctx_.say("analysis: " + f.message);
    std::string why;
    for (const Finding& f : result.findings) why += (why.empty() ? "" : "; ") + f.message;
    switch (afterWindow(result.verdict, extension, spec_.metrics->wait_when_inconclusive)) {
      case AnalysisNext::kPass:
        *message = "analysis passed over " + seconds(window) + ": " +
                   describe(spec_.version, cand) + " vs " + describe(spec_.previous_version, base) +
                   healthSummary();
        return Status::Ok();
      case AnalysisNext::kFail:
        return Status::FailedPrecondition("analysis failed: " + crossedRules(result));
      case AnalysisNext::kGiveUp:
        if (!spec_.metrics->wait_when_inconclusive) {
          return Status::FailedPrecondition("analysis inconclusive: " + why);
        }
        return Status::FailedPrecondition("analysis still inconclusive after " + seconds(window) +
                                          ": " + why);
      case AnalysisNext::kWatchAgain:
        ctx_.say("analysis inconclusive (" + why + "): watching another " +
                 seconds(spec_.duration));
        break;
    }
  }
}

Status ScriptWatch::bake(std::string* message) {
  // The workflow's "intense monitoring" after 100%: twice as often as during the rollout.
  return bakeEvery(std::max<Millis>(spec_.health.interval / 2, 1ms), "baked", message);
}

Status ScriptWatch::watch(std::string* message) {
  // The coordinator sends the tier's interval as the health interval.
  return bakeEvery(spec_.health.interval, "watched", message);
}

Status ScriptWatch::bakeEvery(Millis interval, const char* verb, std::string* message) {
  const bool metrics = spec_.metrics && spec_.metrics->prometheus;
  const bool judged = metrics && !spec_.previous_version.empty();
  if (!metrics || (!spec_.alerts && !judged)) {
    if (Status s = watchHealth(spec_.duration, interval); !s.ok()) return s;
    *message = verb + (" " + spec_.version) + " for " + seconds(spec_.duration) + healthSummary();
    return Status::Ok();
  }
  // After 100% the old version takes no requests: what it served before is the baseline.
  std::optional<WindowStats> baseline;
  if (judged) {
    baseline = measure(spec_.previous_version, kBaselineLookback);
    ctx_.say("bake baseline " + describe(spec_.previous_version, *baseline) + " over the last " +
             seconds(kBaselineLookback));
  }
  const Clock::duration slice =
      std::clamp<Clock::duration>(spec_.duration / 4, kMinAlertSlice, kMaxAlertSlice);
  const auto started = ctx_.now();
  const auto end = started + spec_.duration;
  auto since = started;
  const std::optional<MeasuredSet> old_set =
      baseline ? std::optional<MeasuredSet>(MeasuredSet{spec_.previous_version, &*baseline, 0})
               : std::nullopt;
  for (int slices = 1; ctx_.now() < end; ++slices) {
    const auto left = end - ctx_.now();
    if (Status s = watchHealth(std::min<Clock::duration>(slice, left), interval); !s.ok()) return s;
    const WindowStats w = measure(spec_.version, millis(ctx_.now() - since));
    raiseAlerts(w, baseline ? &*baseline : nullptr);
    ctx_.say("bake " + describe(spec_.version, w));
    if (!judged) {
      const MeasuredSet new_set{spec_.version, &w, 0};
      reportFigures(agent::windowFigures(true, slices, ctx_.now() - since, new_set,
                                         old_set ? &*old_set : nullptr, nullptr, nullptr));
    } else {
      // The verdict covers the whole bake: so do its figures.
      const WindowStats whole = measure(spec_.version, millis(ctx_.now() - started));
      const AnalysisResult result = agent::analyze(whole, *baseline, spec_.metrics->config);
      const MeasuredSet new_set{spec_.version, &whole, 0};
      reportFigures(agent::windowFigures(true, slices, ctx_.now() - started, new_set, &*old_set,
                                         &spec_.metrics->config, &result));
      if (result.verdict == Verdict::kFail) {
        return Status::FailedPrecondition("bake failed against " + spec_.previous_version + ": " +
                                          crossedRules(result));
      }
    }
    since = ctx_.now();
  }
  *message = verb + (" " + spec_.version) + " for " + seconds(spec_.duration) +
             (judged ? " and passed the analysis against " + spec_.previous_version : "") +
             healthSummary() +
             (alerted_.empty() ? "" : " (" + std::to_string(alerted_.size()) + " alert(s))");
  return Status::Ok();
}

StepReport runScriptWatch(Step step, const Spec& spec, const std::atomic<bool>& cancel,
                          const LineSink& log, const AlertSink& alerts, const FiguresSink& figures,
                          const ChildSpec& command, const LaunchPolicy& launch) {
  StepReport report;
  LiveContext ctx(cancel, log);
  try {
    ScriptWatch::CommandProbe run;
    if (step == Step::WATCH && !command.command.empty()) {
      run = [&](Millis timeout) { return runWatchCommand(command, launch, timeout, cancel, log); };
    }
    ScriptWatch watch(ctx, spec, alerts, figures, {}, std::move(run));
    std::string message;
    const Status s = step == Step::BAKE    ? watch.bake(&message)
                     : step == Step::WATCH ? watch.watch(&message)
                                           : watch.analyze(&message);
    if (ctx.aborted()) {
      report.outcome = Outcome::ABORTED;
      report.message = std::string(stepName(step)) + " of " + spec.version + " cancelled";
    } else if (s.ok()) {
      report.outcome = Outcome::SUCCEEDED;
      report.message = message;
    } else {
      report.message = s.message();
    }
  } catch (const std::exception& e) {
    report.message = std::string(stepName(step)) + ": internal error: " + e.what();
  }
  if (log)
    log(std::string(stepName(step)) + " " + outcomeName(report.outcome) + ": " + report.message);
  return report;
}

}  // namespace flotilla::agent
