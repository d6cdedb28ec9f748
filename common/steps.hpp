// The steps a cluster runs and the outcomes a stage ends with: one enum each, the wire's
// (schema/flotilla.capnp `Step`, `Outcome`), used as is by the coordinator's state machine, its
// store, the agent, its stage records and the CLI. Their names (events, JSON records, logs,
// stage ids) are here and nowhere else.
#pragma once

#include <optional>
#include <string_view>

#include "flotilla.capnp.h"

namespace flotilla::common {

using Step = schema::Step;
using Outcome = schema::Outcome;

// Every Step / Outcome in declaration order (the enums are dense from 0).
inline constexpr Step kLastStep = Step::WATCH;
inline constexpr Outcome kLastOutcome = Outcome::REFUSED;

// "build", "apply", "verify", "rollback", "deploy", "shift", "analyze", "bake", "finalize",
// "roll", "watch"; "unknown" for a value outside the enum (a newer peer's).
const char* stepName(Step step);
std::optional<Step> stepFromName(std::string_view name);

// Steps a cluster's sequence repeats (shift 10, shift 50, ...; watch once per tier): their stage
// ids carry an index.
bool stepRepeats(Step step);

// Steps only the process driver runs: deploy, finalize, roll (a rollback, a shift, an analysis
// and a bake belong to both drivers).
bool isProcessStep(Step step);

// "succeeded", "failed", "timed_out", "aborted", "unknown", "refused".
const char* outcomeName(Outcome outcome);
std::optional<Outcome> outcomeFromName(std::string_view name);

}  // namespace flotilla::common
