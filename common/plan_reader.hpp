// Internal to the plan parser (common/plan*.cpp): the field tables of the plan format, the
// reading helpers every section uses (FieldReader, shared with the policy parser,
// common/policy.cpp), and PlanReader, whose sections live in their own files:
//
//   plan.cpp                 parsePlan, the top-level map, driver, steps, rollback, cross-checks
//   plan_reader.cpp          generic reading: fields of a map, kinds, strings, counts, numbers,
//                            durations, URLs; typo suggestions
//   plan_waves.cpp           waves: names, clusters, selectors, approvals, per-wave overrides
//   plan_process_fields.cpp  the process driver's sections: process, traffic, strategy, health,
//                            alerts
//   plan_verify.cpp          steps.verify as a checklist of named checks
#pragma once

#include <yaml-cpp/yaml.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/plan.hpp"
#include "common/rules.hpp"
#include "common/user_text.hpp"

namespace flotilla::common::plan_internal {

using FieldList = std::span<const std::string_view>;

// Fields of each map of the plan format (DESIGN.md). Anything else is an unknown field.
inline constexpr std::array<std::string_view, 15> kPlanFields = {"service",
                                                                 "version",
                                                                 "driver",
                                                                 "steps",
                                                                 "waves",
                                                                 "rollback",
                                                                 "process",
                                                                 "traffic",
                                                                 "strategy",
                                                                 "health",
                                                                 "alerts",
                                                                 "on_agent_lost",
                                                                 "max_unavailable_clusters",
                                                                 "on_step_failure",
                                                                 "hotfix"};
inline constexpr std::array<std::string_view, 7> kStepFields = {
    "build", "apply", "verify", "rollback", "switch", "watch", "timeout"};
inline constexpr std::array<std::string_view, 3> kVerifyCheckFields = {"name", "command",
                                                                       "timeout"};
inline constexpr std::array<std::string_view, 8> kWaveFields = {
    "name",         "clusters", "selector", "approval",
    "max_parallel", "strategy", "bake",     "max_unavailable_clusters"};
inline constexpr std::array<std::string_view, 4> kProcessFields = {"command", "replicas", "ports",
                                                                   "health_path"};
inline constexpr std::array<std::string_view, 2> kApprovalFields = {"required", "expires"};
inline constexpr std::array<std::string_view, 1> kTrafficFields = {"haproxy"};
inline constexpr std::array<std::string_view, 2> kHaproxyFields = {"socket", "backend"};
inline constexpr std::array<std::string_view, 6> kStrategyFields = {
    "type", "steps", "pause", "switch", "max_unavailable", "max_surge"};
inline constexpr std::array<std::string_view, 2> kHealthFields = {"http", "metrics"};
inline constexpr std::array<std::string_view, 5> kHttpHealthFields = {
    "path", "url", "interval", "timeout", "failure_threshold"};
inline constexpr std::array<std::string_view, 7> kMetricsFields = {
    "source",       "error_rate_increase", "latency_p95_ratio",
    "min_requests", "inconclusive",        "prometheus",
    "queries"};
inline constexpr std::array<std::string_view, 3> kQueryFields = {"request_rate", "error_rate",
                                                                 "latency_p95"};
inline constexpr std::array<std::string_view, 7> kAlertFields = {
    "error_rate",      "latency_p95_ratio", "cpu", "memory", "webhook",
    "webhook_timeout", "webhook_attempts"};
inline constexpr std::array<std::string_view, 1> kRollbackFields = {"scope"};
// The rules a hotfix runs under are the policy's, not the plan author's: only the reason.
inline constexpr std::array<std::string_view, 1> kPlanHotfixFields = {"reason"};

// The longest step timeout, wave bake and strategy pause.
inline constexpr std::chrono::milliseconds kMaxStepTimeout = std::chrono::hours(24);

// "a string", "a list", "a map", "empty": what a node is, for messages.
const char* kindOf(const YAML::Node& node);
// "line:column", 1-based.
std::string positionOf(const YAML::Mark& mark);
// Digits only: a sign, a fraction or an exponent is not a count of clusters.
std::optional<uint32_t> parsePositiveCount(std::string_view text);

// One map entry whose key is a known field.
struct Field {
  YAML::Node key;
  YAML::Node value;
};
// The known fields of one map by name; the first occurrence wins when a key repeats.
using Fields = std::map<std::string, Field, std::less<>>;

const Field* findField(const Fields& fields, std::string_view name);

// The reading every YAML format of Flotilla shares (plans, the policy file): problems with their
// positions, the fields of a map (unknown and repeated keys, typo suggestions), node kinds,
// strings, counts, numbers, durations, URLs and label selectors.
class FieldReader {
 public:
  std::vector<PlanProblem> takeProblems() { return std::move(problems_); }

  void problemAt(const YAML::Mark& mark, std::string message) {
    PlanProblem problem;
    if (!mark.is_null()) {
      problem.line = mark.line + 1;
      problem.column = mark.column + 1;
    }
    problem.message = std::move(message);
    problems_.push_back(std::move(problem));
  }
  void problemAt(const YAML::Node& node, std::string message) {
    problemAt(node.Mark(), std::move(message));
  }

 protected:
  // plan_reader.cpp: generic reading.
  Fields readFields(const YAML::Node& map, const std::string& context, FieldList known);
  const Field* requireField(const Fields& fields, std::string_view name, const YAML::Node& map,
                            const std::string& context);
  bool expectKind(const Field& field, YAML::NodeType::value kind, const std::string& path);
  // The scalar `off` (or `false`): a rule or section turned off.
  static bool isOff(const YAML::Node& node);
  std::optional<std::string> readString(const Field& field, const std::string& path);
  std::optional<std::string> readHttpUrl(const Field& field, const std::string& path);
  std::optional<std::chrono::milliseconds> readDurationField(const Field& field,
                                                             const std::string& path,
                                                             std::chrono::milliseconds min,
                                                             std::chrono::milliseconds max);
  std::optional<uint32_t> readCount(const Field& field, const std::string& path, uint32_t max);
  // max_unavailable_clusters: 0 to 10000.
  std::optional<uint32_t> readClusterBudget(const Field& field, const std::string& path);
  std::optional<double> readNumber(const Field& field, const std::string& path, double min,
                                   double max);
  // A label selector: a non-empty map of selector keys to values (plan_waves.cpp).
  void readSelector(const Field& field, const std::string& path,
                    std::map<std::string, std::string>* selector);

 private:
  std::vector<PlanProblem> problems_;
};

// Loads one YAML document from `text` and hands its root to `read`, turning everything yaml-cpp
// throws into problems on `reader`: syntax errors, nesting too deep, a second document, an empty
// text ("the NOUN is empty"). Nothing escapes, whatever the text. Returns the reader's problems
// sorted by position and capped (plan.cpp).
std::vector<PlanProblem> readYamlDocument(const std::string& text, std::string_view noun,
                                          FieldReader* reader,
                                          const std::function<void(const YAML::Node&)>& read);

// Walks the YAML tree once, building the Plan and collecting every problem on the way. It only
// ever descends into the fixed shape of the plan, so anchors that make the tree cyclic
// (`&a [*a]`) or aliases repeated many times cannot make it loop or explode.
class PlanReader : public FieldReader {
 public:
  Plan read(const YAML::Node& root);

 private:
  // plan.cpp: the top level.
  bool readDriver(const Field& field, DriverKind* driver);
  void readSteps(const Field& field, ScriptSteps* steps);
  std::optional<std::string> readCommand(const Fields& fields, std::string_view name);
  // plan_verify.cpp: `steps.verify` as a list of named checks.
  void readVerifyChecks(const Field& field, std::vector<VerifyCheck>* checks);
  void readVerifyCheck(const YAML::Node& node, const std::string& path,
                       std::map<std::string, YAML::Mark, std::less<>>* names,
                       std::vector<VerifyCheck>* checks);
  void readRollback(const Field& field, RollbackScope* scope);
  void readHotfix(const Field& field, std::optional<PlanHotfix>* hotfix);
  // Fields a driver does not use are refused, naming the driver they belong to.
  void checkDriverFields(const Fields& fields, const Plan& plan);
  // plan_script_fields.cpp: what the script driver's strategies and watches need.
  void checkScriptStrategy(const Fields& fields, const Plan& plan);
  // health.http.url: an http(s) URL whose only placeholders are {cluster}, {version} and
  // {environment}.
  std::optional<std::string> readHealthUrl(const Field& field);

  // plan_waves.cpp
  void readWaves(const Field& field, std::vector<Wave>* waves);
  void readWave(const YAML::Node& node, size_t index, Wave* wave);
  void readClusters(const Field& field, size_t wave_index, const std::string& path,
                    const std::string& label, std::vector<std::string>* clusters);
  // `approval: required | none` or `approval: {required: N, expires: D}`.
  void readApproval(const Field& field, const std::string& path, Wave* wave);

  // plan_process_fields.cpp: the process driver's sections.
  void readProcess(const Field& field, ProcessSpec* process);
  void readTraffic(const Field& field, std::optional<HaproxyTraffic>* haproxy);
  void readStrategy(const Field& field, const std::string& path, Strategy* strategy);
  void readRolling(const Fields& fields, const Field& field, const std::string& path,
                   Strategy* strategy);
  void readHealth(const Field& field, Health* health);
  void readMetrics(const Field& field, MetricsAnalysis* metrics);
  void readAlerts(const Field& field, Alerts* alerts);

  // Where each cluster was first named, to refuse a cluster in two waves (or twice in one).
  struct ClusterOwner {
    size_t wave_index;
    std::string wave_label;
  };

  // The plan's driver once read (nothing when it is unknown or bad): some sections read
  // differently for each.
  std::optional<DriverKind> driver_;
  // Where health.http.path / health.http.url were given, for checkDriverFields.
  std::optional<YAML::Mark> health_path_at_;
  std::optional<YAML::Mark> health_url_at_;
  // Fields met in waves ("strategy", "bake"), for checkDriverFields; each wave strategy also as
  // "strategy#INDEX" so a missing traffic.haproxy (or steps.switch) can point at its wave.
  std::vector<std::pair<std::string, YAML::Mark>> wave_process_fields_;
  std::map<std::string, YAML::Mark, std::less<>> wave_names_;
  std::map<std::string, ClusterOwner, std::less<>> cluster_owners_;
};

}  // namespace flotilla::common::plan_internal
