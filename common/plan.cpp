// The plan parser's entry point: reads YAML or JSON text through yaml-cpp, checks it against the
// plan format of DESIGN.md and reports every problem with its position. This file owns the
// document as a whole (size, syntax, a single document, problems sorted and capped) and the
// top-level map: service, version, driver, steps, rollback, and the checks across sections.
// The other sections are read in plan_waves.cpp and plan_process_fields.cpp.
#include "common/plan.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <exception>
#include <sstream>
#include <string_view>
#include <utility>

#include "common/plan_reader.hpp"

namespace flotilla::common {
namespace plan_internal {

using namespace std::chrono_literals;

namespace {

bool isBlank(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

}  // namespace

Plan PlanReader::read(const YAML::Node& root) {
  Plan plan;
  if (!root.IsMap()) {
    problemAt(root, std::string("a plan must be a map of fields, not ") + kindOf(root));
    return plan;
  }
  const Fields fields = readFields(root, "", kPlanFields);

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
        problemAt(field->value,
                  "version " + quote(*version) + " is not a valid version: " + kVersionRule);
      }
    }
  }

  // Without a usable driver we cannot know whether steps are required: say nothing about them.
  bool driver_known = true;
  if (const Field* field = findField(fields, "driver")) {
    driver_known = readDriver(*field, &plan.driver);
  }
  if (driver_known) driver_ = plan.driver;

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
    if (!isOff(field->value)) {  // `alerts: off`: none
      Alerts alerts;
      readAlerts(*field, &alerts);
      plan.alerts = alerts;
    }
  } else if (driver_known) {
    plan.alerts = Alerts{};  // the workflow's thresholds
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
  if (const Field* field = findField(fields, "on_step_failure")) {
    if (auto text = readString(*field, "on_step_failure")) {
      if (*text == "rollback") {
        plan.on_step_failure = OnStepFailure::kRollback;
      } else if (*text == "hold") {
        plan.on_step_failure = OnStepFailure::kHold;
      } else {
        problemAt(field->value,
                  "on_step_failure must be \"rollback\" or \"hold\", not " + quote(*text));
      }
    }
  }
  if (const Field* field = findField(fields, "max_unavailable_clusters")) {
    if (auto n = readClusterBudget(*field, "max_unavailable_clusters")) {
      plan.max_unavailable_clusters = *n;
    }
  }
  if (const Field* field = findField(fields, "hotfix")) readHotfix(*field, &plan.hotfix);
  if (driver_known) checkDriverFields(fields, plan);
  return plan;
}

void PlanReader::checkDriverFields(const Fields& fields, const Plan& plan) {
  const bool script = plan.driver == DriverKind::kScript;
  for (std::string_view name : {"process", "traffic"}) {
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
  if (script && health_path_at_) {
    problemAt(*health_path_at_,
              "health.http.path is for the process driver's replicas; the script driver probes "
              "health.http.url (e.g. http://{cluster}.example.internal/health)");
  }
  if (!script && health_url_at_) {
    problemAt(*health_url_at_,
              "health.http.url is for the script driver; the process driver probes each replica "
              "at health.http.path");
  }
  if (script) {
    checkScriptStrategy(fields, plan);
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
  const Fields fields = readFields(field.value, "steps", kStepFields);
  requireField(fields, "apply", field.value, "steps");
  requireField(fields, "rollback", field.value, "steps");
  if (auto command = readCommand(fields, "build")) steps->build = *command;
  if (auto command = readCommand(fields, "apply")) steps->apply = *command;
  if (const Field* verify = findField(fields, "verify"); verify && verify->value.IsSequence()) {
    readVerifyChecks(*verify, &steps->verify_checks);
  } else if (verify && verify->value.IsMap()) {
    problemAt(verify->value,
              "steps.verify must be a command or a list of checks ({name, command, timeout}), "
              "not a map");
  } else if (auto command = readCommand(fields, "verify")) {
    steps->verify = *command;
  }
  if (auto command = readCommand(fields, "rollback")) steps->rollback = *command;
  if (auto command = readCommand(fields, "switch")) steps->switch_traffic = *command;
  if (auto command = readCommand(fields, "watch")) steps->watch = *command;

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

void PlanReader::readRollback(const Field& field, RollbackScope* scope) {
  if (!expectKind(field, YAML::NodeType::Map, "rollback")) return;
  const Fields fields = readFields(field.value, "rollback", kRollbackFields);
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

void PlanReader::readHotfix(const Field& field, std::optional<PlanHotfix>* hotfix) {
  if (!expectKind(field, YAML::NodeType::Map, "hotfix")) return;
  const Fields fields = readFields(field.value, "hotfix", kPlanHotfixFields);
  const Field* reason_field = requireField(fields, "reason", field.value, "hotfix");
  if (reason_field == nullptr) return;
  auto reason = readString(*reason_field, "hotfix.reason");
  if (!reason) return;
  Status valid = checkHotfixReason(*reason, "hotfix.reason");
  if (!valid.ok()) {
    problemAt(reason_field->value, valid.message());
    return;
  }
  *hotfix = PlanHotfix{*reason, Hotfix{}};
}

}  // namespace plan_internal

namespace {

using plan_internal::FieldReader;
using plan_internal::PlanReader;

// Plans are a few kilobytes; bigger text is refused before yaml-cpp builds a node per token.
constexpr size_t kMaxPlanBytes = size_t{1} << 20;
// A hostile plan can produce hundreds of thousands of problems; nobody reads past a few hundred
// and the list travels back to the CLI, so it is cut and the cut is said.
constexpr size_t kMaxProblems = 200;

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
bool probeDocuments(const std::string& text, std::string_view noun, FieldReader* reader) {
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
      reader->problemAt(probe.rootMark(),
                        "a " + std::string(noun) + " is a single YAML document; found another one");
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

std::vector<PlanProblem> plan_internal::readYamlDocument(
    const std::string& text, std::string_view noun, FieldReader* reader,
    const std::function<void(const YAML::Node&)>& read) {
  const std::string what(noun);
  // yaml-cpp reports syntax errors by exception; nothing may escape from here, whatever the text.
  try {
    if (probeDocuments(text, noun, reader)) {
      const YAML::Node root = YAML::Load(text);
      if (root.IsNull()) {
        reader->problemAt(YAML::Mark::null_mark(), "the " + what + " is empty");
      } else {
        read(root);
      }
    }
  } catch (const YAML::DeepRecursion& e) {
    reader->problemAt(e.mark, "nesting is too deep");
  } catch (const YAML::Exception& e) {
    reader->problemAt(e.mark, "syntax error: " + printableMessage(e.msg));
  } catch (const std::exception& e) {
    reader->problemAt(YAML::Mark::null_mark(),
                      "cannot read the " + what + ": " + printableMessage(e.what()));
  } catch (...) {
    reader->problemAt(YAML::Mark::null_mark(), "cannot read the " + what);
  }
  std::vector<PlanProblem> problems = reader->takeProblems();
  sortAndCap(&problems);
  return problems;
}

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
  result.problems = plan_internal::readYamlDocument(
      text, "plan", &reader, [&](const YAML::Node& root) { plan = reader.read(root); });
  if (result.problems.empty() && plan) result.plan = std::move(plan);
  return result;
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
