// What the scale benchmarks share: a coordinator process on a temp dir (NULL or CURVE agent
// channel, with enrollment tokens for CURVE), processes of simulated agents
// (flotilla-sim-agents) driven over pipes, /proc readings, percentiles and the summary lines
// bench/run collects.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/events.hpp"
#include "tests/support/http.hpp"
#include "tests/support/process.hpp"

namespace flotilla::bench {

using support::json;
using SystemTime = std::chrono::system_clock::time_point;

double millisSince(SystemTime from, SystemTime to);
int64_t wallNs(SystemTime t);
std::string makeTempDir(const std::string& name);
void removeTree(const std::string& dir);

// The agent channel's security mechanism.
enum class Mechanism {
  kNull,   // --insecure: no keys, no enrollment (loopback experiments only)
  kCurve,  // CurveZMQ: each agent has a key pair, pins the coordinator's, enrolls once
};
const char* mechanismName(Mechanism m);  // "NULL", "CURVE"

// A flotilla-coordinator on its own data dir under `work_dir` and free loopback ports. Its HTTP
// API's per-token rate limit is off when the binary has one (--http-rate-limit 0): the
// benchmarks measure the engine, and call the API far faster than a person would.
class CoordinatorProcess {
 public:
  // Waits for /healthz; nullptr (reason on stderr) if it does not come up.
  static std::unique_ptr<CoordinatorProcess> start(const std::string& work_dir,
                                                   std::vector<std::string> extra_args = {},
                                                   Mechanism mechanism = Mechanism::kNull);
  ~CoordinatorProcess();
  pid_t pid() const { return process_->pid(); }
  const std::string& url() const { return url_; }
  const std::string& agents() const { return agents_; }
  const std::string& dataDir() const { return data_dir_; }
  const std::string& logPath() const { return process_->logPath(); }
  Mechanism mechanism() const { return mechanism_; }
  // CURVE: the public key agents pin (`flotilla-coordinator show-key`); empty with NULL.
  const std::string& publicKey() const { return public_key_; }

  // One one-time enrollment token per cluster (`POST /api/v1/agents/CLUSTER/enroll` as admin),
  // asked by `parallel` clients at once; a 429 is waited out and asked again. Empty (reason on
  // stderr) when any is refused.
  std::map<std::string, std::string> enroll(const std::vector<std::string>& clusters, int parallel);

  // POST the plan; the deployment id, or "" (reason on stderr).
  std::string submit(const std::string& plan_yaml);
  // Polls the deployment until it is in a final state (or `deadline`); its summary, or null.
  json waitFinal(const std::string& id, std::chrono::milliseconds poll_every,
                 std::chrono::milliseconds deadline);
  // A counter or gauge from /metrics (summed over label sets); -1 when absent.
  double metric(const std::string& name);
  // GET with the admin token of this coordinator (made by bootstrap-admin before it started).
  support::HttpResponse get(const std::string& path);
  // POST a JSON body with that token, or with `token` when given.
  support::HttpResponse post(const std::string& path, const json& body,
                             const std::string& token = "");
  // A new API token (`POST /api/v1/tokens` as admin) named `name` with `role`; "" (reason on
  // stderr) when refused.
  std::string makeToken(const std::string& name, const std::string& role);

 private:
  // One token, or "" (reason on stderr).
  std::string enrollOne(const std::string& cluster);

  Mechanism mechanism_ = Mechanism::kNull;
  std::string public_key_;
  std::string token_;
  std::unique_ptr<support::Process> process_;
  std::string url_;
  std::string agents_;
  std::string data_dir_;
};

// How simulated agents authenticate: the NULL mechanism when `coordinator_key` is empty;
// otherwise CURVE, pinning that key, each agent presenting its cluster's token (if any) in its
// registers until one is accepted.
struct SimSecurity {
  std::string coordinator_key;
  std::map<std::string, std::string> enroll_tokens;  // cluster -> one-time token
};

// One flotilla-sim-agents process: agents PREFIX+first .. PREFIX+first+count-1. With CURVE, the
// process's tokens are handed over in a file `tokens_path` (0600) next to its log.
class SimAgents {
 public:
  static std::unique_ptr<SimAgents> start(const std::string& coordinator, const std::string& prefix,
                                          int first, int count,
                                          const std::map<std::string, std::string>& labels,
                                          const std::string& log_path,
                                          const SimSecurity& security = {},
                                          const std::string& tokens_path = "");
  ~SimAgents();
  bool owns(const std::string& cluster) const;
  pid_t pid() const { return pid_; }
  // The next stdout line, or nullopt after `timeout`.
  std::optional<std::string> readLine(std::chrono::milliseconds timeout);
  // Sends a control line and returns the answer.
  std::optional<std::string> ask(const std::string& line,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));
  std::map<std::string, int64_t> stats();

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  std::string buffer_;
  std::string prefix_;
  int first_ = 0;
  int count_ = 0;
};

// Starts `total` simulated agents in processes of at most `per_process`, and waits until every
// one is registered. Empty (reason on stderr) when they do not all register by `deadline`.
std::vector<std::unique_ptr<SimAgents>> startFleet(const std::string& coordinator, int total,
                                                   int per_process,
                                                   const std::map<std::string, std::string>& labels,
                                                   const std::string& log_dir,
                                                   std::chrono::milliseconds deadline,
                                                   const SimSecurity& security = {});
// Sum of one stat over every process.
int64_t sumStat(std::vector<std::unique_ptr<SimAgents>>& fleet, const std::string& key);
int64_t maxStat(std::vector<std::unique_ptr<SimAgents>>& fleet, const std::string& key);
std::string simName(int i);  // "sim-00042"

// A child process driven over pipes, one line each way (its stderr goes to a log file). It is
// found on PATH when argv[0] has no slash; `env` is added to this process's environment. Closing
// its stdin asks it to end; it is killed if it has not after a few seconds.
class LineChild {
 public:
  static std::unique_ptr<LineChild> start(const std::vector<std::string>& argv,
                                          const std::map<std::string, std::string>& env,
                                          const std::string& log_path);
  ~LineChild();
  pid_t pid() const { return pid_; }
  // The next stdout line, or nullopt after `timeout` or at its end.
  std::optional<std::string> readLine(std::chrono::milliseconds timeout);
  bool writeLine(const std::string& line);

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  std::string buffer_;
};

// Readings of a process from /proc.
struct ProcSample {
  uint64_t cpu_ticks = 0;     // utime + stime
  uint64_t main_ticks = 0;    // of that, the main thread's (the coordinator's engine loop)
  uint64_t zmq_io_ticks = 0;  // and ZeroMQ's I/O threads' (ZMQbg/IO/*): TCP, ZMTP, CURVE
  uint64_t rss_kb = 0;
  SystemTime at;
};
std::optional<ProcSample> sampleProc(pid_t pid);

// Nearest-rank percentile of `v` (p in 0..100); 0 for an empty vector.
double percentile(std::vector<double> v, double p);

// One result line for bench/run: BENCH <bench> <metric> <runs> <min> <median> <max> <p99>.
struct Figure {
  std::string bench;
  std::string metric;
  std::vector<double> values;
};
void printFigures(const std::vector<Figure>& figures, bool summary);

// --runs N, --summary, and the program's own flags.
struct CommonArgs {
  int runs = 0;  // 0: the program's default
  bool summary = false;
  std::vector<int> sizes;  // --agents 100,1000
  bool quick = false;
};
CommonArgs parseArgs(int argc, char** argv, const char* usage);

}  // namespace flotilla::bench
