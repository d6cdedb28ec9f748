// Test support, files and text: whole files in and out, lines, a log's tail, and temporary
// directories that remove themselves.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace flotilla::support {

std::string readFile(const std::string& path);  // "" when missing
// Creates or truncates; a test failure when it cannot.
void writeFile(const std::string& path, const std::string& text);
bool fileExists(const std::string& path);
// Non-empty lines of a file, trimmed; empty when the file is missing.
std::vector<std::string> readLines(const std::string& path);
// Non-empty lines of `text`, as they are.
std::vector<std::string> linesOf(const std::string& text);
// The last `lines` lines of a file, each ending in "\n".
std::string tailOf(const std::string& path, size_t lines);
// Replaces every `from` in `text` with `to`.
std::string replaceAll(std::string text, const std::string& from, const std::string& to);
// Without leading and trailing white space.
std::string trim(std::string text);
bool contains(const std::string& text, const std::string& part);

// A fresh directory (mkdtemp), removed with all it holds on destruction unless kept.
class TempDir {
 public:
  enum class Where {
    kTmp,     // under /tmp
    kMemory,  // under /dev/shm when it is writable (an fsync there costs nothing), else /tmp
  };
  // <base>/flotilla-<name>-XXXXXX. When it cannot be made, path() is "" and a test failure is
  // recorded.
  explicit TempDir(const std::string& name, Where where = Where::kTmp);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Leaves the directory behind (a failed test's files, for a person to read).
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

}  // namespace flotilla::support
