// Abuse limits of the HTTP API (see http_limits.hpp).
#include "coordinator/http_limits.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <system_error>

namespace flotilla::coordinator {

namespace {

using Clock = std::chrono::steady_clock;

class HttpWorkers : public httplib::TaskQueue {
 public:
  HttpWorkers(int min_threads, int max_threads)
      : min_(std::max(1, min_threads)), max_(std::max(min_, max_threads)) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < min_; ++i) spawnLocked();
  }
  ~HttpWorkers() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    // Every thread busy and as many connections waiting: the accept loop waits here, and new
    // connections wait in the kernel's backlog instead of holding descriptors of ours.
    room_.wait(lock, [this] {
      return shutdown_ || threads_ < max_ || static_cast<int>(jobs_.size()) < max_;
    });
    jobs_.push_back(std::move(fn));
    // A job nobody idle will take gets a new thread, up to the cap; past it, it waits.
    if (static_cast<int>(jobs_.size()) > idle_ && threads_ < max_) spawnLocked();
    work_.notify_one();
  }

  void shutdown() override {
    std::unique_lock<std::mutex> lock(mu_);
    shutdown_ = true;
    work_.notify_all();
    room_.notify_all();
    gone_.wait(lock, [this] { return threads_ == 0; });
  }

 private:
  void spawnLocked() {
    try {
      std::thread([this] { work(); }).detach();
      ++threads_;
    } catch (const std::system_error& e) {
      // Out of threads: the job waits for a running one.
      spdlog::warn("http: cannot start a worker thread ({}); {} running", e.what(), threads_);
    }
  }

  void work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      ++idle_;
      const bool woken = work_.wait_for(lock, std::chrono::seconds(30),
                                        [this] { return !jobs_.empty() || shutdown_; });
      --idle_;
      if (jobs_.empty()) {
        if (shutdown_ || (!woken && threads_ > min_)) break;
        continue;
      }
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      room_.notify_one();
      lock.unlock();
      job();
      job = nullptr;
      lock.lock();
    }
    --threads_;
    gone_.notify_all();  // under the lock: the queue may be destroyed right after
  }

  std::mutex mu_;
  std::condition_variable work_;
  std::condition_variable room_;
  std::condition_variable gone_;
  std::deque<std::function<void()>> jobs_;
  const int min_;
  const int max_;
  int threads_ = 0;
  int idle_ = 0;
  bool shutdown_ = false;
};

// "ip|port" of a socket's local or peer address, and the port; nullopt for non-IP sockets.
std::optional<std::pair<std::string, int>> addressOf(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    return std::make_pair(std::string(text), static_cast<int>(ntohs(in->sin_port)));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in->sin6_addr, text, sizeof(text));
    std::string ip = text;
    // httplib reports an IPv4-mapped peer of a dual-stack socket in this form too.
    return std::make_pair(ip, static_cast<int>(ntohs(in->sin6_port)));
  }
  return std::nullopt;
}

std::optional<std::pair<std::string, int>> peerOf(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return std::nullopt;
  return addressOf(addr);
}

std::string keyOf(const std::string& ip, int port) { return ip + "|" + std::to_string(port); }

struct OpenConnection {
  int fd;
  ino_t inode;  // the socket itself: a new connection from the same ip|port is another one
  std::string ip;
  std::string key;  // "ip|port" of the peer
};

// Calls `fn(fd, inode, listening)` for each of the process's TCP sockets whose local port is
// `port`.
void forEachSocketOn(int port, const std::function<void(int fd, ino_t inode, bool listening)>& fn) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long number = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0') continue;
    const int fd = static_cast<int>(number);
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) continue;
    auto here = addressOf(local);
    if (!here || here->second != port) continue;
    int listening = 0;
    socklen_t optlen = sizeof(listening);
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0) continue;
    fn(fd, st.st_ino, listening != 0);
  }
  ::closedir(dir);
}

// The API's open connections: connected sockets on its port.
std::vector<OpenConnection> connectionsOn(int port) {
  std::vector<OpenConnection> out;
  forEachSocketOn(port, [&](int fd, ino_t inode, bool listening) {
    if (listening) return;
    auto peer = peerOf(fd);
    if (peer) out.push_back({fd, inode, peer->first, keyOf(peer->first, peer->second)});
  });
  return out;
}

}  // namespace

bool widenListenBacklog(int port, int backlog) {
  bool done = false;
  forEachSocketOn(port, [&](int fd, ino_t, bool listening) {
    // On a listening socket, listen() again only sets the backlog.
    if (listening && ::listen(fd, backlog) == 0) done = true;
  });
  return done;
}

std::unique_ptr<httplib::TaskQueue> makeHttpWorkers(int min_threads, int max_threads) {
  return std::make_unique<HttpWorkers>(min_threads, max_threads);
}

StreamSlots::Slot::~Slot() {
  std::lock_guard<std::mutex> lock(owner_->mu_);
  --owner_->open_;
  if (--owner_->by_key_[key_] <= 0) owner_->by_key_.erase(key_);
}

std::shared_ptr<StreamSlots::Slot> StreamSlots::acquire(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_key_.find(key);
  const int mine = it == by_key_.end() ? 0 : it->second;
  if (open_ >= total_ || mine >= per_key_) return nullptr;
  ++open_;
  ++by_key_[key];
  return std::make_shared<Slot>(this, key);
}

int StreamSlots::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_;
}

bool RateLimiter::allow(const std::string& key, Clock::time_point now,
                        std::chrono::milliseconds* retry_after) {
  if (rate_ <= 0) return true;
  std::lock_guard<std::mutex> lock(mu_);
  if (buckets_.size() >= kMaxBuckets && !buckets_.count(key)) {
    // Keyed by something many (client addresses): forget the buckets that are full again, and
    // all of them if that is not enough. Forgetting only ever gives a key its burst back.
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      const double elapsed = std::chrono::duration<double>(now - it->second.at).count();
      it = it->second.tokens + elapsed * rate_ >= burst_ ? buckets_.erase(it) : std::next(it);
    }
    if (buckets_.size() >= kMaxBuckets) buckets_.clear();
  }
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!fresh) {
    const double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min(burst_, b.tokens + std::max(0.0, elapsed) * rate_);
    b.at = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  *retry_after =
      std::chrono::milliseconds(static_cast<int64_t>(std::ceil((1.0 - b.tokens) / rate_ * 1000.0)));
  return false;
}

ConnectionWatch::ConnectionWatch(Metrics& metrics, const HttpLimits& limits)
    : metrics_(metrics), limits_(limits) {}

ConnectionWatch::~ConnectionWatch() { stop(); }

void ConnectionWatch::start(int port) {
  port_ = port;
  thread_ = std::thread([this] { loop(); });
}

void ConnectionWatch::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

namespace {
// httplib names a link-local IPv6 peer "fe80::1%eth0"; inet_ntop gives "fe80::1".
std::string withoutScope(const std::string& ip) { return ip.substr(0, ip.find('%')); }
}  // namespace

void ConnectionWatch::markRouted(const std::string& ip, int port) {
  std::lock_guard<std::mutex> lock(mu_);
  marks_[keyOf(withoutScope(ip), port)].routed = true;
}

void ConnectionWatch::markStreaming(const std::string& ip, int port) {
  std::lock_guard<std::mutex> lock(mu_);
  Mark& m = marks_[keyOf(withoutScope(ip), port)];
  m.routed = true;
  m.streaming = true;
}

void ConnectionWatch::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    sweep(Clock::now());
    lock.lock();
    // Once a second: the deadlines are 10 s and 60 s, and a sweep looks at every descriptor
    // of the process (10,000 agent connections too). Every 200 ms it took 17% of a core.
    wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
  }
}

void ConnectionWatch::sweep(Clock::time_point now) {
  if (port_ == 0) return;
  std::vector<OpenConnection> open = connectionsOn(port_);
  struct Cut {
    int fd;
    ino_t inode;
    std::string key;
    const char* reason;
  };
  std::vector<Cut> cuts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++sweeps_;
    std::map<ino_t, Seen> still;
    std::map<std::string, std::vector<const OpenConnection*>> waiting_by_client;
    for (const OpenConnection& c : open) {
      auto it = seen_.find(c.inode);
      Seen s = it == seen_.end() ? Seen{now} : it->second;
      // A mark applies to the connection of that peer seen now, once: a later connection from
      // the same ip|port is another socket and starts unmarked.
      if (auto m = marks_.find(c.key); m != marks_.end()) {
        if (m->second.routed && !s.routed) s.routed_at = now;
        s.routed = s.routed || m->second.routed;
        s.streaming = s.streaming || m->second.streaming;
        marks_.erase(m);
      }
      if (!s.cut) {
        if (!s.routed && now - s.since > limits_.header_deadline) {
          cuts.push_back({c.fd, c.inode, c.key, "header_deadline"});
          s.cut = true;
        } else if (s.routed && !s.streaming && now - s.routed_at > limits_.request_deadline) {
          // A request whose head came but whose body (or answer) drags on.
          cuts.push_back({c.fd, c.inode, c.key, "request_deadline"});
          s.cut = true;
        } else if (!s.routed) {
          waiting_by_client[c.ip].push_back(&c);
        }
      }
      still[c.inode] = s;
    }
    // Over the per-client cap of connections without a request head yet: the newest of them go
    // first, once they had a second to send it.
    for (auto& [ip, waiting] : waiting_by_client) {
      int excess = static_cast<int>(waiting.size()) - limits_.per_client;
      if (excess <= 0) continue;
      std::sort(waiting.begin(), waiting.end(),
                [&](const OpenConnection* a, const OpenConnection* b) {
                  return still[a->inode].since > still[b->inode].since;
                });
      for (size_t i = 0; i < waiting.size() && excess > 0; ++i) {
        Seen& s = still[waiting[i]->inode];
        if (now - s.since < std::chrono::seconds(1)) continue;
        cuts.push_back({waiting[i]->fd, waiting[i]->inode, waiting[i]->key, "per_client"});
        s.cut = true;
        --excess;
      }
    }
    seen_ = std::move(still);
    // Marks for connections no sweep has seen (closed already) expire after a few sweeps.
    for (auto it = marks_.begin(); it != marks_.end();) {
      if (it->second.sweep == 0) it->second.sweep = sweeps_;
      it = sweeps_ - it->second.sweep > 2 ? marks_.erase(it) : std::next(it);
    }
  }
  for (const Cut& cut : cuts) {
    // The fd may have been closed and reused since it was listed: cut only the same socket.
    struct stat st {};
    if (::fstat(cut.fd, &st) != 0 || st.st_ino != cut.inode) continue;
    auto peer = peerOf(cut.fd);
    if (!peer || keyOf(peer->first, peer->second) != cut.key) continue;
    ::shutdown(cut.fd, SHUT_RDWR);
    metrics_.httpConnectionCut(cut.reason);
    uint64_t suppressed = 0;
    if (log_limit_.allow(cut.reason, now, &suppressed)) {
      spdlog::warn("http: cut a connection from {} ({}){}", peer->first, cut.reason,
                   suppressed ? fmt::format("; {} more since the last line", suppressed) : "");
    }
  }
  metrics_.setHttpConnections(static_cast<int64_t>(open.size()));
}

}  // namespace flotilla::coordinator
