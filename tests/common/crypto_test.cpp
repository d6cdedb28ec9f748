// Tests for common/crypto.cpp: hashes and HMACs against published vectors (FIPS 180-2,
// RFC 4231), the random secrets credentials are made of, and the comparison they are checked by.
#include "common/crypto.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>

namespace flotilla::common {
namespace {

using namespace std::string_view_literals;

bool isLowerHex(const std::string& s) {
  return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

TEST(Sha256Hex, MatchesPublishedVectors) {
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Hex, HashesEveryByteIncludingNul) {
  // A token with a NUL in it is not cut short: "a\0b" is not "a".
  EXPECT_EQ(sha256Hex("a\0b"sv),
            "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138");
  EXPECT_NE(sha256Hex("a\0b"sv), sha256Hex("a"));
  const std::string big(1 << 20, 'x');
  const std::string digest = sha256Hex(big);
  EXPECT_EQ(digest.size(), 64u);
  EXPECT_TRUE(isLowerHex(digest)) << digest;
}

TEST(HmacSha256Hex, MatchesRfc4231Vectors) {
  // Test case 1: a 20-byte key.
  EXPECT_EQ(hmacSha256Hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // Test case 2: a key shorter than the hash.
  EXPECT_EQ(hmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 6: a key longer than the block size is hashed first.
  EXPECT_EQ(hmacSha256Hex(std::string(131, '\xaa'),
                          "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(HmacSha256Hex, EmptyInputsAndNulBytesCount) {
  EXPECT_EQ(hmacSha256Hex("", ""),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  // The whole key is used, past a NUL.
  EXPECT_EQ(hmacSha256Hex("k\0ey"sv, "data"),
            "6fb3fab9ffb4e1d803854d3e2d4a45dafac63c3c283624d814332a533854f5b8");
  EXPECT_NE(hmacSha256Hex("k\0ey"sv, "data"), hmacSha256Hex("k", "data"));
  // Key and data are not interchangeable.
  EXPECT_NE(hmacSha256Hex("a", "b"), hmacSha256Hex("b", "a"));
}

TEST(RandomHex, GivesTwoLowerHexDigitsPerByte) {
  EXPECT_EQ(randomHex(0), "");
  for (size_t n : {1u, 16u, 32u, 1000u}) {
    const std::string r = randomHex(n);
    EXPECT_EQ(r.size(), 2 * n);
    EXPECT_TRUE(isLowerHex(r)) << r;
  }
}

TEST(RandomHex, DrawsDoNotRepeatAndUseEveryDigit) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(randomHex(16));
  EXPECT_EQ(seen.size(), 1000u);
  // 4096 hex digits from the kernel's CSPRNG: a digit never drawn would mean a broken encoder.
  const std::string many = randomHex(2048);
  EXPECT_EQ(std::set<char>(many.begin(), many.end()).size(), 16u);
}

TEST(NewSecret, IsThePrefixAnUnderscoreAnd32RandomBytes) {
  const std::string api = newSecret("flt");
  ASSERT_EQ(api.size(), 4u + 64u);
  EXPECT_EQ(api.substr(0, 4), "flt_");
  EXPECT_TRUE(isLowerHex(api.substr(4))) << api;
  const std::string enroll = newSecret("fle");
  EXPECT_EQ(enroll.substr(0, 4), "fle_");
  EXPECT_NE(api.substr(4), enroll.substr(4));
  EXPECT_NE(newSecret("flt"), newSecret("flt"));
}

TEST(ConstantTimeEqual, EqualOnlyWhenEveryByteAndTheLengthMatch) {
  const std::string secret = newSecret("flt");
  EXPECT_TRUE(constantTimeEqual(secret, std::string(secret)));
  EXPECT_TRUE(constantTimeEqual("", ""));
  std::string first = secret;
  first[0] = 'X';
  std::string last = secret;
  last.back() = last.back() == '0' ? '1' : '0';
  EXPECT_FALSE(constantTimeEqual(secret, first));
  EXPECT_FALSE(constantTimeEqual(secret, last));
  // A prefix, or the same bytes and one more, is not equal.
  EXPECT_FALSE(constantTimeEqual(secret, secret.substr(0, secret.size() - 1)));
  EXPECT_FALSE(constantTimeEqual(secret, secret + "0"));
  EXPECT_FALSE(constantTimeEqual("", "a"));
  // Bytes after a NUL are compared too.
  EXPECT_FALSE(constantTimeEqual("a\0b"sv, "a\0c"sv));
  EXPECT_TRUE(constantTimeEqual("a\0b"sv, "a\0b"sv));
}

}  // namespace
}  // namespace flotilla::common
