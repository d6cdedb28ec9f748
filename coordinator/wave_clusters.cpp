// Which clusters each wave will touch (see the header).
#include "coordinator/wave_clusters.hpp"

#include <algorithm>
#include <numeric>

#include "coordinator/deployment.hpp"

namespace flotilla::coordinator {

namespace {

std::string quote(const std::string& s) { return "\"" + s + "\""; }

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string selectorText(const std::map<std::string, std::string>& selector) {
  std::string out;
  for (const auto& [k, v] : selector) out += (out.empty() ? "" : ", ") + k + ": " + v;
  return "{" + out + "}";
}

// Why a selector matches no registered cluster, as advice: the label it asks for that nobody
// has, or the values that label does have.
std::string selectorSuggestion(const std::map<std::string, std::string>& selector,
                               const AgentsByName& agents) {
  std::map<std::string, std::set<std::string>> in_use;
  for (const auto& [name, a] : agents) {
    for (const auto& [k, v] : a.labels) in_use[k].insert(v);
  }
  std::vector<std::string> advice;
  for (const auto& [k, v] : selector) {
    auto it = in_use.find(k);
    if (it == in_use.end()) {
      std::vector<std::string> keys;
      for (const auto& [key, values] : in_use) keys.push_back(key);
      std::string hint = "no registered cluster has the label " + quote(k);
      if (!keys.empty()) {
        std::string close = closestName(k, keys);
        hint += close.empty() ? "" : " (did you mean " + quote(close) + "?)";
        hint += "; labels in use: " + joined(keys);
      }
      advice.push_back(hint);
    } else if (it->second.count(v) == 0) {
      std::vector<std::string> values(it->second.begin(), it->second.end());
      std::string close = closestName(v, values);
      advice.push_back("label " + quote(k) + " has the values " + joined(values) +
                       (close.empty() ? "" : " (did you mean " + k + ": " + close + "?)"));
    }
  }
  if (advice.empty()) {
    advice.push_back("every label matches some cluster, but no cluster has all of them");
  }
  std::string out;
  for (const auto& a : advice) out += (out.empty() ? "" : "; ") + a;
  return out;
}

}  // namespace

bool labelsMatch(const std::map<std::string, std::string>& selector,
                 const std::map<std::string, std::string>& labels) {
  return std::all_of(selector.begin(), selector.end(), [&](const auto& pair) {
    auto it = labels.find(pair.first);
    return it != labels.end() && it->second == pair.second;
  });
}

std::vector<std::string> waveClusters(const common::Wave& pw, const AgentsByName& agents,
                                      const std::set<std::string>& earlier) {
  if (!pw.clusters.empty()) return pw.clusters;
  std::vector<std::string> live;
  std::vector<std::string> lost;
  for (const auto& [name, a] : agents) {
    if (earlier.count(name) != 0 || !labelsMatch(pw.selector, a.labels)) continue;
    (a.state == AgentState::kLost ? lost : live).push_back(name);
  }
  return live.empty() ? lost : live;
}

PlanClusters resolvePlanClusters(const common::Plan& plan, const AgentsByName& agents) {
  PlanClusters out;
  for (const auto& [name, a] : agents) out.known.push_back(name);
  std::set<std::string> earlier;
  for (const common::Wave& pw : plan.waves) {
    auto problem = [&](std::string message, std::string suggestion) {
      if (!suggestion.empty()) message += "; " + suggestion;
      out.problems.push_back(
          {pw.name, pw.line, pw.column, std::move(message), std::move(suggestion)});
    };
    std::vector<std::string> taken = waveClusters(pw, agents, earlier);
    if (!pw.clusters.empty()) {
      for (const auto& name : pw.clusters) {
        if (agents.count(name) != 0) continue;
        std::string close = closestName(name, out.known);
        problem("wave " + quote(pw.name) + ": no agent has registered cluster " + quote(name),
                close.empty() ? "" : "did you mean " + quote(close) + "?");
      }
    } else if (taken.empty()) {
      const bool any = std::any_of(agents.begin(), agents.end(), [&](const auto& entry) {
        return labelsMatch(pw.selector, entry.second.labels);
      });
      if (any) {
        problem("wave " + quote(pw.name) + ": selector " + selectorText(pw.selector) +
                    " matches only clusters that earlier waves take",
                "");
      } else {
        problem("wave " + quote(pw.name) + ": selector " + selectorText(pw.selector) +
                    " matches no registered cluster",
                selectorSuggestion(pw.selector, agents));
      }
    }
    earlier.insert(taken.begin(), taken.end());
    out.waves.push_back(std::move(taken));
  }
  return out;
}

std::vector<std::string> upcomingWaveClusters(const Deployment& d, size_t wave,
                                              const AgentsByName& agents) {
  std::set<std::string> earlier;
  std::vector<std::string> taken;
  for (size_t i = 0; i <= wave && i < d.waves.size() && i < d.plan.waves.size(); ++i) {
    taken.clear();
    if (d.waves[i].resolved) {
      for (const auto& c : d.waves[i].clusters) taken.push_back(c.name);
    } else {
      taken = waveClusters(d.plan.waves[i], agents, earlier);
    }
    earlier.insert(taken.begin(), taken.end());
  }
  return taken;
}

AgentsByName agentsByName(const std::vector<AgentInfo>& agents) {
  AgentsByName out;
  for (const auto& a : agents) out.emplace(a.cluster, a);
  return out;
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string closestName(const std::string& name, const std::vector<std::string>& known) {
  // A third of the name (at least 2 edits) is still a typo; more is another name.
  const size_t limit = std::max<size_t>(2, name.size() / 3);
  std::string best;
  size_t best_distance = limit + 1;
  for (const auto& candidate : known) {
    const size_t d = editDistance(name, candidate);
    if (d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

}  // namespace flotilla::coordinator
