// The process driver's steps: replicas as detached local processes recorded in the state dir,
// traffic moved between the stable and the candidate set through HAProxy, health and metric
// gates on the candidate set.
#include "agent/process_driver.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "agent/analysis.hpp"
#include "agent/child_process.hpp"
#include "agent/haproxy.hpp"
#include "agent/process/health.hpp"
#include "agent/process/replica_process.hpp"
#include "agent/process/service_record.hpp"
#include "agent/process/step_context.hpp"
#include "agent/process/windows.hpp"
#include "agent/prometheus.hpp"
#include "common/http_client.hpp"
#include "common/logging.hpp"
#include "common/plan.hpp"
#include "common/strings.hpp"

namespace flotilla::agent {

using common::httpGet;
using common::replaceAll;
using common::Status;
using common::StatusOr;
using nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

namespace {

constexpr auto kReadyPoll = 100ms;      // readiness polling after a start
constexpr auto kCancelSlice = 20ms;     // longest sleep between two looks at `cancel`
constexpr auto kMinStartTimeout = 30s;  // a slow JVM start is not a failed deploy
constexpr auto kDrainTime = 1s;         // in-flight requests finish before maint
constexpr auto kStopGrace = 5s;         // SIGTERM to SIGKILL
constexpr auto kKillWait = 2s;          // SIGKILL to giving up
constexpr auto kExitPoll = 50ms;
constexpr auto kHaproxyTimeout = 2000ms;
constexpr int kMaxInconclusiveExtensions = 3;
// During a bake with alerts, the watched set's metrics are judged in slices of a quarter of the
// bake, within these bounds.
constexpr auto kMinAlertSlice = 1s;
constexpr auto kMaxAlertSlice = 30s;
// A Prometheus query may take longer than a health check's timeout allows.
constexpr auto kMinQueryTimeout = 2s;
constexpr int kMaxServerWeight = 256;      // HAProxy's limit
constexpr double kWeightPerPercent = 2.5;  // 100% on one server = 250, under the limit
constexpr size_t kLogTailLines = 5;

// ---------------------------------------------------------------------------------------------
// Locks. The header holds no members for them, so they live here, keyed by state dir: two
// ProcessDriver objects on one state dir (an agent restarted in-process, a test) share them.

std::mutex& namedMutex(const std::string& key) {
  static std::mutex registry_mu;
  static std::map<std::string, std::unique_ptr<std::mutex>> registry;
  std::lock_guard lock(registry_mu);
  auto& slot = registry[key];
  if (!slot) slot = std::make_unique<std::mutex>();
  return *slot;
}

// One step at a time per service: two steps moving the same replicas would undo each other.
std::mutex& serviceMutex(const std::string& state_dir, const std::string& service) {
  return namedMutex("service:" + state_dir + "/" + service);
}

// Choosing a free HAProxy slot and filling it must not interleave between services that share
// a backend.
std::mutex& slotMutex() {
  static std::mutex mu;
  return mu;
}

int serverWeight(int share, size_t count) {
  if (share <= 0 || count == 0) return 0;
  const long w = std::lround(kWeightPerPercent * share / static_cast<double>(count));
  return static_cast<int>(std::clamp<long>(w, 1, kMaxServerWeight));
}

std::string seconds(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fs", std::chrono::duration<double>(d).count());
  return buf;
}

// ---------------------------------------------------------------------------------------------
// One service's replicas, record and slots, for the duration of one step (or of recover()).

class ServiceOps : public StepContext {
 public:
  ServiceOps(std::string state_dir, std::string service, const std::atomic<bool>& cancel,
             const LineSink& log, const LaunchPolicy& launch)
      : state_dir_(std::move(state_dir)),
        service_(std::move(service)),
        cancel_(cancel),
        log_(log),
        launch_(launch) {}

  bool aborted() const { return aborted_; }

  // Interface
  void say(const std::string& line) const override {
    if (log_) log_(line);
  }

  // --- record

  fs::path servicesDir() const { return fs::path(state_dir_) / "services"; }
  fs::path recordPath() const { return servicesDir() / (service_ + ".json"); }
  fs::path logPath(const std::string& version, int port) const {
    return servicesDir() / (service_ + "-" + version + "-" + std::to_string(port) + ".log");
  }

  Status load() {
    auto rec = readRecordFile(recordPath());
    if (!rec.ok()) return rec.status();
    record_ = rec->value_or(ServiceRecord{});
    record_.service = service_;
    openAdmin();
    return Status::Ok();
  }

  Status save() {
    std::error_code ec;
    fs::create_directories(servicesDir(), ec);
    if (ec) return Status::IoError("create " + servicesDir().string() + ": " + ec.message());
    return writeRecordFile(recordPath(), record_);
  }

  ServiceRecord& record() { return record_; }

  // The spec names where traffic goes now; without one the record's stays (what the replicas
  // are attached to).
  void useTraffic(const std::optional<TrafficSpec>& traffic) {
    if (!traffic) return;
    if (record_.traffic && !(*record_.traffic == *traffic)) {
      say("traffic moves from " + record_.traffic->backend + " at " + record_.traffic->socket +
          " to " + traffic->backend + " at " + traffic->socket);
    }
    record_.traffic = traffic;
    openAdmin();
  }

  // --- waiting

  // Sleeps `d` in slices; false when cancelled.
  bool pause(Clock::duration d) override {
    const auto end = Clock::now() + d;
    while (!cancel_.load()) {
      const auto now = Clock::now();
      if (now >= end) return true;
      std::this_thread::sleep_for(std::min<Clock::duration>(end - now, kCancelSlice));
    }
    return false;
  }

  Status abort() override {
    aborted_ = true;
    return Status::FailedPrecondition("cancelled");
  }

  // --- replicas

  std::set<int> recordedPorts() const {
    std::set<int> ports;
    for (const auto* set : {&record_.stable, &record_.candidate}) {
      if (!*set) continue;
      for (const Replica& r : (*set)->replicas) ports.insert(r.port);
    }
    return ports;
  }

  // Forgets replicas that are gone (and frees their slots); a set left empty is forgotten.
  Status dropDead() {
    bool changed = false;
    for (auto* set : {&record_.stable, &record_.candidate}) {
      if (!*set) continue;
      const char* role = set == &record_.stable ? "stable" : "candidate";
      auto& reps = (*set)->replicas;
      for (auto it = reps.begin(); it != reps.end();) {
        if (alive(*it)) {
          ++it;
          continue;
        }
        say("replica " + endpoint(it->port) + " (pid " + std::to_string(it->pid) + ") of " +
            (*set)->version + " (" + role + ") is gone; dropped from the record");
        releaseIfOurs(*it);
        it = reps.erase(it);
        changed = true;
      }
      if (reps.empty()) {
        say("no live replica of " + (*set)->version + " (" + role + ") is left");
        set->reset();
      }
    }
    return changed ? save() : Status::Ok();
  }

  StatusOr<Replica> start(const Spec& spec, const std::string& version, int port) {
    std::string command = spec.process->command;
    command = replaceAll(command, "{version}", version);
    command = replaceAll(command, "{port}", std::to_string(port));
    command = replaceAll(command, "{cluster}", spec.cluster);
    // `exec` makes the shell become the service, so the recorded pid is the service's.
    static const std::regex has_exec("^\\s*exec\\s");
    if (!std::regex_search(command, has_exec)) command = "exec " + command;

    std::error_code ec;
    fs::create_directories(servicesDir(), ec);
    if (ec) return Status::IoError("create " + servicesDir().string() + ": " + ec.message());
    const std::string log_path = logPath(version, port).string();
    {
      std::ofstream header(log_path, std::ios::app);
      header << "--- flotilla: starting " << service_ << " " << version << " on " << endpoint(port)
             << ": " << command << std::endl;
    }

    ShellLaunch launch;
    launch.command = command;
    // The command's variables, then what is this replica's own (a rollback starts the previous
    // version: its FLOTILLA_VERSION is that one).
    launch.env = spec.env;
    for (const auto& [key, value] :
         std::map<std::string, std::string>{{"FLOTILLA_SERVICE", service_},
                                            {"FLOTILLA_VERSION", version},
                                            {"FLOTILLA_PREVIOUS_VERSION", spec.previous_version},
                                            {"FLOTILLA_CLUSTER", spec.cluster},
                                            {"FLOTILLA_DEPLOYMENT", spec.deployment},
                                            {"FLOTILLA_PORT", std::to_string(port)}}) {
      launch.env[key] = value;
    }
    launch.output_path = log_path;
    // Its own session, so the agent's terminal and process group signals never reach it.
    launch.new_session = true;
    auto spawned = spawnShell(launch, launch_);
    if (!spawned.ok()) {
      return Status::IoError("spawn /bin/sh for " + version + ": " + spawned.status().message());
    }
    const pid_t pid = *spawned;

    auto ticks = processStartTicks(pid);
    if (!ticks.ok()) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      return Status::IoError(
          "replica of " + version + " on " + endpoint(port) +
          " exited at once; its log ends: " + lastLines(log_path, kLogTailLines));
    }
    Replica r;
    r.pid = pid;
    r.start_ticks = *ticks;
    r.port = port;
    return r;
  }

  // SIGTERM, SIGKILL after kStopGrace. Not cancellable: a half-stopped set is worse than a
  // step that ends a few seconds late.
  Status stopProcesses(const std::vector<Replica>& reps, const std::string& version) {
    for (const Replica& r : reps) signalReplica(r, SIGTERM);
    auto anyAlive = [&] {
      return std::any_of(reps.begin(), reps.end(), [](const Replica& r) { return alive(r); });
    };
    auto deadline = Clock::now() + kStopGrace;
    while (anyAlive() && Clock::now() < deadline) std::this_thread::sleep_for(kExitPoll);
    if (anyAlive()) {
      for (const Replica& r : reps) {
        if (!alive(r)) continue;
        say("replica " + endpoint(r.port) + " (pid " + std::to_string(r.pid) + ") of " + version +
            " ignored SIGTERM for " + seconds(kStopGrace) + ": SIGKILL");
        signalReplica(r, SIGKILL);
      }
      deadline = Clock::now() + kKillWait;
      while (anyAlive() && Clock::now() < deadline) std::this_thread::sleep_for(kExitPoll);
    }
    for (const Replica& r : reps) {
      if (alive(r)) {
        return Status::IoError("replica " + endpoint(r.port) + " (pid " + std::to_string(r.pid) +
                               ") of " + version + " survived SIGKILL");
      }
      say("stopped " + endpoint(r.port) + " (pid " + std::to_string(r.pid) + ") of " + version);
    }
    return Status::Ok();
  }

  // Takes `ports` of a set out of traffic and stops them: drain, a moment for requests in
  // flight, maintenance at weight 0, SIGTERM/SIGKILL, slot freed, record updated. Retiring
  // every replica forgets the set.
  Status retire(std::optional<ReplicaSet>& set, const std::set<int>& ports) {
    if (!set) return Status::Ok();
    const std::string version = set->version;
    std::vector<Replica> victims;
    for (const Replica& r : set->replicas) {
      if (ports.count(r.port)) victims.push_back(r);
    }
    if (victims.empty()) return Status::Ok();

    bool attached = false;
    if (admin_) {
      for (const Replica& r : victims) {
        if (r.slot.empty()) continue;
        attached = true;
        warnIfFailed(admin_->setServerState(record_.traffic->backend, r.slot, ServerState::kDrain),
                     "drain " + r.slot);
      }
    }
    if (attached && !pause(kDrainTime)) return abort();
    if (admin_) {
      for (const Replica& r : victims) {
        if (r.slot.empty()) continue;
        warnIfFailed(admin_->setServerState(record_.traffic->backend, r.slot, ServerState::kMaint),
                     "maint " + r.slot);
        warnIfFailed(admin_->setWeight(record_.traffic->backend, r.slot, 0), "weight " + r.slot);
      }
    }
    if (Status s = stopProcesses(victims, version); !s.ok()) return s;
    for (const Replica& r : victims) releaseIfOurs(r);
    auto& reps = set->replicas;
    reps.erase(std::remove_if(reps.begin(), reps.end(),
                              [&](const Replica& r) { return ports.count(r.port) > 0; }),
               reps.end());
    if (reps.empty()) set.reset();
    return save();
  }

  Status retireAll(std::optional<ReplicaSet>& set) {
    if (!set) return Status::Ok();
    std::set<int> ports;
    for (const Replica& r : set->replicas) ports.insert(r.port);
    return retire(set, ports);
  }

  // --- HAProxy

  bool hasTraffic() const { return admin_ != nullptr; }

  // Puts the replica's slot at its address, with its recorded weight, ready. A slot that
  // already says so is left alone; one that HAProxy lost (a restart) is filled again; one that
  // now holds somebody else is given up for another free one.
  Status attach(Replica& r) {
    if (!admin_) return Status::Ok();
    const std::string& backend = record_.traffic->backend;
    std::lock_guard lock(slotMutex());
    auto servers = admin_->showServers(backend);
    if (!servers.ok()) return servers.status();
    const std::set<std::string> taken = slotsRecordedElsewhere(r);
    if (!r.slot.empty()) {
      auto row = std::find_if(servers->begin(), servers->end(),
                              [&](const ServerInfo& s) { return s.name == r.slot; });
      if (row != servers->end() && row->address == kLoopback && row->port == r.port) {
        if (row->state() == ServerState::kReady && row->weight == r.weight) return Status::Ok();
        return fill(r, /*set_address=*/false);
      }
      if (row != servers->end() && row->isFreeSlot()) return fill(r, /*set_address=*/true);
      say("slot " + backend + "/" + r.slot + " no longer holds " + endpoint(r.port) +
          "; taking another");
      r.slot.clear();
    }
    for (const ServerInfo& s : *servers) {
      if (s.isFreeSlot() && !taken.count(s.name)) {
        r.slot = s.name;
        return fill(r, /*set_address=*/true);
      }
    }
    return Status::FailedPrecondition("no free server slot in HAProxy backend " + backend + " (" +
                                      std::to_string(servers->size()) +
                                      " servers, none free): add server-template slots");
  }

  Status attachAll() {
    if (!admin_) return Status::Ok();
    for (auto* set : {&record_.stable, &record_.candidate}) {
      if (!*set) continue;
      for (Replica& r : (*set)->replicas) {
        const std::string before = r.slot;
        if (Status s = attach(r); !s.ok()) return s;
        if (r.slot != before) {
          if (Status s = save(); !s.ok()) return s;
        }
      }
    }
    return save();
  }

  // Weights so `candidate_share` percent of the requests reach the candidate set and the rest
  // the stable set; with no stable set the candidate takes everything. Weights that rise are
  // set before weights that fall, so the backend never has a moment with no weight at all.
  Status applyShares(int candidate_share) {
    const bool has_stable = record_.stable && !record_.stable->replicas.empty();
    const bool has_candidate = record_.candidate && !record_.candidate->replicas.empty();
    int cand = candidate_share;
    if (!has_stable) cand = has_candidate ? 100 : 0;
    if (!has_candidate) cand = 0;
    const int stab = has_stable ? 100 - cand : 0;

    struct Change {
      Replica* replica;
      int weight;
    };
    std::vector<Change> changes;
    if (has_candidate) {
      const int w = serverWeight(cand, record_.candidate->replicas.size());
      for (Replica& r : record_.candidate->replicas) changes.push_back({&r, w});
    }
    if (has_stable) {
      const int w = serverWeight(stab, record_.stable->replicas.size());
      for (Replica& r : record_.stable->replicas) changes.push_back({&r, w});
    }
    if (admin_) {
      const std::string& backend = record_.traffic->backend;
      for (bool rising : {true, false}) {
        for (const Change& c : changes) {
          if (c.weight == c.replica->weight || (c.weight > c.replica->weight) != rising ||
              c.replica->slot.empty()) {
            continue;
          }
          if (Status s = admin_->setWeight(backend, c.replica->slot, c.weight); !s.ok()) return s;
          c.replica->weight = c.weight;
        }
      }
    }
    for (const Change& c : changes) c.replica->weight = c.weight;
    if (has_candidate) record_.candidate->share = cand;
    if (has_stable) record_.stable->share = stab;
    std::string line = "weights:";
    if (has_candidate) line += " " + record_.candidate->version + " " + std::to_string(cand) + "%";
    if (has_stable) {
      line += std::string(has_candidate ? "," : "") + " " + record_.stable->version + " " +
              std::to_string(stab) + "%";
    }
    if (!admin_) line += " (no load balancer: recorded only)";
    say(line);
    return save();
  }

 private:
  void openAdmin() {
    admin_.reset();
    if (record_.traffic) {
      admin_ = std::make_unique<HaproxyAdmin>(record_.traffic->socket, kHaproxyTimeout);
    }
  }

  void warnIfFailed(const Status& s, const std::string& what) const {
    if (!s.ok()) say("haproxy: " + what + ": " + s.toString());
  }

  Status fill(Replica& r, bool set_address) {
    const std::string& backend = record_.traffic->backend;
    Status s = Status::Ok();
    if (set_address) s = admin_->setServerAddress(backend, r.slot, kLoopback, r.port);
    if (s.ok()) s = admin_->setWeight(backend, r.slot, r.weight);
    if (s.ok()) s = admin_->setServerState(backend, r.slot, ServerState::kReady);
    if (!s.ok()) {
      admin_->releaseServer(backend, r.slot).ignoreError();  // best effort; the error says why
      r.slot.clear();
      return s;
    }
    say("haproxy: " + backend + "/" + r.slot + " -> " + endpoint(r.port) + " weight " +
        std::to_string(r.weight));
    return Status::Ok();
  }

  // Frees the replica's slot, but only while it still points at the replica: after an HAProxy
  // restart or reload the slot may hold someone else by now.
  void releaseIfOurs(const Replica& r) {
    if (!admin_ || r.slot.empty()) return;
    const std::string& backend = record_.traffic->backend;
    std::lock_guard lock(slotMutex());
    auto servers = admin_->showServers(backend);
    if (!servers.ok()) {
      warnIfFailed(servers.status(), "show servers");
      return;
    }
    for (const ServerInfo& s : *servers) {
      if (s.name == r.slot && s.address == kLoopback && s.port == r.port) {
        warnIfFailed(admin_->releaseServer(backend, r.slot), "release " + r.slot);
      }
    }
  }

  // Slots other replicas on the same backend are recorded in, ours in memory and every other
  // service's on disk: after an HAProxy restart every slot looks free until re-attached.
  std::set<std::string> slotsRecordedElsewhere(const Replica& self) const {
    std::set<std::string> taken;
    auto add = [&](const ServiceRecord& rec, bool own) {
      if (!rec.traffic || !(*rec.traffic == *record_.traffic)) return;
      for (const auto* set : {&rec.stable, &rec.candidate}) {
        if (!*set) continue;
        for (const Replica& r : (*set)->replicas) {
          if (own && r.port == self.port) continue;
          if (!r.slot.empty()) taken.insert(r.slot);
        }
      }
    };
    add(record_, true);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(servicesDir(), ec)) {
      if (entry.path().extension() != ".json" || entry.path() == recordPath()) continue;
      auto other = readRecordFile(entry.path());
      if (other.ok() && other->has_value()) add(**other, false);
    }
    return taken;
  }

  std::string state_dir_;
  std::string service_;
  const std::atomic<bool>& cancel_;
  const LineSink& log_;
  const LaunchPolicy& launch_;  // how replicas start (--pass-env, --run-as)
  ServiceRecord record_;
  std::unique_ptr<HaproxyAdmin> admin_;
  bool aborted_ = false;
};

// ---------------------------------------------------------------------------------------------
// The steps

class StepRunner {
 public:
  StepRunner(ServiceOps& ops, const Spec& spec, const AlertSink& alerts)
      : ops_(ops), spec_(spec), alerts_(alerts) {}

  Status deploy(std::string* message) {
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

  Status shift(std::string* message) {
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

  Status analyze(std::string* message) {
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
    const auto started = Clock::now();

    for (int extension = 0;; ++extension) {
      if (Status s = health.watch(spec_.duration); !s.ok()) return s;
      // Each verdict covers everything since the step began, extensions included.
      const SetWindow cand = measure(candidate, cand_before, started, nullptr);
      const SetWindow base = measure(stable, stable_before, started, nullptr);
      ops_.say("window " + seconds(Clock::now() - started) + ": " +
               describe(candidate.version, cand) + "; " + describe(stable.version, base));
      raiseAlerts(candidate, cand, &base);
      const AnalysisResult result = agent::analyze(cand.stats, base.stats, spec_.metrics->config);
      std::string crossed;
      for (const Finding& f : result.findings) {
        ops_.say("analysis: " + f.message);
        if (f.crossed && f.rule != "min_requests") {
          crossed += (crossed.empty() ? "" : "; ") + f.message;
        }
      }
      switch (result.verdict) {
        case Verdict::kPass:
          *message = "analysis passed over " + seconds(Clock::now() - started) + ": " +
                     describe(candidate.version, cand) + " vs " + describe(stable.version, base);
          return Status::Ok();
        case Verdict::kFail:
          return Status::FailedPrecondition("analysis failed: " + crossed);
        case Verdict::kInconclusive: {
          std::string why;
          for (const Finding& f : result.findings) why += (why.empty() ? "" : "; ") + f.message;
          if (!spec_.metrics->wait_when_inconclusive) {
            return Status::FailedPrecondition("analysis inconclusive: " + why);
          }
          if (extension >= kMaxInconclusiveExtensions) {
            return Status::FailedPrecondition("analysis still inconclusive after " +
                                              seconds(Clock::now() - started) + ": " + why);
          }
          ops_.say("analysis inconclusive (" + why + "): watching another " +
                   seconds(spec_.duration));
          break;
        }
      }
    }
  }

  Status bake(std::string* message) {
    ops_.useTraffic(spec_.traffic);
    if (Status s = ops_.dropDead(); !s.ok()) return s;
    auto& rec = ops_.record();
    const ReplicaSet* watched = nullptr;
    if (rec.candidate && rec.candidate->version == spec_.version) watched = &*rec.candidate;
    if (!watched && rec.stable && rec.stable->version == spec_.version) watched = &*rec.stable;
    if (!watched) {
      return Status::FailedPrecondition("no replica of " + spec_.version + " to watch");
    }
    // The workflow's "intense monitoring" after 100%: twice as often as during the rollout.
    const Millis interval = std::max<Millis>(spec_.health.interval / 2, 1ms);
    if (!spec_.alerts) return healthOnly(*watched, interval, message);

    // With alerts, the watched set's metrics are also read in slices of the bake, each slice
    // checked against the alert thresholds (latency against the stable set, if one still runs).
    const ReplicaSet set = *watched;
    std::optional<ReplicaSet> stable;
    if (rec.stable && rec.stable->version != set.version) stable = *rec.stable;
    HealthWatch health(ops_, set, spec_.health, interval);
    const Clock::duration slice =
        std::clamp<Clock::duration>(spec_.duration / 4, kMinAlertSlice, kMaxAlertSlice);
    const auto end = Clock::now() + spec_.duration;
    SetReading before = readSet(ops_, set, spec_.health.timeout, scrapes());
    SetReading stable_before;
    if (stable) stable_before = readSet(ops_, *stable, spec_.health.timeout, scrapes());
    auto since = Clock::now();
    while (Clock::now() < end) {
      const auto left = end - Clock::now();
      if (Status s = health.watch(std::min<Clock::duration>(slice, left)); !s.ok()) return s;
      SetReading after;
      SetReading stable_after;
      const SetWindow w = measure(set, before, since, &after);
      if (stable) {
        const SetWindow base = measure(*stable, stable_before, since, &stable_after);
        raiseAlerts(set, w, &base);
      } else {
        raiseAlerts(set, w, nullptr);
      }
      ops_.say("bake " + describe(set.version, w));
      before = std::move(after);
      stable_before = std::move(stable_after);
      since = Clock::now();
    }
    *message = std::to_string(set.replicas.size()) + " replica(s) of " + set.version + " passed " +
               std::to_string(health.checks()) + " health checks over " + seconds(spec_.duration) +
               (alerted_.empty() ? "" : " (" + std::to_string(alerted_.size()) + " alert(s))");
    return Status::Ok();
  }

  // Whether metrics come from scraping the replicas (or from Prometheus).
  bool scrapes() const { return !spec_.metrics || !spec_.metrics->prometheus; }

  // The set's figures since `since`, from the readings taken then (`before`): /proc always,
  // request figures from a second scrape or from Prometheus. The new readings go to `after`.
  SetWindow measure(const ReplicaSet& set, const SetReading& before, Clock::time_point since,
                    SetReading* after) {
    SetReading now = readSet(ops_, set, spec_.health.timeout, scrapes());
    SetWindow w = windowOf(ops_, before, now);
    if (!scrapes()) {
      std::vector<int> ports;
      for (const Replica& r : set.replicas) ports.push_back(r.port);
      const Millis window = std::chrono::duration_cast<Millis>(Clock::now() - since);
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

  // Checks the plan's alert thresholds on one window of `set`; each rule is raised at most
  // once a step (an event and a webhook each time would page people every window).
  void raiseAlerts(const ReplicaSet& set, const SetWindow& w, const SetWindow* baseline) {
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

  Status finalize(std::string* message) {
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

  Status rollback(std::string* message) {
    ops_.useTraffic(spec_.traffic);
    if (Status s = ops_.dropDead(); !s.ok()) return s;
    auto& rec = ops_.record();
    // After (or during) a rolling update the way back is a rolling update too.
    if (rec.rolling) return rollBackRolling(message);
    const std::string previous =
        !spec_.previous_version.empty() ? spec_.previous_version : rec.previous_version;
    const bool stable_is_new = rec.stable && rec.stable->version == spec_.version;

    if (rec.candidate) {
      // A candidate of the previous version next to a stable new one is an earlier rollback's
      // half-way point: finish that one rather than undo it.
      if (rec.candidate->version != spec_.version && rec.candidate->version == previous &&
          (!rec.stable || stable_is_new)) {
        return restorePrevious(previous, message);
      }
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
    if (stable_is_new && !previous.empty() && previous != spec_.version) {
      if (!spec_.process) {
        return Status::InvalidArgument("bad spec: process is missing; it is needed to start " +
                                       previous + " again");
      }
      return restorePrevious(previous, message);
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

  // Replaces the running set with spec.process.replicas replicas of spec.version, a few at a
  // time within the strategy's bounds; see rollTo. After it the new set is the stable set.
  Status roll(std::string* message) {
    ops_.useTraffic(spec_.traffic);
    if (!spec_.deployment.empty()) ops_.record().deployment = spec_.deployment;
    if (Status s = ops_.dropDead(); !s.ok()) return s;
    auto& rec = ops_.record();
    if (rec.rolling && !rec.rolling->done) {
      // Rolling on to either of the two versions in the record finishes or reverses the roll;
      // a third one would need three sets.
      if (spec_.version != rec.rolling->to && spec_.version != rec.rolling->from) {
        return Status::FailedPrecondition(
            rollInProgress() + ": roll to " + rec.rolling->to +
            " again to finish it, or roll it back, before rolling to " + spec_.version);
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
      *message = spec_.version + " already runs " + std::to_string(wanted) +
                 " replica(s): nothing to roll";
      return Status::Ok();
    }
    *message = std::to_string(wanted) + " replica(s) of " + spec_.version + " serving after " +
               std::to_string(result.rounds) + " round(s) over " + seconds(result.took) +
               result.summary();
    return Status::Ok();
  }

 private:
  Status healthOnly(const ReplicaSet& set, Millis interval, std::string* message) {
    const ReplicaSet copy = set;
    HealthWatch health(ops_, copy, spec_.health, interval);
    if (Status s = health.watch(spec_.duration); !s.ok()) return s;
    *message = std::to_string(copy.replicas.size()) + " replica(s) of " + copy.version +
               " passed " + std::to_string(health.checks()) + " health checks over " +
               seconds(spec_.duration);
    return Status::Ok();
  }

  // The readiness deadline: generous, a start is not a health check.
  Clock::duration startTimeout() const {
    if (spec_.process->start_timeout) return *spec_.process->start_timeout;
    return std::max<Clock::duration>(spec_.health.timeout * spec_.health.failure_threshold,
                                     kMinStartTimeout);
  }

  // Makes the candidate set `replicas` healthy replicas of `version`, in the load balancer at
  // weight 0 (or at the weight it already had when reused). Live replicas of the same version
  // are kept; a candidate of another version is retired first.
  Status deployVersion(const std::string& version, std::vector<int>* ports) {
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

    std::set<int> avoid = ops_.recordedPorts();
    int next_port = spec_.process->port_min;
    while (static_cast<int>(rec.candidate->replicas.size()) < wanted) {
      if (!ops_.pause(0s)) return ops_.abort();
      int port = -1;
      for (; next_port <= spec_.process->port_max; ++next_port) {
        if (!avoid.count(next_port) && portFree(next_port)) {
          port = next_port++;
          break;
        }
      }
      if (port < 0) {
        return failDeploy(
            version,
            Status::Unavailable("no free port in " + std::to_string(spec_.process->port_min) + "-" +
                                std::to_string(spec_.process->port_max)));
      }
      avoid.insert(port);
      auto replica = ops_.start(spec_, version, port);
      if (!replica.ok()) return failDeploy(version, replica.status());
      rec.candidate->replicas.push_back(*replica);
      if (Status s = ops_.save(); !s.ok()) return s;
      ops_.say("started " + endpoint(port) + " (pid " + std::to_string(replica->pid) + ") for " +
               version);
    }

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

  // Polls every one of `replicas` until each has answered 200 once.
  Status waitReady(const std::string& version, const std::vector<Replica>& replicas) {
    const auto deadline = Clock::now() + startTimeout();
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
    auto next_answer_check = Clock::now();
    while (true) {
      const bool judge = Clock::now() >= next_answer_check;
      if (judge) next_answer_check = Clock::now() + spec_.health.interval;
      for (const Replica& r : replicas) {
        if (ready.count(r.port)) continue;
        if (!alive(r)) {
          return Status::Unavailable("replica " + endpoint(r.port) + " (pid " +
                                     std::to_string(r.pid) + ") of " + version +
                                     " exited before it became healthy; its log ends: " +
                                     lastLines(ops_.logPath(version, r.port), kLogTailLines));
        }
        const Probe p = probe(r.port, path, spec_.health.timeout);
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
      if (Clock::now() >= deadline) {
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

  // A deploy that cannot finish takes its replicas away again.
  Status failDeploy(const std::string& version, const Status& why) {
    auto& rec = ops_.record();
    if (rec.candidate && rec.candidate->version == version) {
      ops_.say("deploy of " + version + " failed: stopping its replicas");
      // A re-used candidate set may carry traffic: the stable set takes it back first.
      Status s = Status::Ok();
      if (rec.candidate->share > 0 && rec.stable) s = ops_.applyShares(0);
      if (s.ok()) s = ops_.retireAll(rec.candidate);
      if (!s.ok()) {
        return Status::IoError(why.message() +
                               "; and stopping the replicas failed: " + s.message());
      }
    }
    return why;
  }

  // The candidate set gets all the traffic, then the stable set is retired and the candidate
  // becomes the stable set.
  Status promoteCandidate(std::string* message) {
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

  // Rollback after finalize: the previous version comes back as a candidate, takes all the
  // traffic, and the new version is retired.
  Status restorePrevious(const std::string& previous, std::string* message) {
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

  std::string rollInProgress() const {
    const RollState& st = *ops_.record().rolling;
    return "a rolling update " + (st.from.empty() ? "" : "from " + st.from + " ") + "to " + st.to +
           " is in progress";
  }

  // Steps that move traffic by shares would break a rolling update's bounds.
  Status refuseMidRoll(const std::string& what) const {
    const auto& rolling = ops_.record().rolling;
    if (!rolling || rolling->done) return Status::Ok();
    return Status::FailedPrecondition(rollInProgress() + ": " + what + " has to wait until roll " +
                                      "finishes it or rollback undoes it");
  }

  // Which replicas run what, for failure messages.
  std::string running() const {
    const auto& rec = ops_.record();
    std::string out;
    for (const auto* set : {&rec.stable, &rec.candidate}) {
      if (!*set) continue;
      out += (out.empty() ? "" : " and ") + std::to_string((*set)->replicas.size()) +
             " replica(s) of " + (*set)->version;
    }
    return out.empty() ? "nothing" : out;
  }

  Status rollFailed(const std::string& target, int round, const Status& why) const {
    return Status::Unavailable(
        "rolling update to " + target + " stopped in round " + std::to_string(round) + ": " +
        why.message() + "; running now: " + running() + " (roll back, or roll again once fixed)");
  }

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
  Status rollTo(const std::string& target, int wanted, const RollingSpec& bounds, RollResult* out) {
    auto& rec = ops_.record();
    const auto started_at = Clock::now();
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

    const int floor = std::max(0, wanted - bounds.max_unavailable);
    const int ceiling = wanted + bounds.max_surge;
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
      const int to_start = std::min(wanted - count(grow), ceiling - count(grow) - count(shrink));
      if (to_start > 0) {
        if (!spec_.process) {
          return Status::InvalidArgument("bad spec: process is missing; it is needed to start " +
                                         target);
        }
        if (!*grow) *grow = ReplicaSet{target, 0, {}};
        std::set<int> avoid = ops_.recordedPorts();
        int next_port = spec_.process->port_min;
        for (int i = 0; i < to_start; ++i) {
          if (!ops_.pause(0s)) return ops_.abort();
          int port = -1;
          for (; next_port <= spec_.process->port_max; ++next_port) {
            if (!avoid.count(next_port) && portFree(next_port)) {
              port = next_port++;
              break;
            }
          }
          if (port < 0) {
            return rollFailed(
                target, round + 1,
                Status::Unavailable("no free port in " + std::to_string(spec_.process->port_min) +
                                    "-" + std::to_string(spec_.process->port_max)));
          }
          avoid.insert(port);
          auto replica = ops_.start(spec_, target, port);
          if (!replica.ok()) return rollFailed(target, round + 1, replica.status());
          (*grow)->replicas.push_back(*replica);
          if (Status s = ops_.save(); !s.ok()) return s;
          ops_.say("started " + endpoint(port) + " (pid " + std::to_string(replica->pid) +
                   ") for " + target);
          ++out->started;
        }
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
      const int to_stop = std::min(old_count, old_count + servingNew() - floor);
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
                 (from.empty() ? ""
                               : ", " + from + " " + std::to_string(old_left) + "/" +
                                     std::to_string(wanted)) +
                 " serving");
      }

      const bool complete =
          !*shrink && count(grow) == wanted &&
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
    out->took = Clock::now() - started_at;
    return Status::Ok();
  }

  // Rollback after or during a rolling update: a rolling update back to the previous version,
  // within the same bounds.
  Status rollBackRolling(std::string* message) {
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

  ServiceOps& ops_;
  const Spec& spec_;
  const AlertSink& alerts_;
  std::set<std::string> alerted_;  // rules already raised in this step
};

}  // namespace

ProcessDriver::ProcessDriver(std::string state_dir, std::string cluster, LaunchPolicy launch)
    : state_dir_(std::move(state_dir)), cluster_(std::move(cluster)), launch_(std::move(launch)) {}

StepReport ProcessDriver::run(Step step, const Spec& given, const std::atomic<bool>& cancel,
                              const LineSink& log, const AlertSink& alerts) {
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
    StepRunner runner(ops, *spec, alerts);
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

namespace {

// A process step on its own thread; the agent's loop collects what it says through this.
class ProcessRun : public StepRun {
 public:
  ProcessRun(ProcessDriver& driver, Step step, Spec spec, std::function<void()> wake)
      : wake_(std::move(wake)) {
    thread_ = std::thread([this, &driver, step, spec = std::move(spec)] {
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
      report_ = driver.run(step, spec, cancel_, sink, alerts);
      done_ = true;
      wake_();
    });
  }
  ~ProcessRun() override {
    cancel_ = true;
    if (thread_.joinable()) thread_.join();
  }

  void pollFds(std::vector<int>&) const override {}  // wakes the loop itself
  void collect(std::vector<std::string>& lines, std::vector<AlertReport>& alerts) override {
    std::lock_guard lock(mu_);
    for (auto& l : lines_) lines.push_back(std::move(l));
    for (auto& a : alerts_) alerts.push_back(std::move(a));
    lines_.clear();
    alerts_.clear();
  }
  void stop(Clock::time_point) override { cancel_ = true; }
  std::optional<StepEnd> poll(Clock::time_point) override {
    if (!done_) return std::nullopt;
    if (thread_.joinable()) thread_.join();
    return StepEnd{report_.outcome, report_.outcome == Outcome::SUCCEEDED ? 0 : 1, report_.message};
  }

 private:
  std::function<void()> wake_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::vector<std::string> lines_;   // guarded by mu_
  std::vector<AlertReport> alerts_;  // guarded by mu_
  StepReport report_;                // written before done_ is set
  std::thread thread_;
};

}  // namespace

common::StatusOr<std::unique_ptr<StepRun>> ProcessDriver::start(const StepCommand& command,
                                                                const std::function<void()>& wake) {
  const Step step = command.wire.getStep();
  // Read and checked here, while the message lives; a bad spec fails the step like any error.
  common::StatusOr<Spec> spec = command.wire.hasProcess()
                                    ? readSpec(step, command.wire.getProcess(), cluster_)
                                    : Status::InvalidArgument("bad spec: the command has none");
  if (spec.ok() && spec->deployment != command.key.deployment) {
    spec = Status::InvalidArgument("bad spec: it is for deployment \"" +
                                   common::loggable(spec->deployment, 80) + "\"");
  }
  if (!spec.ok()) {
    const std::string message = spec.status().message();
    return std::unique_ptr<StepRun>(std::make_unique<EndedRun>(
        StepEnd{Outcome::FAILED, 1, message},
        std::vector<std::string>{std::string(stepName(step)) + " failed: " + message}));
  }
  spec->env = command.env;
  spdlog::info("stage {} started ({} step of the process driver: {} {})", command.key.toString(),
               stepName(step), spec->service, spec->version);
  return std::unique_ptr<StepRun>(
      std::make_unique<ProcessRun>(*this, step, std::move(spec).value(), wake));
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
