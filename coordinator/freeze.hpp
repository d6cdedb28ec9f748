// The incident freeze: its durable record (freeze/<seq> in the store), the one rule for which
// environments a plan or deployment touches, and the checks a freeze makes (does it cover this
// deployment; may this plan be submitted now).
//
// A freeze covers the whole fleet (environment "") or one environment: the deployments whose
// target clusters carry the agent label environment=E (the label the token environment rule of
// coordinator/permissions.cpp reads). While one covers it, a submission is refused and a
// running deployment stops at its next step boundary in state frozen (coordinator/
// deployment.cpp, advance()); rollbacks still run. Lifting it lets them go on.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/plan.hpp"
#include "common/status.hpp"
#include "coordinator/deployment.hpp"
#include "coordinator/wave_clusters.hpp"

namespace flotilla::coordinator {

// A post-mortem note on a freeze (a link, a finding).
struct FreezeNote {
  std::string text;
  std::string by;
  int64_t at_ms = 0;
  bool operator==(const FreezeNote&) const = default;
};

struct Freeze {
  uint64_t seq = 0;         // the N of its id "freeze-N"
  std::string reason;       // why (the incident), as the admin gave it
  std::string environment;  // "" = the whole fleet
  std::string by;           // who froze
  int64_t at_ms = 0;        // since when
  std::string lifted_by;    // who lifted it ("" while active)
  int64_t lifted_ms = 0;    // when (0 while active)
  std::vector<FreezeNote> notes;

  std::string id() const { return "freeze-" + std::to_string(seq); }
  bool active() const { return lifted_ms == 0; }
  // "the whole fleet" or "environment production".
  std::string scope() const;
  bool operator==(const Freeze&) const = default;
};

// Bounds on what a caller may store in a freeze.
inline constexpr size_t kMaxFreezeReasonBytes = 500;
inline constexpr size_t kMaxFreezeNoteBytes = 2000;
inline constexpr size_t kMaxFreezeNotes = 100;

// The store key of freeze `seq`: "freeze/" and 16 digits, so key order is id order.
inline constexpr char kFreezeKeyPrefix[] = "freeze/";
std::string freezeKey(uint64_t seq);

std::string freezeToJsonText(const Freeze& f);
common::StatusOr<Freeze> freezeFromJsonText(std::string_view text);

class Store;
// Every freeze record durable in `store`, oldest first. Thread-safe (reads what is durable).
common::StatusOr<std::vector<Freeze>> loadFreezes(const Store& store);

// "freeze-12" -> 12; nothing for anything else.
std::optional<uint64_t> parseFreezeId(std::string_view id);

// Input checks (InvalidArgument, saying what is wrong): a reason of 1 to kMaxFreezeReasonBytes
// bytes without control characters; an environment that is a valid agent label value ("" for
// the fleet); a note of 1 to kMaxFreezeNoteBytes bytes, newlines and tabs allowed.
common::Status checkFreezeReason(std::string_view reason);
common::Status checkFreezeEnvironment(std::string_view environment);
common::Status checkFreezeNote(std::string_view text);

// THE rule for which environments a plan or deployment touches: each wave's policy environment
// (set at submission under --policy), and the `environment` label of every cluster its waves took
// (`progress`, resolved waves) or will take now (waveClusters against `agents`). A plan about to be
// submitted passes no progress. Clusters without the label, or not registered, add nothing (only a
// fleet-wide freeze covers them).
std::set<std::string> environmentsTouched(const common::Plan& plan,
                                          const std::vector<WaveProgress>& progress,
                                          const AgentsByName& agents);

// THE freeze exemption: a hotfix whose rules (the policy's at submission) allow hotfixes during
// a freeze. No freeze refuses such a plan or holds such a deployment, whenever it started.
bool passesFreezes(const common::Plan& plan);

// The first active freeze in `freezes` that covers a plan or deployment touching `envs`: a
// fleet-wide one first, else the oldest of an environment in `envs`. Null when none does.
const Freeze* coveringFreeze(const std::vector<Freeze>& freezes, const std::set<std::string>& envs);
// The same for a deployment, against the registry's agents (what advance() asks); null for a
// deployment that passesFreezes().
const Freeze* coveringFreeze(const std::vector<Freeze>& freezes, const Deployment& d,
                             const AgentsByName& agents);

// One line for messages and banners: "freeze-3 (environment production) by alice since
// 2026-12-05T11:02:03Z: <reason>".
std::string describeFreeze(const Freeze& f);

// The submission check: FailedPrecondition (HTTP 409) naming the freeze, who froze and since
// when, and how to lift it, when an active freeze covers the plan; OK otherwise, and for a plan
// that passesFreezes(). `blocking` receives the freeze. A hotfix refused says that the policy
// does not allow hotfixes during a freeze.
common::Status checkSubmissionAllowed(const common::Plan& plan, const std::vector<Freeze>& freezes,
                                      const AgentsByName& agents,
                                      const Freeze** blocking = nullptr);

}  // namespace flotilla::coordinator
