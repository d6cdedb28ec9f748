// Files at rest that only their owner may read: the coordinator's data dir (RocksDB, keys) and the
// agent's state dir (records, stage logs, keys) hold plan text, step output and secrets. Both
// binaries also start with umask 077, so what they create later is born private.
#pragma once

#include <cstddef>
#include <string>

#include "common/status.hpp"

namespace flotilla::common {

inline constexpr unsigned kPrivateDirMode = 0700;
inline constexpr unsigned kPrivateFileMode = 0600;

// mkdir -p, each directory it creates made 0700 (whatever the umask); existing ones are left as
// they are (makePrivateTree tightens them).
Status createPrivateDirectories(const std::string& path);

// Makes `dir` and everything under it owner-only: directories 0700, regular files 0600 (other
// bits, such as a file's execute bit, are dropped too). Symbolic links are neither followed nor
// changed. Returns how many modes it changed, so the caller can say so once.
StatusOr<size_t> makePrivateTree(const std::string& dir);

// Replaces `path` with `content` so that a crash leaves the old file or the new one, never a
// mix: a 0600 temporary beside it, written and fsynced, renamed over it, the directory fsynced.
Status writeFileDurably(const std::string& path, const std::string& content);

}  // namespace flotilla::common
