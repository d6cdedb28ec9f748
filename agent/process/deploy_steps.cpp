// The deploy, shift, finalize and rollback steps of the canary and blue-green strategies.
#include <algorithm>
#include <map>
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
using Clock = std::chrono::steady_clock;

Status StepRunner::deploy(std::string* message) {
  ops_.useTraffic(spec_.traffic);
  if (!spec_.deployment.empty()) ops_.record().deployment = spec_.deployment;
  if (Status s = ops_.dropDead(); !s.ok()) return s;
  if (Status s = refuseMidRoll("a deploy"); !s.ok()) return s;
  // A finished rolling update is history now: a rollback after this deploy undoes the deploy.
  ops_.record().rolling.reset();
  std::vector<int> ports;
  if (Status s = deployVersion(spec_.version, &ports); !s.ok()) return s;
  std::string list;
  for (int p : ports) list += (list.empty() ? "" : ", ") + endpoint(p);
  *message = std::to_string(ports.size()) + " replica(s) of " + spec_.version + " healthy on " +
             list +
             (ops_.hasTraffic() ? ", in the load balancer at weight " +
                                      std::to_string(ops_.record().candidate->share) + "%"
                                : "");
  return Status::Ok();
}

Status StepRunner::shift(std::string* message) {
  ops_.useTraffic(spec_.traffic);
  if (Status s = ops_.dropDead(); !s.ok()) return s;
  if (Status s = refuseMidRoll("a shift"); !s.ok()) return s;
  auto& rec = ops_.record();
  if (!rec.candidate) {
    if (rec.stable && rec.stable->version == spec_.version && spec_.weight == 100) {
      *message = spec_.version + " is already the stable set with all the traffic";
      return Status::Ok();
    }
    return Status::FailedPrecondition("no candidate set of " + spec_.version +
                                      " is running: deploy it first");
  }
  if (rec.candidate->version != spec_.version) {
    return Status::FailedPrecondition("the candidate set runs " + rec.candidate->version +
                                      ", not " + spec_.version);
  }
  if (Status s = ops_.attachAll(); !s.ok()) return s;
  if (Status s = ops_.applyShares(spec_.weight); !s.ok()) return s;
  *message = spec_.version + " has " + std::to_string(rec.candidate->share) + "% of the traffic";
  if (!rec.stable && spec_.weight != 100) message->append(" (no stable set to share with)");
  if (!ops_.hasTraffic()) message->append(" (recorded only: no load balancer configured)");
  return Status::Ok();
}

Status StepRunner::finalize(std::string* message) {
  ops_.useTraffic(spec_.traffic);
  if (Status s = ops_.dropDead(); !s.ok()) return s;
  if (Status s = refuseMidRoll("a finalize"); !s.ok()) return s;
  auto& rec = ops_.record();
  if (!rec.candidate) {
    if (rec.stable && rec.stable->version == spec_.version) {
      *message = spec_.version + " is already the stable set";
      return Status::Ok();
    }
    return Status::FailedPrecondition("no candidate set of " + spec_.version + " to finalize");
  }
  if (rec.candidate->version != spec_.version) {
    return Status::FailedPrecondition("the candidate set runs " + rec.candidate->version +
                                      ", not " + spec_.version);
  }
  return promoteCandidate(message);
}

Status StepRunner::rollback(std::string* message) {
  ops_.useTraffic(spec_.traffic);
  if (Status s = ops_.dropDead(); !s.ok()) return s;
  auto& rec = ops_.record();
  const std::string previous =
      !spec_.previous_version.empty() ? spec_.previous_version : rec.previous_version;
  const bool stable_is_new = rec.stable && rec.stable->version == spec_.version;
  switch (planRollback(rec, spec_.version, previous)) {
    case RollbackAction::kRollBackTheRoll:
      return rollBackRolling(message);
    case RollbackAction::kFinishEarlierRollback:
      return restorePrevious(previous, message);
    case RollbackAction::kRetireCandidate: {
      const std::string version = rec.candidate->version;
      const size_t count = rec.candidate->replicas.size();
      if (rec.stable) {
        if (Status s = ops_.attachAll(); !s.ok()) return s;
        if (Status s = ops_.applyShares(0); !s.ok()) return s;
      }
      if (Status s = ops_.retireAll(rec.candidate); !s.ok()) return s;
      *message = "stopped " + std::to_string(count) + " replica(s) of " + version;
      *message += rec.stable ? "; " + rec.stable->version + " has all the traffic"
                             : "; no stable set was running";
      return Status::Ok();
    }
    case RollbackAction::kRestorePrevious:
      if (!spec_.process) {
        return Status::InvalidArgument("bad spec: process is missing; it is needed to start " +
                                       previous + " again");
      }
      return restorePrevious(previous, message);
    case RollbackAction::kNothing:
      break;
  }
  if (rec.stable) {
    *message = "nothing to roll back: " + rec.stable->version + " is the stable set" +
               (stable_is_new ? " and no previous version is known" : "") +
               ", and no candidate set is running";
  } else {
    *message = "nothing to roll back: no replica of " + spec_.service + " is recorded";
  }
  return Status::Ok();
}

Clock::duration StepRunner::startTimeout() const {
  if (spec_.process->start_timeout) return *spec_.process->start_timeout;
  return std::max<Clock::duration>(spec_.health.timeout * spec_.health.failure_threshold,
                                   kMinStartTimeout);
}

Status StepRunner::deployVersion(const std::string& version, std::vector<int>* ports) {
  if (!spec_.process) return Status::InvalidArgument("bad spec: process is missing");
  auto& rec = ops_.record();
  if (rec.candidate && rec.candidate->version != version) {
    if (rec.candidate->share > 0 && !rec.stable) {
      return Status::FailedPrecondition(
          "the candidate set of " + rec.candidate->version +
          " serves traffic and there is no stable set: finalize or roll it back first");
    }
    ops_.say("retiring the candidate set of " + rec.candidate->version + " left from before");
    if (rec.candidate->share > 0) {
      if (Status s = ops_.attachAll(); !s.ok()) return s;
      if (Status s = ops_.applyShares(0); !s.ok()) return s;
    }
    if (Status s = ops_.retireAll(rec.candidate); !s.ok()) return s;
  }
  if (!rec.candidate) {
    rec.candidate = ReplicaSet{version, 0, {}};
  } else {
    ops_.say("re-using " + std::to_string(rec.candidate->replicas.size()) +
             " running replica(s) of " + version);
  }
  const int wanted = spec_.process->replicas;
  if (static_cast<int>(rec.candidate->replicas.size()) > wanted) {
    std::set<int> extra;
    for (size_t i = wanted; i < rec.candidate->replicas.size(); ++i) {
      extra.insert(rec.candidate->replicas[i].port);
    }
    if (Status s = ops_.retire(rec.candidate, extra); !s.ok()) return s;
  }
  if (Status s = ops_.save(); !s.ok()) return s;

  Status not_started = Status::Ok();
  const int missing = wanted - static_cast<int>(rec.candidate->replicas.size());
  if (Status s = startReplicas(*rec.candidate, missing, &not_started); !s.ok()) return s;
  if (!not_started.ok()) return failDeploy(version, not_started);

  if (Status s = waitReady(version, rec.candidate->replicas); !s.ok()) {
    if (ops_.aborted()) return s;
    return failDeploy(version, s);
  }
  for (Replica& r : rec.candidate->replicas) {
    if (Status s = ops_.attach(r); !s.ok()) return failDeploy(version, s);
    if (Status s = ops_.save(); !s.ok()) return s;
  }
  for (const Replica& r : rec.candidate->replicas) ports->push_back(r.port);
  return Status::Ok();
}

Status StepRunner::startReplicas(ReplicaSet& set, int count, Status* not_started) {
  std::set<int> avoid = ops_.recordedPorts();
  int next_port = spec_.process->port_min;
  for (int i = 0; i < count; ++i) {
    if (!ops_.pause(0s)) return ops_.abort();
    int port = -1;
    for (; next_port <= spec_.process->port_max; ++next_port) {
      if (!avoid.count(next_port) && portFree(next_port)) {
        port = next_port++;
        break;
      }
    }
    if (port < 0) {
      *not_started =
          Status::Unavailable("no free port in " + std::to_string(spec_.process->port_min) + "-" +
                              std::to_string(spec_.process->port_max));
      return Status::Ok();
    }
    avoid.insert(port);
    auto replica = ops_.start(spec_, set.version, port);
    if (!replica.ok()) {
      *not_started = replica.status();
      return Status::Ok();
    }
    set.replicas.push_back(*replica);
    if (Status s = ops_.save(); !s.ok()) return s;
    ops_.say("started " + endpoint(port) + " (pid " + std::to_string(replica->pid) + ") for " +
             set.version);
  }
  return Status::Ok();
}

Status StepRunner::waitReady(const std::string& version, const std::vector<Replica>& replicas) {
  const auto deadline = ops_.now() + startTimeout();
  const std::string& path = spec_.process->health_path;
  std::set<int> ready;
  std::map<int, std::string> last;
  // A replica that is not listening yet may be starting slowly (the long
  // allowance above); one that answers "unhealthy" is judged like any
  // health check: more than failure_threshold in a row, at the plan's interval.
  std::map<int, ConsecutiveFailures> unhealthy;
  for (const Replica& r : replicas) {
    unhealthy.emplace(r.port, ConsecutiveFailures(spec_.health.failure_threshold));
  }
  auto next_answer_check = ops_.now();
  while (true) {
    const bool judge = ops_.now() >= next_answer_check;
    if (judge) next_answer_check = ops_.now() + spec_.health.interval;
    for (const Replica& r : replicas) {
      if (ready.count(r.port)) continue;
      if (!alive(r)) {
        return Status::Unavailable("replica " + endpoint(r.port) + " (pid " +
                                   std::to_string(r.pid) + ") of " + version +
                                   " exited before it became healthy; its log ends: " +
                                   lastLines(ops_.logPath(version, r.port), kLogTailLines));
      }
      const Probe p = ops_.probe({r.port}, path, spec_.health.timeout).front();
      if (p.ok) {
        ready.insert(r.port);
        ops_.say(endpoint(r.port) + " is healthy (" + version + ")");
      } else {
        last[r.port] = p.detail;
        if (p.answered && judge && unhealthy.at(r.port).record(false)) {
          return Status::Unavailable("health check failed " +
                                     std::to_string(unhealthy.at(r.port).current()) +
                                     " times in a row on " + endpoint(r.port) + ": " + p.detail +
                                     " (" + version + " never became healthy)");
        }
      }
    }
    if (ready.size() == replicas.size()) return Status::Ok();
    if (ops_.now() >= deadline) {
      std::string detail;
      for (const Replica& r : replicas) {
        if (ready.count(r.port)) continue;
        detail += (detail.empty() ? "" : "; ") + endpoint(r.port) + ": " + last[r.port];
      }
      return Status::Unavailable(std::to_string(replicas.size() - ready.size()) +
                                 " replica(s) of " + version + " not healthy on " + path +
                                 " after " + seconds(startTimeout()) + " (" + detail + ")");
    }
    if (!ops_.pause(kReadyPoll)) return ops_.abort();
  }
}

Status StepRunner::failDeploy(const std::string& version, const Status& why) {
  auto& rec = ops_.record();
  if (rec.candidate && rec.candidate->version == version) {
    ops_.say("deploy of " + version + " failed: stopping its replicas");
    // A re-used candidate set may carry traffic: the stable set takes it back first.
    Status s = Status::Ok();
    if (rec.candidate->share > 0 && rec.stable) s = ops_.applyShares(0);
    if (s.ok()) s = ops_.retireAll(rec.candidate);
    if (!s.ok()) {
      return Status::IoError(why.message() + "; and stopping the replicas failed: " + s.message());
    }
  }
  return why;
}

Status StepRunner::promoteCandidate(std::string* message) {
  auto& rec = ops_.record();
  if (Status s = ops_.attachAll(); !s.ok()) return s;
  if (rec.candidate->share != 100 || (rec.stable && rec.stable->share != 0)) {
    if (Status s = ops_.applyShares(100); !s.ok()) return s;
  }
  std::string retired;
  const std::string new_version = rec.candidate->version;
  if (rec.stable) {
    const std::string old_version = rec.stable->version;
    const size_t count = rec.stable->replicas.size();
    if (Status s = ops_.retireAll(rec.stable); !s.ok()) return s;
    retired = std::to_string(count) + " replica(s) of " + old_version + " stopped";
    if (old_version != new_version) rec.previous_version = old_version;
  }
  rec.stable = std::move(rec.candidate);
  rec.candidate.reset();
  if (Status s = ops_.save(); !s.ok()) return s;
  *message = new_version + " is the stable set (" + std::to_string(rec.stable->replicas.size()) +
             " replica(s))" + (retired.empty() ? "" : "; " + retired);
  return Status::Ok();
}

Status StepRunner::restorePrevious(const std::string& previous, std::string* message) {
  auto& rec = ops_.record();
  const std::string bad = rec.stable ? rec.stable->version : spec_.version;
  ops_.say("rolling back to " + previous + ": starting it again");
  std::vector<int> ports;
  if (Status s = deployVersion(previous, &ports); !s.ok()) return s;
  if (Status s = promoteCandidate(message); !s.ok()) return s;
  rec.previous_version = bad;
  if (Status s = ops_.save(); !s.ok()) return s;
  *message = "rolled back to " + previous + ": " + *message;
  return Status::Ok();
}

}  // namespace flotilla::agent
