// The agent registry: which clusters exist, their labels, and whether their
// agent is alive. In memory; the engine persists what must survive a restart.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/time_format.hpp"

namespace flotilla::coordinator {

enum class AgentState {
  kConnected,  // heard from within the silence deadline
  kUnknown,    // silent for a few heartbeats (or known from the store after a coordinator
               // restart and not heard from yet): its stages may still be running
  kLost,       // silent past the deadline; its in-flight stages count as failed
};

const char* agentStateName(AgentState s);

struct AgentInfo {
  std::string cluster;
  std::map<std::string, std::string> labels;
  std::string agent_version;
  AgentState state = AgentState::kUnknown;
  common::SteadyTime last_seen{};
  common::SystemTime last_seen_wall{};
  uint64_t epoch = 0;  // the coordinator epoch it registered under (0 = not this run)
  // The heartbeat interval it was asked for when it registered (0: not registered this run).
  std::chrono::milliseconds heartbeat{0};
};

// The silence after which a connected agent counts as unknown: three of its heartbeats, or two
// thirds of the lost deadline if that comes first; 0 when it was never asked to beat (restored
// from the store and not heard from in this run: unknown from the start).
std::chrono::milliseconds unknownAfter(const AgentInfo& a, std::chrono::milliseconds lost_after);

// An agent as the API shows it: its state judged against `now`, not against the engine's last
// pass over the registry (a heartbeat is not republished; the silence is counted here).
struct AgentView {
  AgentInfo info;
  AgentState state = AgentState::kUnknown;
  std::chrono::milliseconds silent{0};         // since it was last heard from (or restored)
  std::chrono::milliseconds unknown_after{0};  // unknownAfter(); 0: not applicable
  std::chrono::milliseconds lost_after{0};     // the coordinator's lost deadline
};
AgentView viewAgent(const AgentInfo& a, common::SteadyTime now,
                    std::chrono::milliseconds lost_after);

class Registry {
 public:
  // A new or returning agent, asked to beat every `heartbeat`. Returns true when labels or
  // version changed (worth persisting).
  bool registerAgent(const std::string& cluster, std::map<std::string, std::string> labels,
                     std::string agent_version, uint64_t epoch, common::SteadyTime now,
                     common::SystemTime wall,
                     std::chrono::milliseconds heartbeat = std::chrono::milliseconds(1000));
  // Restores an agent known from the store; it starts `kUnknown` with a fresh deadline.
  void restore(const std::string& cluster, std::map<std::string, std::string> labels,
               std::string agent_version, common::SteadyTime now, common::SystemTime wall);
  // Any message from the agent. Returns false if the cluster is not registered this epoch.
  bool touch(const std::string& cluster, uint64_t epoch, common::SteadyTime now,
             common::SystemTime wall);
  // Marks agents silent for longer than `deadline` as lost; returns those newly lost. An agent
  // that missed three of its heartbeats (or was silent for two thirds of the deadline, if that
  // comes first) becomes unknown meanwhile. `changed`, when given, is set when any agent changed
  // state.
  std::vector<std::string> expire(common::SteadyTime now, std::chrono::milliseconds deadline,
                                  bool* changed = nullptr);

  // Forgets a cluster that is gone (`flotilla agents remove`).
  void remove(const std::string& cluster) { agents_.erase(cluster); }
  const AgentInfo* find(const std::string& cluster) const;
  bool isLost(const std::string& cluster) const;
  // Clusters whose labels contain every selector pair and are not lost, sorted by name.
  std::vector<std::string> select(const std::map<std::string, std::string>& selector) const;
  const std::map<std::string, AgentInfo>& agents() const { return agents_; }

 private:
  std::map<std::string, AgentInfo> agents_;
};

}  // namespace flotilla::coordinator
