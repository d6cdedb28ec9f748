// What the scale benchmarks share.
#include "bench/bench_util.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "tests/support/net.hpp"
#include "tests/support/wait.hpp"

#ifndef FLOTILLA_COORDINATOR_BIN
#error "FLOTILLA_COORDINATOR_BIN must be defined by CMake"
#endif
#ifndef FLOTILLA_SIM_AGENTS_BIN
#error "FLOTILLA_SIM_AGENTS_BIN must be defined by CMake"
#endif

namespace flotilla::bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

double millisSince(SystemTime from, SystemTime to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

int64_t wallNs(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::string makeTempDir(const std::string& name) {
  std::string pattern = "/tmp/flotilla-bench-" + name + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  char* made = ::mkdtemp(buf.data());
  if (made == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  return made;
}

void removeTree(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// ---- Coordinator ----------------------------------------------------------------------------

const char* mechanismName(Mechanism m) { return m == Mechanism::kCurve ? "CURVE" : "NULL"; }

namespace {
// The flags that turn the HTTP API's per-token rate limit off, when this coordinator has one
// (asked once from its --help).
const std::vector<std::string>& unlimitedHttpFlags(const std::string& scratch_dir) {
  static const std::vector<std::string> flags = [&] {
    support::CommandResult help =
        support::runCommand({FLOTILLA_COORDINATOR_BIN, "--help"}, scratch_dir, 30s);
    if (help.out.find("--http-rate-limit") == std::string::npos) return std::vector<std::string>{};
    return std::vector<std::string>{"--http-rate-limit", "0"};
  }();
  return flags;
}

std::string firstWord(const std::string& text) {
  const size_t start = text.find_first_not_of(" \r\n\t");
  if (start == std::string::npos) return "";
  return text.substr(start, text.find_first_of(" \r\n\t", start) - start);
}

// The next line a child wrote to `fd` (without its newline), read through `buffer`, which keeps
// what came after it; nothing when `timeout` passes first or the child closed its end.
std::optional<std::string> readBufferedLine(int fd, std::string& buffer,
                                            std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (true) {
    size_t nl = buffer.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) return std::nullopt;
    buffer.append(buf, static_cast<size_t>(n));
  }
}
}  // namespace

std::unique_ptr<CoordinatorProcess> CoordinatorProcess::start(const std::string& work_dir,
                                                              std::vector<std::string> extra_args,
                                                              Mechanism mechanism) {
  auto c = std::unique_ptr<CoordinatorProcess>(new CoordinatorProcess());
  c->mechanism_ = mechanism;
  int agent_port = support::freePort();
  int http_port = support::freePort();
  c->data_dir_ = work_dir + "/coordinator-data";
  c->agents_ = "tcp://127.0.0.1:" + std::to_string(agent_port);
  c->url_ = "http://127.0.0.1:" + std::to_string(http_port);
  // The HTTP API needs a token: the first admin one, made before the first start.
  support::CommandResult made = support::runCommand(
      {FLOTILLA_COORDINATOR_BIN, "bootstrap-admin", "--data-dir", c->data_dir_}, work_dir, 30s);
  if (made.exit_code != 0) {
    std::cerr << "bootstrap-admin failed: " << made.out << made.err << "\n";
    return nullptr;
  }
  c->token_ = made.out.substr(0, made.out.find_first_of(" \r\n"));
  std::vector<std::string> argv = {FLOTILLA_COORDINATOR_BIN,
                                   "--data-dir",
                                   c->data_dir_,
                                   "--listen-agents",
                                   c->agents_,
                                   "--listen-http",
                                   "127.0.0.1:" + std::to_string(http_port)};
  // NULL: no keys, no enrollment, on loopback only.
  if (mechanism == Mechanism::kNull) argv.push_back("--insecure");
  const auto& unlimited = unlimitedHttpFlags(work_dir);
  argv.insert(argv.end(), unlimited.begin(), unlimited.end());
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  c->process_ = support::Process::spawn("coordinator", argv, {}, work_dir + "/coordinator.log");
  if (!c->process_) return nullptr;
  bool up = false;
  support::pollUntil(
      [&] {
        up = support::httpGet(c->url_ + "/healthz").status == 200;
        return up || !c->process_->running();
      },
      20s, 20ms);
  if (!up) {
    std::cerr << "the coordinator did not come up; see " << work_dir << "/coordinator.log\n";
    return nullptr;
  }
  if (mechanism == Mechanism::kCurve) {
    // The key pair is made on the first start; show-key reads it while the coordinator runs.
    support::CommandResult key = support::runCommand(
        {FLOTILLA_COORDINATOR_BIN, "show-key", "--data-dir", c->data_dir_}, work_dir, 30s);
    c->public_key_ = firstWord(key.out);
    if (key.exit_code != 0 || c->public_key_.size() != 40) {
      std::cerr << "show-key failed: " << key.out << key.err << "\n";
      return nullptr;
    }
  }
  return c;
}

std::string CoordinatorProcess::enrollOne(const std::string& cluster) {
  const std::string body = json{{"ttl_seconds", 3600}}.dump();
  for (int attempt = 0; attempt < 60; ++attempt) {
    auto r = support::httpRequest(
        "POST", url_ + "/api/v1/agents/" + cluster + "/enroll",
        {{"Authorization", "Bearer " + token_}, {"Content-Type", "application/json"}}, &body);
    if (r.status == 429) {  // a rate limit the flags did not turn off: pace the calls
      std::this_thread::sleep_for(1s);
      continue;
    }
    json answer = r.parsed();
    if (r.status == 201 && answer.is_object() && answer.value("token", "") != "") {
      return answer["token"].get<std::string>();
    }
    std::cerr << "enrollment of " << cluster << " refused (" << r.status << "): " << r.body
              << r.error << "\n";
    return "";
  }
  std::cerr << "enrollment of " << cluster << ": still rate-limited after a minute\n";
  return "";
}

std::map<std::string, std::string> CoordinatorProcess::enroll(
    const std::vector<std::string>& clusters, int parallel) {
  std::vector<std::string> tokens(clusters.size());
  std::vector<std::thread> clients;
  const size_t stride = static_cast<size_t>(std::max(1, parallel));
  for (size_t t = 0; t < stride; ++t) {
    clients.emplace_back([&, t] {
      for (size_t i = t; i < clusters.size(); i += stride) {
        tokens[i] = enrollOne(clusters[i]);
        if (tokens[i].empty()) return;
      }
    });
  }
  for (auto& c : clients) c.join();
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < clusters.size(); ++i) {
    if (tokens[i].empty()) return {};
    out[clusters[i]] = tokens[i];
  }
  return out;
}

support::HttpResponse CoordinatorProcess::get(const std::string& path) {
  return support::httpRequest("GET", url_ + path, {{"Authorization", "Bearer " + token_}}, nullptr);
}

support::HttpResponse CoordinatorProcess::post(const std::string& path, const json& body,
                                               const std::string& token) {
  const std::string text = body.dump();
  return support::httpRequest("POST", url_ + path,
                              {{"Authorization", "Bearer " + (token.empty() ? token_ : token)},
                               {"Content-Type", "application/json"}},
                              &text);
}

std::string CoordinatorProcess::makeToken(const std::string& name, const std::string& role) {
  auto r = post("/api/v1/tokens", json{{"name", name}, {"role", role}});
  json answer = r.parsed();
  if (r.status != 201 || !answer.is_object() || answer.value("token", "").empty()) {
    std::cerr << "token " << name << " (" << role << ") refused (" << r.status << "): " << r.body
              << r.error << "\n";
    return "";
  }
  return answer["token"].get<std::string>();
}

CoordinatorProcess::~CoordinatorProcess() {
  if (process_) process_->stop(20s);
}

std::string CoordinatorProcess::submit(const std::string& plan_yaml) {
  const std::string body = plan_yaml;
  auto r = support::httpRequest(
      "POST", url_ + "/api/v1/deployments",
      {{"Authorization", "Bearer " + token_}, {"Content-Type", "application/yaml"}}, &body);
  if (r.status != 201) {
    std::cerr << "submission refused (" << r.status << "): " << r.body << r.error << "\n";
    return "";
  }
  return r.parsed().value("id", "");
}

json CoordinatorProcess::waitFinal(const std::string& id, std::chrono::milliseconds poll_every,
                                   std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    auto r = get("/api/v1/deployments/" + id);
    if (r.status == 200) {
      json d = r.parsed();
      std::string state = d.value("state", "");
      if (state == "succeeded" || state == "rolled_back" || state == "failed" ||
          state == "cancelled") {
        d.erase("waves");  // callers want the summary; the detail may be megabytes
        d.erase("plan");
        return d;
      }
    }
    std::this_thread::sleep_for(poll_every);
  }
  return nullptr;
}

double CoordinatorProcess::metric(const std::string& name) {
  auto r = get("/metrics");
  if (r.status != 200) return -1;
  std::istringstream in(r.body);
  std::string line;
  double sum = 0;
  bool found = false;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0) continue;
    char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
    found = true;
  }
  return found ? sum : -1;
}

// ---- Simulated agents -----------------------------------------------------------------------

std::string simName(int i) {
  char name[32];
  std::snprintf(name, sizeof(name), "sim-%05d", i);
  return name;
}

namespace {
// "CLUSTER TOKEN" lines for the clusters first..first+count-1 that have a token, in a file
// only its owner reads (the tokens are secrets until used).
bool writeTokens(const std::string& path, const std::string& prefix, int first, int count,
                 const std::map<std::string, std::string>& tokens) {
  std::string text;
  for (int i = first; i < first + count; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "%s%05d", prefix.c_str(), i);
    auto it = tokens.find(name);
    if (it != tokens.end()) text += it->first + " " + it->second + "\n";
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  return ::close(fd) == 0 && ok;
}
}  // namespace

std::unique_ptr<SimAgents> SimAgents::start(const std::string& coordinator,
                                            const std::string& prefix, int first, int count,
                                            const std::map<std::string, std::string>& labels,
                                            const std::string& log_path,
                                            const SimSecurity& security,
                                            const std::string& tokens_path) {
  std::vector<std::string> argv = {
      FLOTILLA_SIM_AGENTS_BIN, "--coordinator", coordinator,          "--prefix", prefix, "--first",
      std::to_string(first),   "--count",       std::to_string(count)};
  for (const auto& [k, v] : labels) {
    argv.push_back("--label");
    argv.push_back(k + "=" + v);
  }
  if (!security.coordinator_key.empty()) {
    argv.insert(argv.end(), {"--coordinator-key", security.coordinator_key});
    if (!security.enroll_tokens.empty()) {
      if (tokens_path.empty() ||
          !writeTokens(tokens_path, prefix, first, count, security.enroll_tokens)) {
        std::cerr << "cannot write the enrollment tokens to " << tokens_path << "\n";
        return nullptr;
      }
      argv.insert(argv.end(), {"--enroll-tokens", tokens_path});
    }
  }
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return nullptr;
  int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    if (log >= 0) ::dup2(log, STDERR_FILENO);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  if (log >= 0) ::close(log);
  auto s = std::unique_ptr<SimAgents>(new SimAgents());
  s->pid_ = pid;
  s->to_ = in[1];
  s->from_ = out[0];
  s->prefix_ = prefix;
  s->first_ = first;
  s->count_ = count;
  return s;
}

SimAgents::~SimAgents() {
  if (to_ >= 0) {
    std::string quit = "quit\n";
    ssize_t n = ::write(to_, quit.data(), quit.size());
    (void)n;
    ::close(to_);
  }
  if (from_ >= 0) ::close(from_);
  if (pid_ > 0) {
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(10ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

bool SimAgents::owns(const std::string& cluster) const {
  for (int i = first_; i < first_ + count_; ++i) {
    if (simName(i) == cluster) return true;
  }
  return false;
}

std::optional<std::string> SimAgents::readLine(std::chrono::milliseconds timeout) {
  return readBufferedLine(from_, buffer_, timeout);
}

std::optional<std::string> SimAgents::ask(const std::string& line,
                                          std::chrono::milliseconds timeout) {
  std::string l = line + "\n";
  if (::write(to_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) return std::nullopt;
  return readLine(timeout);
}

std::map<std::string, int64_t> SimAgents::stats() {
  std::map<std::string, int64_t> out;
  auto line = ask("stats");
  if (!line || line->rfind("stats ", 0) != 0) return out;
  std::istringstream in(line->substr(6));
  std::string kv;
  while (in >> kv) {
    auto eq = kv.find('=');
    if (eq != std::string::npos) out[kv.substr(0, eq)] = std::stoll(kv.substr(eq + 1));
  }
  return out;
}

std::vector<std::unique_ptr<SimAgents>> startFleet(const std::string& coordinator, int total,
                                                   int per_process,
                                                   const std::map<std::string, std::string>& labels,
                                                   const std::string& log_dir,
                                                   std::chrono::milliseconds deadline,
                                                   const SimSecurity& security) {
  std::vector<std::unique_ptr<SimAgents>> fleet;
  for (int first = 0; first < total; first += per_process) {
    int count = std::min(per_process, total - first);
    const std::string base = log_dir + "/sim-" + std::to_string(first);
    auto s = SimAgents::start(coordinator, "sim-", first, count, labels, base + ".log", security,
                              base + ".tokens");
    if (!s) {
      std::cerr << "cannot start flotilla-sim-agents\n";
      return {};
    }
    fleet.push_back(std::move(s));
  }
  auto until = std::chrono::steady_clock::now() + deadline;
  for (auto& s : fleet) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    auto line = s->readLine(std::max(left, std::chrono::milliseconds(1)));
    if (!line || line->rfind("ready", 0) != 0) {
      std::cerr << "simulated agents did not all register within " << deadline.count() << " ms ("
                << sumStat(fleet, "registered") << " of " << total << ")\n";
      return {};
    }
  }
  return fleet;
}

int64_t sumStat(std::vector<std::unique_ptr<SimAgents>>& fleet, const std::string& key) {
  int64_t n = 0;
  for (auto& s : fleet) n += s->stats()[key];
  return n;
}

int64_t maxStat(std::vector<std::unique_ptr<SimAgents>>& fleet, const std::string& key) {
  int64_t n = 0;
  for (auto& s : fleet) n = std::max(n, s->stats()[key]);
  return n;
}

// ---- A child over pipes ---------------------------------------------------------------------

std::unique_ptr<LineChild> LineChild::start(const std::vector<std::string>& argv,
                                            const std::map<std::string, std::string>& env,
                                            const std::string& log_path) {
  int in[2];
  int out[2];
  if (argv.empty() || ::pipe2(in, O_CLOEXEC) != 0) return nullptr;
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return nullptr;
  }
  int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  // Built before the fork: the child only calls what is safe after it.
  std::vector<std::string> args_text = argv;
  std::vector<char*> args;
  for (auto& a : args_text) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    if (log >= 0) ::dup2(log, STDERR_FILENO);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execvp(args[0], args.data());
    std::perror(args[0]);
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  if (log >= 0) ::close(log);
  if (pid < 0) {
    ::close(in[1]);
    ::close(out[0]);
    return nullptr;
  }
  auto c = std::unique_ptr<LineChild>(new LineChild());
  c->pid_ = pid;
  c->to_ = in[1];
  c->from_ = out[0];
  return c;
}

LineChild::~LineChild() {
  if (to_ >= 0) ::close(to_);
  if (from_ >= 0) ::close(from_);
  if (pid_ <= 0) return;
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(10ms);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

std::optional<std::string> LineChild::readLine(std::chrono::milliseconds timeout) {
  return readBufferedLine(from_, buffer_, timeout);
}

bool LineChild::writeLine(const std::string& line) {
  std::string l = line + "\n";
  return ::write(to_, l.data(), l.size()) == static_cast<ssize_t>(l.size());
}

// ---- /proc ----------------------------------------------------------------------------------

namespace {
// utime + stime from a /proc/.../stat file, and the command name between its parentheses.
std::optional<uint64_t> cpuTicks(const std::string& stat_path, std::string* comm = nullptr) {
  std::ifstream stat(stat_path);
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto open = text.find('(');
  auto close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  if (comm != nullptr) *comm = text.substr(open + 1, close - open - 1);
  std::istringstream fields(text.substr(close + 2));
  std::vector<std::string> f;
  std::string x;
  while (fields >> x) f.push_back(x);
  // After "(comm)": state is field 3; utime and stime are fields 14 and 15.
  if (f.size() < 13) return std::nullopt;
  return std::stoull(f[11]) + std::stoull(f[12]);
}
}  // namespace

std::optional<ProcSample> sampleProc(pid_t pid) {
  ProcSample s;
  s.at = std::chrono::system_clock::now();
  const std::string dir = "/proc/" + std::to_string(pid);
  auto ticks = cpuTicks(dir + "/stat");
  if (!ticks) return std::nullopt;
  s.cpu_ticks = *ticks;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator(dir + "/task", ec)) {
    std::string comm;
    auto t = cpuTicks(task.path().string() + "/stat", &comm);
    if (!t) continue;
    if (task.path().filename() == std::to_string(pid)) s.main_ticks += *t;
    if (comm.rfind("ZMQbg/IO", 0) == 0) s.zmq_io_ticks += *t;
  }
  std::ifstream status(dir + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = std::stoull(line.substr(6));
  }
  return s;
}

// ---- Figures --------------------------------------------------------------------------------

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

void printFigures(const std::vector<Figure>& figures, bool summary) {
  if (summary) {
    for (const auto& f : figures) {
      if (f.values.empty()) {
        std::printf("BENCH\t%s\t%s\t0\t-\t-\t-\t-\n", f.bench.c_str(), f.metric.c_str());
        continue;
      }
      std::printf("BENCH\t%s\t%s\t%zu\t%.1f\t%.1f\t%.1f\t%.1f\n", f.bench.c_str(), f.metric.c_str(),
                  f.values.size(), percentile(f.values, 0), percentile(f.values, 50),
                  *std::max_element(f.values.begin(), f.values.end()), percentile(f.values, 99));
    }
    std::fflush(stdout);
    return;
  }
  std::printf("%-52s %5s %10s %10s %10s %10s\n", "metric", "runs", "min", "p50", "p99", "max");
  for (const auto& f : figures) {
    if (f.values.empty()) {
      std::printf("%-52s %5s %10s\n", f.metric.c_str(), "0", "(not measured)");
      continue;
    }
    std::printf("%-52s %5zu %10.1f %10.1f %10.1f %10.1f\n", f.metric.c_str(), f.values.size(),
                percentile(f.values, 0), percentile(f.values, 50), percentile(f.values, 99),
                *std::max_element(f.values.begin(), f.values.end()));
  }
  std::fflush(stdout);
}

CommonArgs parseArgs(int argc, char** argv, const char* usage) {
  CommonArgs a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--summary") {
      a.summary = true;
    } else if (arg == "--quick") {
      a.quick = true;
    } else if (arg == "--runs" && i + 1 < argc) {
      a.runs = std::stoi(argv[++i]);
    } else if (arg == "--agents" && i + 1 < argc) {
      std::stringstream list(argv[++i]);
      std::string n;
      while (std::getline(list, n, ',')) a.sizes.push_back(std::stoi(n));
    } else {
      std::cerr << usage;
      std::exit(arg == "-h" || arg == "--help" ? 0 : 2);
    }
  }
  return a;
}

}  // namespace flotilla::bench
