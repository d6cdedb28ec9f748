// The policy file's parser: reads YAML or JSON through the plan parser's FieldReader (fields,
// kinds, durations, selectors, positions) and checks the rules across environments: promotion
// sources and cycles, trigger names, hotfix.skip_checks.
#include "common/policy.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <iomanip>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "common/crypto.hpp"
#include "common/plan_reader.hpp"
#include "common/rules.hpp"
#include "common/user_text.hpp"

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;
using plan_internal::Field;
using plan_internal::FieldReader;
using plan_internal::Fields;
using plan_internal::findField;
using plan_internal::kindOf;
using plan_internal::positionOf;

// Policy files are a few kilobytes, like plans.
constexpr size_t kMaxPolicyBytes = size_t{1} << 20;
constexpr size_t kMaxEnvironments = 64;
constexpr size_t kMaxListEntries = 256;
constexpr size_t kMaxWatchTiers = 10;
constexpr size_t kMaxPlanPathBytes = 4096;
constexpr uint32_t kMaxApprovals = 10;
constexpr std::chrono::milliseconds kMaxPolicyDuration = std::chrono::hours(24 * 30);

constexpr std::array<std::string_view, 2> kPolicyFields = {"environments", "hotfix"};
constexpr std::array<std::string_view, 7> kEnvironmentFields = {
    "clusters", "deployers", "approval", "checks", "promotion", "triggers", "watch"};
constexpr std::array<std::string_view, 1> kApprovalFields = {"required"};
constexpr std::array<std::string_view, 2> kPromotionFields = {"from", "soak"};
constexpr std::array<std::string_view, 2> kTriggerFields = {"name", "plan"};
constexpr std::array<std::string_view, 3> kWatchFields = {"name", "for", "interval"};
constexpr std::array<std::string_view, 5> kHotfixFields = {"approvals", "skip_checks", "soak",
                                                           "watch_factor", "allowed_during_freeze"};

constexpr char kCheckForm[] =
    "write NAME or NAME OP NUMBER, with OP one of >=, >, <=, <, == (\"coverage >= 80\")";

// Plain decimals, optionally negative: no hex, exponents, inf or nan that strtod would take.
std::optional<double> parsePlainNumber(std::string_view text) {
  std::string_view digits = text;
  if (!digits.empty() && digits.front() == '-') digits.remove_prefix(1);
  if (digits.empty() || digits.size() > 32 || digits.front() == '.' || digits.back() == '.' ||
      digits.find_first_not_of("0123456789.") != std::string_view::npos ||
      std::count(digits.begin(), digits.end(), '.') > 1) {
    return std::nullopt;
  }
  return std::strtod(std::string(text).c_str(), nullptr);
}

std::string_view trimSpaces(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

// Where each name the cross-checks need was met.
struct PromotionAt {
  std::string environment;
  std::string from;
  YAML::Mark at;  // the value of promotion.from
};

class PolicyReader : public FieldReader {
 public:
  Policy read(const YAML::Node& root);

 private:
  void readEnvironments(const Field& field, Policy* policy);
  void readEnvironment(const Field& field, const std::string& path, Environment* env);
  std::vector<std::string> readNameList(const Field& field, const std::string& path,
                                        std::vector<YAML::Mark>* marks);
  void readChecks(const Field& field, const std::string& path, std::vector<Check>* checks);
  std::optional<Check> readCheck(const YAML::Node& node, const std::string& path);
  void readTriggers(const Field& field, const std::string& path, const std::string& environment,
                    std::vector<Trigger>* triggers);
  void readWatch(const Field& field, const std::string& path, std::vector<WatchTier>* watch);
  void readHotfix(const Field& field, Hotfix* hotfix);
  bool readBool(const Field& field, const std::string& path);
  // A list field within kMaxListEntries (or `max`) entries; false (reported) otherwise.
  bool expectList(const Field& field, const std::string& path, size_t max);
  void checkPromotions(const Policy& policy);
  void checkSkipChecks(const Policy& policy);

  std::vector<PromotionAt> promotions_;
  // Trigger name -> environment and position, to refuse a name used twice.
  std::map<std::string, std::pair<std::string, YAML::Mark>, std::less<>> triggers_;
  std::vector<std::pair<std::string, YAML::Mark>> skip_checks_;
};

Policy PolicyReader::read(const YAML::Node& root) {
  Policy policy;
  if (!root.IsMap()) {
    problemAt(root, std::string("a policy file must be a map of fields, not ") + kindOf(root));
    return policy;
  }
  const Fields fields = readFields(root, "", kPolicyFields);
  if (const Field* field = requireField(fields, "environments", root, "")) {
    readEnvironments(*field, &policy);
  }
  if (const Field* field = findField(fields, "hotfix")) {
    Hotfix hotfix;
    readHotfix(*field, &hotfix);
    policy.hotfix = std::move(hotfix);
  }
  checkPromotions(policy);
  checkSkipChecks(policy);
  return policy;
}

void PolicyReader::readEnvironments(const Field& field, Policy* policy) {
  if (!expectKind(field, YAML::NodeType::Map, "environments")) return;
  if (field.value.size() == 0) {
    problemAt(field.value, "environments must name at least one environment");
    return;
  }
  if (field.value.size() > kMaxEnvironments) {
    problemAt(field.value, "environments names " + std::to_string(field.value.size()) +
                               " environments; the limit is " + std::to_string(kMaxEnvironments));
    return;
  }
  std::map<std::string, YAML::Mark, std::less<>> seen;
  for (const auto& entry : field.value) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar() || !isValidName(key.Scalar())) {
      problemAt(key, "environment name " +
                         (key.IsScalar() ? quote(key.Scalar()) : std::string(kindOf(key))) +
                         " is not a valid name: " + kNameRule);
      continue;
    }
    const std::string& name = key.Scalar();
    if (auto [it, inserted] = seen.try_emplace(name, key.Mark()); !inserted) {
      problemAt(key, "duplicate environment " + quote(name) + " (first at " +
                         positionOf(it->second) + ")");
      continue;
    }
    Environment env;
    env.name = name;
    readEnvironment(Field{key, entry.second}, "environments." + name, &env);
    policy->environment_order.push_back(name);
    policy->environments.emplace(name, std::move(env));
  }
}

void PolicyReader::readEnvironment(const Field& field, const std::string& path, Environment* env) {
  if (!expectKind(field, YAML::NodeType::Map, path)) return;
  const Fields fields = readFields(field.value, path, kEnvironmentFields);
  if (const Field* f = requireField(fields, "clusters", field.value, path)) {
    readSelector(*f, path + ".clusters", &env->clusters);
  }
  if (const Field* f = findField(fields, "deployers")) {
    env->deployers = readNameList(*f, path + ".deployers", nullptr);
  }
  if (const Field* f = findField(fields, "approval")) {
    const std::string approval_path = path + ".approval";
    if (expectKind(*f, YAML::NodeType::Map, approval_path)) {
      const Fields approval = readFields(f->value, approval_path, kApprovalFields);
      if (const Field* r = requireField(approval, "required", f->value, approval_path)) {
        if (auto n = readCount(*r, approval_path + ".required", kMaxApprovals)) {
          env->approval = EnvironmentApproval{*n};
        }
      }
    }
  }
  if (const Field* f = findField(fields, "checks")) readChecks(*f, path + ".checks", &env->checks);
  if (const Field* f = findField(fields, "promotion")) {
    const std::string promotion_path = path + ".promotion";
    if (expectKind(*f, YAML::NodeType::Map, promotion_path)) {
      const Fields promotion = readFields(f->value, promotion_path, kPromotionFields);
      Promotion result;
      bool ok = true;
      if (const Field* from = requireField(promotion, "from", f->value, promotion_path)) {
        auto name = readString(*from, promotion_path + ".from");
        if (name && isValidName(*name)) {
          result.from = *name;
          promotions_.push_back({env->name, *name, from->value.Mark()});
        } else {
          if (name) {
            problemAt(from->value, promotion_path + ".from " + quote(*name) +
                                       " is not a valid name: " + kNameRule);
          }
          ok = false;
        }
      } else {
        ok = false;
      }
      if (const Field* soak = findField(promotion, "soak")) {
        auto d = readDurationField(*soak, promotion_path + ".soak", 0ms, kMaxPolicyDuration);
        if (d) result.soak = *d;
        ok = ok && d.has_value();
      }
      if (ok) env->promotion = std::move(result);
    }
  }
  if (const Field* f = findField(fields, "triggers")) {
    readTriggers(*f, path + ".triggers", env->name, &env->triggers);
  }
  if (const Field* f = findField(fields, "watch")) readWatch(*f, path + ".watch", &env->watch);
}

bool PolicyReader::expectList(const Field& field, const std::string& path, size_t max) {
  if (!expectKind(field, YAML::NodeType::Sequence, path)) return false;
  if (field.value.size() > max) {
    problemAt(field.value, path + " has " + std::to_string(field.value.size()) +
                               " entries; the limit is " + std::to_string(max));
    return false;
  }
  return true;
}

std::vector<std::string> PolicyReader::readNameList(const Field& field, const std::string& path,
                                                    std::vector<YAML::Mark>* marks) {
  std::vector<std::string> names;
  if (!expectList(field, path, kMaxListEntries)) return names;
  std::set<std::string, std::less<>> seen;
  for (const YAML::Node& node : field.value) {
    if (!node.IsScalar() || !isValidName(node.Scalar())) {
      problemAt(node, "name " + (node.IsScalar() ? quote(node.Scalar()) : kindOf(node)) + " in " +
                          path + " is not a valid name: " + kNameRule);
      continue;
    }
    if (!seen.insert(node.Scalar()).second) {
      problemAt(node, "duplicate name " + quote(node.Scalar()) + " in " + path);
      continue;
    }
    names.push_back(node.Scalar());
    if (marks != nullptr) marks->push_back(node.Mark());
  }
  return names;
}

void PolicyReader::readChecks(const Field& field, const std::string& path,
                              std::vector<Check>* checks) {
  if (!expectList(field, path, kMaxListEntries)) return;
  std::map<std::string, YAML::Mark, std::less<>> seen;
  for (const YAML::Node& node : field.value) {
    auto check = readCheck(node, path);
    if (!check) continue;
    if (auto [it, inserted] = seen.try_emplace(check->name, node.Mark()); !inserted) {
      problemAt(node, "duplicate check " + quote(check->name) + " in " + path + " (first at " +
                          positionOf(it->second) + ")");
      continue;
    }
    checks->push_back(std::move(*check));
  }
}

std::optional<Check> PolicyReader::readCheck(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) {
    problemAt(node, std::string("a check in ") + path + " must be a string, not " + kindOf(node));
    return std::nullopt;
  }
  const std::string& text = node.Scalar();
  const std::string_view rest = trimSpaces(text);
  const size_t name_end = std::min(rest.find_first_of(" <>=!"), rest.size());
  const std::string_view name = rest.substr(0, name_end);
  const std::string where = "check " + quote(text) + " in " + path;
  if (!isCheckName(name)) {
    problemAt(node, where + ": the name " + kCheckNameRule);
    return std::nullopt;
  }
  Check check;
  check.name = std::string(name);
  std::string_view tail = trimSpaces(rest.substr(name_end));
  if (tail.empty()) return check;
  const size_t op_end = std::min(tail.find_first_not_of("<>=!"), tail.size());
  const std::string_view op = tail.substr(0, op_end);
  const std::optional<CheckOp> known = parseCheckOp(op);
  if (!known) {
    problemAt(node, where +
                        (op.empty() ? std::string(": no comparison")
                                    : ": unknown comparison " + quote(op)) +
                        "; " + kCheckForm);
    return std::nullopt;
  }
  const std::string_view number = trimSpaces(tail.substr(op_end));
  auto value = parsePlainNumber(number);
  if (!value) {
    problemAt(node, where + ": the threshold " + quote(number) + " is not a number");
    return std::nullopt;
  }
  check.threshold = CheckThreshold{*known, *value};
  return check;
}

void PolicyReader::readTriggers(const Field& field, const std::string& path,
                                const std::string& environment, std::vector<Trigger>* triggers) {
  if (!expectList(field, path, kMaxListEntries)) return;
  size_t index = 0;
  for (const YAML::Node& node : field.value) {
    const std::string entry_path = path + "[" + std::to_string(index++) + "]";
    if (!node.IsMap()) {
      problemAt(node, entry_path + " must be a map {name, plan}, not " + kindOf(node));
      continue;
    }
    const Fields fields = readFields(node, entry_path, kTriggerFields);
    Trigger trigger;
    bool ok = true;
    if (const Field* f = requireField(fields, "name", node, entry_path)) {
      auto name = readString(*f, entry_path + ".name");
      if (!name) {
        ok = false;
      } else if (!isValidName(*name)) {
        problemAt(f->value, "trigger name " + quote(*name) + " is not a valid name: " + kNameRule);
        ok = false;
      } else if (auto it = triggers_.find(*name); it != triggers_.end()) {
        problemAt(f->value, "duplicate trigger " + quote(*name) + " (first in environment " +
                                quote(it->second.first) + " at " + positionOf(it->second.second) +
                                ")");
        ok = false;
      } else {
        triggers_.emplace(*name, std::pair(environment, f->value.Mark()));
        trigger.name = *name;
      }
    } else {
      ok = false;
    }
    if (const Field* f = requireField(fields, "plan", node, entry_path)) {
      auto plan = readString(*f, entry_path + ".plan");
      const bool printable =
          plan && std::all_of(plan->begin(), plan->end(), [](char c) {
            return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) != 0x7f;
          });
      if (plan && (plan->empty() || plan->size() > kMaxPlanPathBytes || !printable)) {
        problemAt(f->value, entry_path + ".plan must be a path of 1 to 4096 printable characters");
      }
      if (plan && !plan->empty() && plan->size() <= kMaxPlanPathBytes && printable) {
        trigger.plan = *plan;
      } else {
        ok = false;
      }
    } else {
      ok = false;
    }
    if (ok) triggers->push_back(std::move(trigger));
  }
}

void PolicyReader::readWatch(const Field& field, const std::string& path,
                             std::vector<WatchTier>* watch) {
  if (!expectList(field, path, kMaxWatchTiers)) return;
  std::map<std::string, YAML::Mark, std::less<>> seen;
  size_t index = 0;
  for (const YAML::Node& node : field.value) {
    const std::string entry_path = path + "[" + std::to_string(index++) + "]";
    if (!node.IsMap()) {
      problemAt(node, entry_path + " must be a map {name, for, interval}, not " + kindOf(node));
      continue;
    }
    const Fields fields = readFields(node, entry_path, kWatchFields);
    WatchTier tier;
    bool ok = true;
    if (const Field* f = requireField(fields, "name", node, entry_path)) {
      auto name = readString(*f, entry_path + ".name");
      if (name && !isValidName(*name)) {
        problemAt(f->value,
                  "watch tier name " + quote(*name) + " is not a valid name: " + kNameRule);
      } else if (name) {
        if (auto [it, inserted] = seen.try_emplace(*name, f->value.Mark()); !inserted) {
          problemAt(f->value, "duplicate watch tier " + quote(*name) + " in " + path +
                                  " (first at " + positionOf(it->second) + ")");
        } else {
          tier.name = *name;
        }
      }
      ok = ok && !tier.name.empty();
    } else {
      ok = false;
    }
    std::optional<std::chrono::milliseconds> duration;
    if (const Field* f = requireField(fields, "for", node, entry_path)) {
      duration = readDurationField(*f, entry_path + ".for", 1ms, kMaxPolicyDuration);
    }
    std::optional<std::chrono::milliseconds> interval;
    const Field* interval_field = requireField(fields, "interval", node, entry_path);
    if (interval_field != nullptr) {
      interval =
          readDurationField(*interval_field, entry_path + ".interval", 1ms, kMaxPolicyDuration);
    }
    if (duration && interval && *interval > *duration) {
      problemAt(interval_field->value, entry_path + ".interval (" + formatDuration(*interval) +
                                           ") must not be longer than its tier's `for` (" +
                                           formatDuration(*duration) + ")");
      ok = false;
    }
    if (ok && duration && interval) {
      tier.duration = *duration;
      tier.interval = *interval;
      watch->push_back(std::move(tier));
    }
  }
}

bool PolicyReader::readBool(const Field& field, const std::string& path) {
  auto text = readString(field, path);
  if (!text) return false;
  if (*text == "true") return true;
  if (*text != "false")
    problemAt(field.value, path + " must be true or false, not " + quote(*text));
  return false;
}

void PolicyReader::readHotfix(const Field& field, Hotfix* hotfix) {
  if (!expectKind(field, YAML::NodeType::Map, "hotfix")) return;
  const Fields fields = readFields(field.value, "hotfix", kHotfixFields);
  if (const Field* f = findField(fields, "approvals")) {
    if (auto n = readCount(*f, "hotfix.approvals", kMaxApprovals)) hotfix->approvals = *n;
  }
  if (const Field* f = findField(fields, "skip_checks")) {
    if (expectList(*f, "hotfix.skip_checks", kMaxListEntries)) {
      std::set<std::string, std::less<>> seen;
      for (const YAML::Node& node : f->value) {
        if (!node.IsScalar() || !isCheckName(node.Scalar())) {
          problemAt(node, "check " + (node.IsScalar() ? quote(node.Scalar()) : kindOf(node)) +
                              " in hotfix.skip_checks is not a check name: " + kCheckNameRule);
          continue;
        }
        if (!seen.insert(node.Scalar()).second) {
          problemAt(node, "duplicate check " + quote(node.Scalar()) + " in hotfix.skip_checks");
          continue;
        }
        hotfix->skip_checks.push_back(node.Scalar());
        skip_checks_.emplace_back(node.Scalar(), node.Mark());
      }
    }
  }
  if (const Field* f = findField(fields, "soak")) {
    if (auto d = readDurationField(*f, "hotfix.soak", 0ms, kMaxPolicyDuration)) hotfix->soak = *d;
  }
  if (const Field* f = findField(fields, "watch_factor")) {
    if (auto n = readNumber(*f, "hotfix.watch_factor", 1, 10)) hotfix->watch_factor = *n;
  }
  if (const Field* f = findField(fields, "allowed_during_freeze")) {
    hotfix->allowed_during_freeze = readBool(*f, "hotfix.allowed_during_freeze");
  }
}

void PolicyReader::checkPromotions(const Policy& policy) {
  std::map<std::string, std::string, std::less<>> from_of;
  for (const PromotionAt& p : promotions_) {
    const std::string path = "environments." + p.environment + ".promotion.from";
    if (p.from == p.environment) {
      problemAt(p.at, path + " names the environment itself");
    } else if (policy.environments.count(p.from) == 0) {
      problemAt(p.at, path + " names " + quote(p.from) + ", which is not an environment here");
    } else {
      from_of[p.environment] = p.from;
    }
  }
  // Each environment has at most one source, so a cycle is found by following sources from
  // each; it is reported once, at the environment of the cycle the file lists first.
  std::set<std::string, std::less<>> reported;
  for (const PromotionAt& p : promotions_) {
    if (reported.count(p.environment) != 0 || from_of.count(p.environment) == 0) continue;
    std::vector<std::string> chain = {p.environment};
    std::string at = p.environment;
    bool cycle = false;
    for (size_t steps = 0; steps <= from_of.size(); ++steps) {
      auto next = from_of.find(at);
      if (next == from_of.end()) break;
      at = next->second;
      chain.push_back(at);
      if (at == p.environment) {
        cycle = true;
        break;
      }
    }
    if (!cycle) continue;
    std::string text;
    for (const std::string& name : chain) {
      text += (text.empty() ? "" : " <- ") + name;
      reported.insert(name);
    }
    problemAt(p.at, "promotion cycle: " + text + " (each is promoted from the next)");
  }
}

void PolicyReader::checkSkipChecks(const Policy& policy) {
  std::set<std::string, std::less<>> required;
  for (const auto& [name, env] : policy.environments) {
    for (const Check& check : env.checks) required.insert(check.name);
  }
  for (const auto& [name, at] : skip_checks_) {
    if (required.count(name) == 0) {
      problemAt(at, "hotfix.skip_checks names " + quote(name) + ", which no environment requires");
    }
  }
}

}  // namespace

PolicyParseResult parsePolicy(const std::string& text) {
  PolicyParseResult result;
  if (text.size() > kMaxPolicyBytes) {
    result.problems.push_back(
        {0, 0, "the policy file is " + std::to_string(text.size()) + " bytes; the limit is 1 MiB"});
    return result;
  }
  PolicyReader reader;
  std::optional<Policy> policy;
  result.problems = plan_internal::readYamlDocument(
      text, "policy file", &reader, [&](const YAML::Node& root) { policy = reader.read(root); });
  if (result.problems.empty() && policy) {
    policy->sha256 = sha256Hex(text);
    result.policy = std::move(policy);
  }
  return result;
}

nlohmann::json policyToJson(const Policy& policy) {
  nlohmann::json environments = nlohmann::json::array();
  for (const std::string& name : policy.environment_order) {
    const Environment& env = policy.environments.at(name);
    nlohmann::json checks = nlohmann::json::array();
    for (const Check& check : env.checks) checks.push_back(check.text());
    nlohmann::json triggers = nlohmann::json::array();
    for (const Trigger& trigger : env.triggers) {
      triggers.push_back({{"name", trigger.name}, {"plan", trigger.plan}});
    }
    nlohmann::json watch = nlohmann::json::array();
    for (const WatchTier& tier : env.watch) {
      watch.push_back({{"name", tier.name},
                       {"for_ms", tier.duration.count()},
                       {"interval_ms", tier.interval.count()}});
    }
    nlohmann::json item = {{"name", env.name},           {"clusters", env.clusters},
                           {"deployers", env.deployers}, {"checks", checks},
                           {"triggers", triggers},       {"watch", watch}};
    item["approval"] = env.approval ? nlohmann::json{{"required", env.approval->required}}
                                    : nlohmann::json(nullptr);
    item["promotion"] = env.promotion ? nlohmann::json{{"from", env.promotion->from},
                                                       {"soak_ms", env.promotion->soak.count()}}
                                      : nlohmann::json(nullptr);
    environments.push_back(std::move(item));
  }
  nlohmann::json hotfix = nullptr;
  if (policy.hotfix) {
    hotfix = {{"approvals", policy.hotfix->approvals},
              {"skip_checks", policy.hotfix->skip_checks},
              {"soak_ms", policy.hotfix->soak.count()},
              {"watch_factor", policy.hotfix->watch_factor},
              {"allowed_during_freeze", policy.hotfix->allowed_during_freeze}};
  }
  return {{"sha256", policy.sha256}, {"environments", environments}, {"hotfix", hotfix}};
}

}  // namespace flotilla::common
