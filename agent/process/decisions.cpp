#include "agent/process/decisions.hpp"

#include <algorithm>

namespace flotilla::agent {

AnalysisNext afterWindow(Verdict verdict, int extensions, bool wait_when_inconclusive) {
  switch (verdict) {
    case Verdict::kPass:
      return AnalysisNext::kPass;
    case Verdict::kFail:
      return AnalysisNext::kFail;
    case Verdict::kInconclusive:
      break;
  }
  if (!wait_when_inconclusive || extensions >= kMaxInconclusiveExtensions) {
    return AnalysisNext::kGiveUp;
  }
  return AnalysisNext::kWatchAgain;
}

RollbackAction planRollback(const ServiceRecord& record, const std::string& version,
                            const std::string& previous) {
  if (record.rolling) return RollbackAction::kRollBackTheRoll;
  const bool stable_is_new = record.stable && record.stable->version == version;
  if (record.candidate) {
    if (record.candidate->version != version && record.candidate->version == previous &&
        (!record.stable || stable_is_new)) {
      return RollbackAction::kFinishEarlierRollback;
    }
    return RollbackAction::kRetireCandidate;
  }
  if (stable_is_new && !previous.empty() && previous != version) {
    return RollbackAction::kRestorePrevious;
  }
  return RollbackAction::kNothing;
}

int RollBounds::floor() const { return std::max(0, wanted - max_unavailable); }
int RollBounds::ceiling() const { return wanted + max_surge; }

int replicasToStart(const RollBounds& bounds, const RollCounts& now) {
  return std::max(0, std::min(bounds.wanted - now.new_running,
                              bounds.ceiling() - now.new_running - now.old_running));
}

int oldReplicasToStop(const RollBounds& bounds, const RollCounts& now) {
  return std::max(0, std::min(now.old_serving, now.old_serving + now.new_serving - bounds.floor()));
}

}  // namespace flotilla::agent
