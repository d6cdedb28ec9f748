// One process per directory: an exclusive flock on DIR/<name>.lock, held for as long as the
// DirLock lives and released by the kernel when the process dies (kill -9 included), with the
// holder's pid written in the file so that a refusal can say who holds it. Two agents on one
// state dir would each run the same stage.
#pragma once

#include <string>

#include "common/status.hpp"

namespace flotilla::common {

class DirLock {
 public:
  DirLock() = default;
  ~DirLock();
  DirLock(DirLock&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
    other.fd_ = -1;
  }
  DirLock& operator=(DirLock&& other) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  // Takes the lock or fails at once (FailedPrecondition naming the holder's pid when known).
  // `what` names the directory's role in the message ("state dir").
  static StatusOr<DirLock> acquire(const std::string& dir, const std::string& name,
                                   const std::string& what);
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;  // close-on-exec: children (steps, replicas) never hold it
  std::string path_;
};

}  // namespace flotilla::common
