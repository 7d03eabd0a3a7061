// HybridSteer: eBPF now, hardware later.
//
// insert() writes the eBPF entry synchronously (the flow is steered when it
// returns) and queues the hardware insert to a worker thread, because a TC
// flower insert takes milliseconds and a sent netlink request cannot be
// cancelled. When the hardware confirms, the eBPF entry is removed (the NIC
// now does the work). A remove() that finds its insert still queued cancels
// both in user space: the hardware never hears of the flow. A remove() that
// finds the insert in flight lets it finish, then queues the hardware delete.
// The first "unsupported" answer turns the hybrid eBPF-only for good
// (mode() says so). BLOCK entries never go to hardware: they live for the
// microseconds of a handoff.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "common/steer/backend.h"
#include "common/steer/hw_backend.h"

namespace xo::steer {

enum class FlowPath { kEbpf, kHwPending, kHw };
const char* path_name(FlowPath p);

struct HybridStats {
  uint64_t ebpf_inserts = 0;      // synchronous eBPF writes by insert()
  uint64_t hw_queued = 0;         // hardware inserts queued
  uint64_t hw_confirmed = 0;      // hardware inserts acknowledged (eBPF entry then removed)
  uint64_t hw_failed = 0;         // hardware inserts that failed (flow stays in eBPF)
  uint64_t hw_unsupported = 0;    // "unsupported" answers (the first one disables hardware)
  uint64_t hw_cancelled = 0;      // queued inserts cancelled by remove() before running
  uint64_t hw_removed = 0;        // hardware deletes issued
  uint64_t removes = 0;           // remove() calls that found the flow
};

class HybridSteer final : public SteerBackend {
 public:
  HybridSteer(std::unique_ptr<SteerBackend> ebpf, std::unique_ptr<HwSteer> hw);
  ~HybridSteer() override;  // drains nothing: stops the worker after its current request

  Status insert(const SteerEntry& entry) override;
  Status remove(const FlowKey& flow) override;
  // eBPF entries plus the flows the hardware holds.
  Result<std::vector<ListedEntry>> list() override;
  std::string name() const override { return "hybrid"; }

  // Where the flow is steered now; ENOENT if unknown.
  Result<FlowPath> path(const FlowKey& flow);
  // "ebpf+<hw name>" or "ebpf-only: <why>".
  std::string mode();
  bool hardware_supported();
  HybridStats stats();
  // Blocks until the worker has nothing queued or in flight (tests, shutdown).
  void drain();
  SteerBackend& ebpf() { return *ebpf_; }
  // BLOCK entries live in eBPF only.
  std::vector<std::string> take_held(uint64_t owner) override { return ebpf_->take_held(owner); }

 private:
  struct FlowState {
    SteerEntry entry;
    FlowPath path = FlowPath::kEbpf;
    uint64_t gen = 0;        // matches the queued op that may still act on it
    bool in_flight = false;  // the worker is talking to the hardware about it
    bool removed = false;    // remove() arrived while in flight
  };
  struct Op {
    bool add = true;
    uint64_t gen = 0;     // add: must match FlowState::gen or the op was cancelled
    SteerEntry entry;     // remove: what to delete in hardware
  };

  void worker();
  void run_add(std::unique_lock<std::mutex>& lock, const Op& op);
  void enqueue(Op op);  // mu_ held

  std::unique_ptr<SteerBackend> ebpf_;
  std::unique_ptr<HwSteer> hw_;
  std::mutex mu_;
  std::condition_variable wake_, idle_;
  std::deque<Op> queue_;
  bool busy_ = false, stop_ = false;
  bool hw_supported_ = true;
  std::string unsupported_reason_;
  uint64_t next_gen_ = 1;
  std::unordered_map<FlowKey, FlowState, FlowKeyHash> flows_;
  HybridStats stats_;
  std::thread thread_;
};

}  // namespace xo::steer
