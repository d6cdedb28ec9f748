// The script driver's share of strategies, health and alerts: the checks that tie them
// together (a blue-green needs a switch step, a health check needs a window to run in).
#include <algorithm>
#include <string>
#include <string_view>

#include "common/plan_reader.hpp"

namespace flotilla::common::plan_internal {

namespace {

bool movesTraffic(StrategyKind kind) {
  return kind == StrategyKind::kCanary || kind == StrategyKind::kBlueGreen;
}

// Where the key `name` of a map is written, when it is.
std::optional<YAML::Mark> keyMark(const YAML::Node& map, std::string_view name) {
  if (!map.IsMap()) return std::nullopt;
  for (const auto& entry : map) {
    if (entry.first.IsScalar() && entry.first.Scalar() == name) return entry.first.Mark();
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> PlanReader::readHealthUrl(const Field& field) {
  auto url = readHttpUrl(field, "health.http.url");
  if (!url) return std::nullopt;
  // Only the placeholders the agent fills in; anything else between braces is a typo that
  // would otherwise be probed literally.
  for (size_t open = url->find('{'); open != std::string::npos; open = url->find('{', open + 1)) {
    const size_t close = url->find('}', open);
    const std::string name =
        close == std::string::npos ? url->substr(open) : url->substr(open, close - open + 1);
    if (name != "{cluster}" && name != "{version}" && name != "{environment}") {
      problemAt(field.value, "health.http.url: unknown placeholder " + quote(name) +
                                 "; valid ones: {cluster}, {version}, {environment}");
      return std::nullopt;
    }
  }
  return url;
}

void PlanReader::checkScriptStrategy(const Fields& fields, const Plan& plan) {
  // Where each strategy was written: the plan's, then each wave's.
  struct Placed {
    const Strategy* strategy;
    YAML::Mark at;
  };
  std::vector<Placed> strategies;
  if (const Field* field = findField(fields, "strategy")) {
    strategies.push_back({&plan.strategy, field->key.Mark()});
  }
  for (size_t i = 0; i < plan.waves.size(); ++i) {
    if (!plan.waves[i].strategy) continue;
    for (const auto& [name, mark] : wave_process_fields_) {
      if (name == "strategy#" + std::to_string(i))
        strategies.push_back({&*plan.waves[i].strategy, mark});
    }
  }

  const bool any_switch = !plan.steps.switch_traffic.empty();
  bool any_moving = false;
  bool any_window = std::any_of(plan.waves.begin(), plan.waves.end(),
                                [](const Wave& w) { return w.bake.count() > 0; });
  for (const Placed& p : strategies) {
    any_moving = any_moving || movesTraffic(p.strategy->kind);
    if (movesTraffic(p.strategy->kind) && p.strategy->pause.count() > 0) any_window = true;
    if (p.strategy->kind == StrategyKind::kBlueGreen && !any_switch) {
      problemAt(p.at,
                "blue_green with the script driver needs steps.switch: the command that moves "
                "traffic to the new version (FLOTILLA_WEIGHT) once steps.apply brought it up");
    }
  }
  if (any_switch && !any_moving) {
    const Field* steps = findField(fields, "steps");
    auto at = steps ? keyMark(steps->value, "switch") : std::nullopt;
    problemAt(at ? *at : YAML::Mark::null_mark(),
              "steps.switch moves traffic step by step: it is for strategy canary or blue_green");
  }
  // Health checks and the analysis run while a wave watches: during a strategy's pauses and a
  // wave's bake. A plan with neither would never run them.
  if (const Field* health = findField(fields, "health"); health != nullptr && !any_window) {
    problemAt(health->key,
              "health is checked during the strategy's pauses and the waves' bakes, and this plan "
              "has neither: add strategy.pause or a wave's bake");
  }
  // The script driver has no processes of its own to measure.
  if (const Field* alerts = findField(fields, "alerts")) {
    for (std::string_view rule : {"cpu", "memory"}) {
      auto at = keyMark(alerts->value, rule);
      if (!at || isOff(alerts->value[std::string(rule)])) continue;
      problemAt(*at, "alerts." + std::string(rule) +
                         " is measured on the process driver's replicas; the script driver has "
                         "none (turn it off or leave it out)");
    }
  }
}

}  // namespace flotilla::common::plan_internal
