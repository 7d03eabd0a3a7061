// Which flows this origin committed (sent GO for), so it can answer a
// target's QUERY_COMMITTED. Bounded: the oldest entries go first; a target
// asks within its GO timeout, long before an entry would be evicted.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <unordered_set>

namespace xo::handoff::protocol {

class CommitLog {
 public:
  explicit CommitLog(size_t capacity = 65536) : capacity_(capacity) {}
  void record(uint64_t flow_id) {
    std::lock_guard lock(mu_);
    if (!ids_.insert(flow_id).second) return;
    order_.push_back(flow_id);
    if (order_.size() > capacity_) {
      ids_.erase(order_.front());
      order_.pop_front();
    }
  }
  bool committed(uint64_t flow_id) const {
    std::lock_guard lock(mu_);
    return ids_.count(flow_id) != 0;
  }

 private:
  size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_set<uint64_t> ids_;
  std::deque<uint64_t> order_;
};

}  // namespace xo::handoff::protocol
