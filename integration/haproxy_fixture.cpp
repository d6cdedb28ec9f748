// Integration helpers for the process driver: per-cluster HAProxy, traffic through it, ports.
#include "integration/haproxy_fixture.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <random>
#include <sstream>

#ifndef FLOTILLA_HAPROXY_BIN
#error "FLOTILLA_HAPROXY_BIN must be defined by CMake"
#endif

namespace flotilla::integration {

namespace {

constexpr auto kHaproxyStartDeadline = 10s;
constexpr auto kSocketTimeout = 2s;
constexpr int kSlots = 16;
constexpr int kLowestPort = 20000;
constexpr int kHighestPort = 60000;
constexpr size_t kFailuresKept = 5;

std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

void initCurl() {
  // curl_global_init is not thread-safe: every caller of this runs on the test's main thread.
  static const bool ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!ready) ADD_FAILURE() << "curl_global_init failed";
}

bool portBindable(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

bool tcpConnects(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// The lower end of the kernel's ephemeral port range (32768 when unreadable).
int ephemeralLow() {
  std::istringstream in(readFile("/proc/sys/net/ipv4/ip_local_port_range"));
  int low = 0;
  if (in >> low && low > 0) return low;
  return 32768;
}

std::string haproxyConfig(const std::string& socket_path, int port, const std::string& backend) {
  std::ostringstream cfg;
  cfg << "global\n"
      << "  stats socket " << socket_path << " mode 600 level admin\n"
      << "  stats timeout 10s\n"
      << "  log stdout format raw local0 info\n"
      << "defaults\n"
      << "  mode http\n"
      << "  log global\n"
      << "  option httplog\n"
      << "  timeout connect 1s\n"
      << "  timeout client 10s\n"
      << "  timeout server 10s\n"
      << "  timeout http-keep-alive 5s\n"
      << "  # Connection failures are retried and sent elsewhere; an HTTP 5xx is never retried\n"
      << "  # (no retry-on beyond the default conn-failure), so the test sees every bad answer.\n"
      << "  retries 3\n"
      << "  option redispatch\n"
      << "frontend fe\n"
      << "  bind 127.0.0.1:" << port << "\n"
      << "  default_backend " << backend << "\n"
      << "backend " << backend << "\n"
      << "  balance roundrobin\n"
      << "  server-template srv 1-" << kSlots << " 127.0.0.1:1 disabled\n";
  return cfg.str();
}

size_t appendBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// Keeps the X-Version header of the answer.
size_t keepVersionHeader(char* data, size_t size, size_t count, void* out) {
  const std::string line(data, size * count);
  const std::string name = "x-version:";
  if (line.size() > name.size()) {
    std::string head = line.substr(0, name.size());
    std::transform(head.begin(), head.end(), head.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (head == name) *static_cast<std::string*>(out) = trimmed(line.substr(name.size()));
  }
  return size * count;
}

// One request on `curl` (whose URL and options are set).
Answer request(CURL* curl) {
  Answer answer;
  answer.sent = std::chrono::system_clock::now();
  std::string body;
  std::string header_version;
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &header_version);
  const CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) {
    answer.error = curl_easy_strerror(rc);
    return answer;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  const std::string prefix = "checkout ";
  if (answer.status == 200 && body.compare(0, prefix.size(), prefix) == 0) {
    answer.version = trimmed(body.substr(prefix.size()));
  } else {
    answer.version = header_version;
  }
  return answer;
}

CURL* newHandle(const std::string& url) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return nullptr;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, appendBody);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, keepVersionHeader);
  return curl;
}

}  // namespace

std::optional<SystemTime> parseRfc3339(const std::string& text) {
  std::tm tm{};
  int millis = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  std::string rest = text.substr(static_cast<size_t>(consumed));
  if (!rest.empty() && rest[0] == '.') {
    size_t digits = 1;
    while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) {
      ++digits;
    }
    std::string fraction = rest.substr(1, digits - 1);
    fraction.resize(3, '0');
    millis = std::stoi(fraction);
    rest = rest.substr(digits);
  }
  if (rest != "Z") return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const time_t seconds = ::timegm(&tm);
  return std::chrono::system_clock::from_time_t(seconds) + std::chrono::milliseconds(millis);
}

int freePortBlock(int count) {
  const int top = std::min(kHighestPort, ephemeralLow()) - count;
  if (top <= kLowestPort) return 0;
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> base_of(kLowestPort, top);
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int base = base_of(random);
    bool all = true;
    for (int p = base; p < base + count && all; ++p) all = portBindable(p);
    if (all) return base;
  }
  return 0;
}

// ---- HAProxy --------------------------------------------------------------------------------

bool HaproxyServer::serving() const {
  constexpr uint32_t kMaint = 0x01 | 0x02 | 0x20;
  constexpr uint32_t kDrain = 0x08 | 0x10;
  return (admin_state & (kMaint | kDrain)) == 0 && weight > 0;
}

Haproxy::Haproxy(std::string cluster, std::string backend, std::string socket_path, int port,
                 std::unique_ptr<Process> process)
    : cluster_(std::move(cluster)),
      backend_(std::move(backend)),
      socket_path_(std::move(socket_path)),
      port_(port),
      process_(std::move(process)) {}

Haproxy::~Haproxy() { stop(); }

std::unique_ptr<Haproxy> Haproxy::start(const std::string& dir, const std::string& cluster,
                                        const std::string& backend) {
  const std::string socket_path = dir + "/" + cluster + ".sock";
  const std::string config_path = dir + "/haproxy-" + cluster + ".cfg";
  // The frontend port must be written into the config; another test may take it between
  // freePort() and HAProxy's bind, so a start that fails is tried again on a fresh port.
  for (int attempt = 1; attempt <= 3; ++attempt) {
    const int port = freePort();
    if (port == 0) break;
    writeFile(config_path, haproxyConfig(socket_path, port, backend));
    std::string log_path = dir;
    log_path += "/haproxy-";
    log_path += cluster;
    if (attempt > 1) log_path += "." + std::to_string(attempt);
    log_path += ".log";
    auto process = Process::spawn("haproxy " + cluster,
                                  {FLOTILLA_HAPROXY_BIN, "-f", config_path, "-db"}, {}, log_path);
    if (process == nullptr) return nullptr;
    std::unique_ptr<Haproxy> haproxy(
        new Haproxy(cluster, backend, socket_path, port, std::move(process)));
    const auto deadline = std::chrono::steady_clock::now() + kHaproxyStartDeadline;
    while (std::chrono::steady_clock::now() < deadline && haproxy->process_->running()) {
      if (haproxy->command("show info").has_value() && tcpConnects(port)) return haproxy;
      std::this_thread::sleep_for(20ms);
    }
    const bool exited = !haproxy->process_->running();
    std::cerr << "[haproxy] " << cluster << " did not come up on port " << port
              << (exited ? " (exited)" : "") << ":\n"
              << tailOf(haproxy->logPath(), 10);
    if (!exited) break;  // running but not answering: trying again would not help
  }
  ADD_FAILURE() << "HAProxy for " << cluster << " did not come up (" << FLOTILLA_HAPROXY_BIN
                << " -f " << config_path << " -db)";
  return nullptr;
}

std::string Haproxy::url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }

std::optional<std::string> Haproxy::command(const std::string& line, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<std::string> {
    if (error != nullptr) *error = why + ": " + std::strerror(errno);
    return std::nullopt;
  };
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(addr.sun_path)) {
    ::close(fd);
    if (error != nullptr) *error = "socket path too long: " + socket_path_;
    return std::nullopt;
  }
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  timeval tv{};
  tv.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(kSocketTimeout).count();
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    auto r = fail("connect " + socket_path_);
    ::close(fd);
    return r;
  }
  const std::string out = line + "\n";
  if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
    auto r = fail("send");
    ::close(fd);
    return r;
  }
  // Without `prompt`, HAProxy answers one command and closes the connection.
  std::string answer;
  char buf[4096];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      auto r = fail("recv");
      ::close(fd);
      return r;
    }
    answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return answer;
}

std::optional<std::vector<HaproxyServer>> Haproxy::servers() {
  auto answer = command("show servers state " + backend_);
  if (!answer) return std::nullopt;
  std::vector<HaproxyServer> out;
  std::map<std::string, size_t> column;
  std::istringstream lines(*answer);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> fields;
    for (std::string w; words >> w;) fields.push_back(w);
    if (fields.empty()) continue;
    if (fields[0] == "#") {
      for (size_t i = 1; i < fields.size(); ++i) column[fields[i]] = i - 1;
      continue;
    }
    if (column.empty() || fields.size() < column.size()) continue;
    auto field = [&](const char* name) { return fields.at(column.at(name)); };
    HaproxyServer s;
    s.name = field("srv_name");
    s.address = field("srv_addr");
    s.port = std::stoi(field("srv_port"));
    s.op_state = std::stoi(field("srv_op_state"));
    s.admin_state = static_cast<uint32_t>(std::stoul(field("srv_admin_state")));
    s.weight = std::stoi(field("srv_uweight"));
    out.push_back(s);
  }
  return out;
}

void Haproxy::stop() {
  if (process_) process_->stop(5s);
}

// ---- Traffic --------------------------------------------------------------------------------

std::string Answer::describe() const {
  if (status == 0) return "no answer (" + error + ")";
  return "HTTP " + std::to_string(status) + " from " + (version.empty() ? "?" : version);
}

size_t Tally::of(const std::string& version) const {
  auto it = by_version.find(version);
  return it == by_version.end() ? 0 : it->second;
}

double Tally::share(const std::string& version) const {
  return total == 0 ? 0.0 : static_cast<double>(of(version)) / static_cast<double>(total);
}

std::string Tally::describe() const {
  std::ostringstream out;
  out << total << " requests, " << failed << " failed";
  for (const auto& [version, n] : by_version) {
    out << ", " << n << " answered by " << (version.empty() ? "(unknown)" : version);
  }
  if (!first_failures.empty()) {
    out << "; first failures:";
    for (const auto& f : first_failures) out << " [" << f << "]";
  }
  return out.str();
}

Tally tally(const std::vector<Answer>& answers) {
  return tallyBetween(answers, SystemTime::min(), SystemTime::max());
}

Tally tallyBetween(const std::vector<Answer>& answers, SystemTime from, SystemTime to) {
  Tally t;
  for (const Answer& a : answers) {
    if (a.sent <= from || a.sent >= to) continue;
    ++t.total;
    if (!a.version.empty() || a.status != 0) ++t.by_version[a.version];
    if (a.failed()) {
      ++t.failed;
      if (t.first_failures.size() < kFailuresKept) t.first_failures.push_back(a.describe());
    }
  }
  return t;
}

std::vector<Answer> sendRequests(const std::string& url, int count) {
  initCurl();
  std::vector<Answer> out;
  CURL* curl = newHandle(url);
  if (curl == nullptr) {
    ADD_FAILURE() << "curl_easy_init failed";
    return out;
  }
  for (int i = 0; i < count; ++i) out.push_back(request(curl));
  curl_easy_cleanup(curl);
  return out;
}

TrafficGenerator::TrafficGenerator(std::string url, int workers, std::chrono::milliseconds pace)
    : url_(std::move(url)), workers_(workers), pace_(pace) {
  initCurl();
}

TrafficGenerator::~TrafficGenerator() { stop(); }

void TrafficGenerator::start() {
  if (running()) return;
  stop_ = false;
  for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { work(); });
}

void TrafficGenerator::stop() {
  stop_ = true;
  for (auto& t : threads_) t.join();
  threads_.clear();
}

std::vector<Answer> TrafficGenerator::answers() const {
  std::vector<Answer> out;
  {
    std::lock_guard lock(mu_);
    out = answers_;
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Answer& a, const Answer& b) { return a.sent < b.sent; });
  return out;
}

size_t TrafficGenerator::count() const {
  std::lock_guard lock(mu_);
  return answers_.size();
}

void TrafficGenerator::work() {
  CURL* curl = newHandle(url_);
  if (curl == nullptr) return;  // seen as "no traffic" by the test
  auto next = std::chrono::steady_clock::now();
  while (!stop_.load()) {
    Answer answer = request(curl);
    {
      std::lock_guard lock(mu_);
      answers_.push_back(std::move(answer));
    }
    next += pace_;
    const auto now = std::chrono::steady_clock::now();
    if (next > now) {
      std::this_thread::sleep_for(next - now);
    } else {
      next = now;  // a slow answer does not turn into a burst afterwards
    }
  }
  curl_easy_cleanup(curl);
}

}  // namespace flotilla::integration
