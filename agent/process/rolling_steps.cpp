// The rolling strategy: roll, and the rollback of a roll.
#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/process/decisions.hpp"
#include "agent/process/health.hpp"
#include "agent/process/replica_process.hpp"
#include "agent/process/steps.hpp"

namespace flotilla::agent {

using common::Status;
using namespace std::chrono_literals;

Status StepRunner::roll(std::string* message) {
  ops_.useTraffic(spec_.traffic);
  if (!spec_.deployment.empty()) ops_.record().deployment = spec_.deployment;
  if (Status s = ops_.dropDead(); !s.ok()) return s;
  auto& rec = ops_.record();
  if (rec.rolling && !rec.rolling->done) {
    // Rolling on to either of the two versions in the record finishes or reverses the roll;
    // a third one would need three sets.
    if (spec_.version != rec.rolling->to && spec_.version != rec.rolling->from) {
      return Status::FailedPrecondition(rollInProgress() + ": roll to " + rec.rolling->to +
                                        " again to finish it, or roll it back, before rolling to " +
                                        spec_.version);
    }
  } else if (rec.candidate) {
    return Status::FailedPrecondition(
        "a candidate set of " + rec.candidate->version +
        " is running (canary or blue-green): finalize or roll it back before a rolling update");
  }
  const int wanted = spec_.process->replicas;
  RollResult result;
  if (Status s = rollTo(spec_.version, wanted, *spec_.rolling, &result); !s.ok()) return s;
  if (result.rounds == 0) {
    *message =
        spec_.version + " already runs " + std::to_string(wanted) + " replica(s): nothing to roll";
    return Status::Ok();
  }
  *message = std::to_string(wanted) + " replica(s) of " + spec_.version + " serving after " +
             std::to_string(result.rounds) + " round(s) over " + seconds(result.took) +
             result.summary();
  return Status::Ok();
}

std::string StepRunner::rollInProgress() const {
  const RollState& st = *ops_.record().rolling;
  return "a rolling update " + (st.from.empty() ? "" : "from " + st.from + " ") + "to " + st.to +
         " is in progress";
}

Status StepRunner::refuseMidRoll(const std::string& what) const {
  const auto& rolling = ops_.record().rolling;
  if (!rolling || rolling->done) return Status::Ok();
  return Status::FailedPrecondition(rollInProgress() + ": " + what + " has to wait until roll " +
                                    "finishes it or rollback undoes it");
}

std::string StepRunner::running() const {
  const auto& rec = ops_.record();
  std::string out;
  for (const auto* set : {&rec.stable, &rec.candidate}) {
    if (!*set) continue;
    out += (out.empty() ? "" : " and ") + std::to_string((*set)->replicas.size()) +
           " replica(s) of " + (*set)->version;
  }
  return out.empty() ? "nothing" : out;
}

Status StepRunner::rollFailed(const std::string& target, int round, const Status& why) const {
  return Status::Unavailable(
      "rolling update to " + target + " stopped in round " + std::to_string(round) + ": " +
      why.message() + "; running now: " + running() + " (roll back, or roll again once fixed)");
}

Status StepRunner::rollTo(const std::string& target, int wanted, const RollingSpec& bounds,
                          RollResult* out) {
  auto& rec = ops_.record();
  const auto started_at = ops_.now();
  std::optional<ReplicaSet>* grow = nullptr;
  std::optional<ReplicaSet>* shrink = nullptr;
  if (rec.stable && rec.stable->version == target) {
    grow = &rec.stable;
    shrink = &rec.candidate;
  } else if (rec.candidate && rec.candidate->version == target) {
    grow = &rec.candidate;
    shrink = &rec.stable;
  } else if (!rec.stable) {
    grow = &rec.stable;
    shrink = &rec.candidate;
  } else if (!rec.candidate) {
    grow = &rec.candidate;
    shrink = &rec.stable;
  } else {
    return Status::FailedPrecondition("cannot roll to " + target + ": " + running() +
                                      " are running");
  }
  std::string from = *shrink ? (*shrink)->version : "";
  if (from.empty() && rec.rolling && rec.rolling->to == target) from = rec.rolling->from;

  auto count = [](const std::optional<ReplicaSet>* set) {
    return *set ? static_cast<int>((*set)->replicas.size()) : 0;
  };
  // In service: given a weight (only after it became healthy) and, with a load balancer, a
  // slot. Liveness is checked at the top of every round.
  auto serving = [this](const Replica& r) {
    return r.weight > 0 && (!ops_.hasTraffic() || !r.slot.empty());
  };

  RollState state;
  state.from = from;
  state.to = target;
  state.replicas = wanted;
  state.max_unavailable = bounds.max_unavailable;
  state.max_surge = bounds.max_surge;
  if (rec.rolling && !rec.rolling->done && rec.rolling->to == target && rec.rolling->weight > 0) {
    state.weight = rec.rolling->weight;  // a roll taken over half-way keeps its weight
  } else {
    for (const auto* set : {shrink, grow}) {
      if (state.weight > 0 || !*set) continue;
      for (const Replica& r : (*set)->replicas) {
        if (serving(r)) state.weight = std::max(state.weight, r.weight);
      }
    }
    if (state.weight <= 0) state.weight = serverWeight(100, static_cast<size_t>(wanted));
  }
  rec.rolling = state;
  if (Status s = ops_.save(); !s.ok()) return s;

  const RollBounds limits{wanted, bounds.max_unavailable, bounds.max_surge};
  const int floor = limits.floor();
  const int ceiling = limits.ceiling();
  const bool work = count(shrink) > 0 || count(grow) != wanted ||
                    (*grow && std::any_of((*grow)->replicas.begin(), (*grow)->replicas.end(),
                                          [&](const Replica& r) { return !serving(r); }));
  if (work) {
    ops_.say("rolling update to " + target + (from.empty() ? "" : " from " + from) + ": " +
             std::to_string(wanted) + " replica(s), at least " + std::to_string(floor) +
             " serving and at most " + std::to_string(ceiling) + " running (max_unavailable " +
             std::to_string(bounds.max_unavailable) + ", max_surge " +
             std::to_string(bounds.max_surge) + "), weight " + std::to_string(state.weight) +
             " each" + (ops_.hasTraffic() ? "" : " (no load balancer: processes only)"));
  }

  // HAProxy may have lost slots (a restart) or still drain replicas a cancelled round left:
  // every serving replica is put back as the record says.
  for (auto* set : {shrink, grow}) {
    if (!*set) continue;
    for (Replica& r : (*set)->replicas) {
      if (r.weight <= 0) continue;
      const std::string before = r.slot;
      if (Status s = ops_.attach(r); !s.ok()) return s;
      if (r.slot != before) {
        if (Status s = ops_.save(); !s.ok()) return s;
      }
    }
  }

  HealthMonitor monitor(spec_.health, target);
  if (*grow) {
    for (const Replica& r : (*grow)->replicas) {
      if (serving(r)) monitor.watch(r.port);
    }
  }

  int round = 0;
  while (true) {
    if (!ops_.pause(0s)) return ops_.abort();
    if (Status s = monitor.verdict(ops_); !s.ok()) return rollFailed(target, round + 1, s);
    // A new replica that dies in service fails the roll like a failed health check would.
    if (*grow) {
      for (const Replica& r : (*grow)->replicas) {
        if (r.weight <= 0 || alive(r)) continue;
        const Status why =
            Status::Unavailable("replica " + endpoint(r.port) + " (pid " + std::to_string(r.pid) +
                                ") of " + target + " exited while serving; its log ends: " +
                                lastLines(ops_.logPath(target, r.port), kLogTailLines));
        monitor.forget(r.port);
        if (Status s = ops_.dropDead(); !s.ok()) return s;
        return rollFailed(target, round + 1, why);
      }
    }
    if (Status s = ops_.dropDead(); !s.ok()) return s;
    // A new replica failing its checks holds the roll: nothing starts or stops until it
    // passes again or fails for good (the monitor's verdict above).
    if (*grow &&
        std::any_of((*grow)->replicas.begin(), (*grow)->replicas.end(),
                    [&](const Replica& r) { return serving(r) && !monitor.healthy(r.port); })) {
      if (!ops_.pause(spec_.health.interval)) return ops_.abort();
      continue;
    }
    bool changed = false;

    // 1. Old replicas serving nothing go first, and new ones beyond `wanted` (a smaller
    //    replica count than the one a half-done roll had), those not serving yet first.
    std::set<int> idle;
    if (*shrink) {
      for (const Replica& r : (*shrink)->replicas) {
        if (!serving(r)) idle.insert(r.port);
      }
    }
    if (!idle.empty()) {
      const std::string version = (*shrink)->version;
      ops_.say(std::to_string(idle.size()) + " replica(s) of " + version +
               " serve no traffic: stopping them first");
      if (Status s = ops_.retire(*shrink, idle); !s.ok()) return s;
      out->stopped += static_cast<int>(idle.size());
      out->replaced = version;
      changed = true;
    }
    if (count(grow) > wanted) {
      std::vector<Replica> order = (*grow)->replicas;
      std::stable_partition(order.begin(), order.end(),
                            [&](const Replica& r) { return !serving(r); });
      std::set<int> extra;
      for (int i = 0; i < count(grow) - wanted; ++i) extra.insert(order[i].port);
      for (int port : extra) monitor.forget(port);
      ops_.say(std::to_string(extra.size()) + " replica(s) of " + target + " beyond the " +
               std::to_string(wanted) + " wanted: stopping them");
      if (Status s = ops_.retire(*grow, extra); !s.ok()) return s;
      changed = true;
    }

    // 2. Surge.
    const int to_start = replicasToStart(limits, RollCounts{count(grow), count(shrink), 0, 0});
    if (to_start > 0) {
      if (!spec_.process) {
        return Status::InvalidArgument("bad spec: process is missing; it is needed to start " +
                                       target);
      }
      if (!*grow) *grow = ReplicaSet{target, 0, {}};
      Status not_started = Status::Ok();
      if (Status s = startReplicas(**grow, to_start, &not_started); !s.ok()) return s;
      if (!not_started.ok()) return rollFailed(target, round + 1, not_started);
      out->started += to_start;
      changed = true;
    }

    // 3. Readiness, then into service.
    std::vector<Replica> pending;
    if (*grow) {
      for (const Replica& r : (*grow)->replicas) {
        if (!serving(r)) pending.push_back(r);
      }
    }
    if (!pending.empty()) {
      if (!spec_.process) {
        return Status::InvalidArgument("bad spec: process is missing; it is needed to check " +
                                       target + "'s readiness");
      }
      if (Status s = waitReady(target, pending); !s.ok()) {
        if (ops_.aborted()) return s;
        std::set<int> ports;
        for (const Replica& r : pending) ports.insert(r.port);
        ops_.say("stopping the " + std::to_string(ports.size()) + " new replica(s) of " + target +
                 " that did not become healthy");
        if (Status stop = ops_.retire(*grow, ports); !stop.ok()) {
          if (ops_.aborted()) return stop;
          return Status::IoError(s.message() +
                                 "; and stopping the replicas failed: " + stop.message());
        }
        return rollFailed(target, round + 1, s);
      }
      for (const Replica& p : pending) {
        auto it = std::find_if((*grow)->replicas.begin(), (*grow)->replicas.end(),
                               [&](const Replica& r) { return r.port == p.port; });
        if (it == (*grow)->replicas.end()) continue;
        it->weight = state.weight;
        if (Status s = ops_.attach(*it); !s.ok()) {
          it->weight = 0;
          ops_.save().ignoreError();  // the error that matters is the attach's
          return rollFailed(target, round + 1, s);
        }
        if (Status s = ops_.save(); !s.ok()) return s;
        monitor.watch(it->port);
      }
      changed = true;
    }
    if (Status s = monitor.verdict(ops_); !s.ok()) return rollFailed(target, round + 1, s);

    // 4. Old replicas out, down to the floor.
    auto servingNew = [&] {
      int n = 0;
      if (*grow) {
        for (const Replica& r : (*grow)->replicas) {
          if (serving(r) && monitor.healthy(r.port)) ++n;
        }
      }
      return n;
    };
    auto servingOld = [&] {
      std::vector<int> ports;
      if (*shrink) {
        for (const Replica& r : (*shrink)->replicas) {
          if (serving(r)) ports.push_back(r.port);
        }
      }
      return ports;
    };
    const std::vector<int> old_serving = servingOld();
    const int old_count = static_cast<int>(old_serving.size());
    const int to_stop =
        oldReplicasToStop(limits, RollCounts{count(grow), count(shrink), servingNew(), old_count});
    if (to_stop > 0) {
      const std::string version = (*shrink)->version;
      const std::set<int> victims(old_serving.begin(), old_serving.begin() + to_stop);
      if (Status s = ops_.retire(*shrink, victims); !s.ok()) return s;
      out->stopped += to_stop;
      out->replaced = version;
      changed = true;
    }

    if (changed) {
      ++round;
      const int new_serving = servingNew();
      const int old_left = static_cast<int>(servingOld().size());
      const int total = new_serving + old_left;
      if (out->fewest_serving < 0 || total < out->fewest_serving) out->fewest_serving = total;
      // Shares follow the replica counts (equal weights); recorded for the reader only.
      if (*grow) (*grow)->share = total > 0 ? (100 * new_serving + total / 2) / total : 0;
      if (*shrink) (*shrink)->share = 100 - ((*grow) ? (*grow)->share : 0);
      if (Status s = ops_.save(); !s.ok()) return s;
      ops_.say("round " + std::to_string(round) + ": " + target + " " +
               std::to_string(new_serving) + "/" + std::to_string(wanted) +
               (from.empty()
                    ? ""
                    : ", " + from + " " + std::to_string(old_left) + "/" + std::to_string(wanted)) +
               " serving");
    }

    const bool complete = !*shrink && count(grow) == wanted &&
                          std::all_of((*grow)->replicas.begin(), (*grow)->replicas.end(), serving);
    if (complete) break;
    // Nothing could move (new replicas failing checks hold the old ones): the next checks
    // decide, one way or the other.
    if (!changed && !ops_.pause(spec_.health.interval)) return ops_.abort();
  }
  if (Status s = monitor.verdict(ops_); !s.ok()) return rollFailed(target, round, s);

  if (grow == &rec.candidate) {
    rec.stable = std::move(rec.candidate);
    rec.candidate.reset();
  }
  rec.stable->share = 100;
  if (!from.empty() && from != target) rec.previous_version = from;
  rec.rolling->done = true;
  if (Status s = ops_.save(); !s.ok()) return s;
  out->rounds = round;
  out->took = ops_.now() - started_at;
  return Status::Ok();
}

Status StepRunner::rollBackRolling(std::string* message) {
  auto& rec = ops_.record();
  const RollState st = *rec.rolling;
  std::string target = spec_.previous_version;
  if (target.empty()) target = st.from != spec_.version ? st.from : st.to;
  if (target == spec_.version) target.clear();
  if (target.empty() && rec.previous_version != spec_.version) target = rec.previous_version;
  if (target.empty()) {
    for (const auto* set : {&rec.stable, &rec.candidate}) {
      if (*set && (*set)->version != spec_.version) target = (*set)->version;
    }
  }
  if (target.empty()) {
    *message = "nothing to roll back to: no version of " + spec_.service + " before " +
               spec_.version + " is known" +
               (rec.stable || rec.candidate ? "; " + running() + " keep running" : "");
    return Status::Ok();
  }
  const RollingSpec bounds =
      spec_.rolling ? *spec_.rolling : RollingSpec{st.max_unavailable, st.max_surge};
  const int wanted = spec_.process ? spec_.process->replicas : st.replicas;
  bool other_runs = false;
  for (const auto* set : {&rec.stable, &rec.candidate}) {
    if (*set && (*set)->version != target) other_runs = true;
  }
  if (other_runs) ops_.say("rolling back to " + target + " the way the rolling update came");
  RollResult result;
  if (Status s = rollTo(target, wanted, bounds, &result); !s.ok()) return s;
  if (!other_runs && result.rounds == 0) {
    *message = "nothing to roll back: " + target + " is the stable set (" +
               std::to_string(rec.stable->replicas.size()) +
               " replica(s)) and no replica of another version runs";
    return Status::Ok();
  }
  *message = "rolled back to " + target + ": " + std::to_string(wanted) +
             " replica(s) serving after " + std::to_string(result.rounds) + " round(s) over " +
             seconds(result.took) + result.summary();
  return Status::Ok();
}

}  // namespace flotilla::agent
