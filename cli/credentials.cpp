// Token loading: the file's mode is checked on the open descriptor, the text trimmed and
// checked for characters a token never has.
#include "cli/credentials.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli/api.hpp"

namespace flotilla::cli {

namespace {

std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

std::string checkedToken(std::string token, const std::string& from) {
  token = trimmed(std::move(token));
  if (token.empty()) throw CliError(from + " is empty", kExitTrouble);
  for (unsigned char c : token) {
    if (c < 0x21 || c > 0x7e) {
      throw CliError(from +
                         " holds characters a token never has (spaces or control "
                         "characters)",
                     kExitTrouble);
    }
  }
  return token;
}

}  // namespace

std::string loadToken(const std::string& token_file) {
  if (token_file.empty()) {
    const char* env = std::getenv("FLOTILLA_TOKEN");
    return env == nullptr || *env == '\0' ? "" : checkedToken(env, "FLOTILLA_TOKEN");
  }
  int fd = ::open(token_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw CliError("cannot read token file " + token_file + ": " + std::strerror(errno),
                   kExitTrouble);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw CliError("token file " + token_file + " is not a regular file", kExitTrouble);
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw CliError("token file " + token_file + " may be read by group or others (mode " + mode +
                       "); a token is a password: run 'chmod 600 " + token_file + "'",
                   kExitTrouble);
  }
  std::string text;
  char buf[512];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0 && text.size() < 4096) text.append(buf, n);
  ::close(fd);
  if (n < 0) throw CliError("cannot read token file " + token_file, kExitTrouble);
  return checkedToken(text, "token file " + token_file);
}

}  // namespace flotilla::cli
