#include "agent/artifact.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "common/logging.hpp"
#include "common/private_dir.hpp"
#include "common/rules.hpp"

namespace flotilla::agent {
namespace {

namespace fs = std::filesystem;

std::string_view trim(std::string_view text) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace

ArtifactLine parseArtifactLine(std::string_view line) {
  ArtifactLine out;
  if (line.rfind(kArtifactLinePrefix, 0) != 0) return out;
  out.claims = true;
  const std::string_view rest = trim(line.substr(std::string_view(kArtifactLinePrefix).size()));
  if (common::isArtifactDigest(rest)) out.digest = std::string(rest);
  return out;
}

std::optional<std::string> parseArtifactFile(std::string_view content) {
  const std::string_view digest = trim(content);
  if (!common::isArtifactDigest(digest)) return std::nullopt;
  return std::string(digest);
}

common::StatusOr<std::string> ArtifactCapture::prepare(const std::string& state_dir,
                                                       const StageKey& key,
                                                       const std::optional<RunAsUser>& run_as) {
  active_ = true;
  stage_ = key.toString();
  if (!isValidDeploymentId(key.deployment) || !isValidStageId(key.stage)) {
    return common::Status::InvalidArgument("not a stage id that may name a directory");
  }
  std::string stage = key.stage;
  for (char& c : stage) {
    if (c == '/') c = '~';
  }
  const fs::path dir = fs::path(state_dir) / "artifacts" / key.deployment /
                       (stage + "." + std::to_string(key.attempt));
  std::error_code ec;
  fs::remove_all(dir, ec);  // a previous run's leftovers (the same attempt after a crash)
  common::Status made = common::createPrivateDirectories(dir.string());
  if (!made.ok()) return made;
  // The step may run as another user: the directory is that user's, still closed to others.
  if (run_as && ::chown(dir.c_str(), run_as->uid, run_as->gid) != 0) {
    return common::Status::IoError("cannot hand " + dir.string() + " to " + run_as->name);
  }
  dir_ = dir.string();
  return (dir / "artifact").string();
}

void ArtifactCapture::onLine(const std::string& line) {
  if (!active_) return;
  const ArtifactLine parsed = parseArtifactLine(line);
  if (!parsed.claims) return;
  if (parsed.digest.empty()) {
    spdlog::warn("stage {}: ignoring a malformed artifact line ({}): {}", stage_,
                 common::kArtifactDigestRule, common::loggable(line, 120));
    return;
  }
  from_lines_ = parsed.digest;
}

std::string ArtifactCapture::finish() {
  std::string digest = from_lines_;
  if (!dir_.empty()) {
    const std::string path = dir_ + "/artifact";
    // The step wrote it (maybe as another user): no symlink followed, no FIFO waited on.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      struct stat st {};
      std::string content;
      if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        content.resize(kMaxArtifactFileBytes + 1);
        const ssize_t n = ::read(fd, content.data(), content.size());
        content.resize(n > 0 ? static_cast<size_t>(n) : 0);
        if (auto parsed = content.size() <= kMaxArtifactFileBytes ? parseArtifactFile(content)
                                                                  : std::nullopt) {
          digest = *parsed;
        } else {
          spdlog::warn("stage {}: ignoring $FLOTILLA_ARTIFACT_FILE ({}; {} bytes read): {}", stage_,
                       common::kArtifactDigestRule, content.size(),
                       common::loggable(content.substr(0, 80), 120));
        }
      } else {
        spdlog::warn("stage {}: ignoring $FLOTILLA_ARTIFACT_FILE: not a regular file", stage_);
      }
      ::close(fd);
    } else if (errno != ENOENT) {
      spdlog::warn("stage {}: ignoring $FLOTILLA_ARTIFACT_FILE: {}", stage_,
                   std::error_code(errno, std::generic_category()).message());
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::remove(fs::path(dir_).parent_path(), ec);  // the deployment's, once empty
    dir_.clear();
  }
  return digest;
}

}  // namespace flotilla::agent
