// Tests for common/curve.cpp: CURVE keys as Z85 text, the key pair kept in a private directory
// (made once, then loaded; a secret others can read refused), and keys given on a command line.
#include "common/curve.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zmq.h>

#include <filesystem>
#include <string>

#include "tests/support/files.hpp"

namespace flotilla::common {
namespace {

namespace fs = std::filesystem;
using support::readFile;
using support::TempDir;
using support::writeFile;

CurveKeyPair freshPair() {
  char pub[41];
  char sec[41];
  EXPECT_EQ(zmq_curve_keypair(pub, sec), 0);
  return CurveKeyPair{pub, sec};
}

unsigned modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST(IsCurveKey, TakesFortyZ85CharactersThatDecode) {
  const CurveKeyPair pair = freshPair();
  EXPECT_TRUE(isCurveKey(pair.public_key));
  EXPECT_TRUE(isCurveKey(pair.secret_key));
  EXPECT_FALSE(isCurveKey(""));
  EXPECT_FALSE(isCurveKey(pair.public_key.substr(0, 39)));
  EXPECT_FALSE(isCurveKey(pair.public_key + "0"));
  EXPECT_FALSE(isCurveKey(pair.public_key.substr(0, 35)));  // whole Z85 groups, but 28 bytes
  // Characters outside the Z85 alphabet.
  for (char bad : {' ', '"', ',', ';', '\\', '_', '`', '|', '~', '\n'}) {
    std::string key = pair.public_key;
    key[7] = bad;
    EXPECT_FALSE(isCurveKey(key)) << "with '" << bad << "'";
  }
  // Five Z85 digits worth more than 32 bits.
  EXPECT_FALSE(isCurveKey(std::string(40, '#')));
}

TEST(IsCurveKey, ANulInsideTheFortyCharactersIsNotAKey) {
  // Forty characters, but a C string of 35: only 28 bytes would be decoded.
  const CurveKeyPair pair = freshPair();
  std::string key = pair.public_key.substr(0, 35) + std::string(1, '\0') + "abcd";
  ASSERT_EQ(key.size(), 40u);
  EXPECT_FALSE(isCurveKey(key));
  // Nor taken from a key file that holds one.
  TempDir tmp("curve-test");
  writeFile(tmp.path() + "/coordinator.pub", key + "\n");
  EXPECT_TRUE(keyFromArgument("@" + tmp.path() + "/coordinator.pub").status().isInvalidArgument());
  EXPECT_TRUE(readPublicKey(tmp.path(), "coordinator").status().isCorruption());
}

class KeyPairTest : public ::testing::Test {
 protected:
  std::string keys() const { return tmp_.path() + "/keys"; }
  TempDir tmp_{"curve-test"};
};

TEST_F(KeyPairTest, MakesAPairInAPrivateDirectory) {
  auto pair = loadOrCreateKeyPair(keys() + "/nested", "coordinator");
  ASSERT_TRUE(pair.ok()) << pair.status().toString();
  EXPECT_TRUE(isCurveKey(pair->public_key));
  EXPECT_TRUE(isCurveKey(pair->secret_key));
  // The public half is the secret's.
  char derived[41];
  ASSERT_EQ(zmq_curve_public(derived, pair->secret_key.c_str()), 0);
  EXPECT_EQ(pair->public_key, derived);
  const std::string dir = keys() + "/nested";
  EXPECT_EQ(modeOf(dir), 0700u);
  EXPECT_EQ(modeOf(dir + "/coordinator.key"), 0600u);
  EXPECT_EQ(modeOf(dir + "/coordinator.pub"), 0600u);
  EXPECT_EQ(readFile(dir + "/coordinator.key"), pair->secret_key + "\n");
  EXPECT_EQ(readFile(dir + "/coordinator.pub"), pair->public_key + "\n");
  // Only the two files: no temporary left behind.
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 2u);
}

TEST_F(KeyPairTest, LoadsTheSamePairEverAfter) {
  auto first = loadOrCreateKeyPair(keys(), "agent");
  ASSERT_TRUE(first.ok()) << first.status().toString();
  auto second = loadOrCreateKeyPair(keys(), "agent");
  ASSERT_TRUE(second.ok()) << second.status().toString();
  EXPECT_EQ(second->public_key, first->public_key);
  EXPECT_EQ(second->secret_key, first->secret_key);
  // Another name in the same directory is another pair.
  auto other = loadOrCreateKeyPair(keys(), "other");
  ASSERT_TRUE(other.ok()) << other.status().toString();
  EXPECT_NE(other->secret_key, first->secret_key);
  auto pub = readPublicKey(keys(), "agent");
  ASSERT_TRUE(pub.ok()) << pub.status().toString();
  EXPECT_EQ(*pub, first->public_key);
}

TEST_F(KeyPairTest, TightensALooseDirectory) {
  fs::create_directories(keys());
  fs::permissions(keys(), fs::perms::all);
  ASSERT_TRUE(loadOrCreateKeyPair(keys(), "agent").ok());
  EXPECT_EQ(modeOf(keys()), 0700u);
}

TEST_F(KeyPairTest, AMissingOrStalePublicKeyIsRewrittenFromTheSecret) {
  auto made = loadOrCreateKeyPair(keys(), "agent");
  ASSERT_TRUE(made.ok()) << made.status().toString();
  const std::string pub_path = keys() + "/agent.pub";
  fs::remove(pub_path);
  auto again = loadOrCreateKeyPair(keys(), "agent");
  ASSERT_TRUE(again.ok()) << again.status().toString();
  EXPECT_EQ(again->public_key, made->public_key);
  EXPECT_EQ(readFile(pub_path), made->public_key + "\n");
  // Another key's public half in the file: the secret decides.
  writeFile(pub_path, freshPair().public_key + "\n");
  again = loadOrCreateKeyPair(keys(), "agent");
  ASSERT_TRUE(again.ok()) << again.status().toString();
  EXPECT_EQ(again->public_key, made->public_key);
  EXPECT_EQ(readFile(pub_path), made->public_key + "\n");
  writeFile(pub_path, "garbage");
  ASSERT_TRUE(loadOrCreateKeyPair(keys(), "agent").ok());
  EXPECT_EQ(readFile(pub_path), made->public_key + "\n");
}

TEST_F(KeyPairTest, ASecretOthersCanReadIsRefusedAndLeftAlone) {
  auto made = loadOrCreateKeyPair(keys(), "agent");
  ASSERT_TRUE(made.ok()) << made.status().toString();
  const std::string secret_path = keys() + "/agent.key";
  for (unsigned mode : {0640u, 0604u, 0660u}) {
    ASSERT_EQ(::chmod(secret_path.c_str(), mode), 0);
    auto refused = loadOrCreateKeyPair(keys(), "agent");
    ASSERT_FALSE(refused.ok());
    EXPECT_TRUE(refused.status().isFailedPrecondition()) << refused.status().toString();
    EXPECT_NE(refused.status().message().find("readable by others"), std::string::npos)
        << refused.status().toString();
    char octal[8];
    snprintf(octal, sizeof(octal), "%o", mode);
    EXPECT_NE(refused.status().message().find(std::string("mode ") + octal), std::string::npos)
        << refused.status().toString();
    // Not replaced by a new pair: the admin decides what to do with a leaked key.
    EXPECT_EQ(readFile(secret_path), made->secret_key + "\n");
  }
  ASSERT_EQ(::chmod(secret_path.c_str(), 0400), 0);
  EXPECT_TRUE(loadOrCreateKeyPair(keys(), "agent").ok()) << "read-only for the owner is fine";
}

TEST_F(KeyPairTest, ASecretFileThatIsNotAKeyIsCorruption) {
  fs::create_directories(keys());
  const std::string secret_path = keys() + "/agent.key";
  writeFile(secret_path, "not a key\n");
  ASSERT_EQ(::chmod(secret_path.c_str(), 0600), 0);
  auto bad = loadOrCreateKeyPair(keys(), "agent");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().isCorruption()) << bad.status().toString();
  EXPECT_EQ(readFile(secret_path), "not a key\n") << "never overwritten";
  // Too large to be a key file at all.
  writeFile(secret_path, std::string(300, 'a'));
  bad = loadOrCreateKeyPair(keys(), "agent");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().isInvalidArgument()) << bad.status().toString();
}

TEST_F(KeyPairTest, SurroundingWhiteSpaceInTheSecretFileIsIgnored) {
  fs::create_directories(keys());
  const CurveKeyPair pair = freshPair();
  const std::string secret_path = keys() + "/agent.key";
  writeFile(secret_path, "  \t" + pair.secret_key + "\r\n\n");
  ASSERT_EQ(::chmod(secret_path.c_str(), 0600), 0);
  auto loaded = loadOrCreateKeyPair(keys(), "agent");
  ASSERT_TRUE(loaded.ok()) << loaded.status().toString();
  EXPECT_EQ(loaded->secret_key, pair.secret_key);
  EXPECT_EQ(loaded->public_key, pair.public_key);
}

TEST_F(KeyPairTest, ADirectoryThatCannotBeMadeIsAnIoError) {
  const std::string file = tmp_.path() + "/file";
  writeFile(file, "x");
  auto refused = loadOrCreateKeyPair(file + "/keys", "agent");
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().isIoError()) << refused.status().toString();
}

TEST_F(KeyPairTest, ReadPublicKeyCreatesNothing) {
  auto missing = readPublicKey(keys(), "agent");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().isNotFound()) << missing.status().toString();
  EXPECT_FALSE(fs::exists(keys()));
  fs::create_directories(keys());
  writeFile(keys() + "/agent.pub", "not a key\n");
  auto bad = readPublicKey(keys(), "agent");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().isCorruption()) << bad.status().toString();
  const CurveKeyPair pair = freshPair();
  writeFile(keys() + "/agent.pub", "\n " + pair.public_key + " \n");
  auto good = readPublicKey(keys(), "agent");
  ASSERT_TRUE(good.ok()) << good.status().toString();
  EXPECT_EQ(*good, pair.public_key);
  EXPECT_FALSE(fs::exists(keys() + "/agent.key"));
}

TEST_F(KeyPairTest, KeyFromArgumentTakesTheKeyOrAFileHoldingIt) {
  const CurveKeyPair pair = freshPair();
  auto direct = keyFromArgument(pair.public_key);
  ASSERT_TRUE(direct.ok()) << direct.status().toString();
  EXPECT_EQ(*direct, pair.public_key);
  auto padded = keyFromArgument(" " + pair.public_key + "\n");
  ASSERT_TRUE(padded.ok()) << padded.status().toString();
  EXPECT_EQ(*padded, pair.public_key);
  const std::string file = tmp_.path() + "/coordinator.pub";
  writeFile(file, pair.public_key + "\n");
  auto from_file = keyFromArgument("@" + file);
  ASSERT_TRUE(from_file.ok()) << from_file.status().toString();
  EXPECT_EQ(*from_file, pair.public_key);
}

// One key in 85 starts with '@', a Z85 character: it is a key, not a file name.
TEST_F(KeyPairTest, KeyStartingWithAtIsAKeyNotAFile) {
  std::string key;
  for (int i = 0; i < 100000 && (key.empty() || key[0] != '@'); ++i) key = freshPair().public_key;
  ASSERT_EQ(key[0], '@');
  auto taken = keyFromArgument(key);
  ASSERT_TRUE(taken.ok()) << taken.status().toString();
  EXPECT_EQ(*taken, key);
}

TEST_F(KeyPairTest, KeyFromArgumentRefusesWhatIsNotAKey) {
  for (const std::string& bad : {std::string(""), std::string("@"), std::string("not-a-key"),
                                 freshPair().public_key.substr(1)}) {
    auto refused = keyFromArgument(bad);
    EXPECT_FALSE(refused.ok()) << '"' << bad << '"';
  }
  auto wrong = keyFromArgument("not-a-key");
  EXPECT_TRUE(wrong.status().isInvalidArgument()) << wrong.status().toString();
  EXPECT_NE(wrong.status().message().find("show-key"), std::string::npos);
  auto missing = keyFromArgument("@" + tmp_.path() + "/missing.pub");
  EXPECT_TRUE(missing.status().isNotFound()) << missing.status().toString();
  const std::string junk = tmp_.path() + "/junk.pub";
  writeFile(junk, "hello\n");
  EXPECT_TRUE(keyFromArgument("@" + junk).status().isInvalidArgument());
  writeFile(junk, std::string(4096, 'a'));
  EXPECT_TRUE(keyFromArgument("@" + junk).status().isInvalidArgument());
}

}  // namespace
}  // namespace flotilla::common
