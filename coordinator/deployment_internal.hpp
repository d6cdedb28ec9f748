// Internal to the deployment state machine (coordinator/deployment*.cpp): the steps of the
// machine that more than one of its parts takes. The machine is split by what moves it:
//
//   deployment.cpp            the model (state names, forward steps, the cluster index), a new
//                             deployment, and advance(): the forward drive, wave by wave, and
//                             the commands it sends
//   deployment_rollback.cpp   the way back: starting a rollback, running it newest wave first,
//                             ending it rolled back or failed
//   deployment_approvals.cpp  the approval rule: who may approve, how many, for how long
//   deployment_results.cpp    stage results from agents, one or a turn's batch
//   deployment_agents.cpp     an agent lost past the deadline, or back again
//   deployment_actions.cpp    pause, resume, cancel and rollback on request
//   deployment_json.cpp       the stored form
//   deployment_queue.cpp      one deployment per service: conflicts, the queue, supersede
//   deployment_overrides.cpp  promote, and holding a failed step until retry
//   deployment_watch.cpp      the post-deploy watch: tier after tier, ended early on request
//   deployment_checks.cpp     a verification checklist's runs on each cluster
//   deployment_release.cpp    what the deployment does to its release: the artifact its build
//                             reported, the environments it succeeded in, and the promotion
//                             rule holding a wave
#pragma once

#include <cstddef>
#include <string>

#include "coordinator/deployment.hpp"

namespace flotilla::coordinator::deployment_internal {

// Records an event and marks the deployment changed.
void emit(Effects& fx, std::string type, std::string wave, std::string cluster, std::string step,
          std::string message);

// "by alice", or "by alice: <reason>", the reason bounded and without control characters.
std::string byActor(const Actor& by, const std::string& reason);

// Whether `c` is on its way forward: a forward step in flight, or between two of them.
bool isActiveForward(const ClusterProgress& c);

// Sends `step` to cluster `c` of wave `wave`. `index`: the step's place in forwardSteps(), or
// -1 for rollback.
void dispatch(Deployment& d, size_t wave, ClusterProgress& c, Step step, int index, Effects& fx);

// deployment_rollback.cpp

// Stops going forward and starts taking the new version out (of every wave reached, or only
// of the current one). Aborts the forward steps in flight; the waves not reached are skipped.
void startRollback(Deployment& d, const std::string& reason, bool whole_fleet, Effects& fx);
// A forward step failed on cluster `c` of wave `wave`: the first failure starts the rollback.
void forwardFailed(Deployment& d, size_t wave, ClusterProgress& c, const std::string& message,
                   Effects& fx);
// Asks for an abort of every forward step in flight (once each).
void abortInFlightForward(Deployment& d, const std::string& reason, Effects& fx);
void skipUnreachedWaves(Deployment& d, Effects& fx);
// Moves a rollback in progress as far as it can go now.
void runRollback(Deployment& d, const Context& ctx, Effects& fx);

// deployment_approvals.cpp

// Whether wave `index` may start now as far as approvals go. A wave approved ahead is held
// again when its approvals expired before the deployment reached it.
bool approvalHolds(Deployment& d, size_t index, const Context& ctx, Effects& fx);
// "1 of 2 approvals".
std::string approvalProgress(const WaveProgress& w, const common::Wave& pw);

// deployment_agents.cpp

// Cluster `c` of wave `wave` is due a forward step but its agent is lost (`known`) or no longer
// registered (revoked, removed). The lost-cluster policy decides, as for an agent lost with a
// step out: within max_unavailable_clusters it is waited for (true: the wave goes on with its
// other clusters); past it, on_agent_lost pauses the deployment or fails the step (false: the
// forward drive stops).
bool agentLostBeforeStep(Deployment& d, size_t wave, ClusterProgress& c, bool known, Effects& fx);

// deployment_overrides.cpp

// Whether a forward `step` that ended `outcome` is held instead of rolled back: plan
// on_step_failure: hold, a failed or timed-out step other than analyze and bake, and a
// deployment still going forward.
bool holdsFailedStep(const Deployment& d, Step step, Outcome outcome);
// Cluster `c` of wave `wave` failed a step that is held: the deployment pauses with a reason
// naming the held clusters and the two ways out (retry, rollback).
void holdFailedStep(Deployment& d, size_t wave, ClusterProgress& c, const std::string& message,
                    Effects& fx);
// The reason of a deployment held on failed steps.
std::string heldReason(const Deployment& d);
// `r` is the result of a promoted stage of `c`: aborted or succeeded become succeeded
// ("promoted by NAME"); a failure stays one and says it came before the promote.
void applyPromotion(ClusterProgress& c, StageResult& r);

// deployment_watch.cpp

// Whether the deployment, past its last wave, still has post-deploy watching to do.
bool watchPending(const Deployment& d);
// Moves the watch on (its first tier, the next one, the end): dispatches the tier's watch stage
// to every cluster that has not run it, and succeeds the deployment after the last tier.
void runWatch(Deployment& d, const Context& ctx, Effects& fx);
// A watch stage's result on cluster `c` of wave `wave` (recordResult hands every WATCH result
// here): passed, ended early, or a failure that rolls the whole fleet back.
void recordWatchResult(Deployment& d, size_t wave, ClusterProgress& c, const StageResult& r,
                       Effects& fx);

// deployment_checks.cpp

// Cluster `c` is being sent its checklist check `c.check`: its run is running (again).
void startCheckRun(ClusterProgress& c);
// The result `r` of the checklist check `c` ran, in wave `wave`: its run records how it ended,
// and event cluster.verify_check says so ("smoke passed in 1.2s", "smoke failed in 0.3s: exit
// code 1: ...").
void finishCheckRun(ClusterProgress& c, const std::string& wave, const StageResult& r, Effects& fx);
// deployment_release.cpp

// A build of cluster `cluster` (wave `wave`) reported `digest` (already valid): the
// deployment's artifact; the release's too, with event release.artifact (its first) or
// release.artifact_changed (another digest than the one it had).
void recordArtifact(Deployment& d, const std::string& wave, const std::string& cluster,
                    const std::string& digest, const Context& ctx, Effects& fx);
// Wave `pw` succeeded: when it is placed in an environment, the release records that it
// succeeded there now, with the artifact deployed (event release.environment_succeeded).
void recordEnvironmentSuccess(Deployment& d, const common::Wave& pw, const Context& ctx,
                              Effects& fx);
// Whether wave `pw` may start as far as its environment's promotion rule goes. Not met: the
// deployment holds in blocked_by_checks, its reason saying what is missing (an event only when
// that changes).
bool promotionHolds(Deployment& d, const common::Wave& pw, const Context& ctx, Effects& fx);

}  // namespace flotilla::coordinator::deployment_internal
