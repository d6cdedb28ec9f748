// Hashes, secrets and comparisons for credentials (OpenSSL's libcrypto): API tokens,
// enrollment tokens, command nonces and the audit chain all use these, so each rule lives once.
#pragma once

#include <string>
#include <string_view>

namespace flotilla::common {

// SHA-256 of `data`, as 64 lower-case hex digits.
std::string sha256Hex(std::string_view data);

// HMAC-SHA256 of `data` under `key`, as 64 lower-case hex digits.
std::string hmacSha256Hex(std::string_view key, std::string_view data);

// `bytes` bytes from the kernel's CSPRNG (getrandom), hex-encoded (2 x bytes characters).
// Aborts if the kernel cannot give them: a predictable secret is worse than no process.
std::string randomHex(size_t bytes);

// A credential shown to a person once: "<prefix>_" + 32 random bytes in hex. The prefix says
// what it is for ("flt" API token, "fle" enrollment token) so a leaked one is recognisable.
std::string newSecret(std::string_view prefix);

// Compares in time independent of where the strings differ (for secrets and their hashes).
bool constantTimeEqual(std::string_view a, std::string_view b);

}  // namespace flotilla::common
