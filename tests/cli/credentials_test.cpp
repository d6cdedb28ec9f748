// The API token: from an owner-only file or FLOTILLA_TOKEN, trimmed, and refused when a file
// others may read holds it or when it holds what a token never has.
#include "cli/credentials.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/api.hpp"

namespace flotilla::cli {
namespace {

class LoadTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/flotilla-token-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ::unsetenv("FLOTILLA_TOKEN");
  }
  void TearDown() override {
    ::unsetenv("FLOTILLA_TOKEN");
    std::filesystem::remove_all(dir_);
  }

  std::string writeToken(const std::string& text, mode_t mode) {
    const std::string path = dir_ + "/token";
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
  }

  // The message of the CliError loadToken throws, after checking its exit code.
  std::string refusal(const std::string& file) {
    try {
      loadToken(file);
    } catch (const CliError& error) {
      EXPECT_EQ(error.exitCode(), kExitTrouble);
      return error.what();
    }
    ADD_FAILURE() << "accepted";
    return "";
  }

  std::string dir_;
};

TEST_F(LoadTokenTest, AnOwnerOnlyFileIsReadAndTrimmed) {
  EXPECT_EQ(loadToken(writeToken("  flt_abc123\n", 0600)), "flt_abc123");
}

TEST_F(LoadTokenTest, AFileOthersMayReadIsRefused) {
  const std::string file = writeToken("flt_abc123\n", 0644);
  EXPECT_EQ(refusal(file), "token file " + file +
                               " may be read by group or others (mode 0644); a token is a "
                               "password: run 'chmod 600 " +
                               file + "'");
}

TEST_F(LoadTokenTest, WhatIsNoTokenIsRefused) {
  EXPECT_EQ(refusal(writeToken(" \n", 0600)), "token file " + dir_ + "/token is empty");
  EXPECT_EQ(refusal(writeToken("flt_a b", 0600)),
            "token file " + dir_ +
                "/token holds characters a token never has (spaces or control characters)");
  EXPECT_EQ(refusal(dir_), "token file " + dir_ + " is not a regular file");
  EXPECT_EQ(refusal(dir_ + "/missing"),
            "cannot read token file " + dir_ + "/missing: No such file or directory");
}

TEST_F(LoadTokenTest, WithoutAFileTheEnvironmentOrNothing) {
  EXPECT_EQ(loadToken(""), "");
  ::setenv("FLOTILLA_TOKEN", "flt_env\n", 1);
  EXPECT_EQ(loadToken(""), "flt_env");
  ::setenv("FLOTILLA_TOKEN", "flt\x01", 1);
  EXPECT_EQ(refusal(""),
            "FLOTILLA_TOKEN holds characters a token never has (spaces or control "
            "characters)");
}

}  // namespace
}  // namespace flotilla::cli
