// Named crash points for crash tests, in the manner of RocksDB's sync points.
//
//   FLOTILLA_FAILPOINT("coordinator.after_commit_before_send");
//
// Always compiled in; off unless the environment variable FLOTILLA_FAILPOINTS
// names them:
//
//   FLOTILLA_FAILPOINTS="coordinator.after_commit_before_send=crash"    first hit
//   FLOTILLA_FAILPOINTS="agent.after_record_before_result=crash@3"      third hit
//   FLOTILLA_FAILPOINTS="a=crash@2,b=crash"                             several (',' or ';')
//
// The crash points (common/failpoint.cpp lists them too):
//   coordinator.after_submit_commit_before_reply   a new deployment is stored, nobody told
//   coordinator.after_commit_before_send           a transition is stored, its commands unsent
//   coordinator.after_rollback_commit_before_send  the same, for a transition that rolls back
//   coordinator.mid_rollback                       one rollback command sent, the rest not
//   coordinator.after_result_before_commit         a stage result received, not yet stored
//   coordinator.after_flush_before_release         a batch stored, its held frames not sent
//   agent.after_record_started_before_spawn        "started" recorded, the step not spawned
//   agent.after_child_exit_before_record           the step ended, its end not recorded
//   agent.after_record_before_result               the end recorded, not reported
//
// "crash" writes one line to stderr and SIGKILLs the process on the spot:
// no destructor runs, nothing buffered is flushed, no socket says goodbye,
// exactly like a power cut of the process. When no failpoint is armed a
// crash point costs one relaxed atomic load.
#pragma once

#include <atomic>
#include <string>

namespace flotilla::common {

namespace failpoint_detail {
enum : int { kUnread = 0, kOff = 1, kOn = 2 };
extern std::atomic<int> g_state;
// Reads the environment on first use; counts the hit and crashes when it is the armed one.
void hit(const char* name);
}  // namespace failpoint_detail

// Replaces the armed set with `spec` (same syntax as FLOTILLA_FAILPOINTS; "" disarms all).
// InvalidArgument-style problems are returned as text; "" means the spec was accepted.
std::string configureFailpoints(const std::string& spec);

// How often the named failpoint was reached (counted only while any failpoint is armed).
uint64_t failpointHits(const std::string& name);

}  // namespace flotilla::common

#define FLOTILLA_FAILPOINT(name)                                                         \
  do {                                                                                   \
    if (::flotilla::common::failpoint_detail::g_state.load(std::memory_order_relaxed) != \
        ::flotilla::common::failpoint_detail::kOff) {                                    \
      ::flotilla::common::failpoint_detail::hit(name);                                   \
    }                                                                                    \
  } while (0)
