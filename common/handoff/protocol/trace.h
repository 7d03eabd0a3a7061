// Per-handoff timing trace (each step in µs since the handoff started) and
// process-wide counters, for benchmarks (handoff.step.<step>) and debugging.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace xo::handoff::protocol {

class Trace {
 public:
  struct Step {
    std::string name;
    int64_t at_us;  // since start
  };
  Trace() : start_(std::chrono::steady_clock::now()) {}
  void mark(std::string step) {
    steps_.push_back({std::move(step), std::chrono::duration_cast<std::chrono::microseconds>(
                                           std::chrono::steady_clock::now() - start_)
                                           .count()});
  }
  const std::vector<Step>& steps() const { return steps_; }
  // "freeze=12 offer_sent=15 ready=80 ..." (µs)
  std::string to_string() const {
    std::string s;
    for (const auto& st : steps_) s += (s.empty() ? "" : " ") + st.name + "=" + std::to_string(st.at_us);
    return s;
  }

 private:
  std::chrono::steady_clock::time_point start_;
  std::vector<Step> steps_;
};

struct Counters {
  std::atomic<uint64_t> offers{0};       // OFFERs sent (origin)
  std::atomic<uint64_t> accepts{0};      // READY received and GO sent (origin)
  std::atomic<uint64_t> refusals{0};     // REFUSE received (origin) or sent (target)
  std::atomic<uint64_t> rollbacks{0};    // origin took its connection back before GO
  std::atomic<uint64_t> late_ready{0};   // READY after rollback, answered with ABORT
  std::atomic<uint64_t> served{0};       // target: GO (or confirmed commit) → serving
  std::atomic<uint64_t> discarded{0};    // target: dropped silently without commit
  std::atomic<uint64_t> returns{0};      // RETURNs completed
};

}  // namespace xo::handoff::protocol
