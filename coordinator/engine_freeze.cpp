// The engine's incident freezes: the records (freeze/<seq>, coordinator/store.hpp), and moving
// every deployment in memory when a freeze starts or ends. What a freeze does to a deployment
// is the machine's (advance(), coordinator/deployment.cpp); who may submit, the freeze rule's
// (coordinator/freeze.hpp).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "coordinator/engine.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;

Status Engine::loadFreezes() {
  auto stored = coordinator::loadFreezes(store_);
  if (!stored.ok()) return stored.status();
  freezes_ = std::move(stored).value();
  for (const Freeze& f : freezes_) {
    if (f.active()) spdlog::warn("deployments are frozen: {}", describeFreeze(f));
  }
  return Status::Ok();
}

Status Engine::putFreeze(const Freeze& f) {
  return store_.putRecord(freezeKey(f.seq), freezeToJsonText(f));
}

void Engine::applyFreezes() {
  std::vector<std::string> ids;
  for (const auto& [id, d] : deployments_) {
    if (!isFinal(d.state)) ids.push_back(id);
  }
  for (const auto& id : ids) {
    Status s = mutate(id, [](Deployment& d, const Context& ctx, Effects& fx) {
      advance(d, ctx, fx);
      return Status::Ok();
    });
    if (!s.ok()) spdlog::error("freeze: moving {}: {}", id, s.toString());
  }
  publishGauges();
}

StatusOr<Freeze> Engine::freeze(const std::string& reason, const std::string& environment,
                                const Actor& actor) {
  for (const Freeze& f : freezes_) {
    if (f.active() && f.environment == environment) {
      return Status::AlreadyExists("already frozen: " + describeFreeze(f));
    }
  }
  Freeze f;
  f.seq = freezes_.empty() ? 1 : freezes_.back().seq + 1;
  f.reason = reason;
  f.environment = environment;
  f.by = actor.name;
  f.at_ms = common::toUnixMillis(clock_.wallNow());
  // The record first: written in the same flush as the deployments it stops, and a
  // coordinator that restarts before that flush has neither.
  Status s = putFreeze(f);
  if (!s.ok()) return s;
  freezes_.push_back(f);
  spdlog::warn("deployments are frozen: {}", describeFreeze(f));
  applyFreezes();
  return f;
}

StatusOr<Freeze> Engine::unfreeze(const std::string& environment, const Actor& actor) {
  auto it = std::find_if(freezes_.begin(), freezes_.end(), [&](const Freeze& f) {
    return f.active() && f.environment == environment;
  });
  if (it == freezes_.end()) {
    std::string active;
    for (const Freeze& f : freezes_) {
      if (!f.active()) continue;
      active += (active.empty() ? "" : "; ") + f.id() + " (" + f.scope() + ")";
    }
    return Status::NotFound(
        std::string(environment.empty() ? "the whole fleet is not frozen"
                                        : "environment " + environment + " is not frozen") +
        (active.empty() ? std::string("; no freeze is active")
                        : "; active: " + active + " (name the environment with --env)"));
  }
  Freeze lifted = *it;
  lifted.lifted_by = actor.name;
  lifted.lifted_ms = std::max<int64_t>(1, common::toUnixMillis(clock_.wallNow()));
  Status s = putFreeze(lifted);
  if (!s.ok()) return s;
  *it = lifted;
  spdlog::warn("{} lifted by {}", lifted.id(), actor.name);
  applyFreezes();
  return lifted;
}

StatusOr<Freeze> Engine::addFreezeNote(uint64_t seq, const std::string& text, const Actor& actor) {
  auto it =
      std::find_if(freezes_.begin(), freezes_.end(), [&](const Freeze& f) { return f.seq == seq; });
  if (it == freezes_.end()) {
    return Status::NotFound("no freeze named freeze-" + std::to_string(seq));
  }
  if (it->notes.size() >= kMaxFreezeNotes) {
    return Status::FailedPrecondition(it->id() + " already has " + std::to_string(kMaxFreezeNotes) +
                                      " notes, the most kept");
  }
  Freeze noted = *it;
  noted.notes.push_back(FreezeNote{text, actor.name, common::toUnixMillis(clock_.wallNow())});
  Status s = putFreeze(noted);
  if (!s.ok()) return s;
  *it = std::move(noted);
  return *it;
}

}  // namespace flotilla::coordinator
