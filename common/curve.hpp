// CurveZMQ key pairs and pinned keys, for both ends of the agent channel.
//
// A key pair lives in two files of a private directory: NAME.key (the secret key, Z85, 0600)
// and NAME.pub (the public key, Z85). Keys are exchanged as Z85 text (40 characters), the form
// `flotilla-coordinator show-key` prints and `--coordinator-key` takes.
#pragma once

#include <string>

#include "common/status.hpp"

namespace flotilla::common {

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// Whether `key` is a well-formed Z85 CURVE key (40 characters that decode to 32 bytes).
bool isCurveKey(const std::string& key);

// Loads DIR/NAME.key and DIR/NAME.pub, or makes a new pair there (the directory is created
// 0700; both files are written 0600, synced, then renamed into place). A secret key file
// readable by others is refused.
StatusOr<CurveKeyPair> loadOrCreateKeyPair(const std::string& dir, const std::string& name);

// Reads DIR/NAME.pub without creating anything.
StatusOr<std::string> readPublicKey(const std::string& dir, const std::string& name);

// A key given on a command line: the Z85 key itself, or "@FILE" holding it (surrounding
// whitespace ignored).
StatusOr<std::string> keyFromArgument(const std::string& argument);

}  // namespace flotilla::common
