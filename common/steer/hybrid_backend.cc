#include "common/steer/hybrid_backend.h"

namespace xo::steer {

const char* path_name(FlowPath p) {
  switch (p) {
    case FlowPath::kEbpf: return "ebpf";
    case FlowPath::kHwPending: return "ebpf(hw pending)";
    case FlowPath::kHw: return "hw";
  }
  return "?";
}

HybridSteer::HybridSteer(std::unique_ptr<SteerBackend> ebpf, std::unique_ptr<HwSteer> hw)
    : ebpf_(std::move(ebpf)), hw_(std::move(hw)) {
  if (!hw_) {
    hw_supported_ = false;
    unsupported_reason_ = "no hardware backend configured";
  }
  thread_ = std::thread([this] { worker(); });
}

HybridSteer::~HybridSteer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HybridSteer::enqueue(Op op) {
  queue_.push_back(std::move(op));
  wake_.notify_one();
}

Status HybridSteer::insert(const SteerEntry& entry) {
  XO_TRY(entry.validate());
  std::unique_lock<std::mutex> lock(mu_);
  // Under the lock: the worker's "confirmed → remove the eBPF entry" must not
  // interleave with a replacement of the same flow.
  XO_TRY(ebpf_->insert(entry));
  stats_.ebpf_inserts++;
  FlowState& st = flows_[entry.flow];
  if (st.path == FlowPath::kHw && !st.in_flight) {
    enqueue(Op{false, 0, st.entry});  // the replaced rule leaves the hardware
    stats_.hw_removed++;
  }
  st.entry = entry;
  st.gen = next_gen_++;
  st.removed = false;
  if (!hw_supported_ || entry.action == Action::kBlock) {
    st.path = FlowPath::kEbpf;
    return {};
  }
  st.path = FlowPath::kHwPending;
  stats_.hw_queued++;
  enqueue(Op{true, st.gen, entry});
  return {};
}

Status HybridSteer::remove(const FlowKey& flow) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = flows_.find(flow);
  if (it == flows_.end()) return ebpf_->remove(flow);  // e.g. an entry adopted from a previous process
  FlowState& st = it->second;
  stats_.removes++;
  Status ebpf_status = ebpf_->remove(flow);
  if (!ebpf_status.ok() && ebpf_status.error().code != ENOENT) return ebpf_status;  // ENOENT: hardware held it
  if (st.in_flight) {
    st.removed = true;  // the worker deletes it in hardware once its insert returns
    return {};
  }
  if (st.path == FlowPath::kHwPending) {
    stats_.hw_cancelled++;  // its queued op finds no state (or another gen) and skips
  } else if (st.path == FlowPath::kHw) {
    enqueue(Op{false, 0, st.entry});
    stats_.hw_removed++;
  }
  flows_.erase(it);
  return {};
}

void HybridSteer::run_add(std::unique_lock<std::mutex>& lock, const Op& op) {
  auto it = flows_.find(op.entry.flow);
  if (it == flows_.end() || it->second.gen != op.gen) return;  // cancelled or replaced
  if (!hw_supported_) {
    it->second.path = FlowPath::kEbpf;
    return;
  }
  it->second.in_flight = true;
  lock.unlock();
  Status st = hw_->add(op.entry);
  lock.lock();
  it = flows_.find(op.entry.flow);  // still there: remove() does not erase in-flight flows
  FlowState& fs = it->second;
  fs.in_flight = false;
  if (st.ok()) {
    stats_.hw_confirmed++;
    if (fs.removed || fs.gen != op.gen) {
      // Removed (or replaced) while the request was in the kernel: undo in hardware.
      stats_.hw_removed++;
      if (fs.removed) flows_.erase(it);
      lock.unlock();
      (void)hw_->remove(op.entry);
      lock.lock();
      return;
    }
    fs.path = FlowPath::kHw;
    (void)ebpf_->remove(op.entry.flow);  // the NIC steers it now
    return;
  }
  if (is_unsupported(st.error())) {
    stats_.hw_unsupported++;
    if (hw_supported_) {
      hw_supported_ = false;
      unsupported_reason_ = hw_->name() + ": " + st.error().to_string();
    }
  } else {
    stats_.hw_failed++;
  }
  if (fs.removed) {
    flows_.erase(it);
  } else if (fs.gen == op.gen) {
    fs.path = FlowPath::kEbpf;  // stays steered by eBPF
  }
}

void HybridSteer::worker() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    Op op = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    if (op.add) {
      run_add(lock, op);
    } else {
      lock.unlock();
      (void)hw_->remove(op.entry);
      lock.lock();
    }
    busy_ = false;
    if (queue_.empty()) idle_.notify_all();
  }
}

void HybridSteer::drain() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return stop_ || (queue_.empty() && !busy_); });
}

Result<FlowPath> HybridSteer::path(const FlowKey& flow) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = flows_.find(flow);
  if (it == flows_.end()) return error("hybrid: unknown flow " + flow.to_string(), ENOENT);
  return it->second.path;
}

std::string HybridSteer::mode() {
  std::lock_guard<std::mutex> lock(mu_);
  return hw_supported_ ? "ebpf+" + hw_->name() : "ebpf-only: " + unsupported_reason_;
}

bool HybridSteer::hardware_supported() {
  std::lock_guard<std::mutex> lock(mu_);
  return hw_supported_;
}

HybridStats HybridSteer::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

Result<std::vector<ListedEntry>> HybridSteer::list() {
  XO_ASSIGN_OR_RETURN(std::vector<ListedEntry> out, ebpf_->list());
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [flow, st] : flows_)
    if (st.path == FlowPath::kHw) out.push_back(ListedEntry{st.entry, {}});
  return out;
}

}  // namespace xo::steer
