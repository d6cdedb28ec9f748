// Test support for the CLI's commands: run one as main() would, and keep what it printed.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "cli/api.hpp"

namespace flotilla::cli {

struct CommandOutput {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `command` with stdout and stderr captured; a CliError becomes its exit code and the
// "flotilla: ..." line, as in main().
inline CommandOutput runCaptured(const std::function<int()>& command) {
  CommandOutput output;
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  try {
    output.exit_code = command();
  } catch (const CliError& error) {
    std::cerr << "flotilla: " << error.what() << '\n';
    output.exit_code = error.exitCode();
  }
  output.out = ::testing::internal::GetCapturedStdout();
  output.err = ::testing::internal::GetCapturedStderr();
  return output;
}

}  // namespace flotilla::cli
