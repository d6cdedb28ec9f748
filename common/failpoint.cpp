// Failpoints: parsing FLOTILLA_FAILPOINTS and the crash action.
#include "common/failpoint.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <mutex>

namespace flotilla::common {

namespace failpoint_detail {
std::atomic<int> g_state{kUnread};
}  // namespace failpoint_detail

namespace {

using failpoint_detail::g_state;
using failpoint_detail::kOff;
using failpoint_detail::kOn;

// Every crash point in the code, so that a misspelt name in FLOTILLA_FAILPOINTS is reported
// instead of silently never firing. Keep in step with the FLOTILLA_FAILPOINT calls.
constexpr const char* kKnown[] = {
    "coordinator.after_submit_commit_before_reply",   // engine.cpp submit()
    "coordinator.after_commit_before_send",           // engine.cpp mutate(), commands to send
    "coordinator.after_rollback_commit_before_send",  // engine.cpp mutate(), rollbacks to send
    "coordinator.mid_rollback",                       // engine.cpp deliver(), after a rollback
    "coordinator.after_result_before_commit",         // engine.cpp handleResult()
    "coordinator.after_flush_before_release",         // server.cpp: durable, nothing sent
    "agent.after_record_started_before_spawn",        // agent.cpp handleCommand()
    "agent.after_child_exit_before_record",           // agent.cpp finish()
    "agent.after_record_before_result",               // agent.cpp finish()
};

struct Armed {
  uint64_t on_hit = 1;  // crash at this hit (1 = the first)
};

std::mutex g_mu;
std::map<std::string, Armed> g_armed;    // guarded by g_mu
std::map<std::string, uint64_t> g_hits;  // guarded by g_mu
std::once_flag g_env_once;

// Only async-signal-safe calls: another thread may hold any lock.
void writeStderr(const std::string& text) {
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(2, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

[[noreturn]] void crash(const std::string& name, uint64_t hit) {
  writeStderr("FAILPOINT " + name + " hit " + std::to_string(hit) + ": crashing (SIGKILL)\n");
  ::kill(::getpid(), SIGKILL);
  ::_exit(137);  // not reached
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Parses into `out`; returns the problems ("" when none).
std::string parse(const std::string& spec, std::map<std::string, Armed>& out) {
  std::string problems;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find_first_of(",;", start);
    if (end == std::string::npos) end = spec.size();
    std::string item = trim(spec.substr(start, end - start));
    start = end + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string name = trim(item.substr(0, eq));
    std::string action = eq == std::string::npos ? "crash" : trim(item.substr(eq + 1));
    Armed armed;
    size_t at = action.find('@');
    if (at != std::string::npos) {
      std::string count = action.substr(at + 1);
      action = action.substr(0, at);
      // Digits only: strtoull would take "-1" as the largest number, a hit that never comes.
      const bool digits =
          !count.empty() && count.find_first_not_of("0123456789") == std::string::npos;
      errno = 0;
      unsigned long long n = digits ? std::strtoull(count.c_str(), nullptr, 10) : 0;
      if (!digits || errno == ERANGE || n == 0) {
        problems += "failpoint " + name + ": \"@" + count + "\" is not a hit number (1, 2, ...); ";
        continue;
      }
      armed.on_hit = n;
    }
    if (name.empty() || action != "crash") {
      problems += "failpoint \"" + item + "\": expected NAME=crash or NAME=crash@N; ";
      continue;
    }
    bool known = false;
    for (const char* k : kKnown) known |= name == k;
    if (!known) problems += "failpoint " + name + " is not a known crash point (armed anyway); ";
    out[name] = armed;
  }
  return problems;
}

void loadEnvironment() {
  const char* spec = std::getenv("FLOTILLA_FAILPOINTS");
  if (spec == nullptr || *spec == '\0') {
    int unread = failpoint_detail::kUnread;
    g_state.compare_exchange_strong(unread, kOff);
    return;
  }
  std::string problems = configureFailpoints(spec);
  // A typo must not silently turn a crash test into a test of nothing.
  if (!problems.empty()) writeStderr("FLOTILLA_FAILPOINTS: " + problems + "\n");
}

}  // namespace

namespace failpoint_detail {

void hit(const char* name) {
  if (g_state.load(std::memory_order_acquire) == kUnread)
    std::call_once(g_env_once, loadEnvironment);
  if (g_state.load(std::memory_order_acquire) != kOn) return;
  uint64_t count = 0;
  bool fire = false;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    count = ++g_hits[name];
    auto it = g_armed.find(name);
    fire = it != g_armed.end() && it->second.on_hit == count;
  }
  if (fire) crash(name, count);
}

}  // namespace failpoint_detail

std::string configureFailpoints(const std::string& spec) {
  std::map<std::string, Armed> armed;
  std::string problems = parse(spec, armed);
  std::lock_guard<std::mutex> lock(g_mu);
  g_armed = std::move(armed);
  g_hits.clear();
  g_state.store(g_armed.empty() ? kOff : kOn, std::memory_order_release);
  return problems;
}

uint64_t failpointHits(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_hits.find(name);
  return it == g_hits.end() ? 0 : it->second;
}

}  // namespace flotilla::common
