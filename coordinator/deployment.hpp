// One deployment: its stored model and the state machine that drives it.
//
// The machine is pure: every operation takes the deployment, the registry
// and the time, changes the deployment and returns the Effects (events to
// record, commands to send). The engine persists the changed deployment and
// its events in one synced batch, and only then sends the commands.
//
// Implemented in coordinator/deployment*.cpp, one file per part of the machine
// (coordinator/deployment_internal.hpp has the map).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/analysis_figures.hpp"
#include "common/plan.hpp"
#include "common/rules.hpp"
#include "common/status.hpp"
#include "common/steps.hpp"
#include "common/time_format.hpp"
#include "coordinator/actor.hpp"
#include "coordinator/process_spec.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/releases.hpp"

namespace flotilla::coordinator {

enum class DeploymentState {
  kPending,           // accepted and stored, not started yet
  kQueued,            // waits for another deployment of its service (waits_for) to finish
  kRunning,           // dispatching the current wave
  kAwaitingApproval,  // the current wave needs `flotilla approve`
  kBlockedByChecks,   // the current wave's environment requires checks the release lacks
  kPaused,            // no new stage starts; stages in flight finish
  kFrozen,            // an incident freeze covers it (coordinator/freeze.hpp): no new stage
                      // starts, stages in flight finish, rollbacks still run; resume_to
                      // when the freeze is lifted
  kRollingBack,       // taking the new version out, newest wave first
  kSucceeded,         // final: every wave done (and the post-deploy watch, when it has one)
  kRolledBack,        // final: every cluster reached is back on the previous version
  kFailed,            // final: a rollback step failed; a human must look
  kCancelled,         // final: stopped on request; every cluster it reached was rolled back
                      // (records older than safe cancel: nothing was rolled back)
  kWatching,          // every wave done; the post-deploy watch (Plan::watch) runs tier after
                      // tier on every cluster reached, the automatic rollback still armed
};

// How many DeploymentState values there are (the stored form's decoder walks them).
inline constexpr int kDeploymentStateCount = static_cast<int>(DeploymentState::kWatching) + 1;

enum class WaveState {
  kPending,           // not reached yet
  kAwaitingApproval,  // reached, waiting for approval
  kRunning,           // clusters are being deployed
  kSucceeded,         // every cluster verified
  kRollingBack,       // its clusters are running rollback
  kRolledBack,        // its clusters are back on the previous version
  kFailed,            // a rollback in this wave failed
  kSkipped,           // never reached (the deployment stopped before it)
};

enum class ClusterState {
  kPending,         // nothing sent yet
  kBuilding,        // build in flight
  kApplying,        // apply in flight
  kVerifying,       // verify in flight
  kDeploying,       // process driver: new replicas starting, no traffic yet
  kShifting,        // process driver: traffic moving to the new replicas
  kAnalyzing,       // process driver: new replicas compared with the stable ones
  kBaking,          // process driver: watched at 100% before the wave is done
  kFinalizing,      // process driver: previous replicas retiring
  kSucceeded,       // verified, on the new version
  kFailed,          // a step failed, timed out or its agent was lost
  kAborted,         // a step was stopped because the deployment stopped
  kRollingBack,     // rollback in flight
  kRolledBack,      // rollback succeeded
  kRollbackFailed,  // rollback failed, timed out, or the agent was lost
  kWatching,        // a tier of the post-deploy watch in flight (between tiers: succeeded)
};

// How many ClusterState values there are (the stored form's decoder walks them).
inline constexpr int kClusterStateCount = static_cast<int>(ClusterState::kWatching) + 1;

using common::Outcome;
using common::outcomeName;
using common::Step;
using common::stepName;

// One forward step of a cluster's sequence, as the plan makes it.
struct StepSpec {
  Step kind = Step::APPLY;
  uint32_t weight = 100;                  // shift: percent of traffic on the new version
  std::chrono::milliseconds duration{0};  // analyze, bake
  std::string check = {};                 // verify from a checklist: the check's name
};

// The forward steps every cluster of wave `wave` runs, in order:
// script: build, apply, verify (one per check of a checklist; empty ones left out);
// process: deploy, then per strategy step shift (+ analyze below 100%), bake, finalize;
// rolling: roll, bake.
std::vector<StepSpec> forwardSteps(const common::Plan& plan, size_t wave);

const char* deploymentStateName(DeploymentState s);
const char* waveStateName(WaveState s);
const char* clusterStateName(ClusterState s);
bool isFinal(DeploymentState s);

// One check of a verification checklist on one cluster (common::VerifyCheck): sent, or how it
// ended. A cluster keeps one per check it ran, in the order they ran (at most
// common::kMaxVerifyChecks); a retry replaces the check's.
struct CheckRun {
  std::string name;
  bool running = true;                   // sent, no result yet
  Outcome outcome = Outcome::SUCCEEDED;  // once it ended
  uint64_t duration_ms = 0;              // as the agent measured it
  int exit_code = 0;
  std::string message = {};  // the agent's, at most kMaxCheckMessageBytes

  bool operator==(const CheckRun&) const = default;
};
inline constexpr size_t kMaxCheckMessageBytes = 200;

// "passed", "failed", "timed_out", "aborted", "unknown", "refused"; "running" while sent.
std::string checkRunStateName(const CheckRun& run);

struct ClusterProgress {
  std::string name;
  ClusterState state = ClusterState::kPending;
  std::optional<Step> step;  // the step in flight, or the last one sent
  int step_index = -1;       // its place in forwardSteps() (-1: none yet); watch: the tier
  uint32_t attempt = 0;      // of the step in flight / last sent
  bool in_flight = false;    // a command is out and no result has come back
  bool abort_sent = false;
  bool applied = false;          // apply was sent: the cluster may run the new version
  bool agent_lost = false;       // its agent fell silent with a step out; waited for
  bool rollback_lost = false;    // its rollback failed because its agent was lost: retried
                                 // as soon as the agent is back
  std::string previous_version;  // what it ran before this deployment ("" = nothing known)
  // The analyze or bake in flight was promoted by this operator (`flotilla promote`), written
  // before its abort goes out: its result, aborted or succeeded, counts as passed. Cleared when
  // the result is recorded.
  std::string promoted_by;
  // Its failed step is held (plan on_step_failure: hold): the deployment is paused until
  // `flotilla retry` runs the step again (a new attempt) or `flotilla rollback`.
  bool held = false;
  std::string message;
  std::optional<int> exit_code;
  // The last analysis window's (or bake slice's) figures its agent reported, kept after the
  // step moved on, and the stage they came from ("<stage id>#<attempt>"): a stage's windows
  // only go forward.
  std::optional<common::AnalysisFigures> figures;
  std::string figures_stage;
  // The checklist check the step in flight (or last sent) runs: its name for a verify step of a
  // checklist, "" for any other step (and for a single verify command).
  std::string check;
  // What the checklist's checks did on this cluster so far.
  std::vector<CheckRun> checks;

  // "<cluster>/<step>" for steps that run once, "<cluster>/<step>-<index>" for steps a
  // sequence repeats (shift, analyze), "<cluster>/verify-<check>" for a checklist's checks.
  std::string stageId() const;

  // The store rewrites a cluster's record only when it differs from the one written.
  bool operator==(const ClusterProgress&) const = default;
};

// One approver's yes to one wave of one deployment. It counts towards that wave only, while it
// is younger than the wave's approval_expires and names the plan the deployment holds.
struct Approval {
  std::string by;           // the approver's token name
  std::string role;         // their role when they approved
  int64_t at_ms = 0;        // wall clock, Unix ms
  std::string plan_sha256;  // Deployment::plan_sha256 when they approved

  bool operator==(const Approval&) const = default;
};

struct WaveProgress {
  std::string name;
  WaveState state = WaveState::kPending;
  bool approved = false;  // enough live approvals came in (or an older coordinator said so)
  // Approvals given and not expired, oldest first; each approver at most once. Expired ones are
  // dropped with a wave.approval_expired event when found.
  std::vector<Approval> approvals;
  bool resolved = false;  // clusters were chosen (at wave start, from names or the selector)
  std::vector<ClusterProgress> clusters;
};

struct Failure {
  std::string cluster;
  std::string step;
  std::string message;
};

// A lesson learned, added to a deployment at any time, even long after it ended (`flotilla note`).
struct DeploymentNote {
  std::string text;  // checked (common::checkFreeText), at most common::kMaxNoteBytes
  std::string by;    // the actor's name
  int64_t at_ms = 0;

  bool operator==(const DeploymentNote&) const = default;
};
// Bounds of what a submission and notes add to a deployment's header (rewritten with every
// change of a running deployment, so kept small; notes mostly come after it ended).
// (common/rules.hpp: kMaxChangesBytes, kMaxNoteBytes, which the CLI checks too).
inline constexpr size_t kMaxNotes = 100;

struct Deployment {
  std::string id;
  common::Plan plan;
  std::string submitted_by;  // the actor's name; "" in records older than actors
  // SHA-256 of common::planToJson(plan), fixed at submission (computed on load for records
  // older than it): what an approval says was approved.
  std::string plan_sha256;
  DeploymentState state = DeploymentState::kPending;
  // Where `resume` (paused) or the freeze's lifting (frozen) returns to. A frozen deployment
  // that is paused keeps it, so that it goes back to frozen and from there to where it was.
  DeploymentState resume_to = DeploymentState::kRunning;
  size_t wave_index = 0;
  std::string reason;              // why it is in its state (rollback cause, ...)
  std::string rollback_cause;      // what started the rollback in progress or done
  std::optional<Failure> failure;  // the first forward failure
  std::vector<std::string> rollback_failed;
  bool rollback_whole_fleet = true;  // scope of the rollback in progress
  bool paused_for_lost = false;      // paused by on_agent_lost: wait; resumes by itself
  bool cancelling = false;  // the rollback in progress was started by cancel: ends cancelled
  std::string waits_for;    // queued: the deployment of the same service it waits for
  // The release as its submitter described it (`submit --changes FILE --notes URL`): the
  // changelog text and a link to the release notes; "" when none was given.
  std::string changes;
  std::string release_notes_url;
  std::vector<DeploymentNote> notes;  // oldest first, at most kMaxNotes
  // The artifact digest its build steps reported last ("" none): what it deploys, recorded on
  // the release (coordinator/releases.hpp) with each environment its waves succeed in.
  std::string artifact;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  // When it last entered a final state (the engine sets it; a rollback after success ends it
  // again). 0: not final, or a record older than the field (its updated_ms is the best guess).
  int64_t finished_ms = 0;
  uint64_t last_event_seq = 0;
  std::vector<WaveProgress> waves;
  // The post-deploy watch (plan.watch): the tier running (-1: not started), since when (wall
  // clock, Unix ms), and who ended it early ("by alice: <reason>"; its watch stages are being
  // aborted, and their results count as passed).
  int watch_tier = -1;
  int64_t watch_tier_started_ms = 0;
  std::string watch_ended_by;

  // By name, through an index (a deployment may hold 10,000 clusters and every result looks
  // one up). `wave`, when given, receives the index of the cluster's wave.
  ClusterProgress* findCluster(const std::string& name, size_t* wave = nullptr);
  const ClusterProgress* findCluster(const std::string& name, size_t* wave = nullptr) const;

 private:
  // name -> (wave, position). Clusters are only ever appended to a wave, so copies of a
  // deployment share one index until a wave adds clusters (the count no longer matches).
  using ClusterIndex = std::unordered_map<std::string, std::pair<uint32_t, uint32_t>>;
  const ClusterIndex& clusterIndex() const;
  mutable std::shared_ptr<const ClusterIndex> index_;
  mutable size_t indexed_clusters_ = 0;
};

// What an operation asks the engine to do once the change is durable.
struct Event {
  std::string type;
  std::string wave;
  std::string cluster;
  std::string step;
  std::string message;
  // Structured figures for programs (the dashboard's charts): a JSON object's text, at most
  // kMaxEventDataBytes; "" for none. cluster.analysis and cluster.verify_check events carry it.
  std::string data = {};
};
inline constexpr size_t kMaxEventDataBytes = 4096;

struct Dispatch {
  std::string cluster;
  std::string stage_id;
  uint32_t attempt = 0;
  Step step = Step::BUILD;
  std::string command;
  uint64_t timeout_ms = 0;
  std::map<std::string, std::string> env;
  // Process driver: the step's parameters; the spec is built from the plan as the command goes
  // out (coordinator/process_spec.hpp).
  std::optional<ProcessStepParams> process;
  // Script driver, analyze and bake: what the agent watches (health URL, Prometheus, alerts),
  // sent as the command's `watch`.
  std::optional<ProcessStepParams> watch;
};

struct AbortRequest {
  std::string cluster;
  std::string stage_id;
  uint32_t attempt = 0;
  std::string reason;
};

// The version a cluster runs for a service, changed when a cluster verifies
// or rolls back. Empty version = nothing known (erase).
struct ReleaseChange {
  std::string service;
  std::string cluster;
  std::string version;
};

struct Effects {
  std::vector<Event> events;
  std::vector<Dispatch> dispatches;
  std::vector<AbortRequest> aborts;
  std::vector<ReleaseChange> releases;
  // The release record as this change leaves it (an artifact built, an environment succeeded
  // in): written by the engine with the deployment, in the same batch. Unset: unchanged.
  std::optional<ReleaseRecord> release;
  bool changed = false;  // the deployment record must be written
  size_t results = 0;    // stage results recorded (several when a turn's results are batched)
};

struct Freeze;

// What the machine may look up about the fleet.
struct Context {
  const Registry& registry;
  common::SystemTime now;
  // The version each cluster runs for this service before the deployment reaches it.
  const std::map<std::string, std::string>& current_versions;
  // What CI reported about this deployment's service + version (coordinator/releases.hpp);
  // null when nothing was. Judged against a wave's checks before it starts.
  const ReleaseRecord* release = nullptr;
  // The freezes (coordinator/freeze.hpp); an active one that covers the deployment holds it
  // at its next step boundary (state frozen). Null: none.
  const std::vector<Freeze>* freezes = nullptr;
};

struct StageResult {
  std::string cluster;
  std::string stage_id;
  uint32_t attempt = 0;
  Outcome outcome = Outcome::FAILED;
  int exit_code = 0;
  std::string message;
  uint64_t duration_ms = 0;  // how long the stage ran, as its agent measured it
  // A succeeded build's artifact digest (common::isArtifactDigest; a malformed one never gets
  // here); "" none.
  std::string artifact = {};
};

// A new deployment, not started, submitted by `by`. Emits deployment.submitted.
Deployment newDeployment(std::string id, common::Plan plan, const Actor& by, common::SystemTime now,
                         Effects& fx);

// Moves the deployment forward as far as it can go now (start waves,
// dispatch steps, finish rollbacks). Safe to call at any time, any number of times.
void advance(Deployment& d, const Context& ctx, Effects& fx);

// A stage result from an agent. NotFound when it matches nothing in flight
// (a duplicate or a stale answer): the caller counts and drops it.
common::Status applyResult(Deployment& d, const StageResult& r, const Context& ctx, Effects& fx);

// Several results for one deployment (what one turn of the engine's loop received), each
// recorded as applyResult records it, then one advance(): a fan-out to N clusters costs
// O(N) per turn rather than per result. Aborts for stages whose result is among them are not
// sent. Returns how many matched nothing in flight (duplicates, stale answers).
size_t applyResults(Deployment& d, const std::vector<StageResult>& results, const Context& ctx,
                    Effects& fx);

// The cluster's agent went silent past the deadline. Up to max_unavailable_clusters (of its
// wave, and of the fleet) lost clusters are waited for: their step stays out and its result
// comes when the agent is back. One more, and on_agent_lost decides: rollback rolls the fleet
// back; wait pauses the deployment until enough are back. A lost cluster cannot roll back: it
// is rollback_failed until its agent returns.
void agentLost(Deployment& d, const std::string& cluster, const Context& ctx, Effects& fx);

// The cluster's agent registered again after it was lost: it converges to the fleet's decision
// before anything else. A rollback that failed because it was lost runs now; a deployment
// paused for lost clusters resumes once enough are back; a waited-for step goes on (the
// engine then answers its held result or resends it).
void agentReturned(Deployment& d, const std::string& cluster, const Context& ctx, Effects& fx);

// Whether the deployment still expects something from an agent (a step out, or a rollback
// waiting for a lost agent): the engine keeps such deployments in memory even when final.
bool awaitsAgents(const Deployment& d);

// Operator actions, by `by` (named in their events with the reason given, which may be empty).
// FailedPrecondition when the state does not allow it.
//
// approve records `by`'s approval of `wave` (empty: the wave the deployment waits on). The wave
// is approved once approvals_required distinct approvers approved it, none longer ago than its
// approval_expires (older approvals are dropped, each with a wave.approval_expired event); the
// same holds again when the deployment reaches a wave approved ahead. PermissionDenied for the
// coordinator itself and for the deployment's submitter; FailedPrecondition, changing nothing,
// for a second approval by the same approver. Events: wave.approval ("by bob: 1 of 2
// approvals") while more are needed, wave.approved ("by carol: 2 of 2 approvals") when the last
// one needed arrives.
common::Status approve(Deployment& d, const std::string& wave, const Actor& by, const Context& ctx,
                       Effects& fx);
common::Status pause(Deployment& d, const Actor& by, const std::string& reason, const Context& ctx,
                     Effects& fx);
common::Status resume(Deployment& d, const Actor& by, const std::string& reason, const Context& ctx,
                      Effects& fx);
// cancel stops the deployment for good: a queued one is cancelled at once; otherwise the
// forward steps in flight are aborted, every cluster the new version reached is rolled back
// (newest wave first, whatever the plan's rollback scope), and the deployment ends cancelled,
// or failed when a rollback fails (like any rollback). A rollback in progress cannot be
// cancelled.
common::Status cancel(Deployment& d, const Actor& by, const std::string& reason, const Context& ctx,
                      Effects& fx);
// promote skips the analyze or bake each cluster of the running wave has in flight (Argo
// Rollouts' promote): the cluster records who promoted (promoted_by) and the stage is aborted;
// its result, aborted or succeeded, counts as passed ("promoted by NAME") and the cluster goes
// on to its next step. A failure the agent reported before the abort reached it still fails.
// `wave` empty: the running wave; another wave is FailedPrecondition, as is a deployment with
// no cluster analyzing or baking ("nothing to promote: ..."). Never passes an approval gate.
// Events: cluster.promoted per cluster ("by alice: <reason>").
common::Status promote(Deployment& d, const std::string& wave, const Actor& by,
                       const std::string& reason, const Context& ctx, Effects& fx);
// endWatch ends the post-deploy watch of a watching deployment now (`flotilla watch-end`): the
// watch stages in flight are aborted and their results, aborted or succeeded, count as passed;
// once none is out the deployment succeeds ("watch ended early by alice: <reason>"). A failure
// an agent reported before the abort reached it still rolls back. FailedPrecondition when the
// deployment is not watching or its watch is already ending. Events: deployment.watch_ending,
// then deployment.watch_ended and deployment.succeeded.
common::Status endWatch(Deployment& d, const Actor& by, const std::string& reason,
                        const Context& ctx, Effects& fx);
// retry runs the held failed step of `cluster` again as a new attempt (plan on_step_failure:
// hold), at most kMaxStepRetries times per step, and resumes the deployment once no cluster is
// held any more. NotFound for a cluster the deployment does not have; FailedPrecondition when
// the plan does not hold failed steps, the cluster has no held step, its retries are used up,
// or the deployment is final or rolling back. Events: cluster.retried ("by alice: <reason>").
inline constexpr uint32_t kMaxStepRetries = 3;
common::Status retry(Deployment& d, const std::string& cluster, const Actor& by,
                     const std::string& reason, const Context& ctx, Effects& fx);
// resume refuses a deployment held on a failed step: retry or rollback are the ways out.
//
// requestRollback also works on a cancelled deployment: the clusters still on the new version
// (a cancel recorded before cancel rolled back) go back; it ends rolled_back.
common::Status requestRollback(Deployment& d, const Actor& by, const std::string& reason,
                               const Context& ctx, Effects& fx);

// addNote appends `text` by `by` to the deployment's notes, in any state, final ones included
// (coordinator/deployment_notes.cpp). InvalidArgument for an empty text or one that breaks
// common::checkFreeText's rule or kMaxNoteBytes; FailedPrecondition past kMaxNotes. Event:
// deployment.note ("by alice: <the note's first line, cut>").
common::Status addNote(Deployment& d, const std::string& text, const Actor& by, const Context& ctx,
                       Effects& fx);

// ---- One deployment per service at a time (coordinator/deployment_queue.cpp) ----------------
//
// Two deployments conflict when they are of the same service and may touch the same cluster.
// A wave that picks its clusters by selector is resolved only when it starts, so a plan with
// one conflicts with every deployment of its service. A deployment waits for the latest
// unfinished conflicting one submitted before it; deployments are ordered by the sequence
// number their id ends with (ids are SERVICE-SEQ, SEQ global and increasing).

// The clusters a plan names; nullopt when a wave picks its clusters by selector.
std::optional<std::vector<std::string>> namedClusters(const common::Plan& plan);
// Why `a` and `b` may not run at once ("on prod-eu-1", "(a wave picks its clusters by
// selector, so any cluster of the service counts)"); nullopt when they may.
std::optional<std::string> conflictBetween(const common::Plan& a, const common::Plan& b);
// The submission order of a deployment (the SEQ of its id; 0 when the id has none).
uint64_t submissionOrder(const Deployment& d);
// What `d` must wait for among `others` (any deployments; the final ones and `d` itself are
// ignored): the latest unfinished one submitted before it that conflicts. Null when none.
const Deployment* blockerOf(const Deployment& d, const std::vector<const Deployment*>& others);
// The refusal for a submission with queueing turned off: names the deployment in flight.
common::Status refuseQueued(const common::Plan& plan, const Deployment& ahead);
// A new or queued deployment waits for `ahead`: state queued, waits_for set, event
// deployment.queued (only when what it waits for changed).
void waitFor(Deployment& d, const Deployment& ahead, Effects& fx);
// Nothing is ahead any more: a queued deployment leaves the queue and starts (event
// deployment.dequeued, then advance()). Does nothing to a deployment that is not queued.
void leaveQueue(Deployment& d, const Context& ctx, Effects& fx);
// Deployment `by_id` of the same service was submitted with supersede: a queued deployment is
// cancelled (nothing ran); one on its way is stopped (steps in flight aborted) and rolled back
// with reason "superseded by BY_ID", and ends rolled_back (or failed). A rollback in progress
// goes on; a final deployment is left alone.
void supersede(Deployment& d, const std::string& by_id, const Actor& by, const Context& ctx,
               Effects& fx);

// Approvals of wave `wave` that count at `now_ms`: not expired, for the plan the deployment
// holds. (The HTTP detail and the machine share this rule.)
size_t liveApprovals(const Deployment& d, size_t wave, int64_t now_ms);

// The command for the step cluster `c` has in flight (also used to resend it).
Dispatch makeDispatch(const Deployment& d, const ClusterProgress& c);

// The stored form. The store keeps a deployment as a header (everything but its clusters;
// each wave says how many it has) and one record per cluster, so that a change to a few
// clusters of a 10,000-cluster deployment rewrites only those (coordinator/store.hpp).
std::string deploymentHeaderJson(const Deployment& d);
// A cluster as the whole form holds it inline (the store's own cluster records are in
// coordinator/records.hpp and also read this form).
common::StatusOr<ClusterProgress> clusterFromJsonText(std::string_view text);
// The cluster records of one deployment by (wave, position). Records past a wave's
// cluster_count are ignored; a missing one is Corruption.
using StoredClusters = std::map<std::pair<uint32_t, uint32_t>, std::string>;
// Waves whose clusters are inline in the header (the whole form below, or records written
// before clusters had records of their own) need none. With `header_only` the waves are left
// without clusters (summaries).
common::StatusOr<Deployment> deploymentFromStored(const std::string& header,
                                                  const StoredClusters& clusters,
                                                  bool header_only = false);
// The whole form: the header with every wave's clusters inline.
std::string deploymentToJson(const Deployment& d);
common::StatusOr<Deployment> deploymentFromJson(const std::string& json);

}  // namespace flotilla::coordinator
