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
