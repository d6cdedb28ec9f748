// The script driver's analyze and bake: what watches a service Flotilla does not run itself.
// Health checks go to the plan's health.http.url ({cluster}, {version} and {environment}
// filled in); the figures come from Prometheus, the plan's queries asked once for the new
// version and once for the stable one ({version}); the rules are the process driver's
// (agent/analysis.hpp, agent/process/decisions.hpp), so a canary driven by a kubectl script is
// judged exactly like one of local replicas:
//   analyze  health checks at the plan's interval for the window, then the new version against
//            the stable one (FLOTILLA_PREVIOUS_VERSION); an inconclusive window is watched again
//            up to three times unless the plan says fail; a crossed threshold fails the step.
//   bake     health checks twice as often; the alerts judge slices of the bake, and with
//            health.metrics the analysis judges the whole bake against what the old version
//            served over the last 15 minutes.
//   watch    one tier of the post-deploy watch: a bake whose checks come at the tier's
//            interval (the spec's health interval), the plan's steps.watch run at each of them.
// More than failure_threshold failed checks in a row fail any of them (the URL's and the
// command's are counted apart). Without a URL there
// are no health checks; without metrics, no analysis; without either the step is a pause.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>

#include "agent/analysis.hpp"
#include "agent/child_process.hpp"
#include "agent/driver.hpp"
#include "agent/process/spec.hpp"
#include "agent/process/step_context.hpp"
#include "agent/prometheus.hpp"
#include "agent/thread_run.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

// health.http.url with the step's cluster, version and environment filled in.
std::string healthUrl(const Spec& spec);

class ScriptWatch {
 public:
  using Clock = std::chrono::steady_clock;
  using Millis = std::chrono::milliseconds;
  using UrlProbe = std::function<Probe(const std::string& url, Millis timeout)>;
  // Runs the plan's steps.watch once, at most `timeout` (agent/script/watch_command.hpp).
  using CommandProbe = std::function<Probe(Millis timeout)>;

  // `probe` checks a URL once (default: an HTTP GET that wants a 200); `command`, when set,
  // runs at every health check of a watch step. Each window's (bake slice's) figures go to
  // `figures` with the health streak.
  ScriptWatch(StepContext& ctx, const Spec& spec, const AlertSink& alerts,
              const FiguresSink& figures, UrlProbe probe = {}, CommandProbe command = {});

  common::Status analyze(std::string* message);
  common::Status bake(std::string* message);
  common::Status watch(std::string* message);

 private:
  // bake and watch: `verb` ("baked", "watched") starts the message.
  common::Status bakeEvery(Millis interval, const char* verb, std::string* message);
  // Checks the URL (and runs the command, when set) every `interval` for `duration` (by the
  // context's clock); fails on the check that makes more than failure_threshold failures in a
  // row. Without either: a pause.
  common::Status watchHealth(Clock::duration duration, Millis interval);
  // One version's figures over the last `window`; no figures (a failed query) is too little
  // data, never a pass.
  WindowStats measure(const std::string& version, Millis window);
  void raiseAlerts(const WindowStats& stats, const WindowStats* baseline);
  std::string describe(const std::string& version, const WindowStats& w) const;
  std::string healthSummary() const;
  // Adds the health streak and sends them (checked first: what leaves is what the coordinator
  // accepts).
  void reportFigures(FiguresReport figures);

  StepContext& ctx_;
  const Spec& spec_;
  const AlertSink& alerts_;
  const FiguresSink& figures_;
  UrlProbe probe_;
  CommandProbe command_;  // empty: no steps.watch
  std::string url_;       // "" = no health checks
  ConsecutiveFailures failures_;
  ConsecutiveFailures command_failures_;
  int command_runs_ = 0;
  int checks_ = 0;
  std::set<std::string> alerted_;  // rules already raised in this step
};

}  // namespace flotilla::agent

namespace flotilla::agent {

// Runs an analyze or bake step of the script driver to its end with the real clock, HTTP and
// Prometheus (the ScriptDriver's ThreadRun job).
// A watch step's `command` (the plan's steps.watch, "" for none) runs with `launch` in
// `workdir` at each check.
StepReport runScriptWatch(Step step, const Spec& spec, const std::atomic<bool>& cancel,
                          const LineSink& log, const AlertSink& alerts, const FiguresSink& figures,
                          const ChildSpec& command = {}, const LaunchPolicy& launch = {});

}  // namespace flotilla::agent
