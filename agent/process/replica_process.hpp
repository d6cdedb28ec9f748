// A replica as a process on this host: is it (still) the one we started, signal it, is a port
// free for the next one, the end of its log.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

#include "agent/process/service_record.hpp"

namespace flotilla::agent {

// Replicas listen on loopback; HAProxy and the health checks reach them there.
constexpr char kLoopback[] = "127.0.0.1";

std::string endpoint(int port);                      // "127.0.0.1:PORT"
std::string url(int port, const std::string& path);  // "http://127.0.0.1:PORT/path"
// The state letter of /proc/PID/stat ('R', 'S', 'Z'...); nothing when there is no such process.
std::optional<char> procState(pid_t pid);
// The recorded process still runs: same pid, same start time, not a zombie (one that is our
// child is reaped).
bool alive(const Replica& r);
// To the replica's process group (its own session), when it is still ours.
void signalReplica(const Replica& r, int sig);
// Nothing listens on 127.0.0.1:port (TIME_WAIT is usable, as for the servers we start).
bool portFree(int port);
// The last `n` lines of a log, each cut at 300 characters, joined with " | ".
std::string lastLines(const std::filesystem::path& path, size_t n);

}  // namespace flotilla::agent
