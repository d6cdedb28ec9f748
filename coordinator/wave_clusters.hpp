// Which clusters each wave of a plan will touch, read against the agents the registry knows.
// One rule for the three places that ask: submission (a name nobody registered, or a selector
// that matches no registered cluster, is refused there with a suggestion), the dry run, and the
// approval screen of a wave that has not started; the state machine takes the same rule when
// the wave starts (coordinator/deployment.cpp).
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/plan.hpp"
#include "coordinator/registry.hpp"

namespace flotilla::coordinator {

struct Deployment;

using AgentsByName = std::map<std::string, AgentInfo>;

// Every selector pair is among `labels`.
bool labelsMatch(const std::map<std::string, std::string>& selector,
                 const std::map<std::string, std::string>& labels);

// The clusters wave `pw` takes when it starts now: the names it lists, or the registered clusters
// its selector matches that no earlier wave took (`earlier`), sorted. Lost agents are left out
// of a selector's match while others match; when only lost ones do, they are taken, so that the
// lost-cluster policy decides about them rather than the wave failing for an empty selector.
std::vector<std::string> waveClusters(const common::Wave& pw, const AgentsByName& agents,
                                      const std::set<std::string>& earlier);

struct WaveClusterProblem {
  std::string wave;
  int line = 0;  // where the wave starts in the plan text (0: unknown)
  int column = 0;
  std::string message;     // what is wrong, with its suggestion
  std::string suggestion;  // the suggestion alone ("" when there is none)
};

struct PlanClusters {
  std::vector<std::vector<std::string>> waves;  // per plan wave, as waveClusters takes them
  std::vector<WaveClusterProblem> problems;     // in wave order
  std::vector<std::string> known;               // every registered cluster, sorted
};

// Resolves every wave of a submitted plan as if each started in turn now. Problems: a cluster
// name no agent has registered (with the closest known name), a selector that matches no
// registered cluster (with the values its labels do have), and a selector whose matches all
// went to earlier waves.
PlanClusters resolvePlanClusters(const common::Plan& plan, const AgentsByName& agents);

// The clusters wave `wave` of a deployment will touch: those it took when it started, else
// what waveClusters takes now after the earlier waves (their clusters, or what they will take).
std::vector<std::string> upcomingWaveClusters(const Deployment& d, size_t wave,
                                              const AgentsByName& agents);

AgentsByName agentsByName(const std::vector<AgentInfo>& agents);

// Levenshtein distance (insertions, deletions and substitutions cost 1).
size_t editDistance(std::string_view a, std::string_view b);

// The known name closest to `name`, when it is close enough to be a likely typo; "" otherwise.
std::string closestName(const std::string& name, const std::vector<std::string>& known);

}  // namespace flotilla::coordinator
