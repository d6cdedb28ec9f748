// The engine: owns the live deployments and the agent registry, turns agent
// messages, operator actions and the passing of time into durable
// transitions, then into commands for agents. Runs on one thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/codec.hpp"
#include "common/plan.hpp"
#include "common/status.hpp"
#include "common/time_format.hpp"
#include "coordinator/actor.hpp"
#include "coordinator/agent_gate.hpp"
#include "coordinator/audit.hpp"
#include "coordinator/deployment.hpp"
#include "coordinator/freeze.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/outbox.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/stage_nonce.hpp"
#include "coordinator/store.hpp"
#include "coordinator/trust.hpp"

namespace flotilla::coordinator {

struct EngineOptions {
  std::chrono::milliseconds agent_lost_after{15000};
  // The heartbeat interval asked of agents: at least this, longer when the fleet would send more
  // than `max_heartbeats_per_second` (0: no cap) at it, up to a third of agent_lost_after.
  std::chrono::milliseconds heartbeat_interval{1000};
  // --insecure: no CURVE keys; a register's claimed cluster is believed (loopback experiments).
  bool insecure_agents = false;
  int max_heartbeats_per_second = 2000;
};

enum class Action {
  kApprove,
  kRollback,
  kPause,
  kResume,
  kCancel,
  kPromote,
  kRetry,
  kNote,
  kWatchEnd,
};

// How a submission meets a deployment of its service already in flight (coordinator/
// deployment.hpp: one deployment per service at a time).
struct SubmitOptions {
  bool queue = true;       // false: refuse (FailedPrecondition) instead of queueing behind it
  bool supersede = false;  // stop and roll back the ones in flight, then start
  // With supersede: whether the submitter may roll back that deployment (the HTTP layer's
  // environment rule); any refusal refuses the submission, nothing stored. Unset: allowed.
  std::function<common::Status(const Deployment&)> may_supersede;
  // The release as the submitter describes it, checked by the caller (Deployment::changes,
  // release_notes_url); "" for none.
  std::string changes{};
  std::string release_notes_url{};
  // The policy trigger that started it (`POST /api/v1/triggers/{name}`): event
  // deployment.triggered names it. "" for a submission.
  std::string trigger{};
};

// Called after every durable change, from the engine thread (wakes SSE streams).
using CommitListener = std::function<void(const std::string& deployment_id)>;

// An alert an agent raised, once it is recorded as an event, for the plan's webhook.
struct AlertNotice {
  std::string deployment_id;
  std::string service;
  std::string version;  // the version measured
  std::string cluster;
  std::string wave;
  std::string stage;
  std::string rule;
  double value = 0;
  double threshold = 0;
  double baseline = 0;
  std::string message;
  int64_t at_ms = 0;      // wall clock, Unix ms
  common::Alerts config;  // the plan's alerts: webhook, timeout, attempts
};
// Called from the engine thread: must not block (the webhook sender queues).
using AlertListener = std::function<void(const AlertNotice& alert)>;

class Engine {
 public:
  Engine(Store& store, Metrics& metrics, Outbox& outbox, const common::Clock& clock,
         EngineOptions options);

  // Takes a new epoch, loads agents and deployments, and resumes every unfinished one.
  common::Status start();
  uint64_t epoch() const { return epoch_; }

  // One decoded frame from `peer`. Only a register is handled before the connection is bound
  // to a cluster (AgentGate). Stage results are queued per deployment and applied by
  // endTurn() (or before any other change to their deployment), so that a fan-out's results
  // cost one transition per deployment per turn.
  void onMessage(const Peer& peer, schema::Envelope::Reader envelope);
  // ZAP: may a connection with this CURVE key complete its handshake?
  bool admitKey(const std::string& key, const std::string& address) {
    return gate_.admitKey(key, address);
  }
  void setAuditLog(AuditLog* audit) { gate_.setAuditLog(audit); }

  // Agent trust (admin actions). An enrollment token binds the first key that presents it to
  // `cluster`; revoke removes the key and closes its connection; remove forgets a cluster
  // that is gone (refused while an unfinished deployment includes it).
  common::StatusOr<Enrollment> createEnrollment(const std::string& cluster,
                                                std::chrono::milliseconds ttl, const Actor& actor);
  common::Status revokeAgent(const std::string& cluster, const Actor& actor);
  common::Status removeAgent(const std::string& cluster, const Actor& actor);
  // Applies the stage results queued since the last call. The loop calls it after each batch
  // of frames; tick() calls it too.
  void endTurn();
  // Applies queued results, expires silent agents (every 100 ms) and retries anything that
  // could not move on (every second).
  void tick();

  // Operator actions, with who asked (the HTTP layer checked they may). submit returns the new
  // deployment id.
  // A submission for a service with a conflicting deployment in flight is queued behind it
  // (state queued), refused, or supersedes it, as `options` say.
  common::StatusOr<std::string> submit(common::Plan plan, const Actor& actor,
                                       const SubmitOptions& options = {});
  // `argument`: the wave (approve, promote; empty: the current one), the cluster (retry), the
  // reason (rollback, pause, resume, cancel, watch-end), or the text (note). `reason`: promote's
  // and retry's. A finished deployment is loaded from the store for the change (a rollback after
  // success, a note) and forgotten again by tick().
  common::Status act(const std::string& id, Action action, const std::string& argument,
                     const Actor& actor, const std::string& reason = {});

  // A check CI reports about a release (service + version): validated, stored, and every
  // deployment of that release held in blocked_by_checks is looked at again. Returns the
  // release as it now stands.
  common::StatusOr<ReleaseRecord> reportCheck(const std::string& service,
                                              const std::string& version, CheckReport report);
  // Incident freezes (coordinator/engine_freeze.cpp; the HTTP layer checked the caller is an
  // admin and the input). freeze() stores a new freeze (AlreadyExists when one of the same
  // scope is active) and holds every deployment it covers at its next step boundary;
  // unfreeze() lifts the active one of `environment` ("" = the fleet-wide one; NotFound when
  // there is none) and lets them go on. addFreezeNote() appends a post-mortem note to any
  // freeze, active or lifted (NotFound, or FailedPrecondition past kMaxFreezeNotes).
  common::StatusOr<Freeze> freeze(const std::string& reason, const std::string& environment,
                                  const Actor& actor);
  common::StatusOr<Freeze> unfreeze(const std::string& environment, const Actor& actor);
  common::StatusOr<Freeze> addFreezeNote(uint64_t seq, const std::string& text, const Actor& actor);

  void setCommitListener(CommitListener listener) { listener_ = std::move(listener); }
  void setAlertListener(AlertListener listener) { alert_listener_ = std::move(listener); }

  // Thread-safe copy of the registry for the HTTP API.
  std::vector<AgentInfo> agentsSnapshot() const;
  // The same, each agent judged against the clock now (AgentView): what `GET /api/v1/agents`
  // shows, so that an agent gone silent reads unknown, then lost, even between engine passes.
  std::vector<AgentView> agentsNow() const;

 private:
  // Message handlers: one per message type an agent may send.
  void handleRegister(const Peer& peer, schema::Register::Reader msg);
  // The others run only for a connection bound to `cluster`.
  void handleHeartbeat(const std::string& cluster, schema::Heartbeat::Reader msg);
  // What a registering agent is asked for (EngineOptions::heartbeat_interval).
  std::chrono::milliseconds heartbeatInterval() const;
  void handleProgress(const std::string& cluster, schema::StageProgress::Reader msg);
  void handleResult(const std::string& cluster, schema::StageResult::Reader msg);
  void handleAlert(const std::string& cluster, schema::Alert::Reader msg);
  void handleFigures(const std::string& cluster, schema::Figures::Reader msg);

  // Applies `fn` to a copy of the deployment; commits the copy with its
  // events (synced) and only then installs it and sends its commands. Results queued for the
  // deployment are applied first, in a transition of their own.
  using Mutation = std::function<common::Status(Deployment&, const Context&, Effects&)>;
  common::Status mutate(const std::string& id, const Mutation& fn);
  common::Status transition(const std::string& id, const Mutation& fn);
  void applyQueuedResults(const std::string& id);
  void deliver(const Deployment& d, const Effects& fx);
  void sendCommand(const Deployment& d, const Dispatch& dispatch);
  void sendAbort(const std::string& cluster, const std::string& deployment_id,
                 const std::string& stage_id, uint32_t attempt, const std::string& reason);
  void sendReregister(const std::string& connection);
  // After an agent (re)registers: answer what it finished, resend what it never got.
  void reconcileAgent(const std::string& cluster, const std::map<std::string, bool>& held_running);
  // Versions live per cluster for a service: read from the store once, then
  // kept in step with every commit, so the message loop does not scan RocksDB.
  common::StatusOr<const std::map<std::string, std::string>*> releasesFor(
      const std::string& service);
  common::Status commitAndRemember(Deployment& d, const Effects& fx);
  // What CI reported about a release (absent: an empty record), read from the store once and
  // then kept in step with reportCheck(). Only for plans whose waves require checks.
  common::StatusOr<const ReleaseRecord*> releaseRecord(const common::Plan& plan);
  void publishGauges();
  // Loads the freezes (start()); after a freeze or an unfreeze, moves every deployment in
  // memory (advance() freezes or lets go), and republishes the gauges.
  common::Status loadFreezes();
  void applyFreezes();
  common::Status putFreeze(const Freeze& f);
  // Starts every queued deployment that nothing is ahead of any more, and updates what the
  // others wait for. Runs after a deployment finishes, at start and on every retry.
  void releaseQueue();
  // The unfinished deployments in memory (every unfinished one is).
  std::vector<const Deployment*> unfinished() const;
  // Marks the agents' snapshot stale; tick() republishes it at most every 100 ms, so 10,000
  // agents registering cost a few copies of the registry, not one each.
  void publishAgents();
  void publishAgentsNow();

  Store& store_;
  Metrics& metrics_;
  Outbox& outbox_;
  const common::Clock& clock_;
  EngineOptions options_;
  uint64_t epoch_ = 0;
  Registry registry_;
  Trust trust_;
  AgentGate gate_;
  StageNonce nonces_{""};  // keyed by start() with the store's secret
  std::map<std::string, std::map<std::string, std::string>> releases_;  // service -> cluster
  std::map<std::string, ReleaseRecord> release_records_;                // by releaseKey()
  std::map<std::string, Deployment> deployments_;  // unfinished ones, plus finished ones whose
                                                   // stages may still answer
  // Every freeze record, active and lifted, oldest first (a handful: one per incident).
  std::vector<Freeze> freezes_;
  CommitListener listener_;
  AlertListener alert_listener_;
  // Stage results received and not applied yet, per deployment, in arrival order.
  std::map<std::string, std::vector<StageResult>> queued_results_;
  bool agents_dirty_ = false;
  bool releasing_queue_ = false;  // releaseQueue() is running (its transitions call it again)
  // Only last-seen times moved (heartbeats): republished at a slower pace than state changes.
  bool agents_seen_dirty_ = false;
  common::SteadyTime last_retry_{};
  std::optional<common::SteadyTime> last_expire_;
  std::optional<common::SteadyTime> last_agents_publish_;

  mutable std::mutex agents_mu_;
  std::vector<AgentInfo> agents_snapshot_;
};

}  // namespace flotilla::coordinator
