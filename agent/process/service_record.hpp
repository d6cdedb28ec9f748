// A service's record in the agent's state dir: which replicas of which version run, in which
// HAProxy slots, and where a rolling update stands. Written after every change (durably, 0600),
// read back by recover(), a retried step and a rollback.
//
//   <state-dir>/services/<service>.json
//     {"service", "deployment", "previous_version",
//      "traffic": {"haproxy": {"socket", "backend"}} or null,
//      "stable": {"version", "share", "replicas": [{"pid", "start_ticks", "port", "slot",
//                 "weight"}]} or null,
//      "candidate": {...} or null,
//      "rolling": {"from", "to", "replicas", "max_unavailable", "max_surge", "weight", "done"}
//                 or null}
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/process/spec.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

struct Replica {
  pid_t pid = 0;
  uint64_t start_ticks = 0;
  int port = 0;
  std::string slot;  // HAProxy server name, empty when not attached
  int weight = 0;    // the HAProxy weight last set
};

struct ReplicaSet {
  std::string version;
  int share = 0;  // percent of the traffic last given to this set
  std::vector<Replica> replicas;
};

// A rolling update in the record. While it is under way (not done) the stable and the
// candidate set hold the two versions side by side, each replica in its own set; once done it
// stays, so a rollback knows to go back the same way. A deploy clears it.
struct RollState {
  std::string from;  // the version being replaced; empty when nothing ran before
  std::string to;
  int replicas = 0;
  int max_unavailable = 1;
  int max_surge = 1;
  int weight = 0;  // the HAProxy weight of every serving replica, old and new alike
  bool done = false;
};

struct ServiceRecord {
  std::string service;
  std::string deployment;
  std::string previous_version;  // what the stable set replaced at the last finalize or roll
  std::optional<TrafficSpec> traffic;
  std::optional<ReplicaSet> stable;
  std::optional<ReplicaSet> candidate;
  std::optional<RollState> rolling;
};

nlohmann::json toJson(const ServiceRecord& rec);
// Our own file, but it survives crashes and hands: a bad one is Corruption, never a crash.
common::StatusOr<ServiceRecord> recordFromJson(const nlohmann::json& j);
// Nothing when the file does not exist.
common::StatusOr<std::optional<ServiceRecord>> readRecordFile(const std::filesystem::path& path);
common::Status writeRecordFile(const std::filesystem::path& path, const ServiceRecord& rec);

}  // namespace flotilla::agent
