// Generic reading for the plan parser: the fields of a map (unknown and repeated keys, typo
// suggestions), node kinds, strings, counts, numbers, durations and URLs, each reported with its
// position.
#include "common/plan_reader.hpp"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <sstream>

namespace flotilla::common::plan_internal {
namespace {

// Levenshtein is quadratic: only keys this short get a suggestion.
constexpr size_t kMaxSuggestKeyBytes = 64;

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
std::optional<std::string_view> nearestField(std::string_view key, FieldList known) {
  if (key.size() > kMaxSuggestKeyBytes) return std::nullopt;
  std::optional<std::string_view> best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (std::string_view candidate : known) {
    const size_t distance = editDistance(key, candidate);
    const size_t allowed = candidate.size() <= 4 ? 1 : 2;
    if (distance <= allowed && distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace

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

const Field* findField(const Fields& fields, std::string_view name) {
  auto it = fields.find(name);
  return it == fields.end() ? nullptr : &it->second;
}

Fields FieldReader::readFields(const YAML::Node& map, const std::string& context, FieldList known) {
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
    } else {
      std::string message = "unknown field " + quote(name) + where;
      if (auto suggestion = nearestField(name, known)) {
        message += "; did you mean " + quote(*suggestion) + "?";
      }
      problemAt(key, std::move(message));
    }
  }
  return fields;
}

const Field* FieldReader::requireField(const Fields& fields, std::string_view name,
                                       const YAML::Node& map, const std::string& context) {
  const Field* field = findField(fields, name);
  if (field == nullptr) {
    problemAt(map, "missing required field " + quote(name) +
                       (context.empty() ? std::string() : " in " + context));
  }
  return field;
}

bool FieldReader::isOff(const YAML::Node& node) {
  if (!node.IsScalar()) return false;
  const std::string& text = node.Scalar();
  return text == "off" || text == "false";
}

bool FieldReader::expectKind(const Field& field, YAML::NodeType::value kind,
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

std::optional<std::string> FieldReader::readString(const Field& field, const std::string& path) {
  if (!expectKind(field, YAML::NodeType::Scalar, path)) return std::nullopt;
  return field.value.Scalar();
}

std::optional<std::string> FieldReader::readHttpUrl(const Field& field, const std::string& path) {
  auto url = readString(field, path);
  if (!url) return std::nullopt;
  if (!isValidHttpUrl(*url)) {
    problemAt(field.value,
              path + " must be an http:// or https:// URL without spaces, not " + quote(*url));
    return std::nullopt;
  }
  return url;
}

std::optional<std::chrono::milliseconds> FieldReader::readDurationField(
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

std::optional<uint32_t> FieldReader::readClusterBudget(const Field& field,
                                                       const std::string& path) {
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

std::optional<uint32_t> FieldReader::readCount(const Field& field, const std::string& path,
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

std::optional<double> FieldReader::readNumber(const Field& field, const std::string& path,
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

}  // namespace flotilla::common::plan_internal
