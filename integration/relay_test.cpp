// Agents talk to the coordinator through a relay that duplicates and reorders frames in both
// directions (seeded): a full rollout through it still runs every step exactly once and ends in
// the right state. At-least-once delivery, exactly-once effects.
#include <atomic>
#include <iostream>
#include <map>
#include <random>
#include <thread>
#include <zmq.hpp>

#include "integration/rollout_check.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// ROUTER facing the agents; per agent a DEALER to the coordinator under the agent's routing id,
// so the coordinator sees the agent itself. Every frame, in both directions, is held for a random
// delay (frames that arrive close together overtake each other) and some are sent twice, the copy
// after a longer random delay (a late duplicate, possibly after the answer to the original).
class ChaosRelay {
 public:
  struct Stats {
    uint64_t frames = 0;      // received, both directions
    uint64_t duplicated = 0;  // sent twice
    uint64_t reordered = 0;   // sent ahead of a different frame that came in before it
  };

  ChaosRelay(std::string upstream, uint32_t seed) : upstream_(std::move(upstream)), rng_(seed) {
    front_.set(zmq::sockopt::linger, 0);
    front_.bind("tcp://127.0.0.1:*");
    address_ = front_.get(zmq::sockopt::last_endpoint);
  }

  ~ChaosRelay() { stop(); }

  const std::string& address() const { return address_; }

  void start() {
    thread_ = std::thread([this] { loop(); });
  }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  // Valid once stopped.
  Stats stats() const { return stats_; }

 private:
  static constexpr double kDuplicate = 0.3;
  static constexpr int kMaxDelayMs = 250;
  static constexpr int kMaxDuplicateDelayMs = 600;
  using Clock = std::chrono::steady_clock;

  struct Held {
    uint64_t order;  // arrival order in its queue
    Clock::time_point due;
    std::string frame;
  };

  struct Peer {
    std::unique_ptr<zmq::socket_t> up;  // DEALER to the coordinator
    std::vector<Held> to_coordinator;
    std::vector<Held> to_agent;
    uint64_t next_order = 0;
  };

  Peer& peer(const std::string& identity) {
    auto it = peers_.find(identity);
    if (it != peers_.end()) return it->second;
    Peer p;
    p.up = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
    p.up->set(zmq::sockopt::routing_id, identity);
    p.up->set(zmq::sockopt::linger, 0);
    p.up->connect(upstream_);
    return peers_.emplace(identity, std::move(p)).first->second;
  }

  Clock::time_point after(int max_ms) {
    return Clock::now() +
           std::chrono::milliseconds(std::uniform_int_distribution<int>(0, max_ms)(rng_));
  }

  void hold(Peer& p, std::vector<Held>& queue, const std::string& frame) {
    ++stats_.frames;
    const uint64_t order = p.next_order++;
    queue.push_back({order, after(kMaxDelayMs), frame});
    if (std::uniform_real_distribution<double>(0, 1)(rng_) < kDuplicate) {
      ++stats_.duplicated;
      queue.push_back({order, after(kMaxDuplicateDelayMs), frame});
    }
  }

  // Sends every frame whose delay is over, earliest due first.
  template <typename SendFn>
  void release(std::vector<Held>& queue, SendFn send) {
    const auto now = Clock::now();
    while (true) {
      auto due = std::min_element(queue.begin(), queue.end(),
                                  [](const Held& a, const Held& b) { return a.due < b.due; });
      if (due == queue.end() || due->due > now) return;
      for (const auto& h : queue) {
        if (h.order < due->order) {
          ++stats_.reordered;
          break;
        }
      }
      send(due->frame);
      queue.erase(due);
    }
  }

  void loop() {
    while (!stop_) {
      std::vector<zmq::pollitem_t> items;
      items.push_back({static_cast<void*>(front_), 0, ZMQ_POLLIN, 0});
      std::vector<std::string> order;
      for (auto& [identity, p] : peers_) {
        items.push_back({static_cast<void*>(*p.up), 0, ZMQ_POLLIN, 0});
        order.push_back(identity);
      }
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(10));
      if (items[0].revents & ZMQ_POLLIN) {
        zmq::message_t identity;
        zmq::message_t frame;
        while (front_.recv(identity, zmq::recv_flags::dontwait)) {
          if (!identity.more() || !front_.recv(frame, zmq::recv_flags::dontwait)) continue;
          Peer& p = peer(identity.to_string());
          hold(p, p.to_coordinator, frame.to_string());
        }
      }
      for (size_t i = 1; i < items.size(); ++i) {
        if (!(items[i].revents & ZMQ_POLLIN)) continue;
        Peer& p = peers_.at(order[i - 1]);
        zmq::message_t frame;
        while (p.up->recv(frame, zmq::recv_flags::dontwait)) hold(p, p.to_agent, frame.to_string());
      }
      for (auto& [identity, p] : peers_) {
        release(p.to_coordinator, [&](const std::string& f) {
          p.up->send(zmq::buffer(f), zmq::send_flags::dontwait);
        });
        release(p.to_agent, [&, id = identity](const std::string& f) {
          front_.send(zmq::buffer(id), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
          front_.send(zmq::buffer(f), zmq::send_flags::dontwait);
        });
      }
    }
  }

  std::string upstream_;
  std::mt19937 rng_;
  zmq::context_t context_{1};
  zmq::socket_t front_{context_, zmq::socket_type::router};
  std::string address_;
  std::map<std::string, Peer> peers_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  Stats stats_;
};

class RelayTest : public RolloutTest {
 protected:
  // The coordinator, and the four agents connected through a relay seeded with `seed`.
  void startFleetThroughRelay(uint32_t seed) {
    // A relay that speaks for the agents is exactly what CurveZMQ forbids: this test of
    // delivery (not of trust) runs on the NULL mechanism, which --insecure allows on loopback.
    CoordinatorOptions options;
    options.insecure_agents = true;
    ASSERT_NO_FATAL_FAILURE(startCoordinator(options));
    relay_ = std::make_unique<ChaosRelay>(agentAddress(), seed);
    relay_->start();
    AgentLaunch through;
    through.coordinator = relay_->address();
    ASSERT_NO_FATAL_FAILURE(startAgents(kUsualAgents, through));
  }

  // Stops the relay and checks it really duplicated and reordered.
  void checkRelayWorked() {
    relay_->stop();
    const ChaosRelay::Stats s = relay_->stats();
    std::cout << "[relay] " << s.frames << " frames, " << s.duplicated << " duplicated, "
              << s.reordered << " reordered" << std::endl;
    EXPECT_GT(s.duplicated, 0u);
    EXPECT_GT(s.reordered, 0u);
  }

  void TearDown() override {
    if (relay_) relay_->stop();
    RolloutTest::TearDown();
  }

  std::unique_ptr<ChaosRelay> relay_;
};

TEST_F(RelayTest, GoodRolloutThroughDuplicatesAndReordersRunsEveryStepOnce) {
  ASSERT_NO_FATAL_FAILURE(startFleetThroughRelay(crashSeed(6606)));
  const std::string id = submit(writeRollout());
  ASSERT_FALSE(id.empty());
  checkRollout(id, "succeeded");
  checkRelayWorked();
}

TEST_F(RelayTest, FailingRolloutThroughDuplicatesAndReordersRollsBackEachClusterOnce) {
  ASSERT_NO_FATAL_FAILURE(startFleetThroughRelay(crashSeed(7707)));
  const std::string id = submit(writeRollout(failingRollout()));
  ASSERT_FALSE(id.empty());
  checkRollout(id, "rolled_back");
  EXPECT_EQ(counter("staging-eu", id),
            (std::vector<std::string>{"build", "apply", "verify", "rollback"}));
  EXPECT_EQ(counter("prod-eu-2", id),
            (std::vector<std::string>{"build", "apply", "verify", "rollback"}));
  checkRelayWorked();
}

}  // namespace
}  // namespace flotilla::integration
