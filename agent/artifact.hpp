// A build's artifact digest (issue 13, "build once, promote the same artifact"): a script build
// step names what it built with a line `flotilla-artifact: sha256:<64 hex>` on its output (the
// last one counts) or by writing the digest to the file at $FLOTILLA_ARTIFACT_FILE, a path in
// a private directory of its own (the file wins over the lines). Anything that says
// `flotilla-artifact:` and is not a digest is ignored and logged, escaped. The digest travels
// with the stage's result (schema StageResult.artifact) and in its stage record.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "agent/child_process.hpp"
#include "agent/stage_record.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

inline constexpr char kArtifactLinePrefix[] = "flotilla-artifact:";
// The file is read up to this many bytes; a longer one is not a digest.
inline constexpr size_t kMaxArtifactFileBytes = 256;

// What one output line says about the artifact.
struct ArtifactLine {
  bool claims = false;  // it starts with `flotilla-artifact:`
  std::string digest;   // the digest, when it is a valid one ("" otherwise)
};
// `flotilla-artifact: sha256:<64 lower-case hex>`, spaces and tabs around the digest allowed
// (and a trailing \r).
ArtifactLine parseArtifactLine(std::string_view line);

// The digest in a file's content: the text trimmed of surrounding white space, which must be a
// digest. nullopt otherwise.
std::optional<std::string> parseArtifactFile(std::string_view content);

// Follows one build step: sees its output lines, owns its artifact file.
class ArtifactCapture {
 public:
  ArtifactCapture() = default;
  // Makes the step's private directory (0700; owned by the --run-as user when there is one)
  // under `state_dir` and returns the path to give the step as $FLOTILLA_ARTIFACT_FILE.
  // Not OK when the directory cannot be made (the build then runs without the variable).
  common::StatusOr<std::string> prepare(const std::string& state_dir, const StageKey& key,
                                        const std::optional<RunAsUser>& run_as);
  // One output line of the step.
  void onLine(const std::string& line);
  // The step ended: the digest of the file (read with O_NOFOLLOW, a regular file only, at most
  // kMaxArtifactFileBytes) or else of the last valid line; "" for none. Removes the directory.
  std::string finish();

  bool active() const { return active_; }
  void activate() { active_ = true; }

 private:
  bool active_ = false;  // a build step: lines are looked at
  std::string stage_;    // for log lines
  std::string dir_;      // "" when prepare() was not called or failed
  std::string from_lines_;
};

}  // namespace flotilla::agent
