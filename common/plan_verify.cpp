// `steps.verify` written as a checklist: a list of named checks, each a command with its own
// timeout (the workflow's health, smoke, integration, performance, logs, or any name).
#include <algorithm>
#include <string>

#include "common/plan_reader.hpp"

namespace flotilla::common {

bool isVerifyCheckName(std::string_view name) {
  return !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

namespace plan_internal {

void PlanReader::readVerifyChecks(const Field& field, std::vector<VerifyCheck>* checks) {
  if (field.value.size() == 0) {
    problemAt(field.value, "steps.verify has no checks: name at least one, or leave it out");
    return;
  }
  std::map<std::string, YAML::Mark, std::less<>> names;
  size_t index = 0;
  for (const auto& item : field.value) {
    const std::string path = "steps.verify[" + std::to_string(index) + "]";
    if (index == kMaxVerifyChecks) {
      problemAt(item, "steps.verify has more than " + std::to_string(kMaxVerifyChecks) +
                          " checks; this is the " + std::to_string(index + 1) + "th");
      return;
    }
    readVerifyCheck(item, path, &names, checks);
    ++index;
  }
}

void PlanReader::readVerifyCheck(const YAML::Node& node, const std::string& path,
                                 std::map<std::string, YAML::Mark, std::less<>>* names,
                                 std::vector<VerifyCheck>* checks) {
  if (!node.IsMap()) {
    problemAt(node, path + " must be a map {name, command, timeout}, not " + kindOf(node));
    return;
  }
  const Fields fields = readFields(node, path, kVerifyCheckFields);
  VerifyCheck check;
  bool ok = true;
  if (const Field* name = requireField(fields, "name", node, path)) {
    auto text = readString(*name, path + ".name");
    if (!text) {
      ok = false;
    } else if (!isVerifyCheckName(*text)) {
      problemAt(name->value, path + ".name " + quote(*text) +
                                 " is not a valid check name: " + kVerifyCheckNameRule);
      ok = false;
    } else if (auto [it, inserted] = names->try_emplace(*text, name->value.Mark()); !inserted) {
      problemAt(name->value, path + ".name: check " + quote(*text) + " is already named at " +
                                 positionOf(it->second));
      ok = false;
    } else {
      check.name = *text;
    }
  } else {
    ok = false;
  }
  if (const Field* command = requireField(fields, "command", node, path)) {
    auto text = readString(*command, path + ".command");
    if (!text) {
      ok = false;
    } else if (text->find_first_not_of(" \t\n\r\f\v") == std::string::npos) {
      problemAt(command->value, path + ".command must not be empty");
      ok = false;
    } else {
      check.command = *text;
    }
  } else {
    ok = false;
  }
  if (const Field* timeout = findField(fields, "timeout")) {
    auto d = readDurationField(*timeout, path + ".timeout", std::chrono::milliseconds(1),
                               kMaxStepTimeout);
    if (d) {
      check.timeout = *d;
    } else {
      ok = false;
    }
  }
  if (ok) checks->push_back(std::move(check));
}

}  // namespace plan_internal
}  // namespace flotilla::common
