// The agent's durable record of every stage it was asked to run, so that a
// repeated command is answered from the record instead of run again, and a
// restart neither forgets nor repeats.
//
// State directory layout:
//
//   <state-dir>/
//     agent.json                          {cluster, highest_epoch}
//     stages/<deployment>/<cluster>~<step>.<attempt>.json
//                                         {deployment, stage, attempt, state: started|finished,
//                                          outcome, exit_code, message, started_ms, finished_ms,
//                                          pgid, start_ticks, artifact}
//     artifacts/<deployment>/<cluster>~<step>.<attempt>/artifact
//                                         a build's $FLOTILLA_ARTIFACT_FILE (agent/artifact.hpp),
//                                         removed once read
//     logs/<deployment>/<cluster>~<step>.<attempt>.log   the step's output
//
// A record is written (temp file, fsync, rename, fsync dir) before the step
// starts and again when it ends. A "started" record found at start-up means
// the agent died while the step ran: its effect is unknown.
//
// Everything here is the agent's alone (records and logs hold plan text and step output):
// directories 0700, files 0600; open() tightens a dir left with looser modes, and says so.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/dir_lock.hpp"
#include "common/status.hpp"
#include "common/steps.hpp"

namespace flotilla::agent {

enum class RecordState { kStarted, kFinished };

using common::Outcome;
using common::outcomeName;

struct StageKey {
  StageKey() = default;
  StageKey(std::string deployment_id, std::string stage_id, uint32_t attempt_no,
           std::string nonce_text = "")
      : deployment(std::move(deployment_id)),
        stage(std::move(stage_id)),
        attempt(attempt_no),
        nonce(std::move(nonce_text)) {}
  std::string deployment;
  std::string stage;  // "<cluster>/<step>"
  uint32_t attempt = 0;
  // The coordinator's nonce for this stage (schema StageRef.nonce), echoed in every frame
  // about it. Not part of the identity: a repeated command is the same stage.
  std::string nonce;
  bool operator<(const StageKey& o) const {
    return std::tie(deployment, stage, attempt) < std::tie(o.deployment, o.stage, o.attempt);
  }
  std::string toString() const;
};

struct StageRecord {
  StageKey key;
  RecordState state = RecordState::kStarted;
  Outcome outcome = Outcome::UNKNOWN;
  int exit_code = 0;
  std::string message;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  // The step's process group and its leader's start time, so an agent that
  // died mid-step can stop what is left of it when it starts again.
  int pgid = 0;
  uint64_t start_ticks = 0;
  // A succeeded build's artifact digest (agent/artifact.hpp), re-sent with the result after a
  // restart; "" none.
  std::string artifact;
};

// Deployment ids and stage ids come from the network: only these shapes
// ever become file names.
bool isValidDeploymentId(const std::string& id);
bool isValidStageId(const std::string& id);

class StageStore {
 public:
  // Opens (creating) the state dir; refuses one that belongs to another cluster.
  static common::StatusOr<std::unique_ptr<StageStore>> open(const std::string& dir,
                                                            const std::string& cluster);

  std::optional<StageRecord> find(const StageKey& key) const;
  common::Status put(const StageRecord& record);
  // Every record, oldest first.
  std::vector<StageRecord> all() const;

  uint64_t highestEpoch() const { return highest_epoch_; }
  common::Status setHighestEpoch(uint64_t epoch);
  // Whether a registration with an enrollment token was accepted once (agent.json "enrolled").
  bool enrolled() const { return enrolled_; }
  common::Status markEnrolled();

  const std::string& dir() const { return dir_; }
  std::string logPath(const StageKey& key) const;  // creates its directory
  // Opens the stage's log for appending (created 0600, its directory 0700); -1 when it cannot.
  int openLog(const StageKey& key) const;

 private:
  explicit StageStore(std::string dir, std::string cluster)
      : dir_(std::move(dir)), cluster_(std::move(cluster)) {}
  common::Status load();
  common::Status loadFiles();
  common::Status writeAgentFile();
  std::string recordPath(const StageKey& key) const;

  std::string dir_;
  std::string cluster_;
  common::DirLock lock_;  // STATE_DIR/agent.lock: one agent per state dir
  uint64_t highest_epoch_ = 0;
  bool enrolled_ = false;
  std::map<StageKey, StageRecord> records_;
};

}  // namespace flotilla::agent
