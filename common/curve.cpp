// CurveZMQ key pairs and pinned keys.
#include "common/curve.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace flotilla::common {

namespace {

std::string trimmed(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

StatusOr<std::string> readSmallFile(const std::string& path, size_t max) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path + ": " + std::strerror(errno));
  std::string text(max + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > max) return Status::InvalidArgument(path + " is too large for a key");
  return text;
}

Status writePrivateFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError("cannot write " + tmp + ": " + std::strerror(errno));
  bool ok = ::fchmod(fd, 0600) == 0 &&
            ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status::IoError("cannot write " + path + ": " + std::strerror(ok ? errno : err));
  }
  return Status::Ok();
}

Status syncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot open " + dir + ": " + std::strerror(errno));
  int r = ::fsync(fd);
  ::close(fd);
  if (r != 0) return Status::IoError("cannot sync " + dir + ": " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace

bool isCurveKey(const std::string& key) {
  // zmq_z85_decode reads a C string: a NUL inside would end the key early.
  if (key.size() != 40 || key.find('\0') != std::string::npos) return false;
  uint8_t raw[32];
  return zmq_z85_decode(raw, key.c_str()) != nullptr;
}

StatusOr<std::string> readPublicKey(const std::string& dir, const std::string& name) {
  auto text = readSmallFile(dir + "/" + name + ".pub", 256);
  if (!text.ok()) return text.status();
  std::string key = trimmed(*text);
  if (!isCurveKey(key)) return Status::Corruption(dir + "/" + name + ".pub is not a CURVE key");
  return key;
}

StatusOr<CurveKeyPair> loadOrCreateKeyPair(const std::string& dir, const std::string& name) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("cannot create " + dir + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) {
    return Status::IoError("cannot restrict " + dir + " to its owner: " + std::strerror(errno));
  }
  const std::string secret_path = dir + "/" + name + ".key";
  const std::string public_path = dir + "/" + name + ".pub";
  struct stat st {};
  if (::stat(secret_path.c_str(), &st) == 0) {
    if ((st.st_mode & 077) != 0) {
      return Status::FailedPrecondition(secret_path + " is readable by others (mode " + ([&] {
                                          std::ostringstream o;
                                          o << std::oct << (st.st_mode & 0777);
                                          return o.str();
                                        })() +
                                        "): chmod 600 it, and consider the key leaked");
    }
    auto secret = readSmallFile(secret_path, 256);
    if (!secret.ok()) return secret.status();
    CurveKeyPair pair;
    pair.secret_key = trimmed(*secret);
    if (!isCurveKey(pair.secret_key)) {
      return Status::Corruption(secret_path + " does not hold a CURVE secret key");
    }
    char pub[41];
    if (zmq_curve_public(pub, pair.secret_key.c_str()) != 0) {
      return Status::Corruption(secret_path + " does not hold a CURVE secret key");
    }
    pair.public_key = pub;
    // The public half is derived, so a missing or stale .pub is simply rewritten.
    auto stored = readPublicKey(dir, name);
    if (!stored.ok() || *stored != pair.public_key) {
      Status s = writePrivateFile(public_path, pair.public_key + "\n");
      if (!s.ok()) return s;
    }
    return pair;
  }
  char pub[41];
  char sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) {
    return Status::Internal(std::string("cannot make a CURVE key pair: ") +
                            zmq_strerror(zmq_errno()));
  }
  CurveKeyPair pair{pub, sec};
  // The public key first: a crash between the two leaves no secret without its public half
  // that a later start would not rewrite anyway.
  Status s = writePrivateFile(public_path, pair.public_key + "\n");
  if (s.ok()) s = writePrivateFile(secret_path, pair.secret_key + "\n");
  if (s.ok()) s = syncDir(dir);
  if (!s.ok()) return s;
  return pair;
}

StatusOr<std::string> keyFromArgument(const std::string& argument) {
  std::string key = argument;
  // A key is 40 Z85 characters, and '@' is one of them: a whole key wins over "@FILE" (a file
  // name of 39 Z85 characters would have to be given as @./NAME).
  if (!argument.empty() && argument[0] == '@' && !isCurveKey(trimmed(argument))) {
    auto text = readSmallFile(argument.substr(1), 256);
    if (!text.ok()) return text.status();
    key = *text;
  }
  key = trimmed(key);
  if (!isCurveKey(key)) {
    return Status::InvalidArgument(
        "not a CURVE public key (40 Z85 characters, as `flotilla-coordinator show-key` prints)");
  }
  return key;
}

}  // namespace flotilla::common
