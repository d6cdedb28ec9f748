// The agent registry.
#include "coordinator/registry.hpp"

#include <algorithm>

namespace flotilla::coordinator {

const char* agentStateName(AgentState s) {
  switch (s) {
    case AgentState::kConnected:
      return "connected";
    case AgentState::kUnknown:
      return "unknown";
    case AgentState::kLost:
      return "lost";
  }
  return "unknown";
}

std::chrono::milliseconds unknownAfter(const AgentInfo& a, std::chrono::milliseconds lost_after) {
  if (a.heartbeat.count() <= 0) return std::chrono::milliseconds(0);
  return std::min(3 * a.heartbeat, 2 * lost_after / 3);
}

AgentView viewAgent(const AgentInfo& a, common::SteadyTime now,
                    std::chrono::milliseconds lost_after) {
  AgentView v;
  v.info = a;
  v.silent = std::max(std::chrono::milliseconds(0),
                      std::chrono::duration_cast<std::chrono::milliseconds>(now - a.last_seen));
  v.unknown_after = unknownAfter(a, lost_after);
  v.lost_after = lost_after;
  // Lost is final until the agent registers again; silence only ever makes the state worse.
  if (a.state == AgentState::kLost || v.silent > lost_after) {
    v.state = AgentState::kLost;
  } else if (a.state == AgentState::kUnknown ||
             (v.unknown_after.count() > 0 && v.silent > v.unknown_after)) {
    v.state = AgentState::kUnknown;
  } else {
    v.state = AgentState::kConnected;
  }
  return v;
}

bool Registry::registerAgent(const std::string& cluster, std::map<std::string, std::string> labels,
                             std::string agent_version, uint64_t epoch, common::SteadyTime now,
                             common::SystemTime wall, std::chrono::milliseconds heartbeat) {
  AgentInfo& a = agents_[cluster];
  bool changed = a.cluster.empty() || a.labels != labels || a.agent_version != agent_version;
  a.cluster = cluster;
  a.labels = std::move(labels);
  a.agent_version = std::move(agent_version);
  a.state = AgentState::kConnected;
  a.last_seen = now;
  a.last_seen_wall = wall;
  a.epoch = epoch;
  a.heartbeat = heartbeat;
  return changed;
}

void Registry::restore(const std::string& cluster, std::map<std::string, std::string> labels,
                       std::string agent_version, common::SteadyTime now, common::SystemTime wall) {
  AgentInfo& a = agents_[cluster];
  a.cluster = cluster;
  a.labels = std::move(labels);
  a.agent_version = std::move(agent_version);
  a.state = AgentState::kUnknown;
  // A restarted coordinator gives every agent a full deadline to come back.
  a.last_seen = now;
  a.last_seen_wall = wall;
  a.epoch = 0;
  a.heartbeat = std::chrono::milliseconds(0);
}

bool Registry::touch(const std::string& cluster, uint64_t epoch, common::SteadyTime now,
                     common::SystemTime wall) {
  auto it = agents_.find(cluster);
  if (it == agents_.end() || it->second.epoch != epoch || epoch == 0) return false;
  // A lost agent registers again, so that what it holds is reconciled.
  if (it->second.state == AgentState::kLost) return false;
  it->second.last_seen = now;
  it->second.last_seen_wall = wall;
  it->second.state = AgentState::kConnected;
  return true;
}

std::vector<std::string> Registry::expire(common::SteadyTime now,
                                          std::chrono::milliseconds deadline, bool* changed) {
  std::vector<std::string> lost;
  bool any = false;
  for (auto& [name, a] : agents_) {
    const auto unknown_after = unknownAfter(a, deadline);
    if (a.state == AgentState::kConnected && unknown_after.count() > 0 &&
        now - a.last_seen > unknown_after) {
      a.state = AgentState::kUnknown;
      any = true;
    }
    if (a.state != AgentState::kLost && now - a.last_seen > deadline) {
      a.state = AgentState::kLost;
      lost.push_back(name);
      any = true;
    }
  }
  if (changed) *changed = any;
  return lost;
}

const AgentInfo* Registry::find(const std::string& cluster) const {
  auto it = agents_.find(cluster);
  return it == agents_.end() ? nullptr : &it->second;
}

bool Registry::isLost(const std::string& cluster) const {
  const AgentInfo* a = find(cluster);
  return a == nullptr || a->state == AgentState::kLost;
}

std::vector<std::string> Registry::select(
    const std::map<std::string, std::string>& selector) const {
  std::vector<std::string> out;
  for (const auto& [name, a] : agents_) {
    if (a.state == AgentState::kLost) continue;
    bool match = true;
    for (const auto& [k, v] : selector) {
      auto it = a.labels.find(k);
      if (it == a.labels.end() || it->second != v) {
        match = false;
        break;
      }
    }
    if (match) out.push_back(name);
  }
  return out;
}

}  // namespace flotilla::coordinator
