// Tests for common/dir_lock.cpp: one process per directory. The lock is taken or refused at once
// (the refusal names the holder's pid), released when its holder is destroyed or killed, moved
// with its owner, and never inherited by children.
#include "common/dir_lock.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>

#include "tests/support/files.hpp"
#include "tests/support/wait.hpp"

extern char** environ;

namespace flotilla::common {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using support::readFile;
using support::TempDir;
using support::writeFile;

std::string pidLine(pid_t pid) { return std::to_string(pid) + "\n"; }

class DirLockTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (child_ > 0) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, nullptr, 0);
    }
  }
  StatusOr<DirLock> acquire() { return DirLock::acquire(dir(), "agent", "state dir"); }
  const std::string& dir() const { return tmp_.path(); }
  std::string lockPath() const { return dir() + "/agent.lock"; }

  // A child process that takes the lock and holds it until killed.
  void startHolder() {
    child_ = ::fork();
    ASSERT_GE(child_, 0);
    if (child_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      auto lock = DirLock::acquire(dir(), "agent", "state dir");
      if (!lock.ok()) ::_exit(1);
      for (;;) ::pause();
    }
    ASSERT_TRUE(support::pollUntil([&] { return readFile(lockPath()) == pidLine(child_); }, 10s))
        << "the child never took the lock";
  }

  TempDir tmp_{"dir-lock-test"};
  pid_t child_ = -1;
};

TEST_F(DirLockTest, TakesTheLockAndSaysWhoHoldsIt) {
  EXPECT_FALSE(DirLock().held());
  auto lock = acquire();
  ASSERT_TRUE(lock.ok()) << lock.status().toString();
  EXPECT_TRUE(lock->held());
  EXPECT_EQ(readFile(lockPath()), pidLine(::getpid()));
  struct stat st {};
  ASSERT_EQ(::stat(lockPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(DirLockTest, ASecondHolderIsRefusedAtOnceNamingTheFirst) {
  auto first = acquire();
  ASSERT_TRUE(first.ok()) << first.status().toString();
  // flock belongs to the open file: a second open in the same process conflicts too.
  auto second = acquire();
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().isFailedPrecondition()) << second.status().toString();
  EXPECT_EQ(second.status().message(),
            "the state dir " + dir() + " is in use by another process (pid " +
                std::to_string(::getpid()) + "): one process per state dir");
  // The refusal leaves the holder's record alone.
  EXPECT_EQ(readFile(lockPath()), pidLine(::getpid()));
  // Another name in the same directory is another lock.
  auto other = DirLock::acquire(dir(), "other", "state dir");
  EXPECT_TRUE(other.ok()) << other.status().toString();
}

TEST_F(DirLockTest, ReleasedWhenTheHolderIsDestroyed) {
  {
    auto first = acquire();
    ASSERT_TRUE(first.ok()) << first.status().toString();
  }
  auto again = acquire();
  EXPECT_TRUE(again.ok()) << again.status().toString();
}

TEST_F(DirLockTest, AnotherProcessIsNamedAndItsDeathReleasesTheLock) {
  ASSERT_NO_FATAL_FAILURE(startHolder());
  auto refused = acquire();
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().isFailedPrecondition()) << refused.status().toString();
  EXPECT_NE(refused.status().message().find("(pid " + std::to_string(child_) + ")"),
            std::string::npos)
      << refused.status().toString();
  // kill -9: no destructor runs, the kernel drops the lock.
  ASSERT_EQ(::kill(child_, SIGKILL), 0);
  ASSERT_EQ(::waitpid(child_, nullptr, 0), child_);
  child_ = -1;
  auto taken = acquire();
  ASSERT_TRUE(taken.ok()) << taken.status().toString();
  EXPECT_EQ(readFile(lockPath()), pidLine(::getpid())) << "the dead holder's pid is replaced";
}

TEST_F(DirLockTest, AHolderThatWroteNoPidIsStillRefused) {
  // A lock taken by something else (flock(1), an older build) with no pid in the file.
  writeFile(lockPath(), "");
  int fd = ::open(lockPath().c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  auto refused = acquire();
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().isFailedPrecondition()) << refused.status().toString();
  EXPECT_EQ(refused.status().message().find("(pid"), std::string::npos)
      << refused.status().toString();
  // Text that is not a pid is not shown as one.
  ASSERT_EQ(::pwrite(fd, "hello\n", 6, 0), 6);
  refused = acquire();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message().find("(pid"), std::string::npos)
      << refused.status().toString();
  ::close(fd);
}

TEST_F(DirLockTest, ALongerStaleRecordIsReplacedWhole) {
  writeFile(lockPath(), "4194303\nleft over by a crashed agent\n");
  auto lock = acquire();
  ASSERT_TRUE(lock.ok()) << lock.status().toString();
  EXPECT_EQ(readFile(lockPath()), pidLine(::getpid()));
}

TEST_F(DirLockTest, MovingTheLockMovesOwnership) {
  auto taken = acquire();
  ASSERT_TRUE(taken.ok()) << taken.status().toString();
  DirLock moved(std::move(*taken));
  EXPECT_TRUE(moved.held());
  EXPECT_FALSE(taken->held());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_FALSE(acquire().ok()) << "still held, by `moved`";
  DirLock assigned;
  assigned = std::move(moved);
  EXPECT_TRUE(assigned.held());
  EXPECT_FALSE(moved.held());  // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(acquire().ok()) << "still held, by `assigned`";
  // Assigning over a held lock releases the lock it held.
  auto other = DirLock::acquire(dir(), "other", "state dir");
  ASSERT_TRUE(other.ok()) << other.status().toString();
  assigned = std::move(*other);
  EXPECT_TRUE(assigned.held());
  EXPECT_TRUE(acquire().ok()) << "the first lock was released by the assignment";
  EXPECT_FALSE(DirLock::acquire(dir(), "other", "state dir").ok());
}

TEST_F(DirLockTest, ChildrenDoNotInheritTheLock) {
  auto lock = acquire();
  ASSERT_TRUE(lock.ok()) << lock.status().toString();
  // A child spawned as steps and replicas are, with every inheritable descriptor.
  char sleep_path[] = "/bin/sleep";
  char seconds[] = "60";
  char* argv[] = {sleep_path, seconds, nullptr};
  ASSERT_EQ(::posix_spawn(&child_, sleep_path, nullptr, nullptr, argv, environ), 0);
  *lock = DirLock();
  auto again = acquire();
  EXPECT_TRUE(again.ok()) << "the child holds the lock: " << again.status().toString();
}

TEST_F(DirLockTest, ASymlinkOrAMissingDirectoryIsAnIoError) {
  const std::string target = dir() + "/elsewhere";
  writeFile(target, "");
  fs::create_symlink(target, lockPath());
  auto link = acquire();
  ASSERT_FALSE(link.ok());
  EXPECT_TRUE(link.status().isIoError()) << link.status().toString();
  auto missing = DirLock::acquire(dir() + "/missing", "agent", "state dir");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().isIoError()) << missing.status().toString();
  EXPECT_FALSE(fs::exists(dir() + "/missing"));
}

}  // namespace
}  // namespace flotilla::common
