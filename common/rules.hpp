// The rules for what users name and write, one function each, shared by the plan parser, the
// coordinator, the agent and the CLI: names, versions, label keys and values, durations. A value
// one part accepts must be accepted by every other part that meets it later.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.hpp"

namespace flotilla::common {

// Service, cluster, wave, environment and API token names: 1 to 63 characters from [a-z0-9-],
// not starting or ending with '-'. They become paths, label values and metric labels.
bool isValidName(std::string_view name);
inline constexpr char kNameRule[] =
    "use 1 to 63 characters from [a-z0-9-], not starting or ending with '-'";

// Service versions: 1 to 128 characters from [A-Za-z0-9._+-], the first not '.' or '-'. A
// version lands in shell commands, paths, image tags, HTTP headers and metric labels, so it
// holds no separator, quote or space, and cannot pass for an option or a relative path.
bool isValidVersion(std::string_view version);
inline constexpr char kVersionRule[] =
    "use 1 to 128 characters from [A-Za-z0-9._+-], not starting with '.' or '-'";

// Labels an agent carries (`--label KEY=VALUE`): keys 1 to 63 characters from [A-Za-z0-9._/-],
// values 0 to 128 printable ASCII characters without spaces.
bool isValidLabelKey(std::string_view key);
bool isValidLabelValue(std::string_view value);

// Labels a plan's wave selector names. Narrower for keys (lower case only) and wider for values
// (spaces allowed, but only 1 to 63 characters) than an agent's labels: the two rules differ
// today, and making them one changes which plans or which agents are accepted, so it is left
// for a decision of its own.
bool isValidSelectorKey(std::string_view key);
bool isValidSelectorValue(std::string_view value);

// http:// and https:// URLs a user gives (plan webhooks and health URLs, a release's notes
// link): at most 2048 characters of printable ASCII without spaces, with something after the
// scheme. Not parsed further: they are stored, shown and fetched by libcurl, never spliced into
// a shell.
bool isValidHttpUrl(std::string_view url);
inline constexpr size_t kMaxUrlLength = 2048;

// A build's artifact digest (`flotilla-artifact: sha256:...` on a build step's output, or the
// file at $FLOTILLA_ARTIFACT_FILE): "sha256:" and 64 lower-case hex digits, nothing else. The
// agent checks what a build says, the coordinator checks again what an agent sends.
bool isArtifactDigest(std::string_view digest);
inline constexpr char kArtifactDigestRule[] = "expected sha256: and 64 lower-case hex digits";
inline constexpr size_t kArtifactDigestLength = 7 + 64;

// Free text a user writes for people to read (a release's changelog, a note on a deployment):
// at most `max_bytes`, valid UTF-8, no control characters but tab and line breaks (\n, \r).
// InvalidArgument naming `what` and the first offending byte's offset otherwise.
Status checkFreeText(std::string_view text, std::string_view what, size_t max_bytes);
// The bounds of the deployment log's free text: a release's changelog and one note.
inline constexpr size_t kMaxChangesBytes = 64 * 1024;
inline constexpr size_t kMaxNoteBytes = 4096;
// A hotfix's reason (why it skips the usual way): free text, shown on one status line.
inline constexpr size_t kMaxHotfixReasonBytes = 500;
// InvalidArgument for an empty reason ("a hotfix needs a reason") or one that breaks
// checkFreeText's rule or kMaxHotfixReasonBytes. `what` names it ("hotfix.reason", "--reason").
Status checkHotfixReason(std::string_view reason, std::string_view what);

// "300s", "5m", "1h", "250ms", "1h30m" -> milliseconds. Units go largest first, each at most
// once; a unit is required.
StatusOr<std::chrono::milliseconds> parseDuration(const std::string& text);
// The shortest form parseDuration reads back: "1h30m", "1s500ms", "0s".
std::string formatDuration(std::chrono::milliseconds d);

}  // namespace flotilla::common
