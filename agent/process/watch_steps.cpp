// The analyze and bake steps: health checks, metric windows, the analysis and alerts.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "agent/proc_stat.hpp"
#include "agent/process/decisions.hpp"
#include "agent/process/health.hpp"
#include "agent/process/steps.hpp"
#include "agent/prometheus.hpp"

namespace flotilla::agent {

using common::Status;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

void StepRunner::reportFigures(FiguresReport figures, const HealthWatch& health) {
  if (!figures_) return;
  figures.health_checks = static_cast<uint32_t>(health.checks());
  figures.health_failing = static_cast<uint32_t>(health.failing());
  figures.health_threshold = static_cast<uint32_t>(std::max(spec_.health.failure_threshold, 0));
  // What leaves is checked as the coordinator checks it: a figure that is not a finite number
  // (a replica's counters can say anything) is said here and not sent.
  if (Status s = common::checkFigures(figures); !s.ok()) {
    ops_.say("figures of window " + std::to_string(figures.window) + " not sent: " + s.message());
    return;
  }
  figures_(figures);
}

FiguresReport StepRunner::windowFigures(bool bake, int window, Clock::duration length,
                                        const SetWindow& candidate,
                                        const std::string& stable_version, const SetWindow* stable,
                                        const std::optional<AnalysisResult>& result) const {
  const MeasuredSet cand{spec_.version, &candidate.stats, candidate.replicas};
  std::optional<MeasuredSet> base;
  if (stable != nullptr) base = MeasuredSet{stable_version, &stable->stats, stable->replicas};
  return agent::windowFigures(bake, window, length, cand, base ? &*base : nullptr,
                              spec_.metrics ? &spec_.metrics->config : nullptr,
                              result ? &*result : nullptr);
}

Status StepRunner::analyze(std::string* message) {
  ops_.useTraffic(spec_.traffic);
  if (Status s = ops_.dropDead(); !s.ok()) return s;
  auto& rec = ops_.record();
  const ReplicaSet* watched = nullptr;
  if (rec.candidate && rec.candidate->version == spec_.version) {
    watched = &*rec.candidate;
  } else if (!rec.candidate && rec.stable && rec.stable->version == spec_.version) {
    ops_.say(spec_.version + " is already the stable set: health checks only");
    return healthOnly(*rec.stable, spec_.health.interval, message);
  } else {
    return Status::FailedPrecondition("no candidate set of " + spec_.version + " to analyze");
  }
  if (!spec_.metrics) return healthOnly(*watched, spec_.health.interval, message);
  if (!rec.stable) {
    ops_.say("no stable set to compare " + spec_.version + " with: health checks only");
    return healthOnly(*watched, spec_.health.interval, message);
  }
  const ReplicaSet candidate = *watched;
  const ReplicaSet stable = *rec.stable;
  HealthWatch health(ops_, candidate, spec_.health, spec_.health.interval);
  const SetReading cand_before = readSet(ops_, candidate, spec_.health.timeout, scrapes());
  const SetReading stable_before = readSet(ops_, stable, spec_.health.timeout, scrapes());
  const auto started = ops_.now();

  for (int extension = 0;; ++extension) {
    if (Status s = health.watch(spec_.duration); !s.ok()) return s;
    // Each verdict covers everything since the step began, extensions included.
    const SetWindow cand = measure(candidate, cand_before, started, nullptr);
    const SetWindow base = measure(stable, stable_before, started, nullptr);
    ops_.say("window " + seconds(ops_.now() - started) + ": " + describe(candidate.version, cand) +
             "; " + describe(stable.version, base));
    raiseAlerts(candidate, cand, &base);
    const AnalysisResult result = agent::analyze(cand.stats, base.stats, spec_.metrics->config);
    reportFigures(windowFigures(false, extension + 1, ops_.now() - started, cand, stable.version,
                                &base, result),
                  health);
    for (const Finding& f : result.findings) ops_.say("analysis: " + f.message);
    std::string why;
    for (const Finding& f : result.findings) why += (why.empty() ? "" : "; ") + f.message;
    switch (afterWindow(result.verdict, extension, spec_.metrics->wait_when_inconclusive)) {
      case AnalysisNext::kPass:
        *message = "analysis passed over " + seconds(ops_.now() - started) + ": " +
                   describe(candidate.version, cand) + " vs " + describe(stable.version, base);
        return Status::Ok();
      case AnalysisNext::kFail:
        return Status::FailedPrecondition("analysis failed: " + crossedRules(result));
      case AnalysisNext::kGiveUp:
        if (!spec_.metrics->wait_when_inconclusive) {
          return Status::FailedPrecondition("analysis inconclusive: " + why);
        }
        return Status::FailedPrecondition("analysis still inconclusive after " +
                                          seconds(ops_.now() - started) + ": " + why);
      case AnalysisNext::kWatchAgain:
        ops_.say("analysis inconclusive (" + why + "): watching another " +
                 seconds(spec_.duration));
        break;
    }
  }
}

Status StepRunner::bake(std::string* message) {
  // The workflow's "intense monitoring" after 100%: twice as often as during the rollout.
  return bakeEvery(std::max<Millis>(spec_.health.interval / 2, 1ms), message);
}

Status StepRunner::watch(std::string* message) {
  // The coordinator sends the tier's interval as the health interval.
  return bakeEvery(spec_.health.interval, message);
}

Status StepRunner::bakeEvery(Millis interval, std::string* message) {
  ops_.useTraffic(spec_.traffic);
  if (Status s = ops_.dropDead(); !s.ok()) return s;
  auto& rec = ops_.record();
  const ReplicaSet* watched = nullptr;
  if (rec.candidate && rec.candidate->version == spec_.version) watched = &*rec.candidate;
  if (!watched && rec.stable && rec.stable->version == spec_.version) watched = &*rec.stable;
  if (!watched) {
    return Status::FailedPrecondition("no replica of " + spec_.version + " to watch");
  }
  const ReplicaSet set = *watched;
  // The old set (blue-green's blue, a canary's stable set) still runs until finalize: the new
  // one is judged against what it served, by the analysis rules and the alerts alike.
  std::optional<ReplicaSet> old;
  if (rec.stable && rec.stable->version != set.version) old = *rec.stable;
  const bool judged = spec_.metrics && old;
  if (!spec_.alerts && !judged) return healthOnly(set, interval, message);

  std::optional<SetWindow> baseline;
  if (old) {
    baseline = oldSetBaseline(*old);
    ops_.say("bake baseline " + describe(old->version, *baseline));
  }
  // The metrics are read in slices of the bake; the alerts judge each slice, the analysis
  // everything since the bake began.
  HealthWatch health(ops_, set, spec_.health, interval);
  const Clock::duration slice =
      std::clamp<Clock::duration>(spec_.duration / 4, kMinAlertSlice, kMaxAlertSlice);
  const auto started = ops_.now();
  const auto end = started + spec_.duration;
  const SetReading first = readSet(ops_, set, spec_.health.timeout, scrapes());
  SetReading before = first;
  auto since = started;
  int slices = 0;
  while (ops_.now() < end) {
    ++slices;
    const auto left = end - ops_.now();
    if (Status s = health.watch(std::min<Clock::duration>(slice, left)); !s.ok()) return s;
    SetReading after;
    const SetWindow w = measure(set, before, since, &after);
    raiseAlerts(set, w, baseline ? &*baseline : nullptr);
    ops_.say("bake " + describe(set.version, w));
    if (!judged) {
      reportFigures(windowFigures(true, slices, ops_.now() - since, w, old ? old->version : "",
                                  baseline ? &*baseline : nullptr, std::nullopt),
                    health);
    } else {
      // The analysis judges everything since the bake began: those are the figures it saw.
      const SetWindow whole = measure(set, first, started, nullptr);
      const AnalysisResult result =
          agent::analyze(whole.stats, baseline->stats, spec_.metrics->config);
      reportFigures(windowFigures(true, slices, ops_.now() - started, whole, old->version,
                                  &*baseline, result),
                    health);
      if (result.verdict == Verdict::kFail) {
        return Status::FailedPrecondition("bake failed against " + old->version + ": " +
                                          crossedRules(result));
      }
    }
    before = std::move(after);
    since = ops_.now();
  }
  *message = std::to_string(set.replicas.size()) + " replica(s) of " + set.version + " passed " +
             std::to_string(health.checks()) + " health checks over " + seconds(spec_.duration) +
             (judged ? " and the analysis against " + old->version : "") +
             (alerted_.empty() ? "" : " (" + std::to_string(alerted_.size()) + " alert(s))");
  return Status::Ok();
}

SetWindow StepRunner::oldSetBaseline(const ReplicaSet& old) {
  if (!scrapes()) {
    std::vector<int> ports;
    for (const Replica& r : old.replicas) ports.push_back(r.port);
    auto stats = queryWindow(*spec_.metrics->prometheus, ports, old.version, kBaselineLookback,
                             std::max<Millis>(spec_.health.timeout, kMinQueryTimeout));
    SetWindow w;
    if (stats.ok()) {
      w.stats = *stats;
      w.replicas = old.replicas.size();
    } else {
      // No baseline: the rules that need one are inconclusive, never a pass.
      ops_.say("Prometheus: " + stats.status().message());
    }
    return w;
  }
  // Each replica's counters since it started: a window from nothing to now. Its length is
  // not known here (only the rate depends on it): an hour is said.
  SetReading now = readSet(ops_, old, spec_.health.timeout, true);
  SetReading nothing;
  for (const auto& [port, reading] : now) {
    Reading zero;
    zero.samples = MetricSamples{};
    zero.at = reading.at - std::chrono::hours(1);
    nothing[port] = zero;
  }
  return windowOf(ops_, nothing, now);
}

SetWindow StepRunner::measure(const ReplicaSet& set, const SetReading& before,
                              Clock::time_point since, SetReading* after) {
  SetReading now = readSet(ops_, set, spec_.health.timeout, scrapes());
  SetWindow w = windowOf(ops_, before, now);
  if (!scrapes()) {
    std::vector<int> ports;
    for (const Replica& r : set.replicas) ports.push_back(r.port);
    const Millis window = std::chrono::duration_cast<Millis>(ops_.now() - since);
    auto stats = queryWindow(*spec_.metrics->prometheus, ports, set.version, window,
                             std::max<Millis>(spec_.health.timeout, kMinQueryTimeout));
    if (stats.ok()) {
      w.stats = *stats;
      w.replicas = set.replicas.size();
    } else {
      // No figures is too little data: inconclusive, never a pass.
      ops_.say("Prometheus: " + stats.status().message());
      w.stats = WindowStats{};
      w.stats.window = window;
      w.replicas = 0;
    }
  }
  if (after != nullptr) *after = std::move(now);
  return w;
}

void StepRunner::raiseAlerts(const ReplicaSet& set, const SetWindow& w, const SetWindow* baseline) {
  if (!spec_.alerts) return;
  std::optional<double> cpu;
  if (w.cpu && !set.replicas.empty()) cpu = *w.cpu / static_cast<double>(set.replicas.size());
  std::optional<double> memory;
  if (w.rss_bytes > 0) {
    if (auto total = totalMemoryBytes(); total.ok() && *total > 0) {
      memory = static_cast<double>(w.rss_bytes) / static_cast<double>(*total);
    }
  }
  const std::vector<Finding> found = checkAlerts(
      w.stats, baseline != nullptr ? &baseline->stats : nullptr, *spec_.alerts, cpu, memory);
  for (const Finding& f : found) {
    if (!alerted_.insert(f.rule).second) continue;
    ops_.say("alert: " + set.version + ": " + f.message);
    if (alerts_) {
      alerts_(AlertReport{f.rule, f.canary, f.threshold, f.baseline, set.version, f.message});
    }
  }
}

Status StepRunner::healthOnly(const ReplicaSet& set, Millis interval, std::string* message) {
  const ReplicaSet copy = set;
  HealthWatch health(ops_, copy, spec_.health, interval);
  if (Status s = health.watch(spec_.duration); !s.ok()) return s;
  *message = std::to_string(copy.replicas.size()) + " replica(s) of " + copy.version + " passed " +
             std::to_string(health.checks()) + " health checks over " + seconds(spec_.duration);
  return Status::Ok();
}

}  // namespace flotilla::agent
