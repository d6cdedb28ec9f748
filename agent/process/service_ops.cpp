// One service's replicas, record and load-balancer slots.
#include "agent/process/service_ops.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include "agent/process/health.hpp"
#include "agent/process/replica_process.hpp"
#include "common/strings.hpp"

namespace flotilla::agent {

using common::replaceAll;
using common::Status;
using common::StatusOr;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::mutex& namedMutex(const std::string& key) {
  static std::mutex registry_mu;
  static std::map<std::string, std::unique_ptr<std::mutex>> registry;
  std::lock_guard lock(registry_mu);
  auto& slot = registry[key];
  if (!slot) slot = std::make_unique<std::mutex>();
  return *slot;
}

// Choosing a free HAProxy slot and filling it must not interleave between services that share
// a backend.
std::mutex& slotMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

std::mutex& serviceMutex(const std::string& state_dir, const std::string& service) {
  return namedMutex("service:" + state_dir + "/" + service);
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

std::vector<Probe> ServiceOps::probe(const std::vector<int>& ports, const std::string& path,
                                     std::chrono::milliseconds timeout) {
  return probeAll(ports, path, timeout);
}

void ServiceOps::say(const std::string& line) const {
  if (log_) log_(line);
}

fs::path ServiceOps::logPath(const std::string& version, int port) const {
  return servicesDir() / (service_ + "-" + version + "-" + std::to_string(port) + ".log");
}

Status ServiceOps::load() {
  auto rec = readRecordFile(recordPath());
  if (!rec.ok()) return rec.status();
  record_ = rec->value_or(ServiceRecord{});
  record_.service = service_;
  openAdmin();
  return Status::Ok();
}

Status ServiceOps::save() {
  std::error_code ec;
  fs::create_directories(servicesDir(), ec);
  if (ec) return Status::IoError("create " + servicesDir().string() + ": " + ec.message());
  return writeRecordFile(recordPath(), record_);
}

void ServiceOps::useTraffic(const std::optional<TrafficSpec>& traffic) {
  if (!traffic) return;
  if (record_.traffic && !(*record_.traffic == *traffic)) {
    say("traffic moves from " + record_.traffic->backend + " at " + record_.traffic->socket +
        " to " + traffic->backend + " at " + traffic->socket);
  }
  record_.traffic = traffic;
  openAdmin();
}

bool ServiceOps::pause(Clock::duration d) { return sleepUnlessCancelled(d, cancel_, kCancelSlice); }

Status ServiceOps::abort() {
  aborted_ = true;
  return Status::FailedPrecondition("cancelled");
}

std::set<int> ServiceOps::recordedPorts() const {
  std::set<int> ports;
  for (const auto* set : {&record_.stable, &record_.candidate}) {
    if (!*set) continue;
    for (const Replica& r : (*set)->replicas) ports.insert(r.port);
  }
  return ports;
}

Status ServiceOps::dropDead() {
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

StatusOr<Replica> ServiceOps::start(const Spec& spec, const std::string& version, int port) {
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
    return Status::IoError("replica of " + version + " on " + endpoint(port) +
                           " exited at once; its log ends: " + lastLines(log_path, kLogTailLines));
  }
  Replica r;
  r.pid = pid;
  r.start_ticks = *ticks;
  r.port = port;
  return r;
}

Status ServiceOps::stopProcesses(const std::vector<Replica>& reps, const std::string& version) {
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

Status ServiceOps::retire(std::optional<ReplicaSet>& set, const std::set<int>& ports) {
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

Status ServiceOps::retireAll(std::optional<ReplicaSet>& set) {
  if (!set) return Status::Ok();
  std::set<int> ports;
  for (const Replica& r : set->replicas) ports.insert(r.port);
  return retire(set, ports);
}

Status ServiceOps::attach(Replica& r) {
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

Status ServiceOps::attachAll() {
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

Status ServiceOps::applyShares(int candidate_share) {
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

void ServiceOps::openAdmin() {
  admin_.reset();
  if (record_.traffic) {
    admin_ = traffic_(*record_.traffic);
  }
}

void ServiceOps::warnIfFailed(const Status& s, const std::string& what) const {
  if (!s.ok()) say("haproxy: " + what + ": " + s.toString());
}

Status ServiceOps::fill(Replica& r, bool set_address) {
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

void ServiceOps::releaseIfOurs(const Replica& r) {
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

std::set<std::string> ServiceOps::slotsRecordedElsewhere(const Replica& self) const {
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

}  // namespace flotilla::agent
