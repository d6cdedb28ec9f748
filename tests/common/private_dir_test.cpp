// Tests for common/private_dir.cpp: owner-only directories and files at rest.
#include "common/private_dir.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/support/files.hpp"

namespace flotilla::common {
namespace {

namespace fs = std::filesystem;

unsigned modeOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p << ": " << std::strerror(errno);
  return st.st_mode & 07777;
}

class PrivateDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    old_umask_ = ::umask(022);  // what a careless caller would have
  }
  void TearDown() override { ::umask(old_umask_); }
  support::TempDir temp_{"private-dir-test"};
  const fs::path root_ = temp_.path();
  mode_t old_umask_ = 0;
};

TEST_F(PrivateDirTest, CreatesEveryMissingLevelAs0700) {
  fs::path deep = root_ / "a" / "b" / "c";
  ASSERT_TRUE(createPrivateDirectories(deep.string()).ok());
  EXPECT_EQ(modeOf(root_ / "a"), 0700u);
  EXPECT_EQ(modeOf(root_ / "a" / "b"), 0700u);
  EXPECT_EQ(modeOf(deep), 0700u);
  // Existing levels are left as they were; a second call is a no-op.
  ASSERT_TRUE(createPrivateDirectories(deep.string()).ok());
}

TEST_F(PrivateDirTest, RefusesWhenAFileIsInTheWay) {
  std::ofstream(root_ / "file") << "x";
  EXPECT_FALSE(createPrivateDirectories((root_ / "file" / "sub").string()).ok());
}

TEST_F(PrivateDirTest, TightensLooseTreeAndCountsWhatChanged) {
  fs::path dir = root_ / "data";
  fs::create_directories(dir / "sub");
  std::ofstream(dir / "WAL.log") << "secret";
  std::ofstream(dir / "sub" / "stage.log") << "secret";
  std::ofstream(dir / "run.sh") << "#!/bin/sh";
  ::chmod(dir.c_str(), 0755);
  ::chmod((dir / "sub").c_str(), 0775);
  ::chmod((dir / "WAL.log").c_str(), 0644);
  ::chmod((dir / "sub" / "stage.log").c_str(), 0666);
  ::chmod((dir / "run.sh").c_str(), 0755);
  auto changed = makePrivateTree(dir.string());
  ASSERT_TRUE(changed.ok()) << changed.status().toString();
  EXPECT_EQ(*changed, 5u);
  EXPECT_EQ(modeOf(dir), 0700u);
  EXPECT_EQ(modeOf(dir / "sub"), 0700u);
  EXPECT_EQ(modeOf(dir / "WAL.log"), 0600u);
  EXPECT_EQ(modeOf(dir / "sub" / "stage.log"), 0600u);
  EXPECT_EQ(modeOf(dir / "run.sh"), 0600u);
  // Already private: nothing to say the second time.
  auto again = makePrivateTree(dir.string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
}

TEST_F(PrivateDirTest, SymlinksAreNeitherFollowedNorChanged) {
  fs::path outside = root_ / "outside";
  std::ofstream(outside) << "not ours";
  ::chmod(outside.c_str(), 0644);
  fs::path dir = root_ / "state";
  fs::create_directories(dir);
  fs::create_symlink(outside, dir / "link");
  fs::create_directory_symlink(root_, dir / "loop");
  auto changed = makePrivateTree(dir.string());
  ASSERT_TRUE(changed.ok()) << changed.status().toString();
  EXPECT_EQ(modeOf(outside), 0644u);
}

TEST_F(PrivateDirTest, MissingDirIsAnError) {
  EXPECT_FALSE(makePrivateTree((root_ / "missing").string()).ok());
}

// The stage records and the process driver's service records share this write.
TEST_F(PrivateDirTest, DurableWriteReplacesTheFileWhole0600AndLeavesNoTemporary) {
  const fs::path file = root_ / "record.json";
  ASSERT_TRUE(writeFileDurably(file.string(), "first, and longer").ok());
  ASSERT_TRUE(writeFileDurably(file.string(), "second").ok());
  std::ifstream in(file);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "second");
  EXPECT_EQ(modeOf(file), 0600u) << "whatever the umask";
  EXPECT_FALSE(fs::exists(root_ / "record.json.tmp"));
  EXPECT_FALSE(writeFileDurably((root_ / "missing" / "x").string(), "y").ok());
}

}  // namespace
}  // namespace flotilla::common
