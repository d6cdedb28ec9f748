// Owner-only directories and files.
#include "common/private_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace flotilla::common {

namespace fs = std::filesystem;

Status createPrivateDirectories(const std::string& path) {
  if (path.empty()) return Status::InvalidArgument("empty directory name");
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = fs::absolute(path, ec); !p.empty(); p = p.parent_path()) {
    if (fs::exists(fs::symlink_status(p, ec))) break;
    missing.push_back(p);
    if (p == p.root_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), kPrivateDirMode) != 0 && errno != EEXIST) {
      return Status::IoError("cannot create " + it->string() + ": " + std::strerror(errno));
    }
    // mkdir's mode goes through the umask, which may be stricter, never looser; chmod pins it.
    if (::chmod(it->c_str(), kPrivateDirMode) != 0) {
      return Status::IoError("cannot chmod " + it->string() + ": " + std::strerror(errno));
    }
  }
  return Status::Ok();
}

namespace {

// Sets `path`'s mode to `mode` unless it already is; counts a change. lstat: a symlink is skipped.
Status tighten(const fs::path& path, size_t& changed) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();  // gone meanwhile (a RocksDB temp file)
    return Status::IoError("cannot stat " + path.string() + ": " + std::strerror(errno));
  }
  mode_t want;
  if (S_ISDIR(st.st_mode)) {
    want = kPrivateDirMode;
  } else if (S_ISREG(st.st_mode)) {
    want = kPrivateFileMode;
  } else {
    return Status::Ok();  // symlinks, sockets, fifos: not ours to change
  }
  if ((st.st_mode & 07777) == want) return Status::Ok();
  if (::chmod(path.c_str(), want) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::IoError("cannot make " + path.string() + " private (chmod " +
                           (want == kPrivateDirMode ? "0700" : "0600") +
                           "): " + std::strerror(errno));
  }
  ++changed;
  return Status::Ok();
}

}  // namespace

StatusOr<size_t> makePrivateTree(const std::string& dir) {
  size_t changed = 0;
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument(dir + " is not a directory");
  }
  Status s = tighten(dir, changed);
  if (!s.ok()) return s;
  std::error_code ec;
  // The top is tightened first: from here on nobody else can enter while the rest is done.
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) return Status::IoError("cannot read " + dir + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return Status::IoError("cannot read " + dir + ": " + ec.message());
    s = tighten(it->path(), changed);
    if (!s.ok()) return s;
  }
  if (ec) return Status::IoError("cannot read " + dir + ": " + ec.message());
  return changed;
}

Status writeFileDurably(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("open " + tmp + ": " + strerror(errno));
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::IoError("write " + tmp + ": " + strerror(err));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    return Status::IoError("fsync " + tmp + ": " + strerror(err));
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::IoError("rename " + path + ": " + strerror(errno));
  }
  // The rename is durable only once the directory is synced.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace flotilla::common
