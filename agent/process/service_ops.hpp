// One service's replicas, its record and its load-balancer slots, for the duration of one
// process step (or of recover()): starting and stopping replicas (agent/process/replica_process),
// the durable record (agent/process/service_record), and the HAProxy slots and weights that
// move traffic between the stable and the candidate set. The steps (agent/process/steps.hpp)
// decide what to do; this does it and says so in the step's log.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/child_process.hpp"
#include "agent/driver.hpp"
#include "agent/haproxy.hpp"
#include "agent/process/service_record.hpp"
#include "agent/process/spec.hpp"
#include "agent/process/step_context.hpp"
#include "agent/process/traffic.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

inline constexpr std::chrono::milliseconds kReadyPoll{100};  // readiness polling after a start
inline constexpr std::chrono::milliseconds kCancelSlice{
    20};  // longest sleep between two looks at `cancel`
inline constexpr std::chrono::seconds kMinStartTimeout{
    30};                                              // a slow JVM start is not a failed deploy
inline constexpr std::chrono::seconds kDrainTime{1};  // in-flight requests finish before maint
inline constexpr std::chrono::seconds kStopGrace{5};  // SIGTERM to SIGKILL
inline constexpr std::chrono::seconds kKillWait{2};   // SIGKILL to giving up
inline constexpr std::chrono::milliseconds kExitPoll{50};
inline constexpr std::chrono::milliseconds kHaproxyTimeout{2000};
// During a bake with alerts, the watched set's metrics are judged in slices of a quarter of the
// bake, within these bounds.
inline constexpr std::chrono::seconds kMinAlertSlice{1};
inline constexpr std::chrono::seconds kMaxAlertSlice{30};
// How far back Prometheus is asked for the old set's figures when a bake compares with it.
inline constexpr std::chrono::minutes kBaselineLookback{15};
// A Prometheus query may take longer than a health check's timeout allows.
inline constexpr std::chrono::seconds kMinQueryTimeout{2};
inline constexpr int kMaxServerWeight = 256;      // HAProxy's limit
inline constexpr double kWeightPerPercent = 2.5;  // 100% on one server = 250, under the limit
inline constexpr size_t kLogTailLines = 5;

// One step at a time per service: two steps moving the same replicas would undo each other.
// Keyed by state dir: two ProcessDriver objects on one state dir (an agent restarted
// in-process, a test) share it.
std::mutex& serviceMutex(const std::string& state_dir, const std::string& service);

// The HAProxy weight of each of `count` servers that share `share` percent of the traffic.
int serverWeight(int share, size_t count);

// "2.5s".
std::string seconds(std::chrono::steady_clock::duration d);

class ServiceOps : public StepContext {
 public:
  using Clock = std::chrono::steady_clock;
  using Millis = std::chrono::milliseconds;

  // `traffic` opens the load balancer a traffic spec names (HAProxy unless a test says otherwise).
  ServiceOps(std::string state_dir, std::string service, const std::atomic<bool>& cancel,
             const LineSink& log, const LaunchPolicy& launch, TrafficFactory traffic = {})
      : state_dir_(std::move(state_dir)),
        service_(std::move(service)),
        cancel_(cancel),
        log_(log),
        launch_(launch),
        traffic_(traffic ? std::move(traffic) : haproxyTraffic(kHaproxyTimeout)) {}

  bool aborted() const { return aborted_; }

  // Interface
  void say(const std::string& line) const override;

  // --- record

  std::filesystem::path servicesDir() const {
    return std::filesystem::path(state_dir_) / "services";
  }
  std::filesystem::path recordPath() const { return servicesDir() / (service_ + ".json"); }
  std::filesystem::path logPath(const std::string& version, int port) const;

  common::Status load();

  common::Status save();

  ServiceRecord& record() { return record_; }

  // The spec names where traffic goes now; without one the record's stays (what the replicas
  // are attached to).
  void useTraffic(const std::optional<TrafficSpec>& traffic);

  // --- waiting

  // Sleeps `d` in slices; false when cancelled.
  bool pause(Clock::duration d) override;
  Clock::time_point now() const override { return Clock::now(); }
  std::vector<Probe> probe(const std::vector<int>& ports, const std::string& path,
                           std::chrono::milliseconds timeout) override;

  common::Status abort() override;

  // --- replicas

  std::set<int> recordedPorts() const;

  // Forgets replicas that are gone (and frees their slots); a set left empty is forgotten.
  common::Status dropDead();

  common::StatusOr<Replica> start(const Spec& spec, const std::string& version, int port);

  // SIGTERM, SIGKILL after kStopGrace. Not cancellable: a half-stopped set is worse than a
  // step that ends a few seconds late.
  common::Status stopProcesses(const std::vector<Replica>& reps, const std::string& version);

  // Takes `ports` of a set out of traffic and stops them: drain, a moment for requests in
  // flight, maintenance at weight 0, SIGTERM/SIGKILL, slot freed, record updated. Retiring
  // every replica forgets the set.
  common::Status retire(std::optional<ReplicaSet>& set, const std::set<int>& ports);

  common::Status retireAll(std::optional<ReplicaSet>& set);

  // --- HAProxy

  bool hasTraffic() const { return admin_ != nullptr; }

  // Puts the replica's slot at its address, with its recorded weight, ready. A slot that
  // already says so is left alone; one that HAProxy lost (a restart) is filled again; one that
  // now holds somebody else is given up for another free one.
  common::Status attach(Replica& r);

  common::Status attachAll();

  // Weights so `candidate_share` percent of the requests reach the candidate set and the rest
  // the stable set; with no stable set the candidate takes everything. Weights that rise are
  // set before weights that fall, so the backend never has a moment with no weight at all.
  common::Status applyShares(int candidate_share);

 private:
  void openAdmin();

  void warnIfFailed(const common::Status& s, const std::string& what) const;

  common::Status fill(Replica& r, bool set_address);

  // Frees the replica's slot, but only while it still points at the replica: after an HAProxy
  // restart or reload the slot may hold someone else by now.
  void releaseIfOurs(const Replica& r);

  // Slots other replicas on the same backend are recorded in, ours in memory and every other
  // service's on disk: after an HAProxy restart every slot looks free until re-attached.
  std::set<std::string> slotsRecordedElsewhere(const Replica& self) const;

  std::string state_dir_;
  std::string service_;
  const std::atomic<bool>& cancel_;
  const LineSink& log_;
  const LaunchPolicy& launch_;  // how replicas start (--pass-env, --run-as)
  ServiceRecord record_;
  TrafficFactory traffic_;
  std::unique_ptr<TrafficSwitch> admin_;
  bool aborted_ = false;
};

}  // namespace flotilla::agent
