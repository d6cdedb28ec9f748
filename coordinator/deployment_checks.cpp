// A verification checklist on each cluster (plan steps.verify as a list of named checks): each
// check runs as its own verify stage; its cluster keeps how each ended (bounded: one run per
// check, a short message) for `flotilla status` and the dashboard, and each end is an event.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "coordinator/deployment.hpp"
#include "coordinator/deployment_internal.hpp"

namespace flotilla::coordinator::deployment_internal {

namespace {

// "1.2s".
std::string seconds(uint64_t ms) {
  return std::to_string(ms / 1000) + "." + std::to_string((ms % 1000) / 100) + "s";
}

const char* endedAs(Outcome outcome) {
  switch (outcome) {
    case Outcome::SUCCEEDED:
      return "passed";
    case Outcome::TIMED_OUT:
      return "timed out";
    default:
      return outcomeName(outcome);
  }
}

// Cut on a UTF-8 boundary.
std::string bounded(const std::string& text) {
  if (text.size() <= kMaxCheckMessageBytes) return text;
  size_t length = kMaxCheckMessageBytes;
  while (length > 0 && (static_cast<unsigned char>(text[length]) & 0xC0) == 0x80) --length;
  return text.substr(0, length) + "...";
}

CheckRun& runOf(ClusterProgress& c) {
  auto it = std::find_if(c.checks.begin(), c.checks.end(),
                         [&](const CheckRun& run) { return run.name == c.check; });
  if (it != c.checks.end()) return *it;
  c.checks.push_back(CheckRun{c.check});
  return c.checks.back();
}

}  // namespace

void startCheckRun(ClusterProgress& c) {
  if (c.check.empty()) return;
  CheckRun& run = runOf(c);
  run = CheckRun{c.check};
  // A plan has at most kMaxVerifyChecks checks, so this only bounds what a record could hold.
  if (c.checks.size() > common::kMaxVerifyChecks) c.checks.erase(c.checks.begin());
}

void finishCheckRun(ClusterProgress& c, const std::string& wave, const StageResult& r,
                    Effects& fx) {
  if (c.check.empty()) return;
  CheckRun& run = runOf(c);
  run.running = false;
  run.outcome = r.outcome;
  run.duration_ms = r.duration_ms;
  run.exit_code = r.exit_code;
  run.message = bounded(r.message);

  std::string message = c.check + " " + endedAs(r.outcome) + " in " + seconds(r.duration_ms);
  if (r.outcome != Outcome::SUCCEEDED) {
    std::string what = run.message;
    if (what.empty() && r.exit_code != 0) what = "exit code " + std::to_string(r.exit_code);
    if (!what.empty()) message += ": " + what;
  }
  const nlohmann::json data = {{"check", c.check},
                               {"state", checkRunStateName(run)},
                               {"duration_ms", run.duration_ms},
                               {"exit_code", run.exit_code}};
  emit(fx, "cluster.verify_check", wave, c.name, stepName(Step::VERIFY), std::move(message));
  fx.events.back().data = data.dump();
}

}  // namespace flotilla::coordinator::deployment_internal
