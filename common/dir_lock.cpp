// An exclusive lock on a directory (see dir_lock.hpp).
#include "common/dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flotilla::common {

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);
}

DirLock& DirLock::operator=(DirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

StatusOr<DirLock> DirLock::acquire(const std::string& dir, const std::string& name,
                                   const std::string& what) {
  const std::string path = dir + "/" + name + ".lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return Status::IoError("cannot open " + path + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    if (err != EWOULDBLOCK) {
      return Status::IoError("cannot lock " + path + ": " + std::strerror(err));
    }
    std::string holder;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) holder += buf[i];
    return Status::FailedPrecondition("the " + what + " " + dir + " is in use by another process" +
                                      (holder.empty() ? "" : " (pid " + holder + ")") +
                                      ": one process per " + what);
  }
  // Ours now: say who holds it.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int err = errno;
    ::close(fd);
    return Status::IoError("cannot write " + path + ": " + std::strerror(err));
  }
  DirLock lock;
  lock.fd_ = fd;
  lock.path_ = path;
  return lock;
}

}  // namespace flotilla::common
