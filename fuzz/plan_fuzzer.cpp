// Fuzz target for the plan parser (common/plan.cpp). Whatever the text, parsePlan returns
// either a plan or a sorted list of problems with positions and printable messages, and an
// accepted plan survives the stored JSON form the coordinator reloads after a restart.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/plan.hpp"
#include "fuzz/fuzz_check.hpp"

namespace {

using flotilla::common::PlanParseResult;

bool hasControlCharacter(const std::string& text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const PlanParseResult result = flotilla::common::parsePlan(text);

  FUZZ_CHECK(result.plan.has_value() == result.problems.empty(), "a plan, or problems, not both");
  // 200 listed plus one "N more problems not listed".
  FUZZ_CHECK(result.problems.size() <= 201, std::to_string(result.problems.size()));
  for (size_t i = 0; i < result.problems.size(); ++i) {
    const auto& p = result.problems[i];
    FUZZ_CHECK(!p.message.empty(), "problem without a message");
    FUZZ_CHECK(p.line >= 0 && p.column >= 0, p.toString());
    // Messages quote the plan's text back to a terminal: no escape sequences may get through.
    FUZZ_CHECK(!hasControlCharacter(p.message), p.toString());
    if (i > 0) {
      const auto& q = result.problems[i - 1];
      FUZZ_CHECK(q.line < p.line || (q.line == p.line && q.column <= p.column),
                 q.toString() + " before " + p.toString());
    }
  }

  if (result.plan) {
    const std::string stored = flotilla::common::planToJson(*result.plan);
    auto reloaded = flotilla::common::planFromJson(stored);
    FUZZ_CHECK(reloaded.ok(), reloaded.status().message() + " in " + stored);
    FUZZ_CHECK(flotilla::common::planToJson(*reloaded) == stored, stored);
  }
  return 0;
}
