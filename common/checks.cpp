// Release checks (common/plan.hpp): names, thresholds and their text.
#include <algorithm>
#include <array>
#include <iomanip>
#include <sstream>
#include <utility>

#include "common/plan.hpp"

namespace flotilla::common {

bool isCheckName(std::string_view name) {
  return !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::optional<CheckOp> parseCheckOp(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, CheckOp>, 5> kOps = {{
      {">=", CheckOp::kAtLeast},
      {">", CheckOp::kAbove},
      {"<=", CheckOp::kAtMost},
      {"<", CheckOp::kBelow},
      {"==", CheckOp::kEqual},
  }};
  for (const auto& [op_text, op] : kOps) {
    if (op_text == text) return op;
  }
  return std::nullopt;
}

bool thresholdMet(const CheckThreshold& threshold, double value) {
  switch (threshold.op) {
    case CheckOp::kAtLeast:
      return value >= threshold.value;
    case CheckOp::kAbove:
      return value > threshold.value;
    case CheckOp::kAtMost:
      return value <= threshold.value;
    case CheckOp::kBelow:
      return value < threshold.value;
    case CheckOp::kEqual:
      return value == threshold.value;
  }
  return false;
}

const char* checkOpText(CheckOp op) {
  switch (op) {
    case CheckOp::kAtLeast:
      return ">=";
    case CheckOp::kAbove:
      return ">";
    case CheckOp::kAtMost:
      return "<=";
    case CheckOp::kBelow:
      return "<";
    case CheckOp::kEqual:
      return "==";
  }
  return "?";
}

std::string Check::text() const {
  if (!threshold) return name;
  std::ostringstream out;
  out << std::setprecision(15) << name << ' ' << checkOpText(threshold->op) << ' '
      << threshold->value;
  return out.str();
}

}  // namespace flotilla::common
