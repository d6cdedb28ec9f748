// The process driver's steps, one method each, on one service (a ServiceOps) and one spec:
//   deploy, shift, finalize, rollback      agent/process/deploy_steps.cpp (canary, blue-green)
//   analyze, bake, watch                   agent/process/watch_steps.cpp
//   roll, and rollback after a roll        agent/process/rolling_steps.cpp
// What to do next at each turn of a strategy is decided by the pure functions of
// agent/process/decisions.hpp, from the record and the last observations; these methods carry
// the decisions out.
#pragma once

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/analysis.hpp"
#include "agent/driver.hpp"
#include "agent/process/service_ops.hpp"
#include "agent/process/spec.hpp"
#include "agent/process/windows.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

class HealthWatch;

class StepRunner {
 public:
  using Clock = std::chrono::steady_clock;
  using Millis = std::chrono::milliseconds;

  StepRunner(ServiceOps& ops, const Spec& spec, const AlertSink& alerts, const FiguresSink& figures)
      : ops_(ops), spec_(spec), alerts_(alerts), figures_(figures) {}

  common::Status deploy(std::string* message);

  common::Status shift(std::string* message);

  common::Status analyze(std::string* message);

  common::Status bake(std::string* message);

  // One tier of the post-deploy watch: a bake of the set at 100% with health checks at the
  // tier's interval (health.intervalMs), for the tier (durationMs).
  common::Status watch(std::string* message);

  // Whether metrics come from scraping the replicas (or from Prometheus).
  bool scrapes() const { return !spec_.metrics || !spec_.metrics->prometheus; }

  // The set's figures since `since`, from the readings taken then (`before`): /proc always,
  // request figures from a second scrape or from Prometheus. The new readings go to `after`.
  SetWindow measure(const ReplicaSet& set, const SetReading& before, Clock::time_point since,
                    SetReading* after);

  // What the old set served before the new one took its traffic, the baseline of a bake (after
  // 100% the old set takes no requests to compare with): its counters since it started, or
  // Prometheus over the last kBaselineLookback.
  SetWindow oldSetBaseline(const ReplicaSet& old);

  // Checks the plan's alert thresholds on one window of `set`; each rule is raised at most
  // once a step (an event and a webhook each time would page people every window).
  void raiseAlerts(const ReplicaSet& set, const SetWindow& w, const SetWindow* baseline);

  // One analysis window's (bake slice's) figures: the candidate's and the stable set's, the
  // analysis limits and verdict when `result` is there (a judged window), else none.
  FiguresReport windowFigures(bool bake, int window, Clock::duration length,
                              const SetWindow& candidate, const std::string& stable_version,
                              const SetWindow* stable,
                              const std::optional<AnalysisResult>& result) const;
  // Adds the health streak and sends them (once a window; checked first, see FiguresSink).
  void reportFigures(FiguresReport figures, const HealthWatch& health);

  common::Status finalize(std::string* message);

  common::Status rollback(std::string* message);

  // Replaces the running set with spec.process.replicas replicas of spec.version, a few at a
  // time within the strategy's bounds; see rollTo. After it the new set is the stable set.
  common::Status roll(std::string* message);

 private:
  // bake and watch: the set at 100% watched for spec_.duration, health checked every
  // `interval`.
  common::Status bakeEvery(Millis interval, std::string* message);

  common::Status healthOnly(const ReplicaSet& set, Millis interval, std::string* message);

  // The readiness deadline: generous, a start is not a health check.
  Clock::duration startTimeout() const;

  // Makes the candidate set `replicas` healthy replicas of `version`, in the load balancer at
  // weight 0 (or at the weight it already had when reused). Live replicas of the same version
  // are kept; a candidate of another version is retired first.
  common::Status deployVersion(const std::string& version, std::vector<int>* ports);

  // Polls every one of `replicas` until each has answered 200 once.
  // Starts `count` replicas of the set's version into `set`, each on a free port of the spec's
  // range, saving the record after each. A replica that cannot start (no free port, a spawn
  // failure) stops there and says why in `*not_started` (the caller decides what that means);
  // what is returned is a cancel or a record that cannot be saved.
  common::Status startReplicas(ReplicaSet& set, int count, common::Status* not_started);
  common::Status waitReady(const std::string& version, const std::vector<Replica>& replicas);

  // A deploy that cannot finish takes its replicas away again.
  common::Status failDeploy(const std::string& version, const common::Status& why);

  // The candidate set gets all the traffic, then the stable set is retired and the candidate
  // becomes the stable set.
  common::Status promoteCandidate(std::string* message);

  // Rollback after finalize: the previous version comes back as a candidate, takes all the
  // traffic, and the new version is retired.
  common::Status restorePrevious(const std::string& previous, std::string* message);

  // --- rolling updates

  struct RollResult {
    int rounds = 0;           // rounds that changed something
    int started = 0;          // replicas of the target version started
    int stopped = 0;          // replicas of the other version stopped
    std::string replaced;     // that version
    int fewest_serving = -1;  // the driver's own count after each round
    Clock::duration took{};

    std::string summary() const {
      std::string out;
      if (stopped > 0) {
        out += "; " + std::to_string(stopped) + " replica(s) of " + replaced + " stopped";
      }
      if (fewest_serving >= 0) {
        out += "; never fewer than " + std::to_string(fewest_serving) + " serving at a round's end";
      }
      return out;
    }
  };

  std::string rollInProgress() const;

  // Steps that move traffic by shares would break a rolling update's bounds.
  common::Status refuseMidRoll(const std::string& what) const;

  // Which replicas run what, for failure messages.
  std::string running() const;

  common::Status rollFailed(const std::string& target, int round, const common::Status& why) const;

  // Rolls the service over to `wanted` replicas of `target`, in rounds:
  //   1. replicas of the other version that serve nothing (weight 0, out of HAProxy) stop;
  //   2. surge: new replicas start while fewer than `wanted` of the target run, up to
  //      wanted + max_surge processes in all;
  //   3. the ones not yet serving are waited for (deploy's readiness rules), then go into
  //      HAProxy at the weight the old ones have, ready: all serving replicas share equally;
  //   4. old replicas drain, leave HAProxy and stop, as many as keeps the serving replicas
  //      (alive, in HAProxy, not draining; new ones also passing their health checks) at
  //      wanted - max_unavailable or more.
  // A health monitor checks the new serving replicas all along: while one fails its checks the
  // roll holds (nothing starts or stops), more than failure_threshold failures in a row fail
  // it, and it stops where it is (the rollback's job from there). The record is saved after
  // every change and says which replica runs which version, so a rollback, a retried roll or an
  // agent restart takes over from any point. The target grows in whichever set holds it (or a
  // free one), the other set shrinks; at the end the target is the stable set.
  common::Status rollTo(const std::string& target, int wanted, const RollingSpec& bounds,
                        RollResult* out);

  // Rollback after or during a rolling update: a rolling update back to the previous version,
  // within the same bounds.
  common::Status rollBackRolling(std::string* message);

  ServiceOps& ops_;
  const Spec& spec_;
  const AlertSink& alerts_;
  const FiguresSink& figures_;
  std::set<std::string> alerted_;  // rules already raised in this step
};

}  // namespace flotilla::agent
