// The plan parser: reads YAML or JSON text through yaml-cpp, checks it against the plan
// format of DESIGN.md and reports every problem with its position. Also durations and names.
#include "common/plan.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <exception>
#include <limits>
#include <numeric>
#include <span>
#include <sstream>
#include <string_view>
#include <utility>

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;

// Plans are a few kilobytes; bigger text is refused before yaml-cpp builds a node per token.
constexpr size_t kMaxPlanBytes = size_t{1} << 20;
// A hostile plan can produce hundreds of thousands of problems; nobody reads past a few hundred
// and the list travels back to the CLI, so it is cut and the cut is said.
constexpr size_t kMaxProblems = 200;
// User text quoted back in a message is cut so a huge value cannot blow up the report.
constexpr size_t kMaxQuotedBytes = 64;
// Levenshtein is quadratic: only keys this short get a suggestion.
constexpr size_t kMaxSuggestKeyBytes = 64;

constexpr size_t kMaxNameLength = 63;
constexpr size_t kMaxVersionLength = 128;
constexpr size_t kMaxLabelLength = 63;
constexpr std::chrono::milliseconds kMaxStepTimeout = 24h;
// Each number in a duration is capped so that the sum of all four units fits in int64
// milliseconds: 10^12 * (3600000 + 60000 + 1000 + 1) < 2^63.
constexpr size_t kMaxDurationDigits = 12;

// Largest first: the order formatDuration prints them in and parseDuration requires.
struct DurationUnit {
  std::string_view suffix;
  int64_t ms;
};
constexpr std::array<DurationUnit, 4> kDurationUnits = {{
    {"h", std::chrono::milliseconds(1h).count()},
    {"m", std::chrono::milliseconds(1min).count()},
    {"s", std::chrono::milliseconds(1s).count()},
    {"ms", 1},
}};

using FieldList = std::span<const std::string_view>;

// Fields of each map. The "not yet" lists hold fields that DESIGN.md describes but this version
// does not implement: they are refused with their own message rather than as unknown.
constexpr std::array<std::string_view, 13> kPlanFields = {"service",
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
                                                          "max_unavailable_clusters"};
constexpr std::array<std::string_view, 0> kPlanFieldsNotYet = {};
constexpr std::array<std::string_view, 5> kStepFields = {"build", "apply", "verify", "rollback",
                                                         "timeout"};
constexpr std::array<std::string_view, 8> kWaveFields = {
    "name",         "clusters", "selector", "approval",
    "max_parallel", "strategy", "bake",     "max_unavailable_clusters"};
constexpr std::array<std::string_view, 0> kWaveFieldsNotYet = {};
constexpr std::array<std::string_view, 4> kProcessFields = {"command", "replicas", "ports",
                                                            "health_path"};
constexpr std::array<std::string_view, 2> kApprovalFields = {"required", "expires"};
constexpr std::array<std::string_view, 1> kTrafficFields = {"haproxy"};
constexpr std::array<std::string_view, 2> kHaproxyFields = {"socket", "backend"};
constexpr std::array<std::string_view, 6> kStrategyFields = {
    "type", "steps", "pause", "switch", "max_unavailable", "max_surge"};
constexpr std::array<std::string_view, 0> kStrategyFieldsNotYet = {};
constexpr std::array<std::string_view, 2> kHealthFields = {"http", "metrics"};
constexpr std::array<std::string_view, 4> kHttpHealthFields = {"path", "interval", "timeout",
                                                               "failure_threshold"};
constexpr std::array<std::string_view, 7> kMetricsFields = {
    "source",       "error_rate_increase", "latency_p95_ratio",
    "min_requests", "inconclusive",        "prometheus",
    "queries"};
constexpr std::array<std::string_view, 0> kMetricsFieldsNotYet = {};
constexpr std::array<std::string_view, 3> kQueryFields = {"request_rate", "error_rate",
                                                          "latency_p95"};
constexpr std::array<std::string_view, 7> kAlertFields = {
    "error_rate",      "latency_p95_ratio", "cpu", "memory", "webhook",
    "webhook_timeout", "webhook_attempts"};
constexpr std::array<std::string_view, 1> kRollbackFields = {"scope"};
constexpr std::array<std::string_view, 0> kNoFields = {};

bool contains(FieldList list, std::string_view name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

size_t editDistance(std::string_view a, std::string_view b) {
  // Two rows of the classic dynamic programme are enough: only the last row is ever read.
  std::vector<size_t> previous(b.size() + 1);
  std::vector<size_t> current(b.size() + 1);
  std::iota(previous.begin(), previous.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

// The known field nearest to `key`, when it is close enough to be a plausible typo. Short names
// allow a single edit only, or "ab" would suggest every two-letter field.
std::optional<std::string_view> nearestField(std::string_view key, FieldList known,
                                             FieldList not_yet) {
  if (key.size() > kMaxSuggestKeyBytes) return std::nullopt;
  std::optional<std::string_view> best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (FieldList list : {known, not_yet}) {
    for (std::string_view candidate : list) {
      const size_t distance = editDistance(key, candidate);
      const size_t allowed = candidate.size() <= 4 ? 1 : 2;
      if (distance <= allowed && distance < best_distance) {
        best = candidate;
        best_distance = distance;
      }
    }
  }
  return best;
}

void appendHexEscape(std::string* out, unsigned char byte) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out += "\\x";
  *out += kHex[byte >> 4];
  *out += kHex[byte & 0xf];
}

// User text as it appears in a message: quoted, escaped and cut. The cut falls on a UTF-8
// boundary because problems may be sent on as JSON, which refuses broken UTF-8.
std::string quote(std::string_view text) {
  size_t length = std::min(text.size(), kMaxQuotedBytes);
  while (length > 0 && length < text.size() &&
         (static_cast<unsigned char>(text[length]) & 0xC0) == 0x80) {
    --length;
  }
  std::string out = "\"";
  for (char c : text.substr(0, length)) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      appendHexEscape(&out, byte);
    } else {
      out += c;
    }
  }
  out += '"';
  if (length < text.size()) out += "...";
  return out;
}

// yaml-cpp's messages can embed the offending input byte (e.g. "unknown escape character: \xff")
// and problems may be sent on as JSON, so every byte outside printable ASCII is escaped.
std::string printableMessage(std::string_view message) {
  std::string out;
  for (char c : message) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      appendHexEscape(&out, byte);
    }
  }
  return out;
}

const char* kindOf(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "a string";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Null:
      return "empty";
    case YAML::NodeType::Undefined:
      break;
  }
  return "undefined";
}

std::string positionOf(const YAML::Mark& mark) {
  return std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

bool isPrintableAscii(char c) { return c >= 0x20 && c < 0x7f; }

bool isValidVersion(std::string_view version) {
  // Printable ASCII without spaces: the version lands in shell commands, paths and image tags.
  return !version.empty() && version.size() <= kMaxVersionLength &&
         std::all_of(version.begin(), version.end(),
                     [](char c) { return isPrintableAscii(c) && c != ' '; });
}

bool isValidLabelKey(std::string_view key) {
  return !key.empty() && key.size() <= kMaxLabelLength &&
         std::all_of(key.begin(), key.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '/' || c == '-';
         });
}

bool isValidLabelValue(std::string_view value) {
  return !value.empty() && value.size() <= kMaxLabelLength &&
         std::all_of(value.begin(), value.end(), isPrintableAscii);
}

bool isBlank(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

// Digits only: a sign, a fraction or an exponent is not a count of clusters.
std::optional<uint32_t> parsePositiveCount(std::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value == 0 || value > std::numeric_limits<uint32_t>::max()) return std::nullopt;
  return static_cast<uint32_t>(value);
}

constexpr char kNameRule[] =
    "use 1 to 63 characters from [a-z0-9-], not starting or ending with '-'";

// One map entry whose key is a known field.
struct Field {
  YAML::Node key;
  YAML::Node value;
};
// The known, supported fields of one map by name; the first occurrence wins when a key repeats.
using Fields = std::map<std::string, Field, std::less<>>;

const Field* findField(const Fields& fields, std::string_view name) {
  auto it = fields.find(name);
  return it == fields.end() ? nullptr : &it->second;
}

// Walks the YAML tree once, building the Plan and collecting every problem on the way. It only
// ever descends into the fixed shape of the plan, so anchors that make the tree cyclic
// (`&a [*a]`) or aliases repeated many times cannot make it loop or explode.
class PlanReader {
 public:
  Plan read(const YAML::Node& root);
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

 private:
  Fields readFields(const YAML::Node& map, const std::string& context, FieldList known,
                    FieldList not_yet);
  const Field* requireField(const Fields& fields, std::string_view name, const YAML::Node& map,
                            const std::string& context);
  bool expectKind(const Field& field, YAML::NodeType::value kind, const std::string& path);
  std::optional<std::string> readString(const Field& field, const std::string& path);
  std::optional<std::string> readCommand(const Fields& fields, std::string_view name);

  bool readDriver(const Field& field, DriverKind* driver);
  void readSteps(const Field& field, ScriptSteps* steps);
  void readWaves(const Field& field, std::vector<Wave>* waves);
  void readWave(const YAML::Node& node, size_t index, Wave* wave);
  void readClusters(const Field& field, size_t wave_index, const std::string& path,
                    const std::string& label, std::vector<std::string>* clusters);
  void readSelector(const Field& field, const std::string& path,
                    std::map<std::string, std::string>* selector);
  // `approval: required | none` or `approval: {required: N, expires: D}`.
  void readApproval(const Field& field, const std::string& path, Wave* wave);
  void readRollback(const Field& field, RollbackScope* scope);
  // process driver
  void readProcess(const Field& field, ProcessSpec* process);
  void readTraffic(const Field& field, std::optional<HaproxyTraffic>* haproxy);
  void readStrategy(const Field& field, const std::string& path, Strategy* strategy);
  void readRolling(const Fields& fields, const Field& field, const std::string& path,
                   Strategy* strategy);
  void readHealth(const Field& field, Health* health);
  void readMetrics(const Field& field, MetricsAnalysis* metrics);
  void readAlerts(const Field& field, Alerts* alerts);
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
  // Fields a driver does not use are refused, naming the driver they belong to.
  void checkDriverFields(const Fields& fields, const Plan& plan);

  // Where each cluster was first named, to refuse a cluster in two waves (or twice in one).
  struct ClusterOwner {
    size_t wave_index;
    std::string wave_label;
  };

  std::vector<PlanProblem> problems_;
  std::vector<std::pair<std::string, YAML::Mark>> wave_process_fields_;
  std::map<std::string, YAML::Mark, std::less<>> wave_names_;
  std::map<std::string, ClusterOwner, std::less<>> cluster_owners_;
};

Plan PlanReader::read(const YAML::Node& root) {
  Plan plan;
  if (!root.IsMap()) {
    problemAt(root, std::string("a plan must be a map of fields, not ") + kindOf(root));
    return plan;
  }
  const Fields fields = readFields(root, "", kPlanFields, kPlanFieldsNotYet);

  if (const Field* field = requireField(fields, "service", root, "")) {
    if (auto service = readString(*field, "service")) {
      if (isValidName(*service)) {
        plan.service = *service;
      } else {
        problemAt(field->value,
                  "service " + quote(*service) + " is not a valid name: " + kNameRule);
      }
    }
  }

  // Unquoted numbers such as `version: 1.4` arrive as their text: yaml-cpp keeps the scalar as
  // written, so 1.10 stays "1.10".
  if (const Field* field = requireField(fields, "version", root, "")) {
    if (auto version = readString(*field, "version")) {
      if (isValidVersion(*version)) {
        plan.version = *version;
      } else {
        problemAt(field->value, "version " + quote(*version) +
                                    " must be 1 to 128 printable ASCII characters without spaces");
      }
    }
  }

  // Without a usable driver we cannot know whether steps are required: say nothing about them.
  bool driver_known = true;
  if (const Field* field = findField(fields, "driver")) {
    driver_known = readDriver(*field, &plan.driver);
  }

  if (const Field* field = findField(fields, "steps")) {
    readSteps(*field, &plan.steps);
  } else if (driver_known && plan.driver == DriverKind::kScript) {
    problemAt(root, "missing required field \"steps\" (the script driver needs it)");
  }
  if (const Field* field = findField(fields, "process")) {
    readProcess(*field, &plan.process);
  } else if (driver_known && plan.driver == DriverKind::kProcess) {
    problemAt(root, "missing required field \"process\" (the process driver needs it)");
  }
  if (const Field* field = findField(fields, "traffic")) readTraffic(*field, &plan.haproxy);
  if (const Field* field = findField(fields, "strategy")) {
    readStrategy(*field, "strategy", &plan.strategy);
  }
  if (const Field* field = findField(fields, "health")) readHealth(*field, &plan.health);
  if (const Field* field = findField(fields, "alerts")) {
    Alerts alerts;
    readAlerts(*field, &alerts);
    plan.alerts = alerts;
  }

  if (const Field* field = requireField(fields, "waves", root, "")) {
    readWaves(*field, &plan.waves);
  }

  if (const Field* field = findField(fields, "rollback")) {
    readRollback(*field, &plan.rollback_scope);
  }
  if (const Field* field = findField(fields, "on_agent_lost")) {
    if (auto text = readString(*field, "on_agent_lost")) {
      if (*text == "rollback") {
        plan.on_agent_lost = OnAgentLost::kRollback;
      } else if (*text == "wait") {
        plan.on_agent_lost = OnAgentLost::kWait;
      } else {
        problemAt(field->value,
                  "on_agent_lost must be \"rollback\" or \"wait\", not " + quote(*text));
      }
    }
  }
  if (const Field* field = findField(fields, "max_unavailable_clusters")) {
    if (auto n = readClusterBudget(*field, "max_unavailable_clusters")) {
      plan.max_unavailable_clusters = *n;
    }
  }
  if (driver_known) checkDriverFields(fields, plan);
  return plan;
}

void PlanReader::checkDriverFields(const Fields& fields, const Plan& plan) {
  const bool script = plan.driver == DriverKind::kScript;
  for (std::string_view name : {"process", "traffic", "strategy", "health", "alerts"}) {
    const Field* field = findField(fields, name);
    if (field != nullptr && script) {
      problemAt(field->key, "field " + quote(name) +
                                " is for the process driver; this plan uses driver \"script\"");
    }
  }
  if (const Field* field = findField(fields, "steps"); field != nullptr && !script) {
    problemAt(field->key,
              "field \"steps\" is for the script driver; the process driver runs "
              "the replicas itself");
  }
  if (script) {
    for (const auto& [name, mark] : wave_process_fields_) {
      if (name.find('#') != std::string::npos) continue;  // a per-wave index entry
      problemAt(mark, "wave field " + quote(name) +
                          " is for the process driver; this plan uses driver \"script\"");
    }
    return;
  }
  // Moving a share of traffic needs something that splits it.
  if (plan.haproxy) return;
  std::optional<YAML::Mark> where;
  auto splits = [](StrategyKind k) {
    return k == StrategyKind::kCanary || k == StrategyKind::kBlueGreen;
  };
  if (splits(plan.strategy.kind)) {
    if (const Field* field = findField(fields, "strategy")) where = field->key.Mark();
  }
  for (size_t i = 0; !where && i < plan.waves.size(); ++i) {
    const auto& strategy = plan.waves[i].strategy;
    if (strategy && splits(strategy->kind)) {
      for (const auto& [name, mark] : wave_process_fields_) {
        if (name == "strategy#" + std::to_string(i)) where = mark;
      }
    }
  }
  if (where) {
    problemAt(*where,
              "canary and blue_green need traffic.haproxy in this version (weights by share of "
              "replicas are not supported yet)");
  }
}

Fields PlanReader::readFields(const YAML::Node& map, const std::string& context, FieldList known,
                              FieldList not_yet) {
  // yaml-cpp 0.7 keeps both entries of a repeated key, so repeats are found by walking the map.
  Fields fields;
  const std::string where = context.empty() ? "" : " in " + context;
  for (const auto& entry : map) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      problemAt(key, "field names must be strings, not " + std::string(kindOf(key)) + where);
      continue;
    }
    const std::string& name = key.Scalar();
    if (contains(known, name)) {
      auto [it, inserted] = fields.try_emplace(name, Field{key, entry.second});
      if (!inserted) {
        problemAt(key, "duplicate field " + quote(name) + where + " (first at " +
                           positionOf(it->second.key.Mark()) + ")");
      }
    } else if (contains(not_yet, name)) {
      problemAt(key, "field " + quote(name) + where + " is not supported yet");
    } else {
      std::string message = "unknown field " + quote(name) + where;
      if (auto suggestion = nearestField(name, known, not_yet)) {
        message += "; did you mean " + quote(*suggestion) + "?";
      }
      problemAt(key, std::move(message));
    }
  }
  return fields;
}

const Field* PlanReader::requireField(const Fields& fields, std::string_view name,
                                      const YAML::Node& map, const std::string& context) {
  const Field* field = findField(fields, name);
  if (field == nullptr) {
    problemAt(map, "missing required field " + quote(name) +
                       (context.empty() ? std::string() : " in " + context));
  }
  return field;
}

bool PlanReader::expectKind(const Field& field, YAML::NodeType::value kind,
                            const std::string& path) {
  if (field.value.Type() == kind) return true;
  if (field.value.IsNull()) {
    // An empty value has no position of its own (yaml-cpp marks the next token): use the key's.
    problemAt(field.key, path + " has no value");
    return false;
  }
  const char* expected = kind == YAML::NodeType::Map        ? "a map"
                         : kind == YAML::NodeType::Sequence ? "a list"
                                                            : "a string";
  problemAt(field.value, path + " must be " + expected + ", not " + kindOf(field.value));
  return false;
}

std::optional<std::string> PlanReader::readString(const Field& field, const std::string& path) {
  if (!expectKind(field, YAML::NodeType::Scalar, path)) return std::nullopt;
  return field.value.Scalar();
}

std::optional<std::string> PlanReader::readCommand(const Fields& fields, std::string_view name) {
  const Field* field = findField(fields, name);
  if (field == nullptr) return std::nullopt;
  const std::string path = "steps." + std::string(name);
  auto command = readString(*field, path);
  if (command && isBlank(*command)) {
    problemAt(field->value, path + " must not be empty");
    return std::nullopt;
  }
  return command;
}

bool PlanReader::readDriver(const Field& field, DriverKind* driver) {
  auto name = readString(field, "driver");
  if (!name) return false;
  if (*name == "script") {
    *driver = DriverKind::kScript;
    return true;
  }
  if (*name == "process") {
    *driver = DriverKind::kProcess;
    return true;
  }
  if (*name == "kubernetes") {
    problemAt(field.value,
              "driver \"kubernetes\" is not supported yet; use \"script\" or \"process\"");
  } else {
    problemAt(field.value, "unknown driver " + quote(*name) + "; valid values: script, process");
  }
  return false;
}

void PlanReader::readSteps(const Field& field, ScriptSteps* steps) {
  if (!expectKind(field, YAML::NodeType::Map, "steps")) return;
  const Fields fields = readFields(field.value, "steps", kStepFields, kNoFields);
  requireField(fields, "apply", field.value, "steps");
  requireField(fields, "rollback", field.value, "steps");
  if (auto command = readCommand(fields, "build")) steps->build = *command;
  if (auto command = readCommand(fields, "apply")) steps->apply = *command;
  if (auto command = readCommand(fields, "verify")) steps->verify = *command;
  if (auto command = readCommand(fields, "rollback")) steps->rollback = *command;

  if (const Field* timeout_field = findField(fields, "timeout")) {
    auto text = readString(*timeout_field, "steps.timeout");
    if (!text) return;
    auto timeout = parseDuration(*text);
    if (!timeout.ok()) {
      problemAt(timeout_field->value, "steps.timeout: " + timeout.status().message());
    } else if (*timeout <= 0ms) {
      problemAt(timeout_field->value, "steps.timeout must be greater than 0");
    } else if (*timeout > kMaxStepTimeout) {
      problemAt(timeout_field->value, "steps.timeout must be at most 24h");
    } else {
      steps->timeout = *timeout;
    }
  }
}

void PlanReader::readWaves(const Field& field, std::vector<Wave>* waves) {
  if (!expectKind(field, YAML::NodeType::Sequence, "waves")) return;
  if (field.value.size() == 0) {
    problemAt(field.value, "waves must not be empty");
    return;
  }
  size_t index = 0;
  for (const auto& item : field.value) {
    Wave wave;
    readWave(item, index++, &wave);
    waves->push_back(std::move(wave));
  }
}

void PlanReader::readWave(const YAML::Node& node, size_t index, Wave* wave) {
  const std::string path = "waves[" + std::to_string(index) + "]";
  if (!node.IsMap()) {
    problemAt(node, path + " must be a map, not " + kindOf(node));
    return;
  }
  const Fields fields = readFields(node, path, kWaveFields, kWaveFieldsNotYet);

  // A cluster named in two waves is reported with the wave it first appeared in, by name when
  // that name is good, else by position.
  std::string label = path;
  if (const Field* field = requireField(fields, "name", node, path)) {
    if (auto name = readString(*field, path + ".name")) {
      if (!isValidName(*name)) {
        problemAt(field->value, "wave name " + quote(*name) + " is not a valid name: " + kNameRule);
      } else if (auto [it, inserted] = wave_names_.try_emplace(*name, field->value.Mark());
                 !inserted) {
        problemAt(field->value,
                  "wave name " + quote(*name) + " is already used at " + positionOf(it->second));
      } else {
        wave->name = *name;
        label = "wave " + quote(*name);
      }
    }
  }

  const Field* clusters = findField(fields, "clusters");
  const Field* selector = findField(fields, "selector");
  if (clusters != nullptr && selector != nullptr) {
    problemAt(node, path + " has both \"clusters\" and \"selector\"; use one");
  } else if (clusters == nullptr && selector == nullptr) {
    problemAt(node, path + " needs \"clusters\" or \"selector\"");
  }
  // Both are still checked when both are given, so that every problem is listed at once.
  if (clusters != nullptr) {
    readClusters(*clusters, index, path + ".clusters", label, &wave->clusters);
  }
  if (selector != nullptr) readSelector(*selector, path + ".selector", &wave->selector);

  if (const Field* field = findField(fields, "approval")) {
    readApproval(*field, path + ".approval", wave);
  }
  if (const Field* field = findField(fields, "strategy")) {
    wave_process_fields_.emplace_back("strategy", field->key.Mark());
    wave_process_fields_.emplace_back("strategy#" + std::to_string(index), field->key.Mark());
    Strategy strategy;
    readStrategy(*field, path + ".strategy", &strategy);
    wave->strategy = strategy;
  }
  if (const Field* field = findField(fields, "bake")) {
    wave_process_fields_.emplace_back("bake", field->key.Mark());
    if (auto bake = readDurationField(*field, path + ".bake", 0ms, kMaxStepTimeout)) {
      wave->bake = *bake;
    }
  }
  if (const Field* field = findField(fields, "max_unavailable_clusters")) {
    if (auto n = readClusterBudget(*field, path + ".max_unavailable_clusters")) {
      wave->max_unavailable_clusters = *n;
    }
  }
  if (const Field* field = findField(fields, "max_parallel")) {
    if (auto text = readString(*field, path + ".max_parallel")) {
      if (auto count = parsePositiveCount(*text)) {
        wave->max_parallel = *count;
      } else {
        problemAt(field->value,
                  path + ".max_parallel must be a positive integer, not " + quote(*text));
      }
    }
  }
}

void PlanReader::readClusters(const Field& field, size_t wave_index, const std::string& path,
                              const std::string& label, std::vector<std::string>* clusters) {
  if (!expectKind(field, YAML::NodeType::Sequence, path)) return;
  if (field.value.size() == 0) {
    problemAt(field.value, path + " must not be empty");
    return;
  }
  for (const auto& item : field.value) {
    if (!item.IsScalar()) {
      problemAt(item, "cluster names must be strings, not " + std::string(kindOf(item)));
      continue;
    }
    const std::string& name = item.Scalar();
    if (!isValidName(name)) {
      problemAt(item, "cluster " + quote(name) + " is not a valid name: " + kNameRule);
      continue;
    }
    auto [it, inserted] = cluster_owners_.try_emplace(name, ClusterOwner{wave_index, label});
    if (!inserted) {
      problemAt(item, it->second.wave_index == wave_index
                          ? "cluster " + quote(name) + " is listed twice in " + label
                          : "cluster " + quote(name) + " is already in " + it->second.wave_label);
      continue;
    }
    clusters->push_back(name);
  }
}

void PlanReader::readSelector(const Field& field, const std::string& path,
                              std::map<std::string, std::string>* selector) {
  if (!expectKind(field, YAML::NodeType::Map, path)) return;
  if (field.value.size() == 0) {
    problemAt(field.value, path + " must not be empty");
    return;
  }
  for (const auto& entry : field.value) {
    const YAML::Node& key = entry.first;
    const YAML::Node& value = entry.second;
    if (!key.IsScalar() || !isValidLabelKey(key.Scalar())) {
      problemAt(key, "label key " + (key.IsScalar() ? quote(key.Scalar()) : kindOf(key)) + " in " +
                         path + " must be 1 to 63 characters from [a-z0-9._/-]");
      continue;
    }
    const std::string& label = key.Scalar();
    if (selector->count(label) != 0) {
      problemAt(key, "duplicate label " + quote(label) + " in " + path);
      continue;
    }
    if (!value.IsScalar() || !isValidLabelValue(value.Scalar())) {
      const YAML::Node& where = value.IsNull() ? key : value;
      problemAt(where, "label " + quote(label) + " in " + path +
                           " must have a value of 1 to 63 printable ASCII characters");
      continue;
    }
    selector->emplace(label, value.Scalar());
  }
}

void PlanReader::readApproval(const Field& field, const std::string& path, Wave* wave) {
  if (field.value.IsMap()) {
    const Fields fields = readFields(field.value, path, kApprovalFields, kNoFields);
    if (const Field* f = requireField(fields, "required", field.value, path)) {
      if (auto n = readCount(*f, path + ".required", kMaxApprovalsRequired)) {
        wave->approval_required = true;
        wave->approvals_required = *n;
      }
    }
    if (const Field* f = findField(fields, "expires")) {
      if (auto d = readDurationField(*f, path + ".expires", 1s, kMaxApprovalValidity)) {
        wave->approval_expires = *d;
      }
    }
    return;
  }
  if (!field.value.IsScalar() && !field.value.IsNull()) {
    problemAt(field.value, path +
                               " must be \"required\", \"none\" or a map such as "
                               "{required: 2, expires: 12h}, not " +
                               kindOf(field.value));
    return;
  }
  auto text = readString(field, path);
  if (!text) return;
  // Booleans are accepted because `approval: true` is what people write first.
  if (*text == "required" || *text == "true" || *text == "True" || *text == "TRUE") {
    wave->approval_required = true;
  } else if (*text == "none" || *text == "false" || *text == "False" || *text == "FALSE") {
    wave->approval_required = false;
  } else {
    problemAt(field.value,
              path + " must be \"required\", \"none\" or {required: N}, not " + quote(*text));
  }
}

void PlanReader::readRollback(const Field& field, RollbackScope* scope) {
  if (!expectKind(field, YAML::NodeType::Map, "rollback")) return;
  const Fields fields = readFields(field.value, "rollback", kRollbackFields, kNoFields);
  const Field* scope_field = requireField(fields, "scope", field.value, "rollback");
  if (scope_field == nullptr) return;
  auto text = readString(*scope_field, "rollback.scope");
  if (!text) return;
  if (*text == "fleet") {
    *scope = RollbackScope::kFleet;
  } else if (*text == "wave") {
    *scope = RollbackScope::kWave;
  } else {
    problemAt(scope_field->value,
              "rollback.scope must be \"fleet\" or \"wave\", not " + quote(*text));
  }
}

std::optional<std::chrono::milliseconds> PlanReader::readDurationField(
    const Field& field, const std::string& path, std::chrono::milliseconds min,
    std::chrono::milliseconds max) {
  auto text = readString(field, path);
  if (!text) return std::nullopt;
  auto d = parseDuration(*text);
  if (!d.ok()) {
    problemAt(field.value, path + ": " + d.status().message());
    return std::nullopt;
  }
  if (*d < min || *d > max) {
    problemAt(field.value,
              path + " must be between " + formatDuration(min) + " and " + formatDuration(max));
    return std::nullopt;
  }
  return *d;
}

std::optional<uint32_t> PlanReader::readClusterBudget(const Field& field, const std::string& path) {
  auto text = readString(field, path);
  if (!text) return std::nullopt;
  if (*text == "0") return 0u;
  auto count = parsePositiveCount(*text);
  if (!count || *count > 10000) {
    problemAt(field.value, path + " must be an integer from 0 to 10000, not " + quote(*text));
    return std::nullopt;
  }
  return count;
}

std::optional<uint32_t> PlanReader::readCount(const Field& field, const std::string& path,
                                              uint32_t max) {
  auto text = readString(field, path);
  if (!text) return std::nullopt;
  auto count = parsePositiveCount(*text);
  if (!count || *count > max) {
    problemAt(field.value, path + " must be an integer from 1 to " + std::to_string(max) +
                               ", not " + quote(*text));
    return std::nullopt;
  }
  return count;
}

std::optional<double> PlanReader::readNumber(const Field& field, const std::string& path,
                                             double min, double max) {
  auto text = readString(field, path);
  if (!text) return std::nullopt;
  // Plain decimals only: no hex, exponents or spaces that std::stod would also take.
  bool plain = !text->empty() && text->find_first_not_of("0123456789.") == std::string::npos &&
               std::count(text->begin(), text->end(), '.') <= 1 && text->front() != '.' &&
               text->back() != '.';
  double value = plain ? std::strtod(text->c_str(), nullptr) : -1;
  if (!plain || value < min || value > max) {
    std::ostringstream range;
    range << min << " to " << max;
    problemAt(field.value,
              path + " must be a number from " + range.str() + ", not " + quote(*text));
    return std::nullopt;
  }
  return value;
}

void PlanReader::readProcess(const Field& field, ProcessSpec* process) {
  if (!expectKind(field, YAML::NodeType::Map, "process")) return;
  const Fields fields = readFields(field.value, "process", kProcessFields, kNoFields);
  if (const Field* f = requireField(fields, "command", field.value, "process")) {
    if (auto command = readString(*f, "process.command")) {
      if (command->find("{port}") == std::string::npos) {
        problemAt(f->value,
                  "process.command must contain {port}: the agent picks each "
                  "replica's port");
      } else {
        process->command = *command;
      }
    }
  }
  if (const Field* f = findField(fields, "replicas")) {
    if (auto n = readCount(*f, "process.replicas", 64)) process->replicas = *n;
  }
  if (const Field* f = requireField(fields, "ports", field.value, "process")) {
    if (auto text = readString(*f, "process.ports")) {
      auto dash = text->find('-');
      auto lo = parsePositiveCount(text->substr(0, dash));
      auto hi =
          dash == std::string::npos ? std::nullopt : parsePositiveCount(text->substr(dash + 1));
      if (!lo || !hi || *lo > *hi || *hi > 65535 || *lo < 1024) {
        problemAt(f->value,
                  "process.ports must be a range like \"18000-18099\" within "
                  "1024-65535, not " +
                      quote(*text));
      } else {
        process->port_min = *lo;
        process->port_max = *hi;
      }
    }
  }
  if (const Field* f = findField(fields, "health_path")) {
    if (auto path = readString(*f, "process.health_path")) {
      if (path->empty() || (*path)[0] != '/') {
        problemAt(f->value, "process.health_path must start with '/'");
      } else {
        process->health_path = *path;
      }
    }
  }
  // Old and new replicas run side by side during a rollout.
  if (process->port_max != 0 && process->port_max - process->port_min + 1 < 2 * process->replicas) {
    problemAt(field.value,
              "process.ports holds fewer than 2 x replicas ports; old and new "
              "replicas run side by side during a rollout");
  }
}

void PlanReader::readTraffic(const Field& field, std::optional<HaproxyTraffic>* haproxy) {
  if (!expectKind(field, YAML::NodeType::Map, "traffic")) return;
  const Fields fields = readFields(field.value, "traffic", kTrafficFields, kNoFields);
  const Field* h = requireField(fields, "haproxy", field.value, "traffic");
  if (h == nullptr || !expectKind(*h, YAML::NodeType::Map, "traffic.haproxy")) return;
  const Fields hf = readFields(h->value, "traffic.haproxy", kHaproxyFields, kNoFields);
  HaproxyTraffic out;
  bool ok = true;
  if (const Field* f = requireField(hf, "socket", h->value, "traffic.haproxy")) {
    auto socket = readString(*f, "traffic.haproxy.socket");
    if (socket && (socket->empty() || (*socket)[0] != '/')) {
      problemAt(f->value, "traffic.haproxy.socket must be an absolute path");
      ok = false;
    } else if (socket) {
      out.socket = *socket;
    }
  }
  if (const Field* f = requireField(hf, "backend", h->value, "traffic.haproxy")) {
    auto backend = readString(*f, "traffic.haproxy.backend");
    if (backend && (backend->empty() || backend->size() > 63 ||
                    backend->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
                                               "xyz0123456789_.-") != std::string::npos)) {
      problemAt(f->value,
                "traffic.haproxy.backend must be 1 to 63 characters from "
                "[A-Za-z0-9_.-]");
      ok = false;
    } else if (backend) {
      out.backend = *backend;
    }
  }
  if (ok && !out.socket.empty() && !out.backend.empty()) *haproxy = out;
}

void PlanReader::readStrategy(const Field& field, const std::string& path, Strategy* strategy) {
  if (!expectKind(field, YAML::NodeType::Map, path)) return;
  const Fields fields = readFields(field.value, path, kStrategyFields, kStrategyFieldsNotYet);
  const Field* type = requireField(fields, "type", field.value, path);
  if (type == nullptr) return;
  auto name = readString(*type, path + ".type");
  if (!name) return;
  if (*name == "canary") {
    strategy->kind = StrategyKind::kCanary;
  } else if (*name == "blue_green") {
    strategy->kind = StrategyKind::kBlueGreen;
  } else if (*name == "rolling") {
    strategy->kind = StrategyKind::kRolling;
    readRolling(fields, field, path, strategy);
    return;
  } else {
    problemAt(type->value, "unknown strategy type " + quote(*name) +
                               "; valid values: canary, blue_green, rolling");
    return;
  }
  for (std::string_view name : {"max_unavailable", "max_surge"}) {
    if (const Field* f = findField(fields, name)) {
      problemAt(f->key, path + "." + std::string(name) + " is for type: rolling");
    }
  }
  bool stepped = strategy->kind == StrategyKind::kCanary;
  if (const Field* f = findField(fields, "switch")) {
    auto mode = readString(*f, path + ".switch");
    if (strategy->kind != StrategyKind::kBlueGreen) {
      problemAt(f->key, path + ".switch is for blue_green");
    } else if (mode && *mode == "steps") {
      stepped = true;
    } else if (mode && *mode != "all") {
      problemAt(f->value, path + ".switch must be \"all\" or \"steps\", not " + quote(*mode));
    }
  }
  const Field* steps = findField(fields, "steps");
  if (stepped && steps == nullptr) {
    problemAt(field.value, path + " needs \"steps\", e.g. [10, 50, 100]");
  } else if (!stepped && steps != nullptr) {
    problemAt(steps->key, path + ".steps needs switch: steps");
  } else if (steps != nullptr && expectKind(*steps, YAML::NodeType::Sequence, path + ".steps")) {
    uint32_t last = 0;
    bool good = true;
    for (const auto& item : steps->value) {
      auto value = item.IsScalar() ? parsePositiveCount(item.Scalar()) : std::nullopt;
      if (!value || *value > 100 || *value <= last) {
        problemAt(item, path + ".steps must be increasing percentages from 1 to 100");
        good = false;
        break;
      }
      last = *value;
      strategy->steps.push_back(*value);
    }
    if (good && last != 100) {
      problemAt(steps->value, path + ".steps must end at 100");
    }
  }
  if (!stepped) strategy->steps = {100};
  strategy->pause = std::chrono::seconds(30);
  if (const Field* f = findField(fields, "pause")) {
    if (auto pause = readDurationField(*f, path + ".pause", 0ms, kMaxStepTimeout)) {
      strategy->pause = *pause;
    }
  }
}

void PlanReader::readRolling(const Fields& fields, const Field& field, const std::string& path,
                             Strategy* strategy) {
  for (std::string_view name : {"steps", "pause", "switch"}) {
    if (const Field* f = findField(fields, name)) {
      problemAt(f->key, path + "." + std::string(name) + " is not used by type: rolling");
    }
  }
  strategy->steps = {100};
  // Zero is a valid bound here (never below the count, or never above it).
  auto count = [&](std::string_view name, uint32_t* out) {
    const Field* f = findField(fields, name);
    if (f == nullptr) return;
    auto text = readString(*f, path + "." + std::string(name));
    if (!text) return;
    bool zero =
        !text->empty() && text->size() <= 10 && text->find_first_not_of('0') == std::string::npos;
    auto n = zero ? std::optional<uint32_t>(0) : parsePositiveCount(*text);
    if (!n || *n > 64) {
      problemAt(f->value, path + "." + std::string(name) +
                              " must be an integer from 0 to 64, not " + quote(*text));
      return;
    }
    *out = *n;
  };
  count("max_unavailable", &strategy->max_unavailable);
  count("max_surge", &strategy->max_surge);
  if (strategy->max_unavailable == 0 && strategy->max_surge == 0) {
    problemAt(field.value, path +
                               ": max_unavailable and max_surge cannot both be 0 (nothing "
                               "could ever be replaced)");
  }
}

void PlanReader::readHealth(const Field& field, Health* health) {
  if (!expectKind(field, YAML::NodeType::Map, "health")) return;
  const Fields fields = readFields(field.value, "health", kHealthFields, kNoFields);
  if (const Field* h = findField(fields, "http");
      h != nullptr && expectKind(*h, YAML::NodeType::Map, "health.http")) {
    const Fields hf = readFields(h->value, "health.http", kHttpHealthFields, kNoFields);
    if (const Field* f = findField(hf, "path")) {
      auto path = readString(*f, "health.http.path");
      if (path && (path->empty() || (*path)[0] != '/')) {
        problemAt(f->value, "health.http.path must start with '/'");
      } else if (path) {
        health->http.path = *path;
      }
    }
    if (const Field* f = findField(hf, "interval")) {
      if (auto d = readDurationField(*f, "health.http.interval", 50ms, 1h))
        health->http.interval = *d;
    }
    if (const Field* f = findField(hf, "timeout")) {
      if (auto d = readDurationField(*f, "health.http.timeout", 10ms, 5min))
        health->http.timeout = *d;
    }
    if (const Field* f = findField(hf, "failure_threshold")) {
      if (auto n = readCount(*f, "health.http.failure_threshold", 100)) {
        health->http.failure_threshold = *n;
      }
    }
  }
  if (const Field* m = findField(fields, "metrics");
      m != nullptr && expectKind(*m, YAML::NodeType::Map, "health.metrics")) {
    MetricsAnalysis metrics;
    readMetrics(*m, &metrics);
    health->metrics = metrics;
  }
}

void PlanReader::readMetrics(const Field& m, MetricsAnalysis* metrics) {
  const Fields mf = readFields(m.value, "health.metrics", kMetricsFields, kMetricsFieldsNotYet);
  const Field* source_field = findField(mf, "source");
  if (source_field != nullptr) {
    auto source = readString(*source_field, "health.metrics.source");
    if (source && *source == "prometheus") {
      metrics->source = MetricsSource::kPrometheus;
    } else if (source && *source != "scrape") {
      problemAt(source_field->value,
                "health.metrics.source must be \"scrape\" or "
                "\"prometheus\", not " +
                    quote(*source));
    }
  }
  const Field* url = findField(mf, "prometheus");
  if (url != nullptr) {
    if (auto u = readHttpUrl(*url, "health.metrics.prometheus")) metrics->prometheus = *u;
    if (metrics->source != MetricsSource::kPrometheus) {
      problemAt(url->key, "health.metrics.prometheus is used only with source: prometheus");
    }
  } else if (metrics->source == MetricsSource::kPrometheus) {
    problemAt(source_field->value,
              "source: prometheus needs health.metrics.prometheus, the "
              "server's URL (e.g. http://127.0.0.1:9090)");
  }
  if (const Field* q = findField(mf, "queries");
      q != nullptr && expectKind(*q, YAML::NodeType::Map, "health.metrics.queries")) {
    if (metrics->source != MetricsSource::kPrometheus) {
      problemAt(q->key, "health.metrics.queries is used only with source: prometheus");
    }
    const Fields qf = readFields(q->value, "health.metrics.queries", kQueryFields, kNoFields);
    auto query = [&](std::string_view name, std::string* out) {
      const Field* f = findField(qf, name);
      if (f == nullptr) return;
      const std::string path = "health.metrics.queries." + std::string(name);
      auto text = readString(*f, path);
      if (!text) return;
      if (text->empty() || text->size() > 4096) {
        problemAt(f->value, path + " must be 1 to 4096 characters of PromQL");
      } else if (text->find("{instances}") == std::string::npos) {
        problemAt(f->value, path +
                                " must use {instances} so it measures one set of replicas "
                                "(new or stable), not the whole service");
      } else {
        *out = *text;
      }
    };
    query("request_rate", &metrics->queries.request_rate);
    query("error_rate", &metrics->queries.error_rate);
    query("latency_p95", &metrics->queries.latency_p95);
  }
  if (const Field* f = findField(mf, "error_rate_increase")) {
    if (auto v = readNumber(*f, "health.metrics.error_rate_increase", 0.0, 100.0)) {
      metrics->error_rate_increase = *v;
    }
  }
  if (const Field* f = findField(mf, "latency_p95_ratio")) {
    if (auto v = readNumber(*f, "health.metrics.latency_p95_ratio", 1.0, 100.0)) {
      metrics->latency_p95_ratio = *v;
    }
  }
  if (const Field* f = findField(mf, "min_requests")) {
    if (auto n = readCount(*f, "health.metrics.min_requests", 1000000)) {
      metrics->min_requests = *n;
    }
  }
  if (const Field* f = findField(mf, "inconclusive")) {
    auto mode = readString(*f, "health.metrics.inconclusive");
    if (mode && *mode == "fail") {
      metrics->fail_when_inconclusive = true;
    } else if (mode && *mode != "wait") {
      problemAt(f->value,
                "health.metrics.inconclusive must be \"wait\" or \"fail\", not " + quote(*mode));
    }
  }
}

void PlanReader::readAlerts(const Field& field, Alerts* alerts) {
  if (!expectKind(field, YAML::NodeType::Map, "alerts")) return;
  const Fields fields = readFields(field.value, "alerts", kAlertFields, kNoFields);
  if (const Field* f = findField(fields, "error_rate")) {
    if (auto v = readNumber(*f, "alerts.error_rate", 0.0, 1.0)) alerts->error_rate = *v;
  }
  if (const Field* f = findField(fields, "latency_p95_ratio")) {
    if (auto v = readNumber(*f, "alerts.latency_p95_ratio", 1.0, 100.0)) {
      alerts->latency_p95_ratio = *v;
    }
  }
  if (const Field* f = findField(fields, "cpu")) {
    if (auto v = readNumber(*f, "alerts.cpu", 0.0, 64.0)) alerts->cpu = *v;
  }
  if (const Field* f = findField(fields, "memory")) {
    if (auto v = readNumber(*f, "alerts.memory", 0.0, 1.0)) alerts->memory = *v;
  }
  if (const Field* f = findField(fields, "webhook")) {
    if (auto u = readHttpUrl(*f, "alerts.webhook")) alerts->webhook = *u;
  }
  if (const Field* f = findField(fields, "webhook_timeout")) {
    if (auto d = readDurationField(*f, "alerts.webhook_timeout", 100ms, 5min)) {
      alerts->webhook_timeout = *d;
    }
  }
  if (const Field* f = findField(fields, "webhook_attempts")) {
    if (auto n = readCount(*f, "alerts.webhook_attempts", 20)) alerts->webhook_attempts = *n;
  }
}

std::optional<std::string> PlanReader::readHttpUrl(const Field& field, const std::string& path) {
  auto url = readString(field, path);
  if (!url) return std::nullopt;
  const bool scheme = url->rfind("http://", 0) == 0 || url->rfind("https://", 0) == 0;
  const bool printable = std::all_of(url->begin(), url->end(), [](char c) {
    return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
  if (!scheme || !printable || url->size() > 2048 || url->find("://") + 3 == url->size()) {
    problemAt(field.value,
              path + " must be an http:// or https:// URL without spaces, not " + quote(*url));
    return std::nullopt;
  }
  return url;
}

// Follows the document stream without building nodes, for what YAML::Load alone cannot tell.
// Load reads the first document and silently drops any other. And yaml-cpp 0.7 does not consume
// a stray flow token such as a lone ','; every further call then yields another empty document
// at the same place (why YAML::LoadAll loops until memory runs out, jbeder/yaml-cpp#1040).
class DocumentProbe : public YAML::EventHandler {
 public:
  const YAML::Mark& start() const { return start_; }
  const YAML::Mark& rootMark() const { return root_mark_; }
  bool rootIsNull() const { return root_is_null_; }

  // Interface
  void OnDocumentStart(const YAML::Mark& mark) override {
    start_ = mark;
    root_mark_ = mark;
    root_is_null_ = true;
    depth_ = 0;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { onNode(mark, true); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { onNode(mark, false); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    onNode(mark, false);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    onNode(mark, false);
    ++depth_;
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    onNode(mark, false);
    ++depth_;
  }
  void OnMapEnd() override { --depth_; }

 private:
  void onNode(const YAML::Mark& mark, bool is_null) {
    if (depth_ != 0) return;
    root_mark_ = mark;
    root_is_null_ = is_null;
  }

  YAML::Mark start_;
  YAML::Mark root_mark_;
  bool root_is_null_ = true;
  int depth_ = 0;
};

// Reports a second document and returns true, or reports a stuck parser and returns false (the
// text is then not loaded). Throws yaml-cpp's syntax errors.
bool probeDocuments(const std::string& text, PlanReader* reader) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentProbe probe;
  if (!parser.HandleNextDocument(probe)) return true;
  int previous_start = probe.start().pos;
  // Bounded: each round either returns or starts strictly further into the text.
  while (parser.HandleNextDocument(probe)) {
    const YAML::Mark& start = probe.start();
    if (start.pos <= previous_start) {
      const size_t at = static_cast<size_t>(std::max(start.pos, 0));
      reader->problemAt(start, "syntax error: unexpected " + quote(text.substr(at, 1)));
      return false;
    }
    // A trailing `---` is harmless; a document with content would be silently ignored.
    if (!probe.rootIsNull()) {
      reader->problemAt(probe.rootMark(), "a plan is a single YAML document; found another one");
      return true;
    }
    previous_start = start.pos;
  }
  return true;
}

void sortAndCap(std::vector<PlanProblem>* problems) {
  std::stable_sort(problems->begin(), problems->end(),
                   [](const PlanProblem& a, const PlanProblem& b) {
                     return std::pair(a.line, a.column) < std::pair(b.line, b.column);
                   });
  if (problems->size() <= kMaxProblems) return;
  // The note sits where the first unlisted problem was, so the list stays sorted.
  PlanProblem note = (*problems)[kMaxProblems];
  note.message = std::to_string(problems->size() - kMaxProblems) + " more problems not listed";
  problems->resize(kMaxProblems);
  problems->push_back(std::move(note));
}

}  // namespace

std::string PlanProblem::toString() const {
  if (line == 0) return message;
  return std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

PlanParseResult parsePlan(const std::string& text) {
  PlanParseResult result;
  if (text.size() > kMaxPlanBytes) {
    result.problems.push_back(
        {0, 0, "the plan is " + std::to_string(text.size()) + " bytes; the limit is 1 MiB"});
    return result;
  }
  PlanReader reader;
  std::optional<Plan> plan;
  // yaml-cpp reports syntax errors by exception; nothing may escape from here, whatever the text.
  try {
    if (probeDocuments(text, &reader)) {
      const YAML::Node root = YAML::Load(text);
      if (root.IsNull()) {
        reader.problemAt(YAML::Mark::null_mark(), "the plan is empty");
      } else {
        plan = reader.read(root);
      }
    }
  } catch (const YAML::DeepRecursion& e) {
    reader.problemAt(e.mark, "nesting is too deep");
  } catch (const YAML::Exception& e) {
    reader.problemAt(e.mark, "syntax error: " + printableMessage(e.msg));
  } catch (const std::exception& e) {
    reader.problemAt(YAML::Mark::null_mark(),
                     "cannot read the plan: " + printableMessage(e.what()));
  } catch (...) {
    reader.problemAt(YAML::Mark::null_mark(), "cannot read the plan");
  }
  result.problems = reader.takeProblems();
  sortAndCap(&result.problems);
  if (result.problems.empty() && plan) result.plan = std::move(plan);
  return result;
}

StatusOr<std::chrono::milliseconds> parseDuration(const std::string& text) {
  const std::string bad = "invalid duration " + quote(text);
  if (text.empty()) return Status::InvalidArgument("empty duration");
  // Units must come largest first, each at most once: "1h30m" but not "30m1h" or "5m5m", which
  // are more likely typos than intent. `next_unit` is the first unit still allowed.
  size_t next_unit = 0;
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    int64_t number = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (i - start == kMaxDurationDigits) return Status::InvalidArgument(bad + ": too large");
      number = number * 10 + (text[i] - '0');
      ++i;
    }
    if (i == start) {
      return Status::InvalidArgument(bad + ": expected a number followed by h, m, s or ms");
    }
    if (i == text.size()) {
      return Status::InvalidArgument(bad + ": a unit is required (h, m, s or ms)");
    }
    // The longest suffix wins, so that "ms" is not read as "m" followed by garbage.
    std::optional<size_t> unit;
    for (size_t u = 0; u < kDurationUnits.size(); ++u) {
      const std::string_view suffix = kDurationUnits[u].suffix;
      if (text.compare(i, suffix.size(), suffix) == 0 &&
          (!unit || suffix.size() > kDurationUnits[*unit].suffix.size())) {
        unit = u;
      }
    }
    if (!unit) return Status::InvalidArgument(bad + ": unknown unit; use h, m, s or ms");
    if (*unit < next_unit) {
      return Status::InvalidArgument(bad + ": units must go from largest to smallest, each once");
    }
    i += kDurationUnits[*unit].suffix.size();
    next_unit = *unit + 1;
    total += number * kDurationUnits[*unit].ms;
  }
  return std::chrono::milliseconds(total);
}

std::string formatDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    // Negating the minimum would overflow; it is far beyond any real duration anyway.
    ms = ms == std::numeric_limits<int64_t>::min() ? std::numeric_limits<int64_t>::max() : -ms;
  }
  for (const DurationUnit& unit : kDurationUnits) {
    if (ms >= unit.ms) {
      out += std::to_string(ms / unit.ms);
      out += unit.suffix;
      ms %= unit.ms;
    }
  }
  return out;
}

bool isValidName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  if (name.front() == '-' || name.back() == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

const char* driverName(DriverKind d) {
  switch (d) {
    case DriverKind::kScript:
      return "script";
    case DriverKind::kProcess:
      return "process";
  }
  return "unknown";
}

const char* strategyName(StrategyKind s) {
  switch (s) {
    case StrategyKind::kAllAtOnce:
      return "all_at_once";
    case StrategyKind::kCanary:
      return "canary";
    case StrategyKind::kBlueGreen:
      return "blue_green";
    case StrategyKind::kRolling:
      return "rolling";
  }
  return "unknown";
}

const char* rollbackScopeName(RollbackScope s) {
  switch (s) {
    case RollbackScope::kFleet:
      return "fleet";
    case RollbackScope::kWave:
      return "wave";
  }
  return "unknown";
}

}  // namespace flotilla::common
