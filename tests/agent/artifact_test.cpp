// Tests for agent/artifact.cpp: what a build's output line or artifact file says, and the
// capture of one build step (its private file, the file over the lines, hostile files ignored).
#include "agent/artifact.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "tests/support/files.hpp"

namespace flotilla::agent {
namespace {

const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');

TEST(ArtifactLine, ADigestIsTaken) {
  EXPECT_EQ(parseArtifactLine("flotilla-artifact: " + kA).digest, kA);
  EXPECT_EQ(parseArtifactLine("flotilla-artifact:" + kA + "\r").digest, kA);
  EXPECT_EQ(parseArtifactLine("flotilla-artifact:\t" + kA + "  ").digest, kA);
  EXPECT_TRUE(parseArtifactLine("flotilla-artifact: " + kA).claims);
}

TEST(ArtifactLine, AnythingElseIsNotADigest) {
  EXPECT_FALSE(parseArtifactLine("building " + kA).claims);
  EXPECT_FALSE(parseArtifactLine(" flotilla-artifact: " + kA).claims);
  for (const std::string& bad : std::vector<std::string>{
           "flotilla-artifact: ", "flotilla-artifact: sha256:abc",
           "flotilla-artifact: sha512:" + std::string(64, 'a'),
           "flotilla-artifact: sha256:" + std::string(64, 'A'),
           "flotilla-artifact: sha256:" + std::string(65, 'a'),
           "flotilla-artifact: " + kA + " extra", "flotilla-artifact: " + kA + "\x1b[2J"}) {
    const ArtifactLine parsed = parseArtifactLine(bad);
    EXPECT_TRUE(parsed.claims) << bad;
    EXPECT_EQ(parsed.digest, "") << bad;
  }
}

TEST(ArtifactFile, TheTrimmedContentMustBeADigest) {
  EXPECT_EQ(parseArtifactFile(kA + "\n"), kA);
  EXPECT_EQ(parseArtifactFile("  " + kA), kA);
  EXPECT_FALSE(parseArtifactFile("").has_value());
  EXPECT_FALSE(parseArtifactFile(kA + "\n" + kB).has_value());
  EXPECT_FALSE(parseArtifactFile("flotilla-artifact: " + kA).has_value());
}

class ArtifactCaptureTest : public ::testing::Test {
 protected:
  StageKey key_{"checkout-3", "staging-eu/build", 1};
  support::TempDir dir_{"artifact"};
};

TEST_F(ArtifactCaptureTest, TheLastValidLineCounts) {
  ArtifactCapture capture;
  capture.activate();
  capture.onLine("flotilla-artifact: " + kA);
  capture.onLine("flotilla-artifact: " + kB);
  capture.onLine("flotilla-artifact: sha256:broken");
  capture.onLine("done");
  EXPECT_EQ(capture.finish(), kB);
}

TEST_F(ArtifactCaptureTest, AStepThatIsNotABuildCapturesNothing) {
  ArtifactCapture capture;
  capture.onLine("flotilla-artifact: " + kA);
  EXPECT_FALSE(capture.active());
  EXPECT_EQ(capture.finish(), "");
}

TEST_F(ArtifactCaptureTest, TheFileIsPrivateWinsOverLinesAndIsRemoved) {
  ArtifactCapture capture;
  auto path = capture.prepare(dir_.path(), key_, std::nullopt);
  ASSERT_TRUE(path.ok()) << path.status().toString();
  const std::string dir = std::filesystem::path(*path).parent_path().string();
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_NE(dir.find("artifacts/checkout-3/staging-eu~build.1"), std::string::npos) << dir;
  capture.onLine("flotilla-artifact: " + kA);
  support::writeFile(*path, kB + "\n");
  EXPECT_EQ(capture.finish(), kB);
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST_F(ArtifactCaptureTest, AMalformedOrHostileFileIsIgnored) {
  // Malformed content: the line's digest stands.
  ArtifactCapture malformed;
  auto path = malformed.prepare(dir_.path(), key_, std::nullopt);
  ASSERT_TRUE(path.ok());
  malformed.onLine("flotilla-artifact: " + kA);
  support::writeFile(*path, "sha256:nope\n");
  EXPECT_EQ(malformed.finish(), kA);

  // Too long: not read past the bound.
  ArtifactCapture large;
  path = large.prepare(dir_.path(), key_, std::nullopt);
  ASSERT_TRUE(path.ok());
  support::writeFile(*path, kA + std::string(kMaxArtifactFileBytes, ' '));
  EXPECT_EQ(large.finish(), "");

  // A symlink to a file holding a digest is not followed.
  const std::string elsewhere = dir_.path() + "/elsewhere";
  support::writeFile(elsewhere, kB);
  ArtifactCapture linked;
  path = linked.prepare(dir_.path(), key_, std::nullopt);
  ASSERT_TRUE(path.ok());
  ASSERT_EQ(::symlink(elsewhere.c_str(), path->c_str()), 0);
  EXPECT_EQ(linked.finish(), "");
  EXPECT_TRUE(std::filesystem::exists(elsewhere));  // only the step's directory is removed

  // No file, no line: nothing.
  ArtifactCapture nothing;
  ASSERT_TRUE(nothing.prepare(dir_.path(), key_, std::nullopt).ok());
  EXPECT_EQ(nothing.finish(), "");
}

TEST_F(ArtifactCaptureTest, AKeyThatCannotNameADirectoryIsRefused) {
  ArtifactCapture capture;
  EXPECT_FALSE(capture.prepare(dir_.path(), StageKey{"../x", "a/build", 1}, std::nullopt).ok());
  EXPECT_EQ(capture.finish(), "");
}

}  // namespace
}  // namespace flotilla::agent
