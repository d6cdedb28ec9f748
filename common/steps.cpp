#include "common/steps.hpp"

namespace flotilla::common {

const char* stepName(Step step) {
  switch (step) {
    case Step::BUILD:
      return "build";
    case Step::APPLY:
      return "apply";
    case Step::VERIFY:
      return "verify";
    case Step::ROLLBACK:
      return "rollback";
    case Step::DEPLOY:
      return "deploy";
    case Step::SHIFT:
      return "shift";
    case Step::ANALYZE:
      return "analyze";
    case Step::BAKE:
      return "bake";
    case Step::FINALIZE:
      return "finalize";
    case Step::ROLL:
      return "roll";
    case Step::WATCH:
      return "watch";
  }
  return "unknown";
}

std::optional<Step> stepFromName(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(kLastStep); ++i) {
    if (name == stepName(static_cast<Step>(i))) return static_cast<Step>(i);
  }
  return std::nullopt;
}

bool stepRepeats(Step step) {
  return step == Step::SHIFT || step == Step::ANALYZE || step == Step::WATCH;
}

bool isProcessStep(Step step) {
  switch (step) {
    case Step::DEPLOY:
    case Step::FINALIZE:
    case Step::ROLL:
      return true;
    default:
      return false;
  }
}

const char* outcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::SUCCEEDED:
      return "succeeded";
    case Outcome::FAILED:
      return "failed";
    case Outcome::TIMED_OUT:
      return "timed_out";
    case Outcome::ABORTED:
      return "aborted";
    case Outcome::UNKNOWN:
      return "unknown";
    case Outcome::REFUSED:
      return "refused";
  }
  return "unknown";
}

std::optional<Outcome> outcomeFromName(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(kLastOutcome); ++i) {
    if (name == outcomeName(static_cast<Outcome>(i))) return static_cast<Outcome>(i);
  }
  return std::nullopt;
}

}  // namespace flotilla::common
