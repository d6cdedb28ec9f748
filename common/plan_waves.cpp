// The waves of a plan: names, clusters by name or by selector, approvals and the per-wave
// overrides (strategy, bake, max_parallel, max_unavailable_clusters). A cluster may be named in
// one wave only, and a wave name once.
#include "common/plan_reader.hpp"

namespace flotilla::common::plan_internal {

using namespace std::chrono_literals;

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
  if (!node.Mark().is_null()) {
    wave->line = node.Mark().line + 1;
    wave->column = node.Mark().column + 1;
  }
  if (!node.IsMap()) {
    problemAt(node, path + " must be a map, not " + kindOf(node));
    return;
  }
  const Fields fields = readFields(node, path, kWaveFields);

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

void FieldReader::readSelector(const Field& field, const std::string& path,
                               std::map<std::string, std::string>* selector) {
  if (!expectKind(field, YAML::NodeType::Map, path)) return;
  if (field.value.size() == 0) {
    problemAt(field.value, path + " must not be empty");
    return;
  }
  for (const auto& entry : field.value) {
    const YAML::Node& key = entry.first;
    const YAML::Node& value = entry.second;
    if (!key.IsScalar() || !isValidSelectorKey(key.Scalar())) {
      problemAt(key, "label key " + (key.IsScalar() ? quote(key.Scalar()) : kindOf(key)) + " in " +
                         path + " must be 1 to 63 characters from [a-z0-9._/-]");
      continue;
    }
    const std::string& label = key.Scalar();
    if (selector->count(label) != 0) {
      problemAt(key, "duplicate label " + quote(label) + " in " + path);
      continue;
    }
    if (!value.IsScalar() || !isValidSelectorValue(value.Scalar())) {
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
    const Fields fields = readFields(field.value, path, kApprovalFields);
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

}  // namespace flotilla::common::plan_internal
