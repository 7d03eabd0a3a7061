// Reconnect delays: exponential, capped, with jitter so that hosts that lost
// the same peer at the same moment do not reconnect in lockstep.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace xo::handoff::channel {

struct BackoffPolicy {
  std::chrono::milliseconds initial{50};
  std::chrono::milliseconds max{5000};
  double multiplier = 2.0;
  double jitter = 0.2;  // each delay is reduced by a random fraction in [0, jitter]
};

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}, uint64_t seed = std::random_device{}())
      : policy_(policy), rng_(seed) {}

  // The delay before the next attempt; grows with every call until reset().
  std::chrono::milliseconds next() {
    double base = static_cast<double>(policy_.initial.count());
    for (unsigned i = 0; i < attempts_ && base < static_cast<double>(policy_.max.count()); ++i)
      base *= policy_.multiplier;
    base = std::min(base, static_cast<double>(policy_.max.count()));
    ++attempts_;
    std::uniform_real_distribution<double> cut(0.0, std::clamp(policy_.jitter, 0.0, 1.0));
    return std::chrono::milliseconds(static_cast<int64_t>(base * (1.0 - cut(rng_))));
  }
  void reset() { attempts_ = 0; }
  unsigned attempts() const { return attempts_; }
  const BackoffPolicy& policy() const { return policy_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 rng_;
  unsigned attempts_ = 0;
};

}  // namespace xo::handoff::channel
