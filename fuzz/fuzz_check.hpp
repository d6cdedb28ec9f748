// FUZZ_CHECK: the property checks of the fuzz targets. A failed check aborts, which libFuzzer
// reports as a crash (and keeps the input) and the seed replay test reports as a failure.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace flotilla::fuzz {

[[noreturn]] inline void checkFailed(const char* file, int line, const char* what,
                                     const std::string& detail) {
  std::fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, what,
               detail.empty() ? "" : ": ", detail.c_str());
  std::abort();
}

}  // namespace flotilla::fuzz

#define FUZZ_CHECK(cond, detail)                                            \
  do {                                                                      \
    if (!(cond)) ::flotilla::fuzz::checkFailed(__FILE__, __LINE__, #cond, (detail)); \
  } while (0)
