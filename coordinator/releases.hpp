// Releases (issue 13): a service + version, what CI reported about it (checks such as tests,
// coverage, lint), the artifact digest its build reported, and where it succeeded. Kept in the
// store under releases/<service>/<version>. The checks a wave's environment requires (the
// policy's, copied onto the wave at submission) are judged against it before the wave starts.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/plan.hpp"
#include "common/status.hpp"

namespace flotilla::coordinator {

// At most this many distinct checks per release: a CI job looping on new names cannot grow a
// record without bound.
inline constexpr size_t kMaxChecksPerRelease = 64;
inline constexpr size_t kMaxCheckUrlBytes = 2048;

struct CheckReport {
  std::string name;  // common::isCheckName
  bool passed = false;
  std::optional<double> value;  // finite
  std::string url;              // http:// or https://, printable ASCII; "" none
  std::string by;               // who reported it
  int64_t at_ms = 0;
};

// A release's latest success in one environment: a wave placed there succeeded (every cluster
// verified) with this artifact. What promotion (coordinator/promotion.hpp) is judged on.
struct EnvironmentSuccess {
  std::string environment;
  std::string artifact;    // the digest deployed ("" none was recorded)
  std::string deployment;  // the deployment id
  int64_t at_ms = 0;
};

// Digests a release had before its current one, kept for people to read (oldest dropped).
inline constexpr size_t kMaxPreviousArtifacts = 16;

struct ReleaseRecord {
  std::string service;
  std::string version;
  std::map<std::string, CheckReport> checks;  // the latest report of each check, by name
  // The artifact digest its latest build reported (common::isArtifactDigest; "" none), the
  // deployment whose build did, and when.
  std::string artifact;
  std::string artifact_deployment;
  int64_t artifact_ms = 0;
  std::vector<std::string> previous_artifacts;  // oldest first, at most kMaxPreviousArtifacts
  std::map<std::string, EnvironmentSuccess> succeeded;  // by environment
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

// A build reported `digest` (already valid) for the release: it becomes the release's artifact;
// a different one before it goes to previous_artifacts. Returns the digest it replaced ("" when
// there was none or it was the same).
std::string setArtifact(ReleaseRecord& release, const std::string& digest,
                        const std::string& deployment, int64_t at_ms);
// "sha256:0123456789ab…": a digest as messages show it.
std::string shortDigest(const std::string& digest);

// "releases/<service>/<version>" (both already valid names).
std::string releaseKey(const std::string& service, const std::string& version);
std::string releaseToJson(const ReleaseRecord& release);
common::StatusOr<ReleaseRecord> releaseFromJson(const std::string& text);

// Refuses a report with a bad name, a value that is not finite, or a URL that is not a
// bounded printable http(s) URL.
common::Status validateCheckReport(const CheckReport& report);
// Adds (or replaces) a report; ResourceExhausted past kMaxChecksPerRelease distinct names.
common::Status addCheckReport(ReleaseRecord& release, CheckReport report);

// A required check the release does not meet, and what it needs: "not reported", "reported
// failed", "79 is below the threshold (coverage >= 80)", "passed without a value; needs
// coverage >= 80".
struct UnmetCheck {
  std::string check;  // the requirement's text: "coverage >= 80"
  std::string why;
};
std::vector<UnmetCheck> unmetChecks(const std::vector<common::Check>& required,
                                    const ReleaseRecord* release);
// "coverage >= 80 (79 is below the threshold); lint (not reported)".
std::string unmetText(const std::vector<UnmetCheck>& unmet);

// For the API: the release, its reports, and per environment of `environments` (name ->
// required checks) each requirement met or not.
nlohmann::json releaseJson(
    const ReleaseRecord& release,
    const std::vector<std::pair<std::string, std::vector<common::Check>>>& environments);

}  // namespace flotilla::coordinator
